"""The storefront's side of Printify's publish handshake, driven by the webhook.

The whole loop runs for real: the publisher asks the Printify simulator to publish in the
custom-integration shop; the simulator calls the API's /webhooks/printify, signed; the API puts
the call on Kafka; the storefront handler answers Printify; the channel then shows the listing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import ValidationError

from services.api.settings import ApiSettings
from services.publisher.handler import ByEventType, printify_publisher
from services.publisher.publications import Publications
from services.publisher.storefront import storefront_refusal
from shared.adapters.vendors.channels import ChannelRegistry, PrintifyStorefront, ProductRef
from shared.adapters.vendors.printify import PrintifyClient, Product
from shared.adapters.vendors.printify_webhooks import TOPICS, register_webhooks, sign
from shared.contract.events import (
    PrintifyWebhookReceived,
    ProductCreated,
    ProductPublished,
    ProductPublishing,
    ProductWithdrawn,
    parse_event,
)
from shared.contract.topics import PRINTIFY_WEBHOOKS
from shared.domain.ledger import Ledger
from shared.tools import cli
from simulators.process import SimulatorProcess
from tests.services.api.conftest import serve
from tests.services.publisher.support import (
    CTX,
    TOKEN,
    confirmations,
    make_product,
    publish_calls,
)
from tests.support.infra import wait_for
from tests.support.kafka import end_offsets

SECRET = "whsec-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        printify_webhook_secret=SECRET,
    ) as client:
        yield client


class Topic:
    """The webhook topic read from where it ended when the test began."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"}
        )
        start = end_offsets(bootstrap, PRINTIFY_WEBHOOKS)
        self.consumer.assign([TopicPartition(PRINTIFY_WEBHOOKS, p, o) for p, o in start.items()])
        self.seen: list[PrintifyWebhookReceived] = []

    def read(self) -> list[PrintifyWebhookReceived]:
        for msg in self.consumer.consume(100, 0.2):
            if msg.error() is None:
                event = parse_event(msg.value(), (PrintifyWebhookReceived,))
                assert isinstance(event, PrintifyWebhookReceived)
                self.seen.append(event)
        return self.seen

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def webhooks_topic(pipeline_topics: str) -> Iterator[Topic]:
    topic = Topic(pipeline_topics)
    yield topic
    topic.close()


def _call(product_id: str, call_id: str) -> bytes:
    return (
        f'{{"id":"{call_id}","type":"product:publish:started",'
        f'"created_at":"2026-11-29 10:00:00+00:00","resource":{{"id":"{product_id}",'
        f'"type":"product","data":{{"shop_id":12345678,"action":"create"}}}}}}'
    ).encode()


def test_the_api_takes_only_calls_signed_over_their_exact_body(
    api: httpx.Client, webhooks_topic: Topic
) -> None:
    bad = _call("p-bad", "call-bad")
    refused = [
        api.post("/webhooks/printify", content=bad),
        api.post("/webhooks/printify", content=bad, headers={"X-Pfy-Signature": ""}),
        api.post("/webhooks/printify", content=bad, headers={"X-Pfy-Signature": sign("x", bad)}),
        # A signature of another call, replayed with this body.
        api.post(
            "/webhooks/printify",
            content=bad,
            headers={"X-Pfy-Signature": sign(SECRET, _call("p-good", "call-good"))},
        ),
    ]
    for resp in refused:
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"] == "unauthorized"
        assert SECRET not in resp.text

    junk = b'{"id": "x"}'
    malformed = api.post(
        "/webhooks/printify", content=junk, headers={"X-Pfy-Signature": sign(SECRET, junk)}
    )
    assert malformed.status_code == 400
    assert {d["field"] for d in malformed.json()["detail"]} >= {"type", "resource"}

    good = _call("p-good", "call-good")
    ok = api.post(
        "/webhooks/printify", content=good, headers={"X-Pfy-Signature": sign(SECRET, good)}
    )
    assert ok.status_code == 200, ok.text
    again = api.post(
        "/webhooks/printify", content=good, headers={"X-Pfy-Signature": sign(SECRET, good)}
    )
    # Printify calling again: the same event id, so the storefront sees a duplicate.
    assert again.json()["eventId"] == ok.json()["eventId"]

    wait_for(lambda: len(webhooks_topic.read()) >= 2, 15, "the accepted calls on the topic")
    ids = {e.payload.webhook_event_id for e in webhooks_topic.read()}
    assert ids == {"call-good"}  # nothing of the refused or malformed calls was produced
    event = webhooks_topic.seen[0]
    assert event.payload.topic == "product:publish:started"
    assert (event.payload.resource_id, event.payload.shop_id) == ("p-good", "12345678")
    assert str(event.event_id) == ok.json()["eventId"]


