"""The publisher handler against the Printify simulator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.publisher.handler import ByEventType, accepts, build_handler
from services.publisher.publications import Publications
from services.publisher.settings import PublisherSettings
from services.publisher.watch import publish_key
from shared.adapters.vendors.channels import handle_for
from shared.adapters.vendors.printify import PrintifyClient
from shared.contract.events import (
    ProductPublished,
    ProductPublishing,
)
from shared.contract.topics import DEFAULT_CHANNEL, PUBLISHED
from shared.domain.ledger import EffectState, Ledger
from shared.platform.errors import ConfigError
from simulators.process import SimulatorProcess
from tests.services.publisher.support import (
    CTX,
    TOKEN,
    confirmations,
    make_product,
    publish_calls,
    publisher,
)


async def test_auto_publish_publishes_and_confirms(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    handler = publisher(client, ledger)
    outputs = await handler(event, CTX)
    assert len(outputs) == 1 and outputs[0].topic == PUBLISHED
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.product_id == event.payload.product_id
    assert published.payload.handle == "https://shop.test/p/" + handle_for(
        "Moon Cat", event.payload.product_id
    )
    product = await client.get_product(event.payload.shop_id, event.payload.product_id)
    assert product.external is not None
    assert (product.external.handle or "").startswith("https://shop.test/p/moon-cat-")
    assert publish_calls(printify_sim, event.payload.product_id) == 1


async def test_without_auto_publish_the_product_stays_a_draft(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=False)
    handler = publisher(client, ledger)
    assert await handler(event, CTX) == []
    assert publish_calls(printify_sim, event.payload.product_id) == 0
    assert await ledger.get(publish_key(event)) is None


async def test_redelivery_publishes_once(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    handler = publisher(client, ledger)
    first = await handler(event, CTX)
    second = await handler(event, CTX)  # the same message redelivered
    assert publish_calls(printify_sim, event.payload.product_id) == 1
    assert confirmations(printify_sim, event.payload.product_id) == 1
    assert first[0].event.payload == second[0].event.payload


async def test_publish_requested_but_unconfirmed_is_only_confirmed(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    p = event.payload
    # An earlier attempt recorded `started`, asked Printify to publish, and crashed.
    await ledger.begin(publish_key(event), lease_s=0)
    await client.publish(p.shop_id, p.product_id)
    assert (await client.get_product(p.shop_id, p.product_id)).is_locked is True

    outputs = await publisher(client, ledger)(event, CTX)

    assert publish_calls(printify_sim, p.product_id) == 1
    assert confirmations(printify_sim, p.product_id) == 1
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.external_id == p.product_id
    assert published.payload.handle == "https://shop.test/p/" + handle_for("Moon Cat", p.product_id)
    product = await client.get_product(p.shop_id, p.product_id)
    assert product.is_locked is False
    assert product.external is not None and product.external.id == p.product_id


async def test_confirmed_publication_is_recorded_without_any_call(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    p = event.payload
    # An earlier attempt did the whole handshake and crashed before recording it.
    await ledger.begin(publish_key(event), lease_s=0)
    await client.publish(p.shop_id, p.product_id)
    await client.publishing_succeeded(
        p.shop_id, p.product_id, external_id=p.product_id, handle="https://shop.test/p/x"
    )

    outputs = await publisher(client, ledger)(event, CTX)

    assert publish_calls(printify_sim, p.product_id) == 1
    assert confirmations(printify_sim, p.product_id) == 1
    published = outputs[0].event
    assert isinstance(published, ProductPublished)
    assert published.payload.external_id == p.product_id
    recorded = await ledger.get(publish_key(event))
    assert recorded is not None and recorded.state is EffectState.DONE


async def test_publish_that_never_reached_printify_is_made_on_the_next_attempt(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    event = await make_product(client, auto_publish=True)
    await ledger.begin(publish_key(event), lease_s=0)  # crashed before the publish request left
    await publisher(client, ledger)(event, CTX)
    assert publish_calls(printify_sim, event.payload.product_id) == 1
    assert confirmations(printify_sim, event.payload.product_id) == 1


def test_handle_is_a_slug() -> None:
    assert (
        handle_for("Retro Space Cat — Tee!", "abcdef0123456789") == "retro-space-cat-tee-23456789"
    )
    assert handle_for("!!!", "id1") == "id1"


async def test_other_channels_are_published_once_and_left_to_the_channel_to_confirm(
    client: PrintifyClient, ledger: Ledger, printify_sim: SimulatorProcess
) -> None:
    # The account also has a custom-integration shop: the product's own shop decides.
    event = await make_product(client, auto_publish=True, channel="etsy")
    p = event.payload
    handler = publisher(client, ledger, confirm_timeout_s=600)
    # An earlier attempt whose publish went through...
    await ledger.begin(publish_key(event), lease_s=0)
    await client.publish(p.shop_id, p.product_id)
    outputs = await handler(event, CTX)  # ...is recognised by the lock, not repeated
    again = await handler(event, CTX)
    assert publish_calls(printify_sim, p.product_id) == 1
    assert confirmations(printify_sim, p.product_id) == 0  # the channel's job, not ours
    accounts = httpx.get(f"{printify_sim.url}/_sim/books", timeout=5).json()["accounts"]
    assert all(a["handshake_refused"] == 0 for a in accounts.values())
    # Not published yet: publishing, until Etsy lists it (the watcher's part).
    publishing = outputs[0].event
    assert outputs[0].topic == PUBLISHED and isinstance(publishing, ProductPublishing)
    assert publishing.payload.sales_channel == "etsy"
    remaining = (publishing.payload.confirm_by - datetime.now(UTC)).total_seconds()
    assert 590 < remaining <= 600
    # A redelivery: the same event (id and payload), one watch.
    assert (again[0].event.event_id, again[0].event.payload) == (
        publishing.event_id,
        publishing.payload,
    )
    pub = await Publications(ledger.pool).watch(
        event, CTX, sales_channel="etsy", timeout_s=1, first_check_s=0
    )
    assert pub.state == "pending" and pub.confirm_by == publishing.payload.confirm_by


def publisher_settings(
    bootstrap: str, sim: SimulatorProcess, database_url: str, **values: Any
) -> PublisherSettings:
    """The real service's settings, pointed at the test broker, simulator and database."""
    return PublisherSettings(
        kafka_bootstrap_servers=bootstrap,
        printify_api_key=TOKEN,
        printify_api_url=sim.url,
        database_url=database_url,
        **values,
    )


