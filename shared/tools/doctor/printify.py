"""``pod doctor``: the Printify account, shop and catalog, checked read-only before the first job.

Skipped when ``PRINTIFY_API_KEY`` is unset (``make up`` then runs the simulator). Otherwise:
the token is accepted (``GET /v1/shops.json``), the shop is chosen the way the printify stage
chooses it (:func:`shared.adapters.vendors.printify.choose_shop`), the shop is of the sales channel
the deployment expects, and for each product type of ``PRODUCT_CATALOG`` its blueprint exists, its
print provider offers it, the variants the type sells exist there, and the positions it prints
are print areas of those variants (with the print size and the art that ``PRINT_DPI`` asks for).

Nothing is created. The catalog has its own limit (100 requests a minute per account), so the
catalog is read once per blueprint and provider, and the last check says how many calls it took.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.adapters.vendors.channels import CUSTOM_INTEGRATION
from shared.adapters.vendors.printify import (
    Blueprint,
    CatalogVariant,
    PrintifyAccountSettings,
    PrintifyClient,
    PrintProvider,
    Shop,
    choose_shop,
)
from shared.contract.events import ProductType
from shared.contract.topics import DEFAULT_CHANNEL, ChannelSettings
from shared.domain.catalog import CatalogEntry, CatalogSettings, print_area
from shared.domain.printsize import PLACEHOLDER_DPI
from shared.platform.errors import ConfigError, PodError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check

PART = "printify"
KEY_FIX = (
    "create a personal access token in Printify (My Profile > Connections) with the scopes "
    "shops.read, catalog.read, products.read, products.write, uploads.write, webhooks.read "
    "and webhooks.write, and set it as PRINTIFY_API_KEY"
)


class PrintifyDoctorSettings(PrintifyAccountSettings, CatalogSettings, ChannelSettings):
    """What the printify stage and the publisher read of the account, shop and catalog."""

    printify_api_key: SecretStr | None = None  # type: ignore[assignment]
    printify_shop_id: str | None = None
    printify_sales_channel: str = Field(
        default=CUSTOM_INTEGRATION,
        description="The sales channel the shop should be connected to (Printify's name)",
    )
    print_dpi: float = Field(default=300, gt=0, le=1200)


async def checks() -> list[Check]:
    """The Printify checks for the deployment the environment describes."""
    settings = load_settings(PrintifyDoctorSettings)
    if settings.printify_api_key is None or not settings.printify_api_key.get_secret_value():
        return [
            Check.skipped(
                f"{PART}.credentials",
                "PRINTIFY_API_KEY is not set: make up runs the Printify simulator instead",
            )
        ]
    async with PrintifyClient(
        api_key=settings.printify_api_key.get_secret_value(),
        base_url=settings.printify_api_url,
        timeout_s=settings.printify_timeout_s,
    ) as client:
        return await _account_checks(client, settings)


async def _account_checks(client: PrintifyClient, settings: PrintifyDoctorSettings) -> list[Check]:
    try:
        shops = await client.list_shops()
    except PodError as exc:
        return [_credentials_failed(exc, settings.printify_api_url)]
    found = [
        Check.passed(f"{PART}.credentials", f"the token opens an account of {len(shops)} shop(s)")
    ]

    class Listed:
        async def list_shops(self) -> list[Shop]:
            return shops

    try:
        shop = await choose_shop(Listed(), settings.printify_shop_id)
    except ConfigError as exc:
        fix = (
            "set PRINTIFY_SHOP_ID to the id of the shop products go to"
            if shops
            else "connect a shop in Printify (My Stores > Add new store > API)"
        )
        return [*found, Check.failed(f"{PART}.shop", str(exc), fix)]
    found.append(
        Check.passed(f"{PART}.shop", f"shop {shop.id} ({shop.title}) receives the products")
    )
    found.append(_sales_channel(shop, settings))
    catalog = _CatalogReader(client)
    for product_type, entry in settings.catalog().items():
        found += await _catalog_checks(catalog, product_type, entry, settings.print_dpi)
    found.append(
        Check.passed(
            f"{PART}.catalog_calls",
            f"{catalog.calls} catalog call(s) made (Printify allows 100 a minute per account)",
        )
    )
    return found


def _credentials_failed(exc: PodError, url: str) -> Check:
    name = f"{PART}.credentials"
    if exc.status == 401:
        return Check.failed(
            name, "Printify answered 401: PRINTIFY_API_KEY is not a valid token", KEY_FIX
        )
    if exc.status == 403:
        return Check.failed(
            name, "Printify answered 403: PRINTIFY_API_KEY lacks the shops.read scope", KEY_FIX
        )
    if exc.retryable:
        return Check.failed(
            name,
            f"Printify could not be reached at PRINTIFY_API_URL {url}: {exc.describe()}",
            "check PRINTIFY_API_URL (https://api.printify.com) and the network to it",
        )
    return Check.failed(name, f"listing the shops failed: {exc.describe()}", KEY_FIX)


def _sales_channel(shop: Shop, settings: PrintifyDoctorSettings) -> Check:
    name = f"{PART}.sales_channel"
    channel = str(shop.sales_channel)
    expected = settings.printify_sales_channel
    direct = [c for c in settings.publish_channels if c != DEFAULT_CHANNEL]
    if channel == expected:
        if channel == CUSTOM_INTEGRATION:
            how = (
                "the engine is the storefront: it answers Printify's publish handshake "
                "(publishing_succeeded)"
            )
        else:
            how = f"Printify publishes each product to {channel} itself and records the listing"
        return Check.passed(name, f"shop {shop.id} is connected to {channel}: {how}")
    if channel == CUSTOM_INTEGRATION:
        consequence = (
            "the engine answers the publish handshake itself instead of Printify publishing to "
            f"{expected}"
        )
    else:
        consequence = (
            f"Printify publishes its products to {channel} itself (PUBLISH_CHANNELS=printify "
            "waits for that listing), and the storefront handshake does not apply"
        )
        if direct:
            consequence += (
                f"; the engine also lists them on {', '.join(direct)}, so a buyer could find "
                "them twice"
            )
    return Check.failed(
        name,
        f"shop {shop.id} is connected to {channel}, not {expected}: {consequence}",
        f"set PRINTIFY_SHOP_ID to a shop connected to {expected}, or PRINTIFY_SALES_CHANNEL="
        f"{channel} if Printify is meant to publish to {channel}",
    )


class _CatalogReader:
    """The catalog calls, each made once and counted (the catalog's own limit is low)."""

    def __init__(self, client: PrintifyClient) -> None:
        self.client = client
        self.calls = 0
        self._blueprints: dict[int, Blueprint] | None = None
        self._providers: dict[int, list[PrintProvider] | PodError] = {}
        self._variants: dict[tuple[int, int], list[CatalogVariant] | PodError] = {}

    async def blueprints(self) -> dict[int, Blueprint]:
        if self._blueprints is None:
            self.calls += 1
            self._blueprints = {b.id: b for b in await self.client.list_blueprints()}
        return self._blueprints

    async def providers(self, blueprint_id: int) -> list[PrintProvider] | PodError:
        if blueprint_id not in self._providers:
            self.calls += 1
            try:
                self._providers[blueprint_id] = await self.client.list_print_providers(blueprint_id)
            except PodError as exc:
                self._providers[blueprint_id] = exc
        return self._providers[blueprint_id]

    async def variants(
        self, blueprint_id: int, provider_id: int
    ) -> list[CatalogVariant] | PodError:
        key = (blueprint_id, provider_id)
        if key not in self._variants:
            self.calls += 1
            try:
                self._variants[key] = await self.client.list_variants(*key)
            except PodError as exc:
                self._variants[key] = exc
        return self._variants[key]


async def _catalog_checks(
    catalog: _CatalogReader, product_type: ProductType, entry: CatalogEntry, print_dpi: float
) -> list[Check]:
    t = product_type.value
    where = f"PRODUCT_CATALOG {t}"
    blueprints = await catalog.blueprints()
    blueprint = blueprints.get(entry.blueprint_id)
    if blueprint is None:
        return [
            Check.failed(
                f"{PART}.{t}.blueprint",
                f"{where}: blueprint {entry.blueprint_id} is not in Printify's catalog",
                f"set the {t} entry's blueprint_id to one of GET /v1/catalog/blueprints.json "
                f"(e.g. 6 for the Unisex Heavy Cotton Tee)",
            )
        ]
    found = [
        Check.passed(f"{PART}.{t}.blueprint", f"blueprint {entry.blueprint_id}: {blueprint.title}")
    ]
    providers = await catalog.providers(entry.blueprint_id)
    if isinstance(providers, PodError):
        return [*found, _read_failed(f"{PART}.{t}.provider", providers)]
    offered = {p.id: p.title for p in providers}
    if entry.print_provider_id not in offered:
        listing = ", ".join(f"{i} ({title})" for i, title in offered.items()) or "none"
        return [
            *found,
            Check.failed(
                f"{PART}.{t}.provider",
                f"{where}: print provider {entry.print_provider_id} does not offer blueprint "
                f"{entry.blueprint_id}; its providers: {listing}",
                f"set the {t} entry's print_provider_id to one of them",
            ),
        ]
    found.append(
        Check.passed(
            f"{PART}.{t}.provider",
            f"print provider {entry.print_provider_id} ({offered[entry.print_provider_id]}) "
            f"offers it",
        )
    )
    listed = await catalog.variants(entry.blueprint_id, entry.print_provider_id)
    if isinstance(listed, PodError):
        return [*found, _read_failed(f"{PART}.{t}.variants", listed)]
    chosen = entry.select(listed)
    if not chosen:
        colours = f" of the colours {', '.join(entry.colours)}" if entry.colours else ""
        return [
            *found,
            Check.failed(
                f"{PART}.{t}.variants",
                f"{where}: provider {entry.print_provider_id} has no available variant{colours} "
                f"of blueprint {entry.blueprint_id} ({len(listed)} listed)",
                f"change the {t} entry's colours, or choose another print provider",
            ),
        ]
    found.append(
        Check.passed(
            f"{PART}.{t}.variants", f"{len(chosen)} of the provider's {len(listed)} variants sell"
        )
    )
    found.append(_print_areas(t, where, entry, chosen, print_dpi))
    return found


def _print_areas(
    t: str, where: str, entry: CatalogEntry, chosen: list[CatalogVariant], print_dpi: float
) -> Check:
    name = f"{PART}.{t}.print_areas"
    have: dict[str, int] = {}
    for variant in chosen:
        for ph in variant.placeholders:
            if ph.position:
                have[ph.position] = have.get(ph.position, 0) + 1
    missing = [p for p in entry.positions if p not in have]
    partial = [p for p in entry.positions if 0 < have.get(p, 0) < len(chosen)]
    if missing:
        return Check.failed(
            name,
            f"{where}: position(s) {', '.join(missing)} are not print areas of these variants; "
            f"they have {', '.join(sorted(have)) or 'none'}",
            f"set the {t} entry's positions to some of: {', '.join(sorted(have))}",
        )
    sizes = []
    for position in entry.positions:
        area = print_area(chosen, (position,))
        if area is None:  # listed without a size
            return Check.failed(
                name,
                f"{where}: the catalog gives no size for the {position} print area",
                "choose another print provider",
            )
        inches = f"{area.width / PLACEHOLDER_DPI:.1f} x {area.height / PLACEHOLDER_DPI:.1f} in"
        art = (
            f"{round(area.width * print_dpi / PLACEHOLDER_DPI)} x "
            f"{round(area.height * print_dpi / PLACEHOLDER_DPI)} px"
        )
        sizes.append(
            f"{position} {area.width} x {area.height} px ({inches}): "
            f"art {art} at PRINT_DPI {print_dpi:g}"
        )
    detail = "; ".join(sizes)
    if partial:
        detail += f" (only some variants have {', '.join(partial)}: the others print without it)"
    return Check.passed(name, detail)


def _read_failed(name: str, exc: PodError) -> Check:
    return Check.failed(
        name,
        f"reading Printify's catalog failed: {exc.describe()}",
        "run pod doctor again; if it persists, check Printify's status page",
    )
