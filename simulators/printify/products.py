"""Products as Printify makes and changes them: a create body becomes a :class:`Product`
(with the provider's other variants and the mockups), an update is applied as the chosen
:class:`Behaviour` says, and the checks publishing makes (cost) or the books record (DPI)."""

from __future__ import annotations

from simulators.printify.catalog import COLOUR_IDS, SIZE_IDS, VARIANTS, CatalogVariant
from simulators.printify.errors import Invalid
from simulators.printify.state import (
    Account,
    Behaviour,
    Mockup,
    PrintArea,
    Product,
    ProductOption,
    ProductVariant,
    generated_sku,
    now_stamp,
)
from simulators.printify.validation import (
    SentVariant,
    VariantChange,
    product_header,
    update_fields,
    validate_print_areas,
    validate_variants,
    variant_changes,
)


def _options(sent: list[SentVariant]) -> list[ProductOption]:
    colours = list(dict.fromkeys(s.variant.colour for s in sent))
    sizes = list(dict.fromkeys(s.variant.size for s in sent))
    return [
        {
            "name": "Colors",
            "type": "color",
            "values": [{"id": COLOUR_IDS[c], "title": c} for c in colours],
        },
        {
            "name": "Sizes",
            "type": "size",
            "values": [{"id": SIZE_IDS[s], "title": s} for s in sizes],
        },
    ]


def _mockups(
    base: str, product_id: str, sent: list[SentVariant], areas: list[PrintArea], default_id: int
) -> list[Mockup]:
    positions = sorted({ph["position"] for area in areas for ph in area["placeholders"]})
    return [
        {
            "src": f"{base}/mockup/{product_id}/{s.variant.id}/{pos}.jpg",
            "variant_ids": [s.variant.id],
            "position": pos,
            "is_default": s.variant.id == default_id and pos == "front",
        }
        for s in sent
        if s.enabled
        for pos in positions
    ]


def _variant_rows(
    sent: list[SentVariant],
    catalog: dict[int, CatalogVariant],
    behaviour: Behaviour,
    default_id: int,
) -> list[ProductVariant]:
    # The provider's other variants, at the highest price sent with generated SKUs: listed
    # disabled, enabled or not at all (Printify's documentation does not say which).
    ids = {s.variant.id for s in sent}
    highest = max(s.price for s in sent)
    unsent = [] if behaviour.unsent_variants == "absent" else [
        v for v in catalog.values() if v.id not in ids
    ]  # fmt: skip
    return [ProductVariant.of(s.variant, s.price, s.enabled, s.sku, default_id) for s in sent] + [
        ProductVariant.of(v, highest, behaviour.unsent_variants == "enabled", None, default_id)
        for v in unsent
    ]


def build_product(
    body: dict[str, object],
    acct: Account,
    shop_id: int,
    product_id: str,
    mockup_base: str,
    behaviour: Behaviour,
) -> Product:
    """Validate a create-product body like Printify and return the product; its mockups are
    served under ``mockup_base`` (Printify's image servers are this simulator). The SKUs sent
    are kept or replaced, and the variants not sent listed, as ``behaviour`` says."""
    header = product_header(body)
    catalog = VARIANTS[(header.blueprint_id, header.print_provider_id)]
    sent = validate_variants(body.get("variants"), catalog)
    ids = {s.variant.id for s in sent}
    areas = validate_print_areas(body.get("print_areas"), ids, catalog, acct.uploads)
    # "Each variant has a print area attached to it."
    covered = {vid for area in areas for vid in area["variant_ids"]}
    bare = sorted(s.variant.id for s in sent if s.enabled and s.variant.id not in covered)
    if bare:
        raise Invalid(f"variants {bare} have no print area")
    if not behaviour.keeps_sku:
        sent = [SentVariant(s.variant, s.price, s.enabled, None) for s in sent]
    default_id = next((s.variant.id for s in sent if s.enabled), sent[0].variant.id)
    stamp = now_stamp()
    return Product(
        id=product_id,
        title=header.title,
        description=header.description,
        tags=header.tags,
        options=_options(sent),
        variants=_variant_rows(sent, catalog, behaviour, default_id),
        images=_mockups(mockup_base, product_id, sent, areas, default_id),
        created_at=stamp,
        updated_at=stamp,
        blueprint_id=header.blueprint_id,
        user_id=acct.user_id,
        shop_id=shop_id,
        print_provider_id=header.print_provider_id,
        print_areas=areas,
    )


