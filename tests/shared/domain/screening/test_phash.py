"""``shared.domain.screening.phash``: the design's hash, its bit conversions, and the refusal of
what is not an image a design may be."""

from __future__ import annotations

import io
import random
import time
import zlib

import pytest
from PIL import Image

from shared.domain.screening.phash import (
    MAX_PIXELS,
    UnreadableImage,
    chunk_neighbours,
    chunks,
    design_hashes,
    from_hex,
    from_signed,
    hamming,
    perceptual_hash,
    to_hex,
    to_signed,
)
from simulators.comfyui.render import render_png


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def bomb(side: int) -> bytes:
    """A PNG header and a few bytes of data claiming ``side`` x ``side`` RGB pixels."""
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def test_the_same_render_resized_hashes_alike_and_another_seed_does_not() -> None:
    a = render_png("retro sunset mountain cabin", 7, 512, 512)
    big = render_png("retro sunset mountain cabin", 7, 512, 512, out_width=1500, out_height=1500)
    other = render_png("retro sunset mountain cabin", 8, 512, 512)
    assert hamming(perceptual_hash(a), perceptual_hash(big)) <= 4
    assert hamming(perceptual_hash(a), perceptual_hash(other)) > 15


def test_a_mirrored_design_is_found_by_its_mirror_hash() -> None:
    a = Image.open(io.BytesIO(render_png("a fox in the woods", 3, 512, 512)))
    flipped = png(a.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    original = design_hashes(png(a))
    mirror = design_hashes(flipped)
    assert hamming(original.phash, mirror.phash) > 15
    assert hamming(original.phash, mirror.mirrored) <= 2
    assert design_hashes(png(a)).phash == perceptual_hash(png(a))


def test_transparent_pixels_hash_as_white_whatever_colour_they_hold() -> None:
    art = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    art.paste((200, 30, 30, 255), (100, 100, 300, 300))
    garbage = art.copy()
    # The same transparency, other colours under it (what a tool happens to leave there).
    garbage.paste((0, 255, 0, 0), (0, 0, 400, 90))
    on_white = Image.new("RGB", (400, 400), (255, 255, 255))
    on_white.paste((200, 30, 30), (100, 100, 300, 300))
    h = perceptual_hash(png(art))
    assert h == perceptual_hash(png(garbage))
    assert hamming(h, perceptual_hash(png(on_white))) <= 2


def test_print_size_images_are_hashed_fast_enough() -> None:
    # A print file (4500x5100), as the generator's upscale makes it.
    image = render_png("vintage motorcycle club", 1, 1024, 1024, out_width=4500, out_height=5100)
    small = render_png("vintage motorcycle club", 1, 1024, 1024)
    started = time.perf_counter()
    h = perceptual_hash(image)
    took = time.perf_counter() - started
    assert hamming(h, perceptual_hash(small)) <= 4
    # ~0.3 s here for 23 megapixels of PNG, nearly all of it decoding; a generous ceiling.
    assert took < 5, took


def test_what_is_not_an_image_or_too_large_is_refused_before_decoding() -> None:
    with pytest.raises(UnreadableImage, match="not a readable image"):
        perceptual_hash(b"not an image at all")
    with pytest.raises(UnreadableImage, match="not a readable image"):
        perceptual_hash(png(Image.new("RGB", (64, 64)))[:60])
    # Bombs: valid PNGs claiming 10000x10000 (over our limit) and 20000x20000 pixels (over
    # twice Pillow's own), their data a few bytes.
    for side in (10_000, 20_000):
        with pytest.raises(UnreadableImage, match=f"over the {MAX_PIXELS} pixels"):
            perceptual_hash(bomb(side))
    with pytest.raises(UnreadableImage, match="over the 100 pixels"):
        perceptual_hash(png(Image.new("RGB", (20, 20))), max_pixels=100)


def test_hex_and_signed_conversions_keep_the_bits() -> None:
    rng = random.Random(1)
    for h in [0, 1, 2**63 - 1, 2**63, 2**64 - 1] + [rng.getrandbits(64) for _ in range(200)]:
        assert from_hex(to_hex(h)) == h and len(to_hex(h)) == 16
        signed = to_signed(h)
        assert -(2**63) <= signed < 2**63 and from_signed(signed) == h
        assert (signed < 0) == (h >= 2**63)
    assert to_signed(2**64 - 1) == -1 and to_hex(2**64 - 1) == "f" * 16
    for bad in ("", "123", "g" * 16, "0x" + "0" * 14, "1" * 17):
        with pytest.raises(ValueError):
            from_hex(bad)
    for bad_int in (-1, 2**64):
        with pytest.raises(ValueError):
            to_signed(bad_int)
        with pytest.raises(ValueError):
            hamming(bad_int, 0)
    with pytest.raises(ValueError):
        from_signed(2**63)


def test_hamming_and_chunks() -> None:
    assert hamming(0, 2**64 - 1) == 64 and hamming(0b1010, 0b0110) == 2
    assert chunks(0x0001_0002_0003_FFFF) == (1, 2, 3, 0xFFFF)
    h = random.Random(2).getrandbits(64)
    c = chunks(h)
    assert (c[0] << 48) | (c[1] << 32) | (c[2] << 16) | c[3] == h


@pytest.mark.parametrize(("radius", "count"), [(0, 1), (1, 17), (2, 137), (3, 697)])
def test_chunk_neighbours_are_every_value_within_the_radius_once(radius: int, count: int) -> None:
    chunk = 0b1011_0000_1111_0101
    values = chunk_neighbours(chunk, radius)
    assert len(values) == len(set(values)) == count and values[0] == chunk
    expected = {v for v in range(2**16) if (v ^ chunk).bit_count() <= radius}
    assert set(values) == expected
    with pytest.raises(ValueError):
        chunk_neighbours(chunk, 4)
