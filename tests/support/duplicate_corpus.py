"""The near-duplicate corpus (tests/corpus/screening/duplicate_cases.jsonl): labelled pairs of
designs, each image made at test time from its recipe (no binaries in git), and the score of
the perceptual hash on them (precision, recall, the pairs it gets wrong) at a given distance.

A recipe is a source (``render``: the ComfyUI simulator's renderer; ``poster``: a typographic
design drawn here, a shirt's usual layout of a slogan and a few shapes) and the edits made to
it in order (resize, crop, JPEG, colour shift, text, rotation, mirror, blur, border,
transparent background). The benchmark (bench/screening.py) and the floor test call
:func:`score_duplicate_corpus`.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

from shared.domain.screening.corpus import Case as ScoredCase
from shared.domain.screening.corpus import CorpusScore, score
from shared.domain.screening.phash import DesignHashes, design_hashes, hamming, reduced_grey
from shared.domain.screening.settings import ScreeningSettings
from simulators.comfyui.render import render_png

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "screening" / "duplicate_cases.jsonl"
LABELS = ("duplicate", "distinct")


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    why: str
    a: Mapping[str, Any]
    b: Mapping[str, Any]


def load_cases(path: Path = CORPUS) -> list[Case]:
    """The corpus's cases; ValueError naming the line for a malformed one."""
    cases = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            case = Case(raw["id"], raw["label"], raw["why"], raw["a"], raw["b"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name}:{number}: not a case: {exc}") from None
        if case.label not in LABELS or not case.why or case.id in seen:
            raise ValueError(f"{path.name}:{number}: bad label, empty why or repeated id")
        seen.add(case.id)
        cases.append(case)
    return cases


# --------------------------------------------------------------------------- images


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rgb(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _poster(spec: Mapping[str, Any]) -> Image.Image:
    """A shirt design: a background, shapes (kind, x, y, radius as fractions of the side, the
    palette colour's index) and a slogan at the top, centre or bottom."""
    side = int(spec.get("side", 1024))
    palette = [_rgb(c) for c in spec["palette"]]
    img = Image.new("RGB", (side, side), palette[0])
    draw = ImageDraw.Draw(img)
    for kind, x, y, r, colour in spec.get("shapes", []):
        cx, cy, rr = x * side, y * side, r * side
        box = (cx - rr, cy - rr, cx + rr, cy + rr)
        fill = palette[colour % len(palette)]
        if kind == "circle":
            draw.ellipse(box, fill=fill)
        elif kind == "square":
            draw.rectangle(box, fill=fill)
        elif kind == "triangle":
            draw.polygon([(cx, cy - rr), (cx - rr, cy + rr), (cx + rr, cy + rr)], fill=fill)
        elif kind == "ring":
            draw.ellipse(box, outline=fill, width=max(2, int(rr / 5)))
        elif kind == "bar":
            draw.rectangle((cx - rr, cy - rr / 6, cx + rr, cy + rr / 6), fill=fill)
        else:
            raise ValueError(f"unknown shape {kind!r}")
    text = spec.get("text", "")
    if text:
        size = int(side * float(spec.get("text_size", 0.09)))
        font = _font(size)
        y = {"top": 0.08, "centre": 0.45, "bottom": 0.82}[spec.get("text_at", "bottom")] * side
        width = draw.textlength(text, font=font)
        draw.text(
            ((side - width) / 2, y),
            text,
            font=font,
            fill=palette[-1],
            stroke_width=max(1, size // 14),
        )
    return img


def _hue(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    """Hue turned by ``deg`` degrees, saturation scaled by ``sat`` (a recolour)."""
    h, s, v = img.convert("RGB").convert("HSV").split()
    shift = int(float(op["deg"]) / 360 * 256)
    saturation = float(op.get("sat", 1.0))
    h = h.point(lambda p: (p + shift) % 256)
    s = s.point(lambda p: min(255, int(p * saturation)))
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def _scale(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    w, h = img.size
    f = float(op["f"])
    return img.resize((max(1, int(w * f)), max(1, int(h * f))), Image.Resampling.LANCZOS)


def _crop(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    # Fractions cut from the left, top, right and bottom.
    w, h = img.size
    left, top, right, bottom = (float(x) for x in op["cut"])
    return img.crop((int(w * left), int(h * top), int(w * (1 - right)), int(h * (1 - bottom))))


def _jpeg(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(op["quality"]))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _gamma(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    g = float(op["g"])
    return img.point(lambda p: int(255 * (p / 255) ** g))


def _text(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    """Words drawn at ``at`` (fractions), on a patch of colour when ``patch`` is given."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = img.size
    font = _font(int(min(w, h) * float(op.get("size", 0.05))))
    x, y = float(op["at"][0]) * w, float(op["at"][1]) * h
    if op.get("patch"):
        right, bottom = draw.textbbox((x, y), op["text"], font=font)[2:]
        draw.rectangle((x, y, right, bottom), fill=_rgb(op["patch"]))
    draw.text((x, y), op["text"], font=font, fill=_rgb(op.get("colour", "#ffffff")))
    return out


def _rotate(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    fill = _rgb(op.get("fill", "#ffffff"))
    return img.rotate(float(op["deg"]), Image.Resampling.BICUBIC, fillcolor=fill)


def _border(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    w, h = img.size
    pad = int(min(w, h) * float(op["f"]))
    out = Image.new("RGB", (w + 2 * pad, h + 2 * pad), _rgb(op.get("colour", "#ffffff")))
    out.paste(img, (pad, pad))
    return out


def _transparent(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    """The background (the colour of the top-left pixel) made transparent, ``hidden`` the
    colour left under it (what the tool that removed it happened to leave)."""
    rgb = img.convert("RGB")
    bg = Image.new("RGB", img.size, rgb.getpixel((0, 0)))
    mask = ImageChops.difference(rgb, bg).convert("L").point(lambda p: 0 if p < 8 else 255)
    hidden = Image.new("RGB", img.size, _rgb(op.get("hidden", "#000000")))
    out = Image.composite(rgb, hidden, mask).convert("RGBA")
    out.putalpha(mask)
    return out


_EDITS: dict[str, Callable[[Image.Image, Mapping[str, Any]], Image.Image]] = {
    "resize": lambda img, op: img.resize((int(op["w"]), int(op["h"])), Image.Resampling.LANCZOS),
    "scale": _scale,
    "crop": _crop,
    "jpeg": _jpeg,
    "hue": _hue,
    "gamma": _gamma,
    "text": _text,
    "rotate": _rotate,
    "mirror": lambda img, op: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "blur": lambda img, op: img.filter(ImageFilter.GaussianBlur(float(op["r"]))),
    "border": _border,
    "transparent": _transparent,
}


def _edit(img: Image.Image, op: Mapping[str, Any]) -> Image.Image:
    try:
        edit = _EDITS[op["op"]]
    except KeyError:
        raise ValueError(f"unknown edit {op.get('op')!r}") from None
    return edit(img, op)


def _source(spec: Mapping[str, Any]) -> Image.Image:
    if "render" in spec:
        r = spec["render"]
        png = render_png(
            r["prompt"],
            int(r["seed"]),
            int(r.get("w", 1024)),
            int(r.get("h", 1024)),
            index=int(r.get("index", 0)),
        )
        return Image.open(io.BytesIO(png)).convert("RGB")
    if "poster" in spec:
        return _poster(spec["poster"])
    raise ValueError(f"a recipe has a render or a poster source: {sorted(spec)}")


def make_image(spec: Mapping[str, Any]) -> bytes:
    """The design a recipe describes, as PNG bytes (JPEG for an image whose last edit is one)."""
    img = _source(spec)
    edits = list(spec.get("edits", []))
    for op in edits:
        img = _edit(img, op)
    buf = io.BytesIO()
    if edits and edits[-1]["op"] == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=int(edits[-1]["quality"]))
    else:
        img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@functools.lru_cache(maxsize=512)
def _hashes(recipe: str) -> DesignHashes:
    return design_hashes(make_image(json.loads(recipe)))


def pair_distance(case: Case, *, mirrored: bool = True) -> int:
    """The distance screening sees between the earlier design (a) and the new one (b): the
    nearer of b's hash and its mirror image's when mirrors count."""
    a = _hashes(json.dumps(case.a, sort_keys=True))
    b = _hashes(json.dumps(case.b, sort_keys=True))
    near = hamming(a.phash, b.phash)
    return min(near, hamming(a.phash, b.mirrored)) if mirrored else near


def score_at(cases: list[Case], distance: Callable[[Case], int], max_distance: int) -> CorpusScore:
    """Confusion counts at ``max_distance``: a pair within it is flagged as a duplicate."""
    scored: list[ScoredCase] = []
    for case in cases:
        d = distance(case)
        why = f"{case.label}, distance {d}: {case.why}"
        scored.append((case.id, case.label == "duplicate", d <= max_distance, why))
    return score(scored)


def default_distance() -> int:
    """The deployment's default ``SCREENING_DUPLICATE_DISTANCE``."""
    default = ScreeningSettings.model_fields["screening_duplicate_distance"].default
    assert isinstance(default, int)
    return default


def score_duplicate_corpus(
    max_distance: int | None = None, *, mirrored: bool = True
) -> CorpusScore:
    """The perceptual hash's score on the corpus at ``max_distance`` (the default distance when
    None), mirror images counted as the screener counts them; the images are made now (~10 s
    the first time in a process)."""
    distance = default_distance() if max_distance is None else max_distance
    return score_at(load_cases(), lambda c: pair_distance(c, mirrored=mirrored), distance)


def duplicate_curve(
    distances: range = range(16), *, mirrored: bool = True
) -> list[tuple[int, CorpusScore]]:
    """Precision and recall at each distance (the choice of the default distance)."""
    cases = load_cases()
    measured = {c.id: pair_distance(c, mirrored=mirrored) for c in cases}
    return [(d, score_at(cases, lambda c: measured[c.id], d)) for d in distances]


# --------------------------------------------------------------------------- the choice of hash

ALGORITHMS: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "whash": imagehash.whash,
    "ahash": imagehash.average_hash,
}
_WORDS = [
    "retro",
    "sunset",
    "cat",
    "dog",
    "mountain",
    "coffee",
    "skull",
    "rose",
    "wave",
    "surf",
    "vintage",
    "cute",
    "funny",
    "mom",
    "dad",
    "club",
    "cactus",
    "fox",
    "bear",
    "moon",
    "star",
    "space",
    "forest",
    "beach",
    "night",
]


def _grey(spec: Mapping[str, Any]) -> Image.Image:
    return _grey_of(json.dumps(spec, sort_keys=True))


@functools.lru_cache(maxsize=512)
def _grey_of(recipe: str) -> Image.Image:
    return reduced_grey(make_image(json.loads(recipe)))


def _of(measured: Mapping[str, int], case: Case) -> int:
    return measured[case.id]


def compare_algorithms(
    distances: range = range(16),
) -> dict[str, list[tuple[int, CorpusScore]]]:
    """Each of imagehash's 64-bit hashes on the corpus (on the same reduced greyscale, mirror
    images counted), at each distance: how phash was chosen."""
    cases = load_cases()
    out = {}
    for name, algorithm in ALGORITHMS.items():
        measured: dict[str, int] = {}
        for case in cases:
            a, b = algorithm(_grey(case.a)), algorithm(_grey(case.b))
            flipped = algorithm(ImageOps.mirror(_grey(case.b)))
            measured[case.id] = int(min(a - b, a - flipped))
        out[name] = [(d, score_at(cases, functools.partial(_of, measured), d)) for d in distances]
    return out


def unrelated_rate(designs: int = 400, distances: range = range(17)) -> dict[str, list[float]]:
    """Per hash, the share of pairs of unrelated renders (random prompts and seeds) within each
    distance: what a catalog of N designs flags falsely, about N times this per new design."""
    rng = random.Random(5)
    greys = [
        reduced_grey(render_png(" ".join(rng.sample(_WORDS, 4)), rng.randrange(10**6), 512, 512))
        for _ in range(designs)
    ]
    out = {}
    for name, algorithm in ALGORITHMS.items():
        hashes = [algorithm(g) for g in greys]
        counts = collections.Counter(int(a - b) for a, b in itertools.combinations(hashes, 2))
        pairs = sum(counts.values())
        out[name] = [sum(counts[k] for k in range(d + 1)) / pairs for d in distances]
    return out


def main() -> None:
    """Prints the curve of the chosen hash, the comparison and the unrelated pairs' rates."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("duplicate_corpus")
    for d, s in duplicate_curve():
        log.info(
            "phash d=%2d precision=%.2f recall=%.2f fp=%d fn=%d",
            d,
            s.precision,
            s.recall,
            s.fp,
            s.fn,
        )
    for name, curve in compare_algorithms().items():
        log.info("%s %s", name, " ".join(f"{d}:{s.precision:.2f}/{s.recall:.2f}" for d, s in curve))
    for name, rates in unrelated_rate().items():
        log.info("%s unrelated %s", name, " ".join(f"{d}:{r:.1e}" for d, r in enumerate(rates)))
    for miss in score_duplicate_corpus().misses:
        log.info("miss at the default distance: %s", miss)


if __name__ == "__main__":
    main()
