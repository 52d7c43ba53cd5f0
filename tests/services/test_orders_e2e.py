"""Orders from Printify to the seller's figures, every part real: the Printify simulator sends
``order:created`` / ``order:updated`` (signed) to the API's /webhooks/printify, the API puts
them on printify.webhooks, the monitor (its real runner and fold) folds them, and GET /sales
answers. The expected figures come from the simulator's own product (its variant's price and
cost), never from constants of this test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from services.monitor.dlq import parse_record
from services.monitor.fold import Folder
from services.monitor.handler import MonitorHandler
from shared.adapters.vendors.printify_webhooks import sign
from shared.contract.events import EVENT_TYPES
from shared.contract.topics import PRINTIFY_WEBHOOKS, Stage
from shared.pipeline.runner import RunnerSettings, StageRunner
from shared.platform.db import open_pool
from simulators.printify import SHOP_ID
from simulators.process import SimulatorProcess
from tests.services.api.conftest import serve
from tests.simulators.test_printify_sim import product_body, upload
from tests.support.infra import read_all, unique, wait_for
from tests.support.kafka import create_topics
from tests.support.orders import Shop

logger = logging.getLogger(__name__)

SECRET = "whsec-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        printify_webhook_secret=SECRET,
    ) as client:
        yield client


@dataclass
class Monitor:
    stage: Stage
    pool: AsyncConnectionPool


@pytest.fixture
def seller(printify_sim: SimulatorProcess, api: httpx.Client) -> Iterator[Seller]:
    s = Seller(printify_sim, api)
    yield s
    s.close()


@pytest.fixture
async def monitor(pipeline_topics: str, migrated_db: str) -> AsyncIterator[Monitor]:
    """The monitor's runner and fold, reading printify.webhooks in a group of its own."""
    family = unique("orders-mon")
    stage = Stage("monitor", (PRINTIFY_WEBHOOKS,), family)
    create_topics(pipeline_topics, [stage.dlq, *stage.retry_topics], 1)
    pool = await open_pool(migrated_db, max_size=6)
    runner = StageRunner(
        stage=stage,
        handler=MonitorHandler(pool),
        settings=RunnerSettings(
            kafka_bootstrap_servers=pipeline_topics,
            group_id_prefix=family,
            commit_interval_ms=100,
            retry_attempts=1,
            retry_base_delay_s=0.2,
            retry_max_delay_s=0.5,
            fetch_wait_max_ms=50,
            shutdown_grace_s=1,
        ),
        accept=EVENT_TYPES,
        parse=parse_record,
    )
    task = asyncio.create_task(runner.run())
    try:
        yield Monitor(stage, pool)
    finally:
        runner.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        await pool.close()


class Seller:
    """The seller's Printify account in the simulator, its webhooks pointing at the API."""

    def __init__(self, sim: SimulatorProcess, api: httpx.Client) -> None:
        self.token = f"tok-{uuid.uuid4().hex}"
        self.http = httpx.Client(
            base_url=sim.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
            trust_env=False,
        )
        for topic in ("order:created", "order:updated"):
            hook = {"topic": topic, "url": f"{api.base_url}/webhooks/printify", "secret": SECRET}
            resp = self.http.post(f"/v1/shops/{SHOP_ID}/webhooks.json", json=hook)
            assert resp.status_code == 200, resp.text

    def close(self) -> None:
        self.http.close()

    def product(self, price: int) -> dict[str, Any]:
        """A product on Printify (as the printify stage makes them), at ``price``."""
        body = product_body(upload(self.http)["id"])
        for v in body["variants"]:
            v["price"] = price
        made = self.http.post(f"/v1/shops/{SHOP_ID}/products.json", json=body)
        assert made.status_code == 200, made.text
        return dict(made.json())

    def order(self, count: int, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resp = self.http.post("/_sim/orders", json={"count": count, "lines": lines})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["orders"])

    def delivered(self, topic: str) -> int:
        """The calls of ``topic`` the API answered 2xx (the simulator's books)."""
        key = hashlib.sha256(self.token.encode()).hexdigest()[:12]
        books = self.http.get("/_sim/books").json()["accounts"].get(key, {})
        return int(books.get("webhooks_delivered", {}).get(topic, 0))

    def status(self, order_id: str, status: str) -> None:
        resp = self.http.post(f"/_sim/orders/{order_id}/status", json={"status": status})
        assert resp.status_code == 200, resp.text


def theme_row(api: httpx.Client, theme: str) -> dict[str, Any] | None:
    resp = api.get("/sales", params={"by": "theme", "hours": 1, "limit": 200})
    assert resp.status_code == 200, resp.text
    return next((r for r in resp.json()["rows"] if r["key"] == theme), None)


async def statuses(monitor: Monitor, expected: dict[str, str], timeout: float = 60) -> None:
    """Wait until the monitor has folded each order to its expected status."""

    async def folded() -> bool:
        async with monitor.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT order_id, status FROM orders WHERE order_id = ANY(%s)", (list(expected),)
            )
            got: dict[str, str] = dict(await cur.fetchall())
        return got == expected

    deadline = time.monotonic() + timeout
    while not await folded():
        assert time.monotonic() < deadline, f"orders not folded to {expected} in {timeout} s"
        await asyncio.sleep(0.05)