def test_without_a_secret_the_route_is_off(pipeline_topics: str, migrated_db: str) -> None:
    # compose passes PRINTIFY_WEBHOOK_SECRET= when none is set: off, not "signed with ''".
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        printify_webhook_secret="",
    ) as api:
        body = _call("p", "c")
        resp = api.post(
            "/webhooks/printify", content=body, headers={"X-Pfy-Signature": sign("", body)}
        )
        assert resp.status_code == 404


def test_a_short_secret_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        ApiSettings(printify_webhook_secret="short")


@dataclass
class Handshake:
    """A product published in the custom-integration shop with the webhook on: the publisher's
    handler, the storefront, and Printify's ``product:publish:started`` call as it arrived."""

    handler: ByEventType
    storefront: PrintifyStorefront
    call: PrintifyWebhookReceived


async def publish_for_the_webhook(
    event: ProductCreated,
    api: httpx.Client,
    webhooks_topic: Topic,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
) -> Handshake:
    p = event.payload
    await register_webhooks(client, p.shop_id, f"{api.base_url}/webhooks/printify", SECRET)
    channels = ChannelRegistry(client, "https://shop.test/p", storefront_on_webhook=True)
    handler = printify_publisher(
        channels=channels, ledger=ledger, publications=Publications(ledger.pool)
    )
    [out] = await handler(event, CTX)
    # Asked to publish, not answered by us: that is the webhook's job.
    assert isinstance(out.event, ProductPublishing)
    assert confirmations(printify_sim, p.product_id) == 0

    def arrived() -> list[PrintifyWebhookReceived]:
        return [e for e in webhooks_topic.read() if e.payload.resource_id == p.product_id]

    wait_for(lambda: arrived(), 15, "Printify's publish webhook on the topic")
    storefront = channels.by_name("custom_integration")
    assert isinstance(storefront, PrintifyStorefront)
    return Handshake(handler, storefront, arrived()[0])


async def test_the_publish_webhook_drives_the_storefront_handshake(
    api: httpx.Client,
    webhooks_topic: Topic,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
) -> None:
    event = await make_product(client, auto_publish=True)
    p = event.payload
    shake = await publish_for_the_webhook(event, api, webhooks_topic, client, ledger, printify_sim)

    assert await shake.handler(shake.call, CTX) == []
    assert confirmations(printify_sim, p.product_id) == 1
    state = await shake.storefront.check(ProductRef(p.shop_id, p.product_id, p.title))
    assert state.listing is not None and state.listing.external_id == p.product_id
    assert (state.listing.handle or "").startswith("https://shop.test/p/moon-cat-")

    # Printify calling again, or a redelivery: the handshake is not answered twice.
    assert await shake.handler(shake.call, CTX) == []
    assert confirmations(printify_sim, p.product_id) == 1


async def test_a_product_the_storefront_cannot_sell_is_refused_to_printify_once(
    api: httpx.Client,
    webhooks_topic: Topic,
    client: PrintifyClient,
    ledger: Ledger,
    printify_sim: SimulatorProcess,
) -> None:
    event = await make_product(client, auto_publish=True)
    p = event.payload
    # Every variant switched off after creation: nothing a buyer could order.
    variants = (await client.get_product(p.shop_id, p.product_id)).variants
    await client.update_product(
        p.shop_id,
        p.product_id,
        {"variants": [{"id": v.id, "is_enabled": False} for v in variants]},
    )
    shake = await publish_for_the_webhook(event, api, webhooks_topic, client, ledger, printify_sim)

    assert await shake.handler(shake.call, CTX) == []
    assert publish_calls(printify_sim, p.product_id, "publishing_failed") == 1
    assert confirmations(printify_sim, p.product_id) == 0
    # The channel now reports the refusal, which the publication watcher settles the job on.
    state = await shake.storefront.check(ProductRef(p.shop_id, p.product_id, p.title))
    assert state.listing is None and "publishing_failed" in (state.refused or "")

    # A redelivered call is not answered twice.
    assert await shake.handler(shake.call, CTX) == []
    assert publish_calls(printify_sim, p.product_id, "publishing_failed") == 1


