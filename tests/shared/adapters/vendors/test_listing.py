"""A Printify product as a channel-neutral draft (the simulator's product, in process)."""

from __future__ import annotations

import pytest

from shared.adapters.vendors.listing import draft_from_printify
from shared.adapters.vendors.printify import Product
from simulators.printify import SHOP_ID, create_app
from tests.support.printify import TITLE, create_product, in_process


async def test_the_draft_holds_the_enabled_variants_their_options_and_mockups() -> None:
    async with in_process(create_app()) as client:
        made = await create_product(
            client, str(SHOP_ID), variant_count=3, price_cents=2499, sku_prefix="pod-draft"
        )
        product = await client.get_product(str(SHOP_ID), made.id)
    draft = draft_from_printify(product)

    enabled = [v for v in product.model_dump()["variants"] if v["is_enabled"]]
    assert draft.marker == product.id and draft.title == TITLE
    assert [v.sku for v in draft.variants] == [v["sku"] for v in enabled]
    assert [v.price_cents for v in draft.variants] == [v["price"] for v in enabled]
    assert draft.min_price_cents == min(v["price"] for v in enabled)
    # Only the option values some enabled variant uses, each variant naming one per option.
    names = [name for name, _ in draft.options]
    assert names == ["Colors", "Sizes"]
    for variant in draft.variants:
        assert [n for n, _ in variant.options] == names
        for name, value in variant.options:
            assert value in dict(draft.options)[name]
    assert len({v.options for v in draft.variants}) == len(draft.variants)
    default = next(i.src for i in product.images if i.is_default)
    assert draft.images[0] == default and len(draft.images) == len(set(draft.images))


def test_html_in_the_description_becomes_text() -> None:
    product = {
        "id": "p1",
        "title": " Cat ",
        "description": "<p>Soft &amp; warm</p><br>tee",
        "options": [{"name": "Sizes", "values": [{"id": 1, "title": "S"}]}],
        "variants": [{"id": 9, "sku": "S1", "price": 1999, "is_enabled": True, "options": [1]}],
        "images": [],
    }
    draft = draft_from_printify(Product.model_validate(product))
    assert draft.title == "Cat"
    assert draft.description.split() == ["Soft", "&", "warm", "tee"]


def test_a_product_with_nothing_enabled_has_no_draft() -> None:
    with pytest.raises(ValueError, match="no enabled variant"):
        draft_from_printify(
            Product.model_validate({"id": "p", "variants": [{"id": 1, "is_enabled": False}]})
        )