async def eventually(predicate: Any, timeout: float, what: str) -> Any:
    return await asyncio.to_thread(wait_for, predicate, timeout, what, 0.05)


async def test_orders_reach_the_seller_s_figures(
    seller: Seller, api: httpx.Client, monitor: Monitor
) -> None:
    made = [seller.product(3100), seller.product(2700)]
    # The engine made those products: its job and product rows, as the stages fold them.
    shop = Shop(Folder(monitor.pool))
    shop.product_ids = [p["id"] for p in made]
    await shop.fold_made()
    stranger = seller.product(1900)  # made by hand in Printify: "other"

    # One order first, so that the time below is the path's, not the monitor's group joining.
    [first] = seller.order(1, [{"product_id": stranger["id"]}])
    await statuses(monitor, {first["id"]: "pending"})

    n = 40
    started = time.monotonic()
    orders = seller.order(n, [{"product_id": made[0]["id"], "quantity": 2}])
    orders += seller.order(n // 2, [{"product_id": made[1]["id"]}])
    seller.order(3, [{"product_id": stranger["id"]}])
    units = 2 * n + n // 2
    delivered_at: list[float] = []

    def seen() -> dict[str, Any] | None:
        # When the API had acknowledged every call (it answers once Kafka has the event).
        if not delivered_at and seller.delivered("order:created") >= 1 + n + n // 2 + 3:
            delivered_at.append(time.monotonic())
        r = theme_row(api, shop.theme)
        return r if r is not None and r["units"] == units else None

    row = await eventually(seen, 60, f"{units} units of {n + n // 2} orders in GET /sales")
    took = time.monotonic() - started
    # The simulator sends each call SIM_PRINTIFY_WEBHOOK_DELAY_MS (200) after the order.
    logger.info(
        "orders to GET /sales: %d orders (+3 other) in %.2f s (all acknowledged by the API "
        "after %s s)",
        n + n // 2,
        took,
        f"{delivered_at[0] - started:.2f}" if delivered_at else "?",
    )

    # The figures, from the simulator's own prices and costs.
    v0, v1 = made[0]["variants"][0], made[1]["variants"][0]
    revenue = n * 2 * v0["price"] + (n // 2) * v1["price"]
    cost = n * 2 * v0["cost"] + (n // 2) * v1["cost"]
    assert row["orders"] == n + n // 2
    assert (row["revenueCents"], row["costCents"]) == (revenue, cost)
    assert row["profitCents"] == revenue - cost
    assert row["marginPercent"] == pytest.approx(round(100 * (revenue - cost) / revenue, 2))
    designs = {
        r["key"]: r for r in api.get("/sales", params={"by": "design", "limit": 200}).json()["rows"]
    }
    assert designs[f"{shop.job.job_id}:0"]["units"] == 2 * n

    # A canceled order stops counting (order:updated through the same path).
    seller.status(orders[0]["id"], "canceled")
    await eventually(
        lambda: (r := theme_row(api, shop.theme)) and r["units"] == units - 2,
        30,
        "the canceled order to stop counting",
    )
    # Other status changes move orders on without counting them twice.
    seller.status(orders[1]["id"], "in-production")
    seller.status(orders[2]["id"], "fulfilled")

    await statuses(
        monitor,
        {
            orders[0]["id"]: "canceled",
            orders[1]["id"]: "in-production",
            orders[2]["id"]: "fulfilled",
        },
    )
    assert (theme_row(api, shop.theme) or {})["units"] == units - 2
    series = api.get("/sales/series", params={"by": "theme", "hours": 1, "top": 10}).json()
    assert shop.theme in series["keys"]
    drawn = [p for p in series["points"] if p["key"] == shop.theme]
    assert sum(p["units"] for p in drawn) == units - 2
    stats = api.get("/stats").json()["sales"]
    assert stats["units"] >= units - 2 + 3


async def test_a_signed_order_that_does_not_validate_is_dead_lettered_with_its_reason(
    pipeline_topics: str, api: httpx.Client, monitor: Monitor
) -> None:
    order_id = uuid.uuid4().hex[:24]
    call = {
        "id": uuid.uuid4().hex,
        "type": "order:created",
        "created_at": "2026-12-06 10:00:00+00:00",
        "resource": {
            "id": order_id,
            "type": "order",
            "data": {
                "shop_id": SHOP_ID,
                "status": "pending",
                "line_items": [{"product_id": "p", "quantity": "lots"}],
            },
        },
    }
    body = json.dumps(call).encode()
    resp = api.post(
        "/webhooks/printify", content=body, headers={"X-Pfy-Signature": sign(SECRET, body)}
    )
    assert resp.status_code == 200, resp.text

    def dead() -> dict[str, str] | None:
        for m in read_all(pipeline_topics, monitor.stage.dlq):
            pairs = m.headers() or []
            assert isinstance(pairs, list)  # a consumed message's headers: (name, value) pairs
            h = {k: v.decode() for k, v in pairs if isinstance(v, bytes)}
            if order_id in (m.key() or b"").decode():
                return h
        return None

    headers = await eventually(dead, 60, "the bad order on the monitor's DLQ")
    assert headers["pod.error.class"] == "InvalidEventError"
    assert "line_items.0.quantity" in headers["pod.error.message"]
    async with monitor.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (order_id,))
        assert await cur.fetchone() == (0,)
