"""A Printify account's settings (``PRINTIFY_*``) and the client they make."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr

from shared.adapters.vendors.printify.client import PrintifyClient
from shared.adapters.vendors.printify.search import VENDOR
from shared.domain.budget import RateBudget, SharedRateBudget, account_key
from shared.platform.settings import PodSettings


class PrintifyAccountSettings(PodSettings):
    """One Printify account and its documented limits (``PRINTIFY_*``); every stage that calls
    the account reads the same settings and so shares the same budgets."""

    printify_api_key: SecretStr
    printify_api_url: str = "https://api.printify.com"
    printify_timeout_s: float = Field(default=30.0, gt=0)
    printify_requests_per_minute: int = Field(
        default=600, ge=1, description="Requests per PRINTIFY_RATE_WINDOW_S, for the account"
    )
    printify_rate_window_s: float = Field(default=60.0, gt=0)
    printify_publishes_per_window: int = Field(default=200, ge=1)
    printify_publish_window_s: float = Field(default=1800.0, gt=0)
    printify_retry_after_max_s: float = Field(
        default=120.0, gt=0, description="Longest Retry-After honoured; longer ones are capped"
    )


def printify_client(
    settings: PrintifyAccountSettings, pool: AsyncConnectionPool | None
) -> PrintifyClient:
    """The account's client; with a database pool its budgets are the deployment-wide ones
    in PostgreSQL (named after a hash of the API key), else in-process ones."""
    key = settings.printify_api_key.get_secret_value()
    requests: RateBudget | None = None
    publishes: RateBudget | None = None
    if pool is not None:
        account = account_key(VENDOR, key)
        # A grant whose holder died keeps counting this long: longer than any request lasts.
        hold = 3 * settings.printify_timeout_s + 10
        requests = SharedRateBudget(
            pool,
            f"{account}:requests",
            limit=settings.printify_requests_per_minute,
            window_s=settings.printify_rate_window_s,
            hold_s=hold,
            purpose="Printify requests",
        )
        publishes = SharedRateBudget(
            pool,
            f"{account}:publish",
            limit=settings.printify_publishes_per_window,
            window_s=settings.printify_publish_window_s,
            hold_s=hold,
            purpose="Printify publishes",
        )
    return PrintifyClient(
        api_key=key,
        base_url=settings.printify_api_url,
        timeout_s=settings.printify_timeout_s,
        requests_per_minute=settings.printify_requests_per_minute,
        rate_window_s=settings.printify_rate_window_s,
        publishes_per_window=settings.printify_publishes_per_window,
        publish_window_s=settings.printify_publish_window_s,
        max_retry_wait_s=settings.printify_retry_after_max_s,
        requests_budget=requests,
        publish_budget=publishes,
    )
