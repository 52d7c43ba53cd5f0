"""Etsy's rules for listing text (Open API v3 reference, createDraftListing): titles, tags,
the marker tag that finds a listing again, variation values."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Etsy's rules for listing text (Open API v3 reference, createDraftListing).
MAX_TITLE = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
MAX_SKU = 32
ONCE_IN_TITLE = {"%": " percent", ":": " -", "&": " and ", "+": " plus "}

MARKER_PREFIX = "pod-"
MARKER_CHARS = 15

# --------------------------------------------------------------------------------------------
# Etsy's text rules


def _title_char_ok(ch: str) -> bool:
    # Letters, numbers, punctuation, math symbols, space separators, ™ © ® (Etsy's title regex).
    cat = unicodedata.category(ch)
    return cat[0] in "LP" or cat in ("Nd", "Sm", "Zs") or ch in "™©®"


def _tag_char_ok(ch: str) -> bool:
    # Letters, numbers, space separators, - ' ™ © ® (Etsy's tag regex).
    cat = unicodedata.category(ch)
    return cat[0] == "L" or cat in ("Nd", "Zs") or ch in "-'™©®"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if text[limit] != " " and space >= limit // 2:
        cut = cut[:space]  # not inside a word
    return cut.rstrip(" -,;/|")


def etsy_title(text: str) -> str:
    """A title Etsy accepts: only allowed characters (others become spaces), each of
    ``% : & +`` once (later ones spelled out), at most 140 characters, cut at a word."""
    seen: set[str] = set()
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in ONCE_IN_TITLE:
            out.append(ONCE_IN_TITLE[ch] if ch in seen else ch)
            seen.add(ch)
        else:
            out.append(ch if _title_char_ok(ch) else " ")
    return _clip(" ".join("".join(out).split()), MAX_TITLE)


def etsy_tag(text: str) -> str:
    """A tag Etsy accepts: allowed characters only, at most 20 of them, cut at a word."""
    cleaned = "".join(ch if _tag_char_ok(ch) else " " for ch in unicodedata.normalize("NFC", text))
    return _clip(" ".join(cleaned.split()), MAX_TAG_CHARS)


def etsy_tags(tags: Iterable[str], limit: int = MAX_TAGS) -> list[str]:
    """At most ``limit`` valid tags, without empty ones or repeats (Etsy ignores case)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        tag = etsy_tag(raw)
        if tag and tag.lower() not in seen:
            seen.add(tag.lower())
            out.append(tag)
        if len(out) >= limit:
            break
    return out


def marker_tag(marker: str) -> str:
    """The tag that names a product on Etsy: ``pod-`` and the marker's last 15 letters or
    digits, lowercase (19 characters, a valid tag)."""
    return MARKER_PREFIX + re.sub(r"[^0-9a-z]", "", marker.lower())[-MARKER_CHARS:]


def variation_value(text: str) -> str:
    # Etsy refuses parentheses in property values.
    return " ".join(text.replace("(", " ").replace(")", " ").split()) or "-"
