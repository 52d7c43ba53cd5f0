"""Settings of the publisher stage."""

from __future__ import annotations

from shared.runner import RunnerSettings
from shared.settings import DatabaseSettings
from shared.vendors.printify import PrintifyAccountSettings


class PublisherSettings(RunnerSettings, DatabaseSettings, PrintifyAccountSettings):
    """The Printify account and its limits (PRINTIFY_API_KEY, ...), and the database of the
    ledger and the shared budgets (DATABASE_URL)."""

    # For a custom-integration shop we are the sales channel: confirm the publication
    # ourselves with `publishing_succeeded`, under this storefront's base URL.
    storefront_base_url: str = "https://shop.example.com/products"
