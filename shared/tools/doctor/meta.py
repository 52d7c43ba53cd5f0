"""``pod doctor``'s Meta checks: run when ``meta`` is among PUBLISH_CHANNELS, with the settings
its publisher reads (``META_*``).

- ``meta.settings``: the settings load (token, app secret, catalog id);
- ``meta.token``: Meta takes the system user's token with its appsecret_proof (``GET /me``);
- ``meta.catalog``: the catalog is readable with it (``GET /{catalog_id}``);
- ``meta.business``: the catalog belongs to META_BUSINESS_ID (skipped without one).

Every call is a read; none carries a credential into a check's text.
"""

from __future__ import annotations

from shared.adapters.vendors.meta import MetaSettings, meta_client
from shared.platform.errors import ConfigError, PodError, RateLimited
from shared.platform.settings import load_settings
from shared.tools.doctor import Check, unless_selling_on

PART = "meta"
REISSUE_FIX = (
    "generate a new token for the system user in Meta Business Settings (System users > "
    "Generate new token, with catalog_management, for the app of META_APP_SECRET) and set "
    "META_ACCESS_TOKEN; the engine never renews it"
)


def _failed(name: str, exc: PodError, settings: MetaSettings) -> Check:
    if exc.code == "190":
        return Check.failed(f"{PART}.{name}", exc.message[:400], REISSUE_FIX)
    if isinstance(exc, ConfigError):
        fix = "set META_APP_SECRET to the app's secret (App Dashboard > Settings > Basic)"
        return Check.failed(f"{PART}.{name}", exc.message[:400], fix)
    if isinstance(exc, RateLimited):
        return Check.failed(
            f"{PART}.{name}",
            exc.message[:400],
            f"wait about {exc.retry_after or 60:.0f} s: Meta throttles the business's calls",
        )
    if name == "catalog" and exc.code == "100":
        return Check.failed(
            f"{PART}.catalog",
            exc.message[:400],
            "check META_CATALOG_ID (Commerce Manager > Catalog > Settings) and that the system "
            "user was given the catalog as an asset",
        )
    return Check.failed(
        f"{PART}.{name}",
        f"could not ask Meta at {settings.meta_graph_url}: {exc.describe()[:300]}",
        "check META_GRAPH_URL (unset: Meta's own) and the network",
    )


async def checks() -> list[Check]:
    if (not_selling := unless_selling_on(PART)) is not None:
        return not_selling
    try:
        settings = load_settings(MetaSettings)
    except ConfigError as exc:
        return [
            Check.failed(
                f"{PART}.settings",
                exc.message,
                "set META_ACCESS_TOKEN, META_APP_SECRET and META_CATALOG_ID (README, Sales "
                "channels: Meta)",
            )
        ]
    found = [Check.passed(f"{PART}.settings", f"catalog {settings.meta_catalog_id}")]
    client = meta_client(settings)
    try:
        try:
            me = await client.me()
        except PodError as exc:
            return [
                *found,
                _failed("token", exc, settings),
                Check.skipped(f"{PART}.catalog", "no token"),
                Check.skipped(f"{PART}.business", "no token"),
            ]
        found.append(Check.passed(f"{PART}.token", f"Meta accepts the token of {me.name or me.id}"))
        try:
            catalog = await client.catalog(settings.meta_catalog_id)
        except PodError as exc:
            return [
                *found,
                _failed("catalog", exc, settings),
                Check.skipped(f"{PART}.business", "no catalog"),
            ]
    finally:
        await client.aclose()
    found.append(Check.passed(f"{PART}.catalog", f"catalog {catalog.id} ({catalog.name})"))
    owner = None if catalog.business is None else catalog.business.id
    wanted = settings.meta_business_id
    if wanted is None:
        found.append(Check.skipped(f"{PART}.business", f"META_BUSINESS_ID unset (owner {owner})"))
    elif owner == wanted:
        found.append(Check.passed(f"{PART}.business", f"the catalog belongs to {wanted}"))
    else:
        found.append(
            Check.failed(
                f"{PART}.business",
                f"catalog {catalog.id} belongs to business {owner}, not META_BUSINESS_ID {wanted}",
                "set META_BUSINESS_ID to the business owning the catalog, or META_CATALOG_ID to "
                "a catalog of that business",
            )
        )
    return found
