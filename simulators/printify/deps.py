"""The simulator's state as the routes get it: one :class:`PrintifySim` built by
``create_app`` and handed to each handler through a typed dependency."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from simulators.printify.errors import NotFound
from simulators.printify.orders import OrderBook
from simulators.printify.settings import PrintifySettings
from simulators.printify.state import (
    Account,
    Accounts,
    Behaviour,
    Channels,
    Limits,
    Product,
    Shop,
    shops_for,
)
from simulators.printify.validation import bearer
from simulators.printify.webhooks import WebhookSender


@dataclass
class PrintifySim:
    """Everything the simulator holds, and what ``/_sim/reset`` returns it to."""

    accounts: Accounts
    limits: Limits
    channels: Channels
    behaviour: Behaviour
    webhooks: WebhookSender
    shops: list[Shop]
    tokens: list[str]
    channel_defaults: Channels
    behaviour_defaults: Behaviour
    # The shops' orders (POST /_sim/orders).
    orders: OrderBook = dataclasses.field(default_factory=OrderBook)

    @classmethod
    def of(cls, settings: PrintifySettings) -> PrintifySim:
        channels = Channels(settings.publish_ms, settings.publish_failure_rate)
        behaviour = Behaviour.of(settings)
        return cls(
            accounts=Accounts(settings.max_products, settings.max_products * 2),
            limits=Limits(
                rpm=settings.rpm,
                rate_window_s=settings.rate_window_s,
                publish_limit=settings.publish_limit,
                publish_window_s=settings.publish_window_s,
                catalog_rpm=settings.catalog_rpm,
            ),
            channels=dataclasses.replace(channels),
            behaviour=dataclasses.replace(behaviour),
            webhooks=WebhookSender(
                delay_s=settings.webhook_delay_ms / 1000,
                attempts=settings.webhook_attempts,
                retry_s=settings.webhook_retry_s,
            ),
            shops=shops_for(settings.channel_list()),
            tokens=settings.token_list(),
            channel_defaults=channels,
            behaviour_defaults=behaviour,
        )

    def shop(self, shop_id: str) -> Shop | None:
        return next((s for s in self.shops if str(s.id) == shop_id), None)

    def reset(self) -> None:
        self.accounts.reset()
        self.orders.reset()
        self.limits.rebuild()
        # The channels' and behaviour's settings are a test's: back to the environment's.
        self.channels = dataclasses.replace(self.channel_defaults)
        self.behaviour = dataclasses.replace(self.behaviour_defaults)


async def get_sim(request: Request) -> PrintifySim:
    sim: PrintifySim = request.app.state.sim
    return sim


Sim = Annotated[PrintifySim, Depends(get_sim)]


async def get_account(request: Request, sim: Sim) -> Account:
    # The auth middleware lets no /v1 request through without a token.
    return sim.accounts.account(bearer(request) or "")


Acct = Annotated[Account, Depends(get_account)]


def shop_of(sim: PrintifySim, shop_id: str) -> Shop:
    shop = sim.shop(shop_id)
    if shop is None:
        raise NotFound("Shop")
    return shop


def product_of(sim: PrintifySim, acct: Account, shop_id: str, product_id: str) -> Product:
    """The account's product in the shop, with the channels' publications due by now settled."""
    shop_of(sim, shop_id)
    acct.settle_channels(time.time())
    product = acct.products.get(product_id)
    if product is None or str(product.shop_id) != shop_id:
        raise NotFound("Product")
    return product