async def test_a_product_deleted_in_printify_comes_back_signed_and_is_withdrawn(
    api: httpx.Client,
    webhooks_topic: Topic,
    client: PrintifyClient,
    ledger: Ledger,
) -> None:
    """The whole loop: the seller deletes our listed product in Printify; Printify calls the
    API's webhook, signed; the call reaches the printify channel's publisher through Kafka, which
    reports the product withdrawn (deleted, by the vendor)."""
    event = await make_product(client, auto_publish=True)
    p = event.payload
    handler = printify_publisher(
        channels=ChannelRegistry(client, "https://shop.test/p"),
        ledger=ledger,
        publications=Publications(ledger.pool),
    )
    [listed] = await handler(event, CTX)  # listed on the storefront at once
    assert isinstance(listed.event, ProductPublished)
    await register_webhooks(client, p.shop_id, f"{api.base_url}/webhooks/printify", SECRET)

    await client.delete_product(p.shop_id, p.product_id)

    def arrived() -> list[PrintifyWebhookReceived]:
        return [
            e
            for e in webhooks_topic.read()
            if e.payload.resource_id == p.product_id and e.payload.topic == "product:deleted"
        ]

    [call] = wait_for(arrived, 15, "Printify's product:deleted webhook on the topic")
    [out] = await handler(call, CTX)
    gone = out.event
    assert isinstance(gone, ProductWithdrawn) and gone.job_id == event.job_id
    assert (gone.payload.channel, gone.payload.outcome, gone.payload.reason) == (
        "printify",
        "deleted",
        "vendor",
    )
    assert gone.payload.product_id == p.product_id and gone.payload.was_listed is True


def test_pod_webhooks_register_subscribes_each_custom_integration_shop_once(
    printify_sim: SimulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"https://pod.example/{uuid.uuid4().hex[:8]}/webhooks/printify"
    monkeypatch.setenv("PRINTIFY_API_KEY", TOKEN)
    monkeypatch.setenv("PRINTIFY_API_URL", printify_sim.url)
    monkeypatch.setenv("PRINTIFY_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("PRINTIFY_SHOP_ID", raising=False)

    assert cli.main(["webhooks", "register", "--url", url]) == 0
    first = json.loads(capsys.readouterr().out)
    # Run again (a redeploy): nothing is registered twice.
    assert cli.main(["webhooks", "register", "--url", url]) == 0
    assert json.loads(capsys.readouterr().out) == first

    books = httpx.get(f"{printify_sim.url}/_sim/books", timeout=5).json()["accounts"]
    hooks = [h for acct in books.values() for h in acct["webhooks"] if h["url"] == url]
    shops = {
        str(s["id"]): s["sales_channel"]
        for s in httpx.get(
            f"{printify_sim.url}/v1/shops.json",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        ).json()
    }
    # Only the shop whose publish handshake is ours; every topic once.
    assert {shops[str(h["shop_id"])] for h in hooks} == {"custom_integration"}
    assert sorted(h["topic"] for h in hooks) == sorted(TOPICS)
    assert list(first) == [str(h["shop_id"]) for h in hooks[:1]]
    assert "whsec" not in json.dumps(first), "the secret is never printed"


def test_pod_webhooks_register_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PRINTIFY_API_KEY", "PRINTIFY_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["webhooks", "register", "--url", "https://x.test/w"]) != 0
    err = capsys.readouterr().err
    assert "PRINTIFY_API_KEY" in err and "PRINTIFY_WEBHOOK_SECRET" in err


def _product(**changes: Any) -> dict[str, Any]:
    product: dict[str, Any] = {
        "title": "Moon Cat",
        "variants": [{"id": 1, "price": 1999, "is_enabled": True}],
        "images": [{"src": "https://images.test/1.png"}],
    }
    return {**product, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"title": "  "}, "no title"),
        ({"variants": [{"id": 1, "price": 1999, "is_enabled": False}]}, "no enabled variant"),
        ({"variants": [{"id": 1, "price": 0, "is_enabled": True}]}, "no price"),
        ({"images": []}, "no images"),
    ],
)
def test_what_the_storefront_will_not_sell(changes: dict[str, Any], reason: str | None) -> None:
    refusal = storefront_refusal(Product.model_validate({"id": "p1", **_product(**changes)}))
    assert (refusal is None) if reason is None else (reason in (refusal or ""))
