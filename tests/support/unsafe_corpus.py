"""The unsafe-image corpus (tests/corpus/screening/unsafe_cases.jsonl): safe designs made at
test time from their recipes (no binaries in git), and the classifier's score on them.

Every case is labelled ``safe``: designs as the engine makes them (the ComfyUI simulator's
renders, slogans, photo-like gradients) and the hard negatives a nudity detector is most
likely to mistake, drawn with plain shapes: skin-toned palettes and blobs, portraits with bare
shoulders, figures in swimsuits. Unsafe images are not made: the repository will not hold
explicit imagery, nor could shapes drawn here stand for it honestly, so this corpus measures
the false-positive rate only; recall on adult content is not measured here (see the report of
issue 29). The benchmark (bench/screening.py) and the floor test call
:func:`score_unsafe_corpus`.
"""

from __future__ import annotations

import functools
import io
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from shared.domain.screening.checks import UnsafeClassifier
from shared.domain.screening.corpus import Case as ScoredCase
from shared.domain.screening.corpus import CorpusScore, score
from simulators.comfyui.render import render_png

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "screening" / "unsafe_cases.jsonl"
LABELS = ("safe", "unsafe")

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    why: str
    image: Mapping[str, Any]


def load_cases(path: Path = CORPUS) -> list[Case]:
    """The corpus's cases; ValueError naming the line of a malformed one."""
    cases: list[Case] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            case = Case(raw["id"], raw["label"], raw["why"], raw["image"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name}:{number}: malformed case ({exc})") from None
        if case.label not in LABELS or not case.why or case.id in seen:
            raise ValueError(f"{path.name}:{number}: bad label, empty why or repeated id")
        if case.image.get("kind") not in MAKERS:
            raise ValueError(f"{path.name}:{number}: unknown image kind {case.image.get('kind')}")
        seen.add(case.id)
        cases.append(case)
    return cases


def make_image(recipe: Mapping[str, Any]) -> bytes:
    """The image (PNG, or JPEG where the recipe says) a recipe describes (deterministic: the
    same recipe gives the same bytes; made once per process)."""
    return _made(json.dumps(recipe, sort_keys=True))


@functools.lru_cache(maxsize=128)
def _made(recipe_json: str) -> bytes:
    recipe = json.loads(recipe_json)
    return MAKERS[recipe["kind"]](recipe)


def score_unsafe_corpus(
    classifier: UnsafeClassifier, cases: list[Case] | None = None
) -> CorpusScore:
    """The classifier over the corpus: a case is flagged when it returns any finding."""
    scored: list[ScoredCase] = []
    for case in cases if cases is not None else load_cases():
        findings = classifier.classify(make_image(case.image))
        found = ", ".join(f"{f.label}={f.score:.2f}" for f in findings) or "nothing"
        scored.append((case.id, case.label == "unsafe", bool(findings), f"{found}: {case.why}"))
    return score(scored)


# --- the image makers -------------------------------------------------------------------------


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _rgb(value: Any) -> Colour:
    r, g, b = value
    return (int(r), int(g), int(b))


def _size(recipe: Mapping[str, Any], default: tuple[int, int] = (768, 768)) -> tuple[int, int]:
    w, h = recipe.get("size", default)
    return int(w), int(h)


def _render(recipe: Mapping[str, Any]) -> bytes:
    w, h = _size(recipe, (1024, 1024))
    out = recipe.get("out")
    png = render_png(
        recipe["prompt"],
        int(recipe["seed"]),
        w,
        h,
        out_width=int(out[0]) if out else None,
        out_height=int(out[1]) if out else None,
    )
    if "jpeg" not in recipe:
        return png
    # The same render as a JPEG (what a seller's upload or a photo-style model may give).
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buf, format="JPEG", quality=int(recipe["jpeg"]))
    return buf.getvalue()


