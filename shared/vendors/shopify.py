"""Shopify as a sales channel of its own: the Admin GraphQL API, ``productSet`` (synchronous).

:class:`ShopifyChannel` lists the product Printify made (:mod:`shared.vendors.listing`): one
``productSet`` sends its options, variants (SKU, price) and images (``files`` by
``originalSource``), upserting by ``identifier.handle`` so that a redelivery updates the product
it made before instead of making a second one; the Printify product id is also kept in a
``pod.printify_product_id`` metafield. ``publishablePublish`` then puts it on the Online Store.

Every GraphQL document the client sends is in :data:`DOCUMENTS`; the tests validate each one
against the schema Shopify publishes for the pinned API version
(:mod:`simulators.contracts.shopify`), and the simulator serves that schema, so a document
Shopify would refuse is refused in the tests too. The version, and the access scopes each
document needs, come from :mod:`shared.vendors.shopify_contract` (generated from that extract).

Credentials: a legacy custom app's admin token (``SHOPIFY_ACCESS_TOKEN``, ``shpat_``, never
expires), or a Dev Dashboard app's client id and secret (``SHOPIFY_CLIENT_ID``,
``SHOPIFY_CLIENT_SECRET``), exchanged by :class:`ClientCredentialsGrant` for tokens that live
24 hours, renewed before they end (:class:`shared.credentials.ManagedToken`). A 401 renews the
token once and sends the call again; a grant Shopify refuses (wrong secret, app uninstalled)
marks the account revoked and the work waits (:class:`shared.credentials.GrantRevoked`).

Throttling follows Shopify's leaky bucket (``extensions.cost.throttleStatus``): the client keeps
what the last answer said was available, restores it at ``restoreRate`` per second, and waits
before a call whose cost (as last requested for that operation) is not available yet, instead
of spending a call on ``THROTTLED``. A THROTTLED answer (another process used the bucket) is
waited out and sent again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import Field, SecretStr, field_validator

from shared.credentials import (
    AccessToken,
    CredentialSettings,
    ManagedToken,
    StaticToken,
    TokenSet,
    TokenStore,
    expires_in,
    token_store,
)
from shared.errors import (
    ConfigError,
    PermanentError,
    PodError,
    RateLimited,
    RetryableError,
    VendorTimeout,
    classify_http_status,
    parse_retry_after,
)
from shared.handback import permission
from shared.http import async_client
from shared.oauth import Redactor, TokenEndpoint
from shared.settings import empty_is_unset
from shared.vendors.channels import (
    PENDING,
    ChannelSpec,
    Listing,
    ListingState,
    ProductRef,
    handle_for,
)
from shared.vendors.listing import ListingDraft, draft_from_printify
from shared.vendors.printify import PrintifyClient
from shared.vendors.shopify_contract import API_VERSION
from shared.vendors.shopify_models import (
    Envelope,
    M,
    ProductData,
    ProductSetData,
    ProductSetResult,
    PublicationsData,
    PublishData,
    PublishResult,
    ShopifyProduct,
    ThrottleStatus,
    parse,
)
from shared.waits import for_permission

logger = logging.getLogger(__name__)

VENDOR = "shopify"
MARKER_NAMESPACE, MARKER_KEY = "pod", "printify_product_id"
MAX_THROTTLED = 5
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_S = 0.25
# The publication a product goes to unless SHOPIFY_PUBLICATION_ID names another: the title of
# its catalog (Publication.name is deprecated for Catalog.title).
ONLINE_STORE = "Online Store"
TOKEN_PATH = "/admin/oauth/access_token"  # noqa: S105  # a URL path
# Shopify's API versions: a quarter's first month (or the development version).
API_VERSION_PATTERN = r"^(\d{4}-(01|04|07|10)|unstable)$"
# The client credentials grant's refusals that only the seller can undo (another secret, the
# app installed again): Shopify's libraries read ``invalid_client`` as "the credentials are
# invalid or the app was uninstalled".
_PRODUCT_FIELDS = """
  id handle status onlineStoreUrl
  variants(first: 100) { nodes { id sku price } }
