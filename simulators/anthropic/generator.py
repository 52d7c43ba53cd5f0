"""Generated content: deterministic per request (a hash of the user's text), print-on-demand
copy that reuses the user's words, and any JSON schema filled in (tool input)."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# Content generation
# ---------------------------------------------------------------------------------------------

MOTIFS = [
    "minimalist line art",
    "vintage badge",
    "soft watercolor",
    "bold retro sunset",
    "hand-lettered quote",
    "geometric pattern",
    "cute kawaii character",
    "botanical wreath",
    "distressed grunge emblem",
    "pop-art halftone",
    "boho rainbow",
    "mid-century modern shapes",
]
PALETTES = [
    "earthy terracotta",
    "soft pastel",
    "electric neon",
    "monochrome black and white",
    "muted sage green",
    "warm sunset",
    "deep ocean blue",
    "rich jewel-tone",
]
COMPOSITIONS = [
    "centered composition",
    "circular badge layout",
    "seamless repeating pattern",
    "stacked typography",
    "symmetrical layout",
]
PRODUCTS = ["T-Shirt", "Poster", "Mug", "Sticker", "Hoodie", "Tote Bag", "Wall Art Print"]
ADJECTIVES = ["Cute", "Retro", "Vintage", "Minimalist", "Funny", "Cozy", "Bold", "Whimsical"]
NEGATIVES = [
    "blurry",
    "low resolution",
    "watermark",
    "signature",
    "jpeg artifacts",
    "cropped",
    "extra limbs",
    "deformed hands",
    "text artifacts",
    "noisy background",
    "oversaturated",
    "duplicate subject",
]
GENERIC_TAGS = ["gift idea", "birthday gift", "graphic tee", "wall decor", "trendy design"]
# Words of the prompt template that say nothing about the subject.
STOPWORDS = frozenset(
    re.split(
        r"\s+",
        "a an and are as at be by for from in into is it of on or that the this to with write "
        "design designs number print demand each please listing copy return use tool",
    )
)

_FACET_LINE = re.compile(r"^\s*[-*]?\s*([A-Za-z][A-Za-z _-]{0,30}):\s*(.+?)\s*$", re.MULTILINE)


def _wanted(found: dict[str, str]) -> int | None:
    raw = next((v for k, v in found.items() if k.startswith("number of")), "")
    digits = re.match(r"\s*(\d{1,3})", raw)
    return int(digits.group(1)) if digits else None


@dataclass
class Facets:
    """What the user asked for, read from ``Key: value`` lines or, failing that, keywords."""

    theme: str
    style: str
    niche: str
    keywords: list[str]
    # Titles the prompt lists as already made ("- <title>" lines after one that says so):
    # Claude follows such an instruction, so the simulator does not repeat them either.
    avoid: list[str] = field(default_factory=list)
    # How many items the user asked for ("Number of designs: 4"): Claude follows it where the
    # schema cannot say it (strict mode has no maxItems).
    wanted: int | None = None

    @classmethod
    def from_text(cls, text: str) -> Facets:
        avoid: list[str] = []
        _, marker, rest = text.partition("already made")
        if marker:
            for line in rest.splitlines()[1:]:
                if not line.startswith("- "):
                    break
                avoid.append(line[2:].strip())
            text = text[: text.index("already made")]
        found = {k.strip().lower(): v for k, v in _FACET_LINE.findall(text)}
        words = [w for w in re.findall(r"[a-zA-Z][a-zA-Z'-]+", text.lower()) if w not in STOPWORDS]
        keywords = list(dict.fromkeys(w for w in words if len(w) >= 4)) or ["original"]
        theme = found.get("theme") or found.get("topic") or found.get("subject")
        return cls(
            theme=_clean(theme) if theme else " ".join(keywords[:2]),
            style=_clean(found.get("style", "")),
            niche=_clean(found.get("niche") or found.get("audience") or ""),
            keywords=keywords,
            avoid=avoid,
            wanted=_wanted(found),
        )


def _clean(value: str) -> str:
    # Keep the words, drop quoting and trailing punctuation a prompt template may add.
    return re.sub(r"\s+", " ", value.strip().strip("\"'.,;")).strip()


@dataclass
class Concept:
    """One design idea; every string of one generated object describes the same concept."""

    motif: str
    palette: str
    composition: str
    product: str
    adjective: str

    @classmethod
    def pick(cls, rng: random.Random, index: int, base: int, avoid: str = "") -> Concept:
        """A concept for item ``index``; ``avoid`` holds words not to repeat as the adjective."""
        # Step through the motif list by item index so the items of one array never share one.
        taken = set(avoid.lower().split())
        adjectives = [a for a in ADJECTIVES if a.lower() not in taken] or ADJECTIVES
        return cls(
            motif=MOTIFS[(base + index) % len(MOTIFS)],
            palette=rng.choice(PALETTES),
            composition=rng.choice(COMPOSITIONS),
            product=rng.choice(PRODUCTS),
            adjective=rng.choice(adjectives),
        )


@dataclass
class Generator:
    """Builds a value conforming to a JSON schema, deterministic for (user text, path)."""

    text: str
    root_schema: dict[str, Any] = field(default_factory=dict)
    # Mixed into the hash (e.g. the tool name) without changing what is read from the text.
    salt: str = ""
    facets: Facets = field(init=False)
    digest: str = field(init=False)
    titles: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.facets = Facets.from_text(self.text)
        self.titles = set(self.facets.avoid)
        self.digest = hashlib.sha256(f"{self.salt}\n{self.text}".encode()).hexdigest()

    def generate(self) -> Any:
        """A document conforming to the root schema."""
        root = Concept.pick(self.rng("$"), 0, int(self.digest[:8], 16))
        return self.value(self.root_schema, "", "$", root)

    def rng(self, path: str) -> random.Random:
        """A random source seeded by the user's text and the value's place in the document."""
        return random.Random(int(hashlib.sha256(f"{self.digest}:{path}".encode()).hexdigest(), 16))

    def value(self, schema: dict[str, Any], name: str, path: str, concept: Concept) -> Any:
        """A value for ``schema``; ``name`` is the property (or array) it belongs to."""
        schema = self._resolve(schema)
        rng = self.rng(path)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if schema.get(key):
                return self.value(schema[key][0], name, path, concept)
        kind = schema.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            return self._object(schema, path, concept, index=0)
        if kind == "array":
            return self._array(schema, name, path, concept)
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            return rng.randint(low, int(schema.get("maximum", low + 100)))
        if kind == "number":
            bottom = float(schema.get("minimum", 0.0))
            return round(rng.uniform(bottom, float(schema.get("maximum", bottom + 100.0))), 2)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name, rng, concept)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = self.root_schema
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return self._resolve(node) if isinstance(node, dict) else {}

    def _object(
        self, schema: dict[str, Any], path: str, concept: Concept, index: int
    ) -> dict[str, Any]:
        rng = self.rng(path)
        props: dict[str, Any] = schema.get("properties", {})
        # Claude fills the required fields and, usually, the optional ones too.
        names = list(props) + [r for r in schema.get("required", []) if r not in props]
        for attempt in range(20):
            concept = Concept.pick(
                rng, index + attempt, int(self.digest[:8], 16), avoid=self.facets.theme
            )
            made = {
                prop: self.value(
                    props.get(prop, {"type": "string"}), prop, f"{path}.{prop}", concept
                )
                for prop in names
            }
            # A design never repeats a title listed as made, nor one of the same answer.
            title = made.get("title")
            if not isinstance(title, str) or title not in self.titles:
                break
        if isinstance(made.get("title"), str):
            self.titles.add(made["title"])
        return made

    def _array(self, schema: dict[str, Any], name: str, path: str, concept: Concept) -> list[Any]:
        rng = self.rng(path)
        tagging = _is_tag_field(name)
        low = int(schema.get("minItems", 1 if not tagging else 5))
        high = int(schema.get("maxItems", max(low, 13 if tagging else 3)))
        count = max(low, min(high, 10)) if tagging else rng.randint(low, max(low, high))
        if not tagging and "maxItems" not in schema and self.facets.wanted:
            count = max(low, self.facets.wanted)  # as many as the message asks for
        items = self._resolve(schema.get("items", {"type": "string"}))
        if tagging and items.get("type", "string") == "string":
            return self._tags(items, rng, concept, count)
        out: list[Any] = []
        for i in range(count):
            item_path = f"{path}[{i}]"
            if self._resolve(items).get("type") == "object":
                out.append(self._object(items, item_path, concept, index=i))
            else:
                out.append(self.value(items, name, item_path, concept))
        return out

    def _tags(
        self, items: dict[str, Any], rng: random.Random, concept: Concept, count: int
    ) -> list[str]:
        f = self.facets
        theme_word = (f.theme.split() or ["art"])[-1]
        pool = [
            f.theme,
            f.style,
            f.niche,
            f"{theme_word} gift",
            f"{f.style} {theme_word}" if f.style else "",
            f"{concept.motif.split()[-1]} art",
            f"{concept.adjective.lower()} {theme_word}",
            concept.product.lower(),
            f"{concept.palette.split()[-1]} {theme_word}",
            f"gift for {f.niche.split()[-1]}" if f.niche else "",
            *f.keywords[:4],
            *GENERIC_TAGS,
        ]
        limit = int(items.get("maxLength", 20))
        tags: list[str] = []
        for tag in pool:
            tag = _shorten(tag.lower(), limit)
            if tag and tag not in tags:
                tags.append(tag)
        # Keep the most specific tags first and shuffle the generic tail for variety.
        head, tail = tags[:4], tags[4:]
        rng.shuffle(tail)
        return (head + tail)[:count]

    def _string(
        self, schema: dict[str, Any], name: str, rng: random.Random, concept: Concept
    ) -> str:
        f, c = self.facets, concept
        key = name.lower()
        niche = f.niche or "everyone"
        style = f.style or c.adjective.lower()
        if "negative" in key:
            text = ", ".join(rng.sample(NEGATIVES, 6))
        elif "prompt" in key:
            text = (
                f"{style} {c.motif} illustration of {f.theme}, {c.palette} palette, "
                f"{c.composition}, appealing to {niche}, clean vector edges, high contrast, "
                "print-ready, isolated on a plain background"
            )
        elif "title" in key or key == "name":
            text = (
                f"{c.adjective} {_titlecase(f.theme)} {c.product} - {_titlecase(style)} "
                f"{_titlecase(c.motif)} Gift for {_titlecase(niche)}"
            )
        elif "desc" in key:
            text = (
                f"Celebrate {f.theme} with this {c.adjective.lower()} {style} design. "
                f"It features {c.motif} artwork in {_article(c.palette)} {c.palette} palette "
                f"and makes a thoughtful gift for {niche}. Printed on demand with vibrant, "
                "long-lasting colors."
            )
        elif _is_tag_field(key):
            text = f"{f.theme} {c.motif.split()[-1]}"
        elif key in ("theme", "style", "niche"):
            text = getattr(f, key) or f.keywords[0]
        else:
            text = f"{c.adjective} {f.theme} {c.motif}"
        text = _shorten(text, int(schema.get("maxLength", 10_000)))
        return text.ljust(int(schema.get("minLength", 0)), ".")

    def reply_text(self, concept_count: int = 3) -> str:
        """A plain-text answer: a few design ideas for what the user asked about."""
        base = int(self.digest[:8], 16)
        lines = [f"Here are some print-on-demand ideas for {self.facets.theme}:"]
        for i in range(concept_count):
            c = Concept.pick(self.rng(f"text[{i}]"), i, base)
            lines.append(
                f"{i + 1}. A {c.adjective.lower()} {c.motif} {c.product.lower()} design in "
                f"{_article(c.palette)} {c.palette} palette."
            )
        return "\n".join(lines)


def _is_tag_field(name: str) -> bool:
    return "tag" in name.lower() or "keyword" in name.lower()


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _titlecase(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split())


def _shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary when there is one."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if text[limit] != " " and " " in cut[1:]:
        cut = cut.rsplit(" ", 1)[0]  # drop the partial last word
    return cut.rstrip(" -,;:|")


def user_text(messages: list[dict[str, Any]]) -> str:
    """All text the user wrote (string contents and text blocks)."""
    parts: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
            )
    return "\n".join(parts)