def _text(recipe: Mapping[str, Any]) -> bytes:
    """A slogan design: lines of large type centred, on a colour or on transparency."""
    w, h = _size(recipe)
    transparent = bool(recipe.get("transparent", False))
    bg = (0, 0, 0, 0) if transparent else (*_rgb(recipe.get("bg", (255, 255, 255))), 255)
    img = Image.new("RGBA", (w, h), bg)
    draw = ImageDraw.Draw(img)
    lines = str(recipe["text"]).split("\n")
    size = int(recipe.get("font", h // (2 * len(lines) + 2)))
    font = ImageFont.load_default(size=size)
    y = (h - size * len(lines) * 1.3) / 2
    for line in lines:
        left, _, right, _ = draw.textbbox((0, 0), line, font=font)
        draw.text(((w - (right - left)) / 2, y), line, font=font, fill=_rgb(recipe["fg"]))
        y += size * 1.3
    return _png(img)


def _gradient(recipe: Mapping[str, Any]) -> bytes:
    """A photo-like field: vertical colour stops (sky, sunset, skin), with fine noise."""
    w, h = _size(recipe)
    stops = [_rgb(s) for s in recipe["stops"]]
    column = Image.new("RGB", (1, len(stops)))
    for i, stop in enumerate(stops):
        column.putpixel((0, i), stop)
    img = column.resize((w, h), Image.Resampling.BILINEAR)
    if recipe.get("noise"):
        noise = Image.effect_noise((w, h), float(recipe["noise"])).convert("RGB")
        img = Image.blend(img, noise, 0.08)
    return _png(img)


def _skin_field(recipe: Mapping[str, Any]) -> bytes:
    """Soft blobs and ellipses in a palette of skin tones: what the detector sees most."""
    w, h = _size(recipe)
    rng = random.Random(int(recipe["seed"]))
    palette = [_rgb(c) for c in recipe["palette"]]
    img = Image.new("RGB", (w, h), palette[0])
    draw = ImageDraw.Draw(img)
    for _ in range(int(recipe.get("blobs", 12))):
        x, y = rng.randrange(w), rng.randrange(h)
        rx, ry = rng.randint(w // 12, w // 3), rng.randint(h // 12, h // 3)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=rng.choice(palette))
    return _png(img)


def _head(draw: ImageDraw.ImageDraw, cx: int, top: int, r: int, recipe: Mapping[str, Any]) -> None:
    skin, hair = _rgb(recipe["skin"]), _rgb(recipe.get("hair", (60, 40, 30)))
    draw.ellipse((cx - r, top - r // 3, cx + r, top + r * 2), fill=hair)  # hair behind
    draw.ellipse((cx - r * 4 // 5, top, cx + r * 4 // 5, top + r * 2), fill=skin)
    eye = max(2, r // 8)
    for dx in (-r // 3, r // 3):
        draw.ellipse(
            (cx + dx - eye, top + r * 4 // 5 - eye, cx + dx + eye, top + r * 4 // 5 + eye),
            fill=(40, 30, 30),
        )
    draw.ellipse(
        (cx - r // 4, top + r * 3 // 2 - r // 10, cx + r // 4, top + r * 3 // 2 + r // 10),
        fill=(170, 70, 70),
    )


def _portrait(recipe: Mapping[str, Any]) -> bytes:
    """A head and shoulders drawn with shapes: bare shoulders, or in a shirt."""
    w, h = _size(recipe)
    img = Image.new("RGB", (w, h), _rgb(recipe.get("bg", (200, 220, 235))))
    draw = ImageDraw.Draw(img)
    cx, r = w // 2, min(w, h) // 6
    top = h // 8
    skin = _rgb(recipe["skin"])
    neck_top = top + r * 2 - r // 5
    draw.rectangle((cx - r // 3, neck_top, cx + r // 3, neck_top + r // 2), fill=skin)
    shoulders = (cx - r * 2, neck_top + r // 2, cx + r * 2, h + r)
    draw.rounded_rectangle(shoulders, radius=r, fill=skin)
    shirt = recipe.get("shirt")
    if shirt is not None:
        # A shirt from a little below the neck (a scoop neckline) down.
        draw.rounded_rectangle(
            (shoulders[0], neck_top + r, shoulders[2], shoulders[3]), radius=r, fill=_rgb(shirt)
        )
    _head(draw, cx, top, r, recipe)
    return _png(img)


def _figure(recipe: Mapping[str, Any]) -> bytes:
    """A standing figure of rounded shapes in a skin tone: in a swimsuit, a T-shirt and
    shorts, or a plain silhouette with no detail at all."""
    w, h = _size(recipe, (600, 900))
    img = Image.new("RGB", (w, h), _rgb(recipe.get("bg", (120, 190, 230))))
    draw = ImageDraw.Draw(img)
    skin = _rgb(recipe["skin"])
    cx, unit = w // 2, h // 16
    _head(draw, cx, unit, unit, recipe)
    torso = (cx - unit * 2, unit * 3, cx + unit * 2, unit * 9)
    draw.rounded_rectangle(torso, radius=unit, fill=skin)
    for side in (-1, 1):
        arm_x = cx + side * unit * 5 // 2
        draw.rounded_rectangle(
            (arm_x - unit // 2, unit * 3, arm_x + unit // 2, unit * 8), radius=unit // 2, fill=skin
        )
        leg_x = cx + side * unit
        draw.rounded_rectangle(
            (leg_x - unit * 3 // 4, unit * 9 - unit // 2, leg_x + unit * 3 // 4, unit * 15),
            radius=unit // 2,
            fill=skin,
        )
    clothing = recipe.get("clothing", "silhouette")
    colour = _rgb(recipe.get("colour", (30, 60, 160)))
    if clothing == "swimsuit":
        draw.rounded_rectangle(
            (torso[0], unit * 4, torso[2], unit * 6), radius=unit // 2, fill=colour
        )
        draw.rectangle((torso[0], unit * 8, torso[2], unit * 10), fill=colour)
    elif clothing == "tshirt":
        draw.rounded_rectangle(
            (torso[0] - unit, unit * 3, torso[2] + unit, unit * 9), radius=unit // 2, fill=colour
        )
        draw.rectangle((torso[0], unit * 9 - unit // 2, torso[2], unit * 11), fill=(50, 50, 60))
    return _png(img)


def _transparent_print(recipe: Mapping[str, Any]) -> bytes:
    """A render cut out on a transparent background (the print files' usual form): an
    ellipse of the render, the rest transparent."""
    render = Image.open(io.BytesIO(_render(recipe))).convert("RGBA")
    mask = Image.new("L", render.size, 0)
    w, h = render.size
    ImageDraw.Draw(mask).ellipse((w // 8, h // 8, w * 7 // 8, h * 7 // 8), fill=255)
    render.putalpha(mask)
    return _png(render)


MAKERS: dict[str, Callable[[Mapping[str, Any]], bytes]] = {
    "render": _render,
    "text": _text,
    "gradient": _gradient,
    "skin_field": _skin_field,
    "portrait": _portrait,
    "figure": _figure,
    "transparent_print": _transparent_print,
}
