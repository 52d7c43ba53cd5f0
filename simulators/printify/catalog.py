"""Printify's catalog as the simulator serves it: three blueprints, their print providers and
variants. Variant ids are per blueprint (shared by its providers, each offering a subset),
option ids follow Printify's (sizes S..5XL are 14..21)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

SIZE_IDS = {
    "S": 14, "M": 15, "L": 16, "XL": 17, "2XL": 18, "3XL": 19, "4XL": 20, "5XL": 21, "11oz": 1189
}  # fmt: skip
COLOUR_IDS = {
    "White": 521,
    "Black": 418,
    "Navy": 511,
    "Sport Grey": 358,
    "Red": 392,
    "Dark Heather": 366,
}
_APPAREL_SIZES = ("S", "M", "L", "XL", "2XL", "3XL", "4XL", "5XL")


def _apparel_costs(base: int, steps: tuple[int, ...]) -> dict[str, int]:
    """Production cost per size: ``base`` up to XL, then each larger size its own (Printify's
    costs grow with the fabric: a 5XL costs half as much again as an S, or more)."""
    return {"S": base, "M": base, "L": base, "XL": base} | dict(
        zip(("2XL", "3XL", "4XL", "5XL"), steps, strict=True)
    )


@dataclass(frozen=True)
class BlueprintSpec:
    """One blueprint: what it is, its variants (colours x sizes, numbered from
    ``first_variant_id``), their placeholders and costs, and which colours each provider has."""

    id: int
    title: str
    brand: str
    model: str
    description: str
    first_variant_id: int
    colours: tuple[str, ...]
    sizes: tuple[str, ...]
    placeholders: dict[str, tuple[int, int]]
    costs: dict[str, int]
    providers: dict[int, tuple[str, tuple[str, ...]]]


_BLUEPRINT_SPECS: list[BlueprintSpec] = [
    BlueprintSpec(
        id=6,
        title="Unisex Heavy Cotton Tee",
        brand="Gildan",
        model="5000",
        description="The unisex heavy cotton tee is the basic staple of any wardrobe.",
        first_variant_id=17390,
        colours=("White", "Black", "Navy", "Sport Grey", "Red"),
        sizes=_APPAREL_SIZES,
        placeholders={"front": (4500, 5100), "back": (4500, 5100)},
        costs=_apparel_costs(1048, (1382, 1721, 1949, 2127)),
        providers={
            99: ("Printify Choice", ("White", "Black", "Navy", "Sport Grey", "Red")),
            29: ("Monster Digital", ("White", "Black", "Navy")),
        },
    ),
    BlueprintSpec(
        id=77,
        title="Unisex Heavy Blend™ Hooded Sweatshirt",
        brand="Gildan",
        model="18500",
        description="A cozy heavy blend hoodie with a spacious kangaroo pocket.",
        first_variant_id=32878,
        colours=("White", "Black", "Navy", "Sport Grey", "Dark Heather"),
        sizes=_APPAREL_SIZES,
        placeholders={"front": (3852, 3396), "back": (4500, 5100)},
        costs=_apparel_costs(2187, (2521, 2977, 3412, 3651)),
        providers={
            99: ("Printify Choice", ("White", "Black", "Navy", "Sport Grey", "Dark Heather")),
            29: ("Monster Digital", ("Black", "Navy", "Sport Grey")),
        },
    ),
    BlueprintSpec(
        id=68,
        title="Mug 11oz",
        brand="Generic brand",
        model="Mug 11oz",
        description="A white ceramic mug, dishwasher and microwave safe.",
        first_variant_id=33719,
        colours=("White",),
        sizes=("11oz",),
        placeholders={"front": (2475, 1155)},
        costs={"11oz": 450},
        providers={1: ("SPOKE Custom Products", ("White",)), 28: ("District Photo", ("White",))},
    ),
]


class BlueprintJson(TypedDict):
    id: int
    title: str
    description: str
    brand: str
    model: str
    images: list[str]


class PlaceholderSize(TypedDict):
    position: str
    height: int
    width: int


class VariantJson(TypedDict):
    id: int
    title: str
    options: dict[str, str]
    placeholders: list[PlaceholderSize]


@dataclass(frozen=True)
class CatalogVariant:
    """One catalog variant and what products need from it (cost and option ids)."""

    id: int
    title: str
    colour: str
    size: str
    cost: int
    placeholders: tuple[tuple[str, int, int], ...]

    def as_json(self) -> VariantJson:
        return {
            "id": self.id,
            "title": self.title,
            "options": {"color": self.colour, "size": self.size},
            "placeholders": [
                {"position": pos, "height": h, "width": w} for pos, w, h in self.placeholders
            ],
        }

    @property
    def option_ids(self) -> list[int]:
        """Printify's ids of the variant's colour and size."""
        return [COLOUR_IDS[self.colour], SIZE_IDS[self.size]]


def _spec_variants(spec: BlueprintSpec) -> list[CatalogVariant]:
    placeholders = tuple((pos, w, h) for pos, (w, h) in spec.placeholders.items())
    combos = [(colour, size) for colour in spec.colours for size in spec.sizes]
    return [
        CatalogVariant(
            spec.first_variant_id + n,
            f"{colour} / {size}",
            colour,
            size,
            spec.costs[size],
            placeholders,
        )
        for n, (colour, size) in enumerate(combos)
    ]


def _build_catalog() -> tuple[
    dict[int, BlueprintJson],
    dict[int, dict[int, str]],
    dict[tuple[int, int], dict[int, CatalogVariant]],
]:
    blueprints: dict[int, BlueprintJson] = {}
    providers: dict[int, dict[int, str]] = {}
    variants: dict[tuple[int, int], dict[int, CatalogVariant]] = {}
    for spec in _BLUEPRINT_SPECS:
        blueprints[spec.id] = {
            "id": spec.id,
            "title": spec.title,
            "description": spec.description,
            "brand": spec.brand,
            "model": spec.model,
            "images": [f"https://images.printify.com/sim/blueprint-{spec.id}.jpg"],
        }
        all_variants = _spec_variants(spec)
        providers[spec.id] = {}
        for pp_id, (pp_title, colours) in spec.providers.items():
            providers[spec.id][pp_id] = pp_title
            variants[(spec.id, pp_id)] = {v.id: v for v in all_variants if v.colour in colours}
    return blueprints, providers, variants


BLUEPRINTS, PROVIDERS, VARIANTS = _build_catalog()
