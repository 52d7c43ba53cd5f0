"""The simulated sampler's images: the text a prompt asks to be printed is in the art, legibly."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from shared.adapters.ocr import TesseractReader, tesseract_available
from simulators.comfyui.render import MAX_LINES, printed_text, render_png

needs_tesseract = pytest.mark.skipif(
    not tesseract_available(),
    reason="no tesseract with English data (Debian's tesseract-ocr, tesseract-ocr-eng: "
    "scripts/bootstrap.sh installs them as root)",
)


def test_the_printed_text_is_what_the_prompt_quotes() -> None:
    assert printed_text('a retro sunset with the text "STAY WILD" in bold letters') == ["STAY WILD"]
    # Typographic quotes, several lines, blanks squeezed; an empty quote is no line.
    prompt = 'poster, \u201cJUST  DO\u201d above and \u201cIT\u201d below, "" nothing'
    assert printed_text(prompt) == ["JUST DO", "IT"]
    assert printed_text("a watercolour fox, no text") == []
    # An apostrophe is not a quote.
    assert printed_text("a dad's fishing trip") == []
    many = " ".join(f'"L{i}"' for i in range(MAX_LINES + 3))
    assert len(printed_text(many)) == MAX_LINES


@needs_tesseract
async def test_the_quoted_text_is_rendered_large_enough_to_read() -> None:
    reader = TesseractReader()
    for prompt, seed, size, want in [
        ('a retro sunset with the text "STAY WILD" in bold letters', 1, (1024, 1024), "STAY WILD"),
        ('mug wrap with swoosh curves, text "COFFEE FIRST"', 26, (1024, 512), "COFFEE FIRST"),
        ('tote bag, a long slogan "MOUNTAINS ARE CALLING AND I MUST GO"', 8, (768, 1024), None),
    ]:
        read = await reader.read_text(render_png(prompt, seed, *size))
        assert (want or printed_text(prompt)[0]) in read, (prompt, read)


def test_only_the_asked_text_is_drawn() -> None:
    # Without a quote the art has no black-and-white lettering at all: the prompt's words are
    # no longer written on it (OCR would read the prompt back as if the model had printed it).
    plain = Image.open(io.BytesIO(render_png("a lighthouse at dusk", 5, 512, 512)))
    quoted = Image.open(io.BytesIO(render_png('a lighthouse, text "HOME"', 5, 512, 512)))

    def lettering(img: Image.Image) -> int:
        histogram = img.convert("RGB").histogram()
        # Pure black and pure white in all three channels (the lettering's fill and outline).
        return min(histogram[0], histogram[256], histogram[512]) + min(
            histogram[255], histogram[511], histogram[767]
        )

    assert lettering(quoted) > 2000 > lettering(plain)


def test_rendering_stays_cheap_and_deterministic() -> None:
    prompt = 'a retro sunset with the text "STAY WILD" in bold letters'
    assert render_png(prompt, 3, 256, 256) == render_png(prompt, 3, 256, 256)
    assert render_png(prompt, 3, 256, 256) != render_png(prompt, 4, 256, 256)
    started = time.perf_counter()
    for seed in range(5):
        render_png(prompt, seed, 1024, 1024)
    # ~60 ms each on this 2-core machine (encoding dominates); a simulated GPU waits anyway.
    assert (time.perf_counter() - started) / 5 < 0.5