def below_cost(product: Product) -> str | None:
    """Why ``product`` may not be published at its prices, or None."""
    for i, v in enumerate(product.variants):
        if v.is_enabled and v.price < v.cost:
            return (
                f"variants.{i}.price {v.price} of variant {v.id} is below its"
                f" production cost {v.cost}"
            )
    return None


def print_dpi(product: Product) -> float | None:
    """The lowest resolution any placed image prints at on the product's enabled variants:
    300 DPI x the image's width over the width it covers on the placeholder (Printify sizes
    placeholders at 300 DPI; ``scale`` is the image's width as a share of the placeholder's).
    Printify itself does not check this; the books record it so tests can."""
    catalog = VARIANTS.get((product.blueprint_id, product.print_provider_id), {})
    enabled = {v.id for v in product.variants if v.is_enabled}
    dpis = [
        300 * img["width"] / covered
        for area in product.print_areas
        for vid in area["variant_ids"]
        if vid in enabled and vid in catalog
        for ph in area["placeholders"]
        for img in ph["images"]
        if (covered := float(img["scale"]) * _width(catalog[vid], ph["position"])) > 0
    ]
    return round(min(dpis), 1) if dpis else None


def _width(variant: CatalogVariant, position: str) -> int:
    return {pos: w for pos, w, _ in variant.placeholders}[position]


def apply_update(product: Product, body: dict[str, object], behaviour: Behaviour) -> None:
    """Validate an update like Printify and apply it to ``product``; raise :class:`Invalid`.

    ``variants``: "all variants must be present in the request". Under ``require_all`` a list
    that misses some is refused; under ``replace`` it is the product's new list (variants left
    out are disabled; a variant's fields left out take their create defaults: enabled, a new
    SKU); under ``merge`` only what is sent changes."""
    update_fields(body)
    own = {v.id: v for v in product.variants}
    changes: list[VariantChange] = []
    if "variants" in body:
        changes = variant_changes(body["variants"], set(own))
        changes = _variant_rule(own, changes, behaviour)
    if "title" in body:
        product.title = str(body["title"])
    if "description" in body:
        product.description = str(body["description"])
    if isinstance(tags := body.get("tags"), list):
        product.tags = [str(t) for t in tags]
    for change in changes:
        variant = own[change.id]
        if change.price is not None:
            variant.price = change.price
        if change.enabled is not None:
            variant.is_enabled = change.enabled
        if change.sku is not None and behaviour.keeps_sku:
            variant.sku = change.sku
    product.updated_at = now_stamp()


def _variant_rule(
    own: dict[int, ProductVariant], changes: list[VariantChange], behaviour: Behaviour
) -> list[VariantChange]:
    """What the chosen variant-update rule makes of ``changes`` (see :func:`apply_update`)."""
    missing = sorted(set(own) - {c.id for c in changes})
    if missing and behaviour.variant_update == "require_all":
        raise Invalid(f"variants: all variants of the product must be present; missing {missing}")
    if behaviour.variant_update != "replace":
        return changes
    for vid in missing:
        own[vid].is_enabled = False
    # A variant sent is replaced whole: what it leaves out takes the create defaults.
    for change in changes:
        if change.sku is None:
            own[change.id].sku = generated_sku()
    return [
        VariantChange(c.id, c.price, True if c.enabled is None else c.enabled, c.sku)
        for c in changes
    ]
