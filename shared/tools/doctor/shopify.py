"""``pod doctor``'s Shopify checks: run when ``shopify`` is among PUBLISH_CHANNELS, with the
settings its publisher reads (``SHOPIFY_*``).

- ``shopify.settings``: one credential, configured whole (an admin token, or an app's pair and
  the CREDENTIALS_KEY its tokens are sealed with in the database);
- ``shopify.credentials``: the Dev Dashboard app's client credentials give a token (the grant
  asked once; nothing is stored), or the admin token is accepted;
- ``shopify.api_version``: SHOPIFY_API_VERSION is one Shopify still supports (an unsupported one
  is answered with another version: Shopify falls forward to its oldest supported);
- ``shopify.scopes``: the app's granted access scopes cover what each GraphQL document the
  engine sends needs (:data:`shared.adapters.vendors.shopify_contract.OPERATION_SCOPES`, derived
  from Shopify's published schema, not written by hand);
- ``shopify.publication``: the sales channel products are published to exists
  (SHOPIFY_PUBLICATION_ID, else the store's Online Store).

Every call is a read, but for the grant itself (which makes a token Shopify expires a day later).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from shared.adapters.credentials import AccessToken, GrantRevoked, StaticToken, TokenSet
from shared.adapters.vendors.shopify import (
    INSTALLATION,
    ONLINE_STORE,
    PUBLICATION,
    PUBLICATIONS,
    ClientCredentialsGrant,
    ShopifyClient,
    ShopifySettings,
    online_store,
)
from shared.adapters.vendors.shopify.models import (
    InstallationData,
    PublicationData,
    PublicationsData,
)
from shared.adapters.vendors.shopify_contract import API_VERSION, OPERATION_SCOPES
from shared.platform.errors import ConfigError, PodError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check, unless_selling_on

PART = "shopify"
_UNISSUED = TokenSet("", None, datetime(1970, 1, 1, tzinfo=UTC))
APP_SCOPES_FIX = (
    "a Dev Dashboard app: Dev Dashboard -> the app -> Versions, add the scopes, release the "
    "version (the store approves it); a legacy custom app: the store admin -> Settings -> Apps "
    "and sales channels -> Develop apps -> the app -> Configuration -> Admin API access scopes"
)


def has_access(granted: Iterable[str], any_of: Iterable[str]) -> bool:
    """Whether ``granted`` holds one of ``any_of``; a write_ scope also grants the read_ one
    of its resource (Shopify's access scopes page)."""
    held = set(granted)
    held |= {"read_" + s.removeprefix("write_") for s in held if s.startswith("write_")}
    return any(s in held for s in any_of)


def missing_scopes(granted: Iterable[str]) -> dict[str, list[str]]:
    """Each scope requirement the grant does not meet (its scopes, "a or b") -> the operations
    that need it."""
    held = list(granted)
    missing: dict[str, list[str]] = {}
    for operation, needs in sorted(OPERATION_SCOPES.items()):
        for any_of in needs:
            if not has_access(held, any_of):
                missing.setdefault(" or ".join(any_of), []).append(operation)
    return missing


def _skipped(names: Iterable[str], why: str) -> list[Check]:
    return [Check.skipped(f"{PART}.{n}", why) for n in names]


async def checks() -> list[Check]:
    if (not_selling := unless_selling_on(PART)) is not None:
        return not_selling
    try:
        settings = load_settings(ShopifySettings)
        app = settings.uses_client_credentials()
        if app:
            settings.box()  # the publisher keeps the app's tokens in PostgreSQL, sealed
    except ConfigError as exc:
        fix = (
            "set CREDENTIALS_KEY, the same in every process of the deployment"
            if exc.message.startswith("CREDENTIALS_KEY")
            else "set the SHOPIFY_* settings of the store (README, Configuration)"
        )
        return [Check.failed(f"{PART}.settings", exc.message, fix)]
    token, found = await _credential(settings, app)
    if token is None:
        return [found, *_skipped(("api_version", "scopes", "publication"), "no credential")]
    client = ShopifyClient(
        shop_domain=settings.shopify_shop_domain,
        token=token,
        api_version=settings.shopify_api_version,
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
    )
    try:
        return await _with_client(client, settings, app, found)
    finally:
        await client.aclose()


async def _credential(settings: ShopifySettings, app: bool) -> tuple[AccessToken | None, Check]:
    """The token to check with, and the credentials check when already decided (the grant's)."""
    if not app:
        assert settings.shopify_access_token is not None
        token = StaticToken(settings.shopify_access_token.get_secret_value())
        return token, Check.passed(f"{PART}.credentials", "pending")
    assert settings.shopify_client_id and settings.shopify_client_secret
    grant = ClientCredentialsGrant(
        shop_domain=settings.shopify_shop_domain,
        client_id=settings.shopify_client_id,
        client_secret=settings.shopify_client_secret.get_secret_value(),
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
    )
    try:
        tokens = await grant(_UNISSUED)
    except GrantRevoked as exc:
        return None, Check.failed(
            f"{PART}.credentials",
            f"{settings.shopify_shop_domain} refused the app's client credentials "
            f"({exc.code or exc.status})",
            "copy SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET from the app's Settings page in "
            f"the Dev Dashboard, and install the app on {settings.shopify_shop_domain}",
        )
    except PodError as exc:
        return None, _unreachable(settings, exc)
    finally:
        await grant.aclose()
    return StaticToken(tokens.access_token), Check.passed(
        f"{PART}.credentials",
        f"the app {settings.shopify_client_id}'s client credentials give a token "
        f"(scopes: {', '.join(grant.granted_scopes) or 'none'})",
    )


def _unreachable(settings: ShopifySettings, exc: PodError) -> Check:
    where = settings.shopify_api_url or f"https://{settings.shopify_shop_domain}"
    return Check.failed(
        f"{PART}.credentials",
        f"could not ask {where}: {exc.describe()[:200]}",
        "check SHOPIFY_SHOP_DOMAIN (the store's .myshopify.com domain), SHOPIFY_API_URL and "
        "the network",
    )


async def _with_client(
    client: ShopifyClient, settings: ShopifySettings, app: bool, credentials: Check
) -> list[Check]:
    shop = settings.shopify_shop_domain
    later = ("api_version", "scopes", "publication")
    try:
        data = await client.query(InstallationData, "PodInstallation", INSTALLATION, {})
    except PodError as exc:
        if exc.status == 404:
            return [
                credentials if app else _skipped(("credentials",), "not checked")[0],
                Check.failed(
                    f"{PART}.api_version",
                    f"{shop} does not serve Admin API version {settings.shopify_api_version} (404)",
                    f"set SHOPIFY_API_VERSION to {API_VERSION}, or unset it",
                ),
                *_skipped(("scopes", "publication"), "the API version is not served"),
            ]
        if exc.status == 401:
            return [
                Check.failed(
                    f"{PART}.credentials",
                    f"{shop} refused the {'app token' if app else 'admin token'} (401)",
                    "set SHOPIFY_ACCESS_TOKEN to the custom app's Admin API access token "
                    "(shpat_..., the store admin -> Develop apps -> the app -> API credentials), "
                    "or use a Dev Dashboard app: SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET",
                ),
                *_skipped(later, "the credentials were refused"),
            ]
        return [_unreachable(settings, exc), *_skipped(later, "Shopify could not be asked")]
    found = [
        credentials
        if app
        else Check.passed(f"{PART}.credentials", f"{shop} accepts the admin token"),
        _version(client, settings, data),
        _scopes(data),
    ]
    return [*found, await _publication(client, settings)]


def _version(client: ShopifyClient, settings: ShopifySettings, data: InstallationData) -> Check:
    asked = settings.shopify_api_version
    supported = [str(v.handle) for v in data.public_api_versions or [] if v.supported]
    served = client.served_version or asked
    if served != asked or (supported and asked not in supported and asked != "unstable"):
        return Check.failed(
            f"{PART}.api_version",
            f"Shopify no longer supports Admin API version {asked}: it answers with {served} "
            f"(supported: {', '.join(supported) or 'unknown'})",
            f"set SHOPIFY_API_VERSION to {API_VERSION} (the version the engine is checked "
            "against), or unset it",
        )
    note = "" if asked == API_VERSION else f"; the engine is checked against {API_VERSION}"
    return Check.passed(
        f"{PART}.api_version",
        f"Admin API version {asked} is supported ({', '.join(supported)}){note}",
    )


def _scopes(data: InstallationData) -> Check:
    scopes = data.installation.access_scopes if data.installation is not None else None
    granted = [str(s.handle) for s in scopes or []]
    missing = missing_scopes(granted)
    if missing:
        lacking = "; ".join(f"{scope} (for {', '.join(ops)})" for scope, ops in missing.items())
        return Check.failed(
            f"{PART}.scopes",
            f"the app lacks {lacking}; granted: {', '.join(granted) or 'none'}",
            f"grant the app {', '.join(missing)}: {APP_SCOPES_FIX}",
        )
    return Check.passed(
        f"{PART}.scopes",
        f"granted {', '.join(sorted(granted))}: enough for every call the engine makes",
    )


async def _publication(client: ShopifyClient, settings: ShopifySettings) -> Check:
    name = f"{PART}.publication"
    try:
        listed = await client.query(PublicationsData, "PodPublications", PUBLICATIONS, {})
        wanted = settings.shopify_publication_id
        if wanted is None:
            online = online_store(listed)
            if online is not None:
                return Check.passed(name, f"products are published to {ONLINE_STORE} ({online})")
            return Check.failed(
                name,
                f"{settings.shopify_shop_domain} has no {ONLINE_STORE} publication (it has: "
                f"{_titles(listed)})",
                f"add the {ONLINE_STORE} sales channel in the store admin (Settings -> Apps and "
                "sales channels), or set SHOPIFY_PUBLICATION_ID to the publication to publish "
                "to",
            )
        found = await client.query(PublicationData, "PodPublication", PUBLICATION, {"id": wanted})
    except PodError as exc:
        return Check.failed(
            name,
            f"the publications could not be read: {exc.describe()[:200]}",
            "see shopify.scopes (the app needs read_publications)",
        )
    publication = found.publication
    if publication is None:
        return Check.failed(
            name,
            f"SHOPIFY_PUBLICATION_ID={wanted} is not a publication of "
            f"{settings.shopify_shop_domain} (it has: {_titles(listed)})",
            "set SHOPIFY_PUBLICATION_ID to one of those ids, or unset it to publish to the "
            f"{ONLINE_STORE}",
        )
    title = publication.title or "untitled"
    return Check.passed(name, f"products are published to {title} ({wanted})")


def _titles(data: PublicationsData) -> str:
    shown = [f"{n.title or '?'} ({n.id})" for n in data.listed()]
    return ", ".join(shown) or "none"