async def test_build_handler_wires_the_ledger_from_settings(
    client: PrintifyClient, migrated_db: str, printify_sim: SimulatorProcess, kafka_bootstrap: str
) -> None:
    settings = publisher_settings(kafka_bootstrap, printify_sim, migrated_db)
    event = await make_product(client, auto_publish=True)
    async with build_handler(settings) as handler:
        await handler(event, CTX)
    async with build_handler(settings) as handler:  # a restarted process
        await handler(event, CTX)
    assert publish_calls(printify_sim, event.payload.product_id) == 1
    assert confirmations(printify_sim, event.payload.product_id) == 1


async def test_the_printify_publisher_routes_exactly_what_its_process_reads(
    migrated_db: str, printify_sim: SimulatorProcess, kafka_bootstrap: str
) -> None:
    # __main__ gives the runner accepts(channel) as its allow-list: a type routed but not
    # read would never arrive, one read but not routed would fail every message.
    settings = publisher_settings(kafka_bootstrap, printify_sim, migrated_db)
    async with build_handler(settings) as handler:
        assert isinstance(handler, ByEventType)
        assert handler.accepts() == accepts(DEFAULT_CHANNEL)


async def test_a_channel_of_our_own_is_plugged_in_by_configuration(
    client: PrintifyClient, migrated_db: str, printify_sim: SimulatorProcess, kafka_bootstrap: str
) -> None:
    # The account's Etsy shop sells through our own adapter, named in the settings.
    settings = publisher_settings(
        kafka_bootstrap,
        printify_sim,
        migrated_db,
        sales_channel_adapters={
            "etsy": "tests.shared.adapters.vendors.test_channels:ListsEverything"
        },
    )
    event = await make_product(client, auto_publish=True, channel="etsy")
    async with build_handler(settings) as handler:
        outputs = await handler(event, CTX)
    published = outputs[0].event
    assert isinstance(published, ProductPublished)  # listed at once, by our adapter
    assert published.payload.external_id == f"own-{event.payload.product_id}"
    assert publish_calls(printify_sim, event.payload.product_id) == 0  # Printify not asked

    broken = settings.model_copy(update={"sales_channel_adapters": {"etsy": "nowhere:Nothing"}})
    with pytest.raises(ConfigError, match="SALES_CHANNEL_ADAPTERS: cannot load 'nowhere:Nothing'"):
        async with build_handler(broken):
            pass