"""

PRODUCT_SET = f"""
mutation PodProductSet($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {{
  productSet(input: $input, identifier: $identifier, synchronous: true) {{
    product {{ {_PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

PRODUCT_BY_HANDLE = f"""
query PodProduct($handle: String!) {{
  productByIdentifier(identifier: {{handle: $handle}}) {{ {_PRODUCT_FIELDS} }}
}}"""

PUBLICATIONS = """
query PodPublications { publications(first: 50) { nodes { id catalog { title } } } }
"""

PUBLICATION = """
query PodPublication($id: ID!) { publication(id: $id) { id catalog { title } } }
"""

PUBLISH = """
mutation PodPublish($id: ID!, $input: [PublicationInput!]!) {
  publishablePublish(id: $id, input: $input) {
    publishable { ... on Product { id onlineStoreUrl } }
    userErrors { field message }
  }
}
"""

# pod doctor's: who the token is, what it may do, which versions the store serves.
INSTALLATION = """
query PodInstallation {
  shop { name myshopifyDomain }
  currentAppInstallation { accessScopes { handle } }
  publicApiVersions { handle supported }
}
"""

# Every document the client sends, by operation name (each document's own).
DOCUMENTS: dict[str, str] = {
    "PodProductSet": PRODUCT_SET,
    "PodProduct": PRODUCT_BY_HANDLE,
    "PodPublications": PUBLICATIONS,
    "PodPublication": PUBLICATION,
    "PodPublish": PUBLISH,
    "PodInstallation": INSTALLATION,
}


class ShopifySettings(CredentialSettings):
    """One Shopify store (``SHOPIFY_*``); ``CREDENTIALS_KEY`` when a Dev Dashboard app's tokens
    are kept in the database."""

    shopify_shop_domain: str = Field(description="e.g. my-shop.myshopify.com")
    shopify_access_token: SecretStr | None = Field(
        default=None, description="A legacy custom app's admin API token (shpat_...)"
    )
    shopify_client_id: str | None = Field(
        default=None, description="A Dev Dashboard app's client id (with its client secret)"
    )
    shopify_client_secret: SecretStr | None = Field(
        default=None, description="A Dev Dashboard app's client secret (shpss_...)"
    )
    shopify_api_version: str = Field(default=API_VERSION, pattern=API_VERSION_PATTERN)
    # The API's base URL; unset = https://<shop domain>. (The simulator in tests and make up.)
    shopify_api_url: str | None = None
    shopify_timeout_s: float = Field(default=30.0, gt=0)
    # A client-credentials token (24 h) is renewed this long before it ends.
    shopify_token_margin_s: float = Field(default=300.0, ge=0)
    # Where products are published; unset = the store's "Online Store" publication.
    shopify_publication_id: str | None = None
    shopify_vendor: str = "POD Engine"

    @field_validator(
        "shopify_access_token",
        "shopify_client_id",
        "shopify_client_secret",
        "shopify_api_url",
        "shopify_publication_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)  # compose's `SHOPIFY_CLIENT_ID=`: not configured

    def uses_client_credentials(self) -> bool:
        """True for a Dev Dashboard app, False for an admin token; ConfigError naming the
        settings when neither or both are configured, or half of the app's pair."""
        app = {
            "SHOPIFY_CLIENT_ID": self.shopify_client_id,
            "SHOPIFY_CLIENT_SECRET": self.shopify_client_secret,
        }
        given = [name for name, value in app.items() if value is not None]
        if self.shopify_access_token is not None and given:
            raise ConfigError(
                f"SHOPIFY_ACCESS_TOKEN and {' and '.join(given)} are both set: set either "
                "SHOPIFY_ACCESS_TOKEN (a legacy custom app's admin token, shpat_...) or "
                "SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET (a Dev Dashboard app), not both"
            )
        if self.shopify_access_token is not None:
            return False
        if not given:
            raise ConfigError(
                "no Shopify credential: set SHOPIFY_ACCESS_TOKEN (a legacy custom app's admin "
                "token, shpat_...) or SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET (a Dev "
                "Dashboard app: its Settings page)"
            )
        missing = [name for name, value in app.items() if value is None]
        if missing:
            raise ConfigError(
                f"{missing[0]} is not set: a Dev Dashboard app needs both SHOPIFY_CLIENT_ID "
                "and SHOPIFY_CLIENT_SECRET (its Settings page)"
            )
        return True

    def account(self) -> str:
        """The name the app's tokens are kept under (store and app, no secret)."""
        return f"{VENDOR}:{self.shopify_shop_domain}:{self.shopify_client_id}"


@dataclass
class Throttle:
    """What Shopify last said about the shop's bucket, restored over time."""

    available: float = 0.0
    maximum: float = 0.0
    restore_rate: float = 0.0
    at: float = 0.0

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` points are available (0 when unknown or available)."""
        if self.restore_rate <= 0:
            return 0.0
        now_available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        return max(0.0, (cost - now_available) / self.restore_rate)

    def update(self, status: ThrottleStatus, now: float) -> None:
        self.available = status.currently_available
        self.maximum = status.maximum_available
        self.restore_rate = status.restore_rate
        self.at = now


class ClientCredentialsGrant:
    """Shopify's client credentials grant for a Dev Dashboard app installed on the store:
    ``POST https://{shop}/admin/oauth/access_token`` with ``grant_type=client_credentials``,
    ``client_id`` and ``client_secret`` (form-encoded); the answer is ``access_token``,
    ``scope`` and ``expires_in`` (86399). No refresh token: the same request makes the next
    token. A refusal of the credentials (400 ``invalid_client``: wrong secret, app uninstalled;
    Shopify also answers 401/403) is :class:`GrantRevoked`; the secret never leaves this object
    in any text (:mod:`shared.oauth`)."""

    def __init__(
        self,
        *,
        shop_domain: str,
        client_id: str,
        client_secret: str,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        self.client_id = client_id
        self._secret = client_secret
        self._endpoint = TokenEndpoint(
            (base_url or f"https://{shop_domain}").rstrip("/") + TOKEN_PATH,
            vendor=VENDOR,
            what="Shopify's token endpoint",
            revoked_hint="check SHOPIFY_CLIENT_ID / SHOPIFY_CLIENT_SECRET and that the app is "
            "installed on the store",
            redact=Redactor(client_secret),
            revoked_statuses=(401, 403),
            timeout_s=timeout_s,
            transport=transport,
        )
        # What the last grant gave (for the doctor and the logs; not secret).
        self.granted_scopes: list[str] = []

    async def __call__(self, current: TokenSet) -> TokenSet:
        answer = await self._endpoint.request(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret,
            }
        )
        self.granted_scopes = [s for s in answer.scope.split(",") if s]
        logger.info(
            "shopify token granted client_id=%s expires_in_s=%d scopes=%s",
            self.client_id,
            answer.expires_in,
            answer.scope,
        )
        return TokenSet(answer.access_token, None, expires_in(answer.expires_in))

    async def aclose(self) -> None:
        await self._endpoint.aclose()


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


class ShopifyClient:
    """The Admin GraphQL API of one store."""

    def __init__(
        self,
        *,
        shop_domain: str,
        token: AccessToken,
        api_version: str = API_VERSION,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        grant: ClientCredentialsGrant | None = None,
    ) -> None:
        if not re.match(API_VERSION_PATTERN, api_version):
            raise ValueError(f"{api_version!r} is not a Shopify API version (YYYY-MM)")
        self._token = token
        self._grant = grant  # closed with the client
        self.shop_domain = shop_domain
        self.api_version = api_version
        self._path = f"/admin/api/{api_version}/graphql.json"
        self._http = async_client(
            base_url=(base_url or f"https://{shop_domain}").rstrip("/"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )
        self._redact = Redactor()
        self.throttle = Throttle()
        self._costs: dict[str, float] = {}  # operation -> requested cost last time
        self._lock = asyncio.Lock()
        # The version Shopify last said it served (X-Shopify-API-Version): another one than
        # asked means the asked one is no longer supported and Shopify fell forward.
        self.served_version: str | None = None

    async def query(
        self, model: type[M], operation: str, query: str, variables: Mapping[str, object]
    ) -> M:
        """:meth:`graphql`, its ``data`` read as ``model``."""
        return parse(model, await self.graphql(operation, query, variables), operation)

    async def graphql(self, operation: str, query: str, variables: Mapping[str, object]) -> Any:
        """Run one operation; its ``data`` (JSON: :meth:`query` reads it as a model). Waits for
        the bucket first; raises PodError on an HTTP error or GraphQL ``errors`` (THROTTLED is
        waited out, up to MAX_THROTTLED times)."""
        for attempt in range(MAX_THROTTLED + 1):
            # Waiting for the lock or the bucket is waiting for permission to send: a stopping
            # stage hands back a message that has sent nothing yet (shared.handback).
            async with permission():
                await self._lock.acquire()
            try:
                wait = self.throttle.wait_for(self._costs.get(operation, 0), time.monotonic())
                if wait > 0:
                    logger.info(
                        "shopify waits for its bucket operation=%s wait_s=%.2f", operation, wait
                    )
                    bucket = (
                        f"Shopify's query-cost bucket ({self.throttle.maximum:g} points, "
                        f"{self.throttle.restore_rate:g} per second)"
                    )
                    async with for_permission("vendor_limit", bucket, time.time() + wait):
                        await asyncio.sleep(wait)
                answer = await self._post_again_on_5xx(operation, query, variables)
            finally:
                self._lock.release()
            body = parse(Envelope, answer, operation)
            cost = body.extensions.cost if body.extensions is not None else None
            if cost is not None and cost.throttle_status is not None:
                self.throttle.update(cost.throttle_status, time.monotonic())
            if cost is not None and cost.requested_query_cost is not None:
                self._costs[operation] = cost.requested_query_cost
            errors = body.errors
            if not errors:
                return body.data or {}
            codes = {e.extensions.code if e.extensions else None for e in errors}
            if "THROTTLED" in codes and attempt < MAX_THROTTLED:
                logger.warning("shopify throttled operation=%s attempt=%d", operation, attempt + 1)
                continue  # the bucket state just read makes the next wait long enough
            message = "; ".join(str(e.message) for e in errors)[:500]
            cls: type[PodError] = RateLimited if "THROTTLED" in codes else PermanentError
            retry = self.throttle.wait_for(self._costs.get(operation, 0), time.monotonic())
            raise cls(
                self._redact(f"{operation}: {message}"),
                vendor=VENDOR,
                code=",".join(sorted(c for c in codes if c)) or None,
                retry_after=retry if cls is RateLimited else None,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_again_on_5xx(
        self, operation: str, query: str, variables: Mapping[str, object]
    ) -> Any:
        """:meth:`_post`, sent again after a server error or a dropped connection (up to
        TRANSIENT_RETRIES times): every operation here is a read or an upsert by handle, so a
        second send never makes a second product."""
        for transient in range(TRANSIENT_RETRIES + 1):
            try:
                return await self._post(operation, query, variables)
            except RetryableError as exc:
                if isinstance(exc, RateLimited) or transient == TRANSIENT_RETRIES:
                    raise
                logger.info(
                    "shopify call failed, sending again operation=%s error=%s",
                    operation,
                    exc.describe()[:200],
                )
                await asyncio.sleep(TRANSIENT_BACKOFF_S * 2**transient)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, operation: str, query: str, variables: Mapping[str, object]) -> Any:
        """One call; a 401 renews the token (when it can be renewed) and sends it once more."""
        token = await self._token.get()
        resp = await self._send(operation, query, variables, token)
        if resp.status_code == 401:
            self._token.rejected(token)
            renewed = await self._token.get()
            if renewed != token:
                logger.info("shopify refused the token, sent again with a renewed one")
                resp = await self._send(operation, query, variables, renewed)
        self._note_version(resp)
        if resp.status_code >= 400:
            found = _json_or_none(resp)
            detail = found.get("errors") if isinstance(found, dict) else None
            raise classify_http_status(resp.status_code)(
                self._redact(f"{operation}: {detail or resp.reason_phrase}"),
                vendor=VENDOR,
                status=resp.status_code,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        try:
            return resp.json()
        except ValueError:
            raise RetryableError(f"{operation}: answer is not JSON", vendor=VENDOR) from None

    async def _send(
        self, operation: str, query: str, variables: Mapping[str, object], token: str
    ) -> httpx.Response:
        self._redact.remember(token)
        try:
            return await self._http.post(
                self._path,
                json={"query": query, "variables": variables, "operationName": operation},
                headers={"X-Shopify-Access-Token": token},
            )
        except httpx.TimeoutException as exc:
            raise VendorTimeout(
                f"{operation}: timed out ({type(exc).__name__})", vendor=VENDOR
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                self._redact(f"{operation}: {type(exc).__name__}: {exc}"), vendor=VENDOR
            ) from None

    def _note_version(self, resp: httpx.Response) -> None:
        served = resp.headers.get("x-shopify-api-version")
        if not served or served == self.served_version:
            return
        self.served_version = served
        if served != self.api_version:
            logger.warning(
                "shopify no longer serves the API version asked for, it answered with "
                "another requested=%s served=%s: set SHOPIFY_API_VERSION to a supported one",
                self.api_version,
                served,
            )

    async def aclose(self) -> None:
        """Close the HTTP connection pools."""
        await self._http.aclose()
        if self._grant is not None:
            await self._grant.aclose()


def product_set_input(draft: ListingDraft, handle: str, vendor: str) -> dict[str, Any]:
    """``ProductSetInput`` of a draft: options and variants together, images by URL."""
    return {
        "title": draft.title[:255],
        "descriptionHtml": "".join(
            f"<p>{_escape(p)}</p>" for p in draft.description.split("\n") if p.strip()
        ),
        "handle": handle,
        "vendor": vendor,
        "tags": list(draft.tags),
        "status": "ACTIVE",
        "productOptions": [
            {"name": name, "position": i + 1, "values": [{"name": v} for v in values]}
            for i, (name, values) in enumerate(draft.options)
        ],
        "variants": [
            {
                "optionValues": [{"optionName": n, "name": v} for n, v in variant.options],
                "price": f"{variant.price_cents / 100:.2f}",
                "inventoryItem": {"sku": variant.sku, "tracked": False},
            }
            for variant in draft.variants
        ],
        "files": [
            {"originalSource": url, "contentType": "IMAGE", "alt": draft.title[:500]}
            for url in draft.images
        ],
        "metafields": [
            {
                "namespace": MARKER_NAMESPACE,
                "key": MARKER_KEY,
                "value": draft.marker,
                "type": "single_line_text_field",
            }
        ],
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ShopifyChannel:
    """Lists Printify's products on a Shopify store and publishes them to the Online Store."""

    name = "shopify"

    def __init__(
        self,
        shopify: ShopifyClient,
        source: PrintifyClient,
        *,
        vendor: str = "POD Engine",
        publication_id: str | None = None,
    ) -> None:
        self.shopify = shopify
        self.source = source
        self.vendor = vendor
        self._publication_id = publication_id

    async def aclose(self) -> None:
        """Close the store's client (the Printify client belongs to the caller)."""
        await self.shopify.aclose()

    def handle(self, product: ProductRef) -> str:
        """The product's handle on the store: its title's words and the Printify id (unique)."""
        return handle_for(product.title, product.product_id)

    async def publish(self, product: ProductRef) -> ListingState:
        found = await self.source.get_product(product.shop_id, product.product_id)
        try:
            draft = draft_from_printify(found)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None
        handle = self.handle(product)
        data = await self.shopify.query(
            ProductSetData,
            "PodProductSet",
            PRODUCT_SET,
            {
                "input": product_set_input(draft, handle, self.vendor),
                "identifier": {"handle": handle},
            },
        )
        result = data.product_set or ProductSetResult()
        errors = result.user_errors
        if errors or result.product is None:
            reason = "; ".join(e.describe() for e in errors)
            raise PermanentError(
                f"productSet refused: {reason or 'no product'}",
                vendor=VENDOR,
                code=",".join(str(e.code) for e in errors) or None,
            )
        return await self._published(result.product)

    async def _published(self, made: ShopifyProduct) -> ListingState:
        """Put the product on the Online Store (when it is not there yet): the listing."""
        url = made.online_store_url
        if not url:
            data = await self.shopify.query(
                PublishData,
                "PodPublish",
                PUBLISH,
                {"id": made.id, "input": [{"publicationId": await self._publication()}]},
            )
            result = data.publishable_publish or PublishResult()
            if result.user_errors:
                shown = [e.model_dump(exclude_none=True) for e in result.user_errors]
                raise PermanentError(f"publishablePublish refused: {shown}", vendor=VENDOR)
            url = result.publishable.online_store_url if result.publishable else None
        return ListingState(Listing(made.id, url or None))

    async def _publication(self) -> str:
        if self._publication_id is None:
            data = await self.shopify.query(PublicationsData, "PodPublications", PUBLICATIONS, {})
            found = online_store(data)
            if found is None:
                raise PermanentError(
                    f"the store has no {ONLINE_STORE} publication; set SHOPIFY_PUBLICATION_ID",
                    vendor=VENDOR,
                )
            self._publication_id = found
        return self._publication_id

    async def _find(self, product: ProductRef) -> ShopifyProduct | None:
        data = await self.shopify.query(
            ProductData, "PodProduct", PRODUCT_BY_HANDLE, {"handle": self.handle(product)}
        )
        return data.product

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        found = await self._find(product)
        if found is None:
            return None
        return await self._published(found)

    async def check(self, product: ProductRef) -> ListingState:
        found = await self._find(product)
        if found is None:
            return ListingState(refused="the product is no longer on the Shopify store")
        if found.status == "ARCHIVED":
            return ListingState(refused="the product was archived on the Shopify store")
        if found.online_store_url:
            return ListingState(Listing(found.id, found.online_store_url))
        return PENDING


def online_store(data: PublicationsData) -> str | None:
    """The id of the "Online Store" publication in a PodPublications answer, if any."""
    for node in data.listed():
        if node.title == ONLINE_STORE:
            return node.id
    return None


# A token that was never issued: renewed on first use (client credentials have no seed token).
_UNISSUED = TokenSet("", None, datetime(1970, 1, 1, tzinfo=UTC))


def shopify_token(
    settings: ShopifySettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    revoked_poll_s: float = 30.0,
) -> tuple[AccessToken, ClientCredentialsGrant | None]:
    """The store's credential: its admin token as is, or the Dev Dashboard app's tokens from
    the client credentials grant, kept in PostgreSQL when there is a ``pool`` (every publisher
    of the app shares one token; CREDENTIALS_KEY seals it) and in memory otherwise. With the
    grant, which the caller closes."""
    if not settings.uses_client_credentials():
        assert settings.shopify_access_token is not None  # uses_client_credentials said so
        return StaticToken(settings.shopify_access_token.get_secret_value()), None
    assert settings.shopify_client_id and settings.shopify_client_secret
    store = store or token_store(
        settings,
        pool,
        why="SHOPIFY_CLIENT_ID/SHOPIFY_CLIENT_SECRET: the app's tokens are shared by every "
        "publisher through the database, sealed with it",
    )
    grant = ClientCredentialsGrant(
        shop_domain=settings.shopify_shop_domain,
        client_id=settings.shopify_client_id,
        client_secret=settings.shopify_client_secret.get_secret_value(),
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
        transport=transport,
    )
    token = ManagedToken(
        store,
        settings.account(),
        grant,
        vendor=VENDOR,
        seed=_UNISSUED,
        margin_s=settings.shopify_token_margin_s,
        revoked_poll_s=revoked_poll_s,
        # Nothing rotates: while refused, ask again (the app reinstalled, the secret fixed).
        regrant_revoked=True,
    )
    return token, grant


def shopify_client(
    settings: ShopifySettings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    pool: AsyncConnectionPool | None = None,
    store: TokenStore | None = None,
) -> ShopifyClient:
    """The store's client from its settings (ConfigError naming a missing or conflicting
    credential); ``pool``: where a Dev Dashboard app's tokens are shared."""
    token, grant = shopify_token(settings, pool=pool, transport=transport, store=store)
    return ShopifyClient(
        shop_domain=settings.shopify_shop_domain,
        token=token,
        api_version=settings.shopify_api_version,
        base_url=settings.shopify_api_url,
        timeout_s=settings.shopify_timeout_s,
        transport=transport,
        grant=grant,
    )


def shopify_channel(
    settings: ShopifySettings,
    source: PrintifyClient,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ShopifyChannel:
    """The Shopify channel of the store in ``settings``, listing products read from ``source``;
    ``pool`` keeps a Dev Dashboard app's tokens for every publisher."""
    return ShopifyChannel(
        shopify_client(settings, transport, pool=pool),
        source,
        vendor=settings.shopify_vendor,
        publication_id=settings.shopify_publication_id,
    )


# The channel as the engine registers it (shared.vendors.direct), with the simulator's shop
# (its DEFAULT_SHOP; any admin token is accepted unless SIM_SHOPIFY_TOKENS lists the valid ones).
SPEC = ChannelSpec(
    name="shopify",
    settings=ShopifySettings,
    build=shopify_channel,
    takes_pool=True,
    simulator="shopify",
    simulator_port=8191,
    credential="SHOPIFY_ACCESS_TOKEN",
    # A Dev Dashboard app instead of an admin token: an account of one's own too.
    other_credentials=("SHOPIFY_CLIENT_SECRET",),
    url_setting="SHOPIFY_API_URL",
    simulator_env={
        "SHOPIFY_SHOP_DOMAIN": "pod-engine-sim.myshopify.com",
        "SHOPIFY_ACCESS_TOKEN": "sim-shopify-token",
    },
)
