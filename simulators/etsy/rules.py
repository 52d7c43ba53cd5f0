"""Etsy's documented rules: the enums and limits of listings, and the characters titles, tags
and materials may hold."""

from __future__ import annotations

import unicodedata

WHO_MADE = ("i_did", "someone_else", "collective")
WHEN_MADE = (
    "made_to_order", "2020_2026", "2010_2019", "2007_2009", "before_2007", "2000_2006",
    "1990s", "1980s", "1970s", "1960s", "1950s", "1940s", "1930s", "1920s", "1910s", "1900s",
    "1800s", "1700s", "before_1700",
)  # fmt: skip
LISTING_TYPES = ("physical", "download", "both")
WEIGHT_UNITS = ("oz", "lb", "g", "kg")
DIMENSION_UNITS = ("in", "ft", "mm", "cm", "m", "yd", "inches")
STATES = ("active", "inactive", "sold_out", "draft", "expired")
INCLUDES = (
    "Shipping", "Images", "Shop", "User", "Translations", "Inventory", "Videos",
    "Personalization", "BuyerPrice",
)  # fmt: skip
CUSTOM_PROPERTIES = (513, 514)  # Etsy's ids for a seller's own variations

MAX_TITLE = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
MAX_MATERIALS = 13
MAX_IMAGES = 20
MAX_SKU = 32
MAX_VARIATIONS = 2
MIN_PRICE, MAX_PRICE = 0.20, 50000.0
MAX_QUANTITY = 999
MAX_PAGE, DEFAULT_PAGE = 100, 25
RENEWAL_S = 120 * 86400  # a listing is active for four months
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}
CURRENCY = "USD"
# Etsy's token endpoint (api.etsy.com/v3/public/oauth/token), served on the same host here.
OAUTH_PREFIX = "/v3/public/oauth/"
TOKEN_PATH = OAUTH_PREFIX + "token"  # a URL path


def title_problem(title: str) -> str | None:
    """Why Etsy refuses ``title``, or None."""
    if not title.strip():
        return "title must not be empty"
    if len(title) > MAX_TITLE:
        return f"title must be at most {MAX_TITLE} characters, got {len(title)}"
    for ch in title:
        cat = unicodedata.category(ch)
        if not (cat[0] in "LP" or cat in ("Nd", "Sm", "Zs") or ch in "™©®"):
            return (
                f"title contains {ch!r}: only letters, numbers, punctuation, mathematical "
                "symbols, whitespace, ™, © and ® are allowed"
            )
    for ch in "%:&+":
        if title.count(ch) > 1:
            return f"title may use the character {ch!r} only once"
    return None


def tag_problem(tag: str) -> str | None:
    if not tag.strip():
        return "tags must not be empty"
    if len(tag) > MAX_TAG_CHARS:
        return f"tag {tag!r} is longer than {MAX_TAG_CHARS} characters"
    for ch in tag:
        cat = unicodedata.category(ch)
        if not (cat[0] == "L" or cat in ("Nd", "Zs") or ch in "-'™©®"):
            return (
                f"tag {tag!r} contains {ch!r}: only letters, numbers, whitespace, -, ', ™, © "
                "and ® are allowed"
            )
    return None


def material_problem(material: str) -> str | None:
    for ch in material:
        cat = unicodedata.category(ch)
        if not (cat[0] == "L" or cat in ("Nd", "Zs")):
            return f"material {material!r} contains {ch!r}: only letters, numbers and spaces"
    return None


# --------------------------------------------------------------------------------------------
# Request bodies
