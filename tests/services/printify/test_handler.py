"""The printify handler against the Printify simulator (real client, real HTTP)."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.printify.handler import PrintifyHandler, build_handler, sku_prefix
from services.printify.settings import DEFAULT_CATALOG, CatalogEntry, PrintifySettings
from shared.adapters.storage import ImageStorageSettings, LocalImageStorage
from shared.adapters.vendors.listing import draft_from_printify
from shared.adapters.vendors.printify import PrintifyClient, build_product_payload
from shared.contract.events import (
    ImageGenerated,
    ImageGeneratedPayload,
    JobRouting,
    ProductCreated,
    ProductType,
    Screening,
    ScreeningCheck,
    ScreeningDecision,
    ScreeningReason,
    StageFailed,
)
from shared.contract.topics import PRINTIFY, PRODUCTS_CREATED
from shared.domain.ledger import EffectKey, EffectState, Ledger
from shared.pipeline.runner import MessageContext
from shared.platform.errors import ConfigError, PermanentError
from simulators.printify import SHOP_ID
from simulators.process import SimulatorProcess
from tests.support.printify import behaving, png
from tests.support.s3 import KEY_ID, SECRET, s3_server

CTX = MessageContext("images.generated", 2, 11, 0, "test")
SIZE = 2250


@pytest.fixture
async def client(printify_sim: SimulatorProcess) -> AsyncIterator[PrintifyClient]:
    # An account per test: Printify's 600 requests a minute are per account, and the tests
    # that fill a shop with products would otherwise spend the next tests' minute.
    key = f"tok-printify-handler-{uuid.uuid4().hex[:8]}"
    c = PrintifyClient(api_key=key, base_url=printify_sim.url)
    yield c
    await c.aclose()


def image_event(tmp_path: Path, types: list[str], job_id: str | None = None) -> ImageGenerated:
    # A fresh job id per test: the ledger outlives the module's simulator.
    job_id = job_id or f"job-p-{uuid.uuid4().hex[:10]}"
    buf = io.BytesIO()
    # Print-ready: 150 DPI across a tee's 4500 px wide front.
    Image.new("RGB", (SIZE, SIZE), (10, 200, 30)).save(buf, "PNG")
    stored = LocalImageStorage(tmp_path).save(buf.getvalue())
    return ImageGenerated(
        job_id=job_id,
        producer="generator",
        payload=ImageGeneratedPayload(
            image_index=1,
            image_count=2,
            sha256=stored.sha256,
            uri=stored.uri,
            width=SIZE,
            height=SIZE,
            prompt="green blob",
            seed=1,
            title="Green Blob Tee",
            description="A blob.",
            tags=["blob", "green"],
            routing=JobRouting(product_types=types, auto_publish=True),
        ),
    )


def make_handler(
    client: PrintifyClient,
    ledger: Ledger,
    root: Path,
    catalog: dict[ProductType, CatalogEntry] = DEFAULT_CATALOG,
) -> PrintifyHandler:
    return PrintifyHandler(
        client=client,
        ledger=ledger,
        catalog=catalog,
        storage=LocalImageStorage(root),
        shop_id=str(SHOP_ID),
    )


def books(sim: SimulatorProcess) -> dict:
    return httpx.get(f"{sim.url}/_sim/books", timeout=5).json()


def products_marked(sim: SimulatorProcess, marker: str) -> list[str]:
    """Ids of the live products whose variant SKUs carry ``marker``."""
    return [
        p["product_id"]
        for account in books(sim)["accounts"].values()
        for p in account["products"]
        if p["skus"] and all(sku.startswith(f"{marker}-") for sku in p["skus"])
    ]


def uploads(sim: SimulatorProcess) -> int:
    return sum(a["uploads"] for a in books(sim)["accounts"].values())


async def test_one_product_per_type_each_variant_priced_from_its_cost(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = PrintifyHandler(
        client=client,
        ledger=ledger,
        catalog=DEFAULT_CATALOG,
        storage=LocalImageStorage(tmp_path),
        shop_id=str(SHOP_ID),
    )
    event = image_event(tmp_path, ["tshirt", "hoodie"])
    outputs = await handler(event, CTX)
    assert [o.topic for o in outputs] == [PRODUCTS_CREATED, PRODUCTS_CREATED]
    created = [o.event for o in outputs]
    assert all(isinstance(e, ProductCreated) for e in created)
    by_type = {e.payload.product_type: e.payload for e in created}
    assert by_type[ProductType.TSHIRT].blueprint_id == 6
    assert by_type[ProductType.HOODIE].blueprint_id == 77
    for product_type, entry in ((ProductType.TSHIRT, 1999), (ProductType.HOODIE, 3499)):
        made = by_type[product_type]
        product = await client.get_product(made.shop_id, made.product_id)
        enabled = [v for v in product.model_dump()["variants"] if v["is_enabled"]]
        assert len(enabled) == made.variant_count
        # The large sizes cost more than the seed's flat list price: a flat price loses money.
        assert max(v["cost"] for v in enabled) > entry
        for v in enabled:
            least = max(v["cost"] * 1.4, v["cost"] + 400, entry)
            assert least <= v["price"] < least + 100 and v["price"] % 100 == 99, v
        # The event tells the ranges that are on Printify.
        prices = made.prices
        assert prices.price_min_cents == min(v["price"] for v in enabled) == entry
        assert prices.price_max_cents == max(v["price"] for v in enabled)
        assert prices.cost_min_cents == min(v["cost"] for v in enabled)
        assert prices.cost_max_cents == max(v["cost"] for v in enabled)
        assert prices.profit_min_cents == min(v["price"] - v["cost"] for v in enabled)
        assert prices.margin_min_percent is not None and prices.margin_min_percent >= 25
        # The seller can review Printify's mockups, its default one first.
        default = next(i.src for i in product.images if i.is_default)
        assert made.mockups and made.mockups[0] == default
        # Printify publishes it (it refuses a variant below cost).
        await client.publish(made.shop_id, made.product_id)
    # The product on Printify has the listing copy and the marker SKUs.
    tee = await client.get_product(
        by_type[ProductType.TSHIRT].shop_id, by_type[ProductType.TSHIRT].product_id
    )
    assert tee.title == "Green Blob Tee"
    assert tee.tags == ["blob", "green"]
    marker = sku_prefix(event.job_id, 1, "tshirt")
    assert all((v.sku or "").startswith(marker) for v in tee.variants if v.is_enabled)
    assert tee.print_areas[0].placeholders[0].position == "front"
    # Redelivered: neither created nor priced again.
    updated = sum(a["products_updated"] for a in books(printify_sim)["accounts"].values())
    again = await handler(event, CTX)
    assert [o.event.payload.product_id for o in again] == [e.payload.product_id for e in created]
    assert sum(a["products_updated"] for a in books(printify_sim)["accounts"].values()) == updated


def dpi_on_printify(sim: SimulatorProcess, product_id: str) -> float:
    return next(
        p["print_dpi"]
        for account in books(sim)["accounts"].values()
        for p in account["products"]
        if p["product_id"] == product_id
    )


async def test_art_is_placed_to_fit_each_print_area_at_a_print_resolution(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    outputs = await handler(image_event(tmp_path, ["tshirt", "mug"]), CTX)
    made = {o.event.payload.product_type: o.event.payload for o in outputs}
    assert set(made) == {ProductType.TSHIRT, ProductType.MUG}
    for product_type, payload in made.items():
        product = await client.get_product(payload.shop_id, payload.product_id)
        placed = product.print_areas[0].placeholders[0].images[0].model_dump()
        assert (placed["x"], placed["y"]) == (0.5, 0.5)
        if product_type is ProductType.TSHIRT:  # 4500 x 5100: the art spans its width
            assert placed["scale"] == 1.0
        else:  # the mug's 2475 x 1155 wrap: the square art fits its height, not cropped
            assert placed["scale"] * 2475 <= 1155
        # What the simulated Printify computes from the upload and the placement.
        dpi = dpi_on_printify(printify_sim, payload.product_id)
        assert dpi >= 150 and payload.print_dpi == dpi
    assert made[ProductType.MUG].print_dpi > made[ProductType.TSHIRT].print_dpi


async def test_art_too_small_for_a_print_area_is_refused_not_made_blurry(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = make_handler(client, ledger, tmp_path)
    event = image_event(tmp_path, ["tshirt"])
    small = event.model_copy(
        update={"payload": event.payload.model_copy(update={"width": 1024, "height": 1024})}
    )
    created = sum(a["products_created"] for a in books(printify_sim)["accounts"].values())
    outputs = await handler(small, CTX)
    assert [o.topic for o in outputs] == [PRINTIFY.dlq]
    failed = outputs[0].event
    assert isinstance(failed, StageFailed) and not failed.payload.retryable
    assert "68.3 DPI" in failed.payload.message and "PRINT_MIN_DPI 150" in failed.payload.message
    assert sum(a["products_created"] for a in books(printify_sim)["accounts"].values()) == created


async def test_permanent_failure_of_one_type_spares_the_others(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger
) -> None:
    catalog = {
        **DEFAULT_CATALOG,
        # A provider that does not make this blueprint: Printify rejects it for good.
        ProductType.HOODIE: CatalogEntry(
            blueprint_id=77, print_provider_id=424242, price_cents=3499
        ),
    }
    handler = PrintifyHandler(
        client=client,
        ledger=ledger,
        catalog=catalog,
        storage=LocalImageStorage(tmp_path),
        shop_id=str(SHOP_ID),
    )
    outputs = await handler(image_event(tmp_path, ["tshirt", "hoodie"]), CTX)
    assert [o.topic for o in outputs] == [PRODUCTS_CREATED, PRINTIFY.dlq]
    failed = outputs[1].event
    assert isinstance(failed, StageFailed)
    assert failed.payload.product_type == ProductType.HOODIE
    assert failed.payload.error_class == "PermanentError"
    assert failed.payload.input_offset == 11
    # The replayable input asks only for what failed.
    assert failed.payload.input_event is not None
    assert failed.payload.input_event["payload"]["routing"]["product_types"] == ["hoodie"]


async def test_redelivery_creates_each_product_and_uploads_the_image_once(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    handler = PrintifyHandler(
        client=client,
        ledger=ledger,
        catalog=DEFAULT_CATALOG,
        storage=LocalImageStorage(tmp_path),
        shop_id=str(SHOP_ID),
    )
    event = image_event(tmp_path, ["tshirt", "mug"])
    uploads_before = uploads(printify_sim)
    first = await handler(event, CTX)
    # The same message again, as after a crash before the offset commit.
    second = await handler(event, CTX)
    assert uploads(printify_sim) - uploads_before == 1
    ids_first = [o.event.payload.product_id for o in first]
    ids_second = [o.event.payload.product_id for o in second]
    assert ids_first == ids_second and len(set(ids_first)) == 2
    for product_type, product_id in zip(["tshirt", "mug"], ids_first, strict=True):
        marker = sku_prefix(event.job_id, 1, product_type)
        assert products_marked(printify_sim, marker) == [product_id]
    assert books(printify_sim)["duplicates"] == []


async def test_create_with_unknown_outcome_is_found_by_sku_not_repeated(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = image_event(tmp_path, ["tshirt"])
    marker = sku_prefix(event.job_id, 1, "tshirt")
    # An earlier attempt recorded `started`, created the product, and crashed before `done`.
    key = EffectKey(event.job_id, 1, "tshirt", "create")
    assert (await ledger.begin(key, lease_s=0)).state is EffectState.NEW
    entry = DEFAULT_CATALOG[ProductType.TSHIRT]
    shop = str((await client.list_shops())[0].id)
    upload = await client.upload_image(file_name="crashed.png", contents=png())
    variants = await client.list_variants(entry.blueprint_id, entry.print_provider_id)
    crashed = await client.create_product(
        shop,
        build_product_payload(
            title="Green Blob Tee",
            description="A blob.",
            tags=["blob", "green"],
            blueprint_id=entry.blueprint_id,
            print_provider_id=entry.print_provider_id,
            variants=variants,
            price_cents=entry.price_cents,
            image_id=upload.id,
            sku_prefix=marker,
        ),
    )
    created_before = sum(a["products_created"] for a in books(printify_sim)["accounts"].values())

    handler = PrintifyHandler(
        client=client,
        ledger=ledger,
        catalog=DEFAULT_CATALOG,
        storage=LocalImageStorage(tmp_path),
        shop_id=str(SHOP_ID),
    )
    outputs = await handler(event, CTX)

    assert [o.topic for o in outputs] == [PRODUCTS_CREATED]
    created = outputs[0].event
    assert isinstance(created, ProductCreated)
    assert created.payload.product_id == crashed.id
    assert created.payload.variant_count == len(variants)
    created_after = sum(a["products_created"] for a in books(printify_sim)["accounts"].values())
    assert created_after == created_before
    assert products_marked(printify_sim, marker) == [crashed.id]
    # Reconciled and recorded: the next redelivery does not even look the product up.
    recorded = await ledger.get(key)
    assert recorded is not None and recorded.state is EffectState.DONE
    assert recorded.result is not None and recorded.result["product_id"] == crashed.id


async def test_create_that_never_reached_printify_is_made_on_the_next_attempt(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = image_event(tmp_path, ["mug"])
    # An earlier attempt recorded `started` and crashed before its request left.
    await ledger.begin(EffectKey(event.job_id, 1, "mug", "create"), lease_s=0)
    handler = PrintifyHandler(
        client=client,
        ledger=ledger,
        catalog=DEFAULT_CATALOG,
        storage=LocalImageStorage(tmp_path),
        shop_id=str(SHOP_ID),
    )
    outputs = await handler(event, CTX)
    created = outputs[0].event
    assert isinstance(created, ProductCreated)
    marker = sku_prefix(event.job_id, 1, "mug")
    assert products_marked(printify_sim, marker) == [created.payload.product_id]


async def test_build_handler_wires_the_ledger_from_settings(
    tmp_path: Path, migrated_db: str, printify_sim: SimulatorProcess
) -> None:
    settings = PrintifySettings(
        printify_api_key="tok-printify-build",
        printify_api_url=printify_sim.url,
        database_url=migrated_db,
        image_storage_dir=tmp_path,
        printify_shop_id=str(SHOP_ID),
    )
    event = image_event(tmp_path, ["mug"])
    async with build_handler(settings) as handler:
        first = await handler(event, CTX)
    async with build_handler(settings) as handler:  # a restarted process
        second = await handler(event, CTX)
    assert first[0].event.payload == second[0].event.payload
    assert first[0].event.payload.shop_id == str(SHOP_ID)
    assert len(products_marked(printify_sim, sku_prefix(event.job_id, 1, "mug"))) == 1


@pytest.mark.parametrize("shop", [None, "999"])
async def test_a_shop_that_cannot_be_chosen_stops_the_start_naming_the_shops(
    tmp_path: Path, migrated_db: str, printify_sim: SimulatorProcess, shop: str | None
) -> None:
    # The account has a custom-integration shop and an Etsy shop: the first is not a guess.
    settings = PrintifySettings(
        printify_api_key="tok-printify-shops",
        printify_api_url=printify_sim.url,
        database_url=migrated_db,
        image_storage_dir=tmp_path,
        printify_shop_id=shop,
    )
    with pytest.raises(ConfigError) as info:
        async with build_handler(settings):
            pass
    message = str(info.value)
    assert "PRINTIFY_SHOP_ID" in message
    assert f"{SHOP_ID} (POD Engine Shop, custom_integration)" in message
    assert f"{SHOP_ID + 1} (Etsy Shop, etsy)" in message


@pytest.mark.parametrize("uri", ["file:///proc/self/environ", "file:///dev/zero"])
async def test_an_image_uri_outside_the_storage_uploads_nothing(
    tmp_path: Path,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
    uri: str,
) -> None:
    event = image_event(tmp_path, ["tshirt"])
    hostile = event.model_copy(update={"payload": event.payload.model_copy(update={"uri": uri})})
    before = uploads(printify_sim)
    handler = make_handler(client, ledger, tmp_path)
    with pytest.raises(PermanentError, match="outside the image storage") as err:
        await handler(hostile, CTX)
    assert "environ" not in str(err.value)  # the path itself is not echoed either
    assert uploads(printify_sim) == before


def uploads_by_url(sim: SimulatorProcess) -> int:
    return sum(a["uploads_by_url"] for a in books(sim)["accounts"].values())


async def test_images_in_a_bucket_reach_printify_by_presigned_url(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    with s3_server("pod-art") as endpoint:
        store = ImageStorageSettings(
            image_storage_url="s3://pod-art/art",
            s3_endpoint_url=endpoint,
            s3_access_key_id=KEY_ID,
            s3_secret_access_key=SECRET,
        ).image_store()
        buf = io.BytesIO()
        Image.new("RGB", (SIZE, SIZE), (200, 10, 30)).save(buf, "PNG")
        stored = store.save(buf.getvalue())
        event = image_event(tmp_path, ["mug"])
        event = event.model_copy(
            update={
                "payload": event.payload.model_copy(
                    update={"uri": stored.uri, "sha256": stored.sha256}
                )
            }
        )
        handler = PrintifyHandler(
            client=client,
            ledger=ledger,
            catalog=DEFAULT_CATALOG,
            storage=store,
            shop_id=str(SHOP_ID),
        )
        before = uploads_by_url(printify_sim)
        outputs = await handler(event, CTX)
    assert [o.topic for o in outputs] == [PRODUCTS_CREATED]
    assert uploads_by_url(printify_sim) == before + 1  # fetched from the bucket by Printify


async def test_a_large_image_is_not_sent_as_base64(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    # Noise does not compress: a 1400 x 1400 PNG is about 5.9 MB.
    noise = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG", compress_level=1)
    assert len(buf.getvalue()) > 5 * 1024 * 1024
    stored = LocalImageStorage(tmp_path).save(buf.getvalue())
    event = image_event(tmp_path, ["mug"])
    event = event.model_copy(
        update={
            "payload": event.payload.model_copy(update={"uri": stored.uri, "sha256": stored.sha256})
        }
    )
    before = uploads(printify_sim)
    with pytest.raises(PermanentError, match="IMAGE_STORAGE_URL"):
        await make_handler(client, ledger, tmp_path)(event, CTX)
    assert uploads(printify_sim) == before


# --- what Printify's reference leaves open -----------------------------------------------------

BLACK_TEES = {
    **DEFAULT_CATALOG,
    # One colour of the provider's five: most of its variants are not chosen.
    ProductType.TSHIRT: DEFAULT_CATALOG[ProductType.TSHIRT].model_copy(
        update={"colours": ("Black",)}
    ),
}


@pytest.mark.parametrize("keeps_sku", [True, False])
@pytest.mark.parametrize("unsent", ["disabled", "enabled", "absent"])
@pytest.mark.parametrize("variant_update", ["require_all", "replace", "merge"])
async def test_only_the_chosen_variants_sell_at_their_prices_whatever_printify_does(
    tmp_path: Path,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
    variant_update: str,
    unsent: str,
    keeps_sku: bool,
) -> None:
    """Whether a variant update is refused unless whole, replaces or merges; whether the
    variants a create did not send come back disabled, enabled or not at all; whether the SKUs
    sent are kept: the product sells exactly the chosen variants, each above its cost, keeps
    its SKUs through the price update, and lists as a draft of those variants."""
    with behaving(
        printify_sim.url,
        variant_update=variant_update,
        unsent_variants=unsent,
        keeps_sku=keeps_sku,
    ):
        handler = make_handler(client, ledger, tmp_path, catalog=BLACK_TEES)
        event = image_event(tmp_path, ["tshirt"])
        outputs = await handler(event, CTX)
        assert [o.topic for o in outputs] == [PRODUCTS_CREATED], outputs
        made = outputs[0].event.payload
        catalog = await client.list_variants(6, 99)
        chosen = {v.id for v in catalog if v.options["color"] == "Black"}
        product = await client.get_product(made.shop_id, made.product_id)
        enabled = {v["id"]: v for v in product.model_dump()["variants"] if v["is_enabled"]}
        assert set(enabled) == chosen and made.variant_count == len(chosen)
        assert all(v["price"] >= v["cost"] for v in enabled.values())
        marker = sku_prefix(event.job_id, 1, "tshirt")
        if keeps_sku:
            assert {v["sku"] for v in enabled.values()} == {f"{marker}-{vid}" for vid in chosen}
        # The channels list the chosen variants, under SKUs that stay what they are.
        draft = draft_from_printify(product)
        assert sorted(v.sku for v in draft.variants) == sorted(v["sku"] for v in enabled.values())
        again = draft_from_printify(await client.get_product(made.shop_id, made.product_id))
        assert again.variants == draft.variants
        # Printify publishes it: no enabled variant below its cost.
        await client.publish(made.shop_id, made.product_id)


@pytest.mark.parametrize("unsent", ["disabled", "enabled", "absent"])
@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("keeps_sku", [True, False])
async def test_a_create_with_unknown_outcome_is_found_whatever_printify_does(
    tmp_path: Path,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
    keeps_sku: bool,
    order: str,
    unsent: str,
) -> None:
    """An attempt created the product and crashed before recording it; the next attempt finds
    it (not a second one) whether Printify kept the marker SKUs, in either listing order, with
    more products made after it, and sells the variants the first attempt chose."""
    with behaving(
        printify_sim.url, keeps_sku=keeps_sku, products_order=order, unsent_variants=unsent
    ):
        event = image_event(tmp_path, ["tshirt"])
        marker = sku_prefix(event.job_id, 1, "tshirt")
        entry = BLACK_TEES[ProductType.TSHIRT]
        shop = str(SHOP_ID)
        # The first attempt: the upload done and recorded, the create sent, then the crash.
        upload_key = EffectKey(event.job_id, 1, "", "upload")
        upload = await client.upload_image(file_name="first.png", contents=png(SIZE, SIZE))
        await ledger.begin(upload_key, lease_s=0)
        await ledger.complete(upload_key, {"image_id": upload.id})
        create_key = EffectKey(event.job_id, 1, "tshirt", "create")
        assert (await ledger.begin(create_key, lease_s=0)).state is EffectState.NEW
        variants = entry.select(await client.list_variants(6, 99))
        crashed = await client.create_product(
            shop,
            build_product_payload(
                title="Green Blob Tee",
                description="A blob.",
                tags=["blob", "green"],
                blueprint_id=6,
                print_provider_id=99,
                variants=variants,
                price_cents=entry.price_cents,
                image_id=upload.id,
                sku_prefix=marker,
            ),
        )
        # The shop goes on: more products than a page holds come after it.
        other = await client.upload_image(file_name="other.png", contents=png())
        for i in range(55):
            await client.create_product(
                shop,
                build_product_payload(
                    title=f"other {i}", description="d", tags=[], blueprint_id=6,
                    print_provider_id=99, variants=variants[:1], price_cents=2999,
                    image_id=other.id, sku_prefix=f"other-{event.job_id}-{i}",
                ),
            )  # fmt: skip
        before = sum(a["products_created"] for a in books(printify_sim)["accounts"].values())

        outputs = await make_handler(client, ledger, tmp_path, catalog=BLACK_TEES)(event, CTX)

        assert [o.topic for o in outputs] == [PRODUCTS_CREATED], outputs
        made = outputs[0].event.payload
        assert made.product_id == crashed.id
        after = sum(a["products_created"] for a in books(printify_sim)["accounts"].values())
        assert after == before
        assert made.variant_count == len(variants)
        product = await client.get_product(shop, made.product_id)
        assert {v.id for v in product.variants if v.is_enabled} == {v.id for v in variants}
        assert not any(crashed.id in d["product_ids"] for d in books(printify_sim)["duplicates"])


async def test_a_design_screening_blocked_reaches_printify_not_at_all(
    tmp_path: Path, client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = image_event(tmp_path, ["tshirt", "mug"])
    reason = ScreeningReason(
        check=ScreeningCheck.DENY_LIST,
        outcome=ScreeningDecision.BLOCK,
        detail="protected brand 'Nike' in the title",
        field="title",
        terms=["Nike"],
    )
    screening = Screening(decision=ScreeningDecision.BLOCK, reasons=[reason])
    blocked = event.model_copy(
        update={"payload": event.payload.model_copy(update={"screening": screening})}
    )
    before = uploads(printify_sim) + uploads_by_url(printify_sim)
    handler = make_handler(client, ledger, tmp_path)
    assert await handler(blocked, CTX) == []
    assert uploads(printify_sim) + uploads_by_url(printify_sim) == before
    assert products_marked(printify_sim, sku_prefix(event.job_id, 1, "tshirt", 0)) == []
    # The same design sent to review is made (as drafts: the publishers hold it).
    held = Screening(
        decision=ScreeningDecision.REVIEW,
        reasons=[reason.model_copy(update={"outcome": ScreeningDecision.REVIEW})],
    )
    reviewed = event.model_copy(
        update={"payload": event.payload.model_copy(update={"screening": held})}
    )
    outputs = await handler(reviewed, CTX)
    assert [o.topic for o in outputs] == [PRODUCTS_CREATED, PRODUCTS_CREATED]
