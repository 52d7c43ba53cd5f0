"""Etsy as a direct sales channel: a client for Etsy's Open API v3 and the channel built on it.

:class:`EtsyClient` makes the listing calls a channel needs (createDraftListing,
getListingsByShop, getListing, updateListing, updateListingInventory, uploadListingImage), with
Etsy's two credentials on every call: ``x-api-key: <keystring>:<shared secret>`` (the app; Etsy
refuses the bare keystring since February 2026, so the client does not start without the
secret) and ``Authorization: Bearer <token>`` (the shop owner's OAuth token, scopes
:data:`ENGINE_SCOPES`), and the reads ``pod doctor`` makes. Failures become the POD Engine error
classes (:mod:`shared.errors`) with ``vendor="etsy"`` and never carry a credential.

The shop owner's access token lives an hour. With ``ETSY_REFRESH_TOKEN`` it is renewed before
it ends, and after a 401 (the call is then sent once more), by :class:`EtsyRefreshGrant`
(Etsy's refresh_token grant, which replaces the refresh token at every renewal) through a
:class:`~shared.credentials.ManagedToken`; with a database the tokens live in
``vendor_credentials`` (:class:`~shared.credentials.PgTokenStore`, sealed with
``CREDENTIALS_KEY``), so every publisher shares the newest refresh token, a renewal happens
under a row lock (no refresh token is spent twice), and a restart keeps it. A grant Etsy
refuses (the seller removed the app) makes the work wait and raises ``credential_revoked``.
``ETSY_ACCESS_TOKEN`` alone still works, until its hour is over (said at start).

Throttling follows Etsy's documented limits, per app: requests per second and per rolling day,
reported on every answer (``x-limit-per-second``, ``x-remaining-this-second``,
``x-limit-per-day``, ``x-remaining-today``). The client keeps to the per-second limit Etsy
reports (sends are spaced under one lock, waiting, never spinning) and, when Etsy says this
second's budget is spent (other processes of the app count too), waits a full second before the
next call. When Etsy says the day's budget is spent, calls raise :class:`RateLimited` without
being sent, for ``ETSY_DAY_EXHAUSTED_WAIT_S`` (Etsy frees the daily budget bucket by bucket
over a rolling 24 hours, so no exact reset time exists). A 429 blocks every caller for its
``Retry-After``; a short one is waited out and the call sent again, a long one (the day's
limit) is raised. The per-second limit belongs to the app, not to a process: with a database, every
publisher of the app (any number of instances, on any machine) also takes each call from one
budget in PostgreSQL (:class:`~shared.budget.SharedRateBudget`, ``ETSY_REQUESTS_PER_SECOND``,
lowered to the ``x-limit-per-second`` Etsy reports when that is less), so two instances never
send twice the app's limit and learn of it from 429s.

:class:`EtsyChannel` lists a Printify product on Etsy (:class:`~shared.vendors.channels.
SalesChannel`): a draft listing, its inventory (one product per enabled variant, with its SKU,
option values and price), its mockups as images, then activation. The marker that finds a
listing again is a tag: ``pod-`` and the last 15 characters of the Printify product id. It is
written with the draft itself, in the one call that creates the listing, so even a listing whose
creation was the last thing a crashed attempt did is found (a SKU marker would not be: the SKUs
come one call later, with the inventory); it is searched in every state, so a redelivery never
makes a second listing, and a half-made one is finished (inventory, images, activation).

Etsy cannot search a shop by tag or SKU, so looking for a marker reads the shop's listings,
state by state: a product never listed costs five getListingsByShop calls, plus one per further
hundred listings in a state. A listing the channel made or saw is remembered (in process), so a
redelivery to the same process costs one getListing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
import unicodedata
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from shared.budget import RateBudget, SharedRateBudget, account_key, aclose_budgets
from shared.catalog import DEFAULT_CATALOG, CatalogEntry
from shared.credentials import (
    AccessToken,
    CredentialSettings,
    GrantRevoked,
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
from shared.events import ProductType
from shared.handback import permission
from shared.http import async_client
from shared.oauth import Redactor, TokenEndpoint
from shared.settings import empty_is_unset
from shared.vendors.channels import PENDING, ChannelSpec, Listing, ListingState, ProductRef
from shared.vendors.listing import DraftVariant, ListingDraft, draft_from_printify
from shared.vendors.printify import PrintifyClient, Product
from shared.waits import for_permission

logger = logging.getLogger(__name__)

VENDOR = "etsy"
MAX_429_RETRIES = 3
# Server errors and dropped connections on calls that are safe to send again (not POST).
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_S = 0.25


class _TryAgain(Exception):
    """A 429 was waited out: send the call again."""


# Etsy's rules for listing text (Open API v3 reference, createDraftListing).
MAX_TITLE = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
MAX_SKU = 32
ONCE_IN_TITLE = {"%": " percent", ":": " -", "&": " and ", "+": " plus "}
# A seller's own variations: Etsy's two custom property ids.
CUSTOM_PROPERTY_IDS = (513, 514)
MARKER_PREFIX = "pod-"
MARKER_CHARS = 15
# Every state a listing can be in, the half-made (draft) first: where a marker is looked for.
SCAN_STATES = ("draft", "active", "inactive", "expired", "sold_out")
PAGE_LIMIT = 100
LISTING_URL = "https://www.etsy.com/listing/{}"

# The OAuth scopes the engine's Etsy calls need, and which calls need each: each operation's
# `security` in Etsy's OAS 3.0.0 (simulators/contracts/etsy/openapi-subset.json; a test holds
# this to it). The seller grants them when authorising the app.
ENGINE_SCOPES: dict[str, tuple[str, ...]] = {
    "listings_r": ("getListingsByShop",),
    "listings_w": (
        "createDraftListing",
        "updateListing",
        "updateListingInventory",
        "uploadListingImage",
    ),
    "shops_r": ("getShopReadinessStateDefinitions",),
}

# Seller taxonomy nodes by product type (GET /v3/application/seller-taxonomy/nodes). 482 is
# Etsy's "T-shirts" node; the hoodie and mug ids are best guesses, not confirmed against Etsy's
# tree: check them with getSellerTaxonomyNodes and override with ETSY_TAXONOMY_IDS.
DEFAULT_TAXONOMY_IDS: dict[str, int] = {"tshirt": 482, "hoodie": 2202, "mug": 1062}

WhoMade = Literal["i_did", "someone_else", "collective"]
WhenMade = Literal[
    "made_to_order", "2020_2026", "2010_2019", "2007_2009", "before_2007", "2000_2006",
    "1990s", "1980s", "1970s", "1960s", "1950s", "1940s", "1930s", "1920s", "1910s", "1900s",
    "1800s", "1700s", "before_1700",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Etsy's text rules


def _title_char_ok(ch: str) -> bool:
    # Letters, numbers, punctuation, math symbols, space separators, ™ © ® (Etsy's title regex).
    cat = unicodedata.category(ch)
    return cat[0] in "LP" or cat in ("Nd", "Sm", "Zs") or ch in "™©®"


def _tag_char_ok(ch: str) -> bool:
    # Letters, numbers, space separators, - ' ™ © ® (Etsy's tag regex).
    cat = unicodedata.category(ch)
    return cat[0] == "L" or cat in ("Nd", "Zs") or ch in "-'™©®"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if text[limit] != " " and space >= limit // 2:
        cut = cut[:space]  # not inside a word
    return cut.rstrip(" -,;/|")


def etsy_title(text: str) -> str:
    """A title Etsy accepts: only allowed characters (others become spaces), each of
    ``% : & +`` once (later ones spelled out), at most 140 characters, cut at a word."""
    seen: set[str] = set()
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in ONCE_IN_TITLE:
            out.append(ONCE_IN_TITLE[ch] if ch in seen else ch)
            seen.add(ch)
        else:
            out.append(ch if _title_char_ok(ch) else " ")
    return _clip(" ".join("".join(out).split()), MAX_TITLE)


def etsy_tag(text: str) -> str:
    """A tag Etsy accepts: allowed characters only, at most 20 of them, cut at a word."""
    cleaned = "".join(ch if _tag_char_ok(ch) else " " for ch in unicodedata.normalize("NFC", text))
    return _clip(" ".join(cleaned.split()), MAX_TAG_CHARS)


def etsy_tags(tags: Iterable[str], limit: int = MAX_TAGS) -> list[str]:
    """At most ``limit`` valid tags, without empty ones or repeats (Etsy ignores case)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        tag = etsy_tag(raw)
        if tag and tag.lower() not in seen:
            seen.add(tag.lower())
            out.append(tag)
        if len(out) >= limit:
            break
    return out


def marker_tag(marker: str) -> str:
    """The tag that names a product on Etsy: ``pod-`` and the marker's last 15 letters or
    digits, lowercase (19 characters, a valid tag)."""
    return MARKER_PREFIX + re.sub(r"[^0-9a-z]", "", marker.lower())[-MARKER_CHARS:]


def _variation_value(text: str) -> str:
    # Etsy refuses parentheses in property values.
    return " ".join(text.replace("(", " ").replace(")", " ").split()) or "-"


# --------------------------------------------------------------------------------------------
# Throttling


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return None if raw is None else int(raw.strip())
    except ValueError:
        return None


class EtsyThrottle:
    """Keeps one client within the app's limits, as Etsy reports them on each answer.

    Sends pass one at a time through an asyncio lock, which sleeps (never spins) while:
    the last ``limit`` sends happened within a second, plus ``margin_s`` (the limit Etsy
    reports; until it has reported one, a single request is in flight); Etsy said this second's
    budget is spent (``x-remaining-this-second: 0``, which counts the app's other clients too)
    less than that ago; or a 429's ``Retry-After`` has not passed. When Etsy says the day's
    budget is spent, :meth:`acquire` raises :class:`RateLimited` for ``day_wait_s``.

    It paces one client (one process); several processes of one app share Etsy's budget and
    see each other only through ``x-remaining-this-second``."""

    def __init__(
        self, *, day_wait_s: float = 3600.0, window_s: float = 1.0, margin_s: float = 0.1
    ) -> None:
        self.day_wait_s = day_wait_s
        # Etsy counts requests when they arrive, we when they leave: sends are spaced a little
        # more than a second apart, so that uneven travel times never bunch them up at Etsy.
        self.window_s = window_s + margin_s
        self.limit: int | None = None  # x-limit-per-second, once Etsy has said it
        self._lock = asyncio.Lock()
        self._answered = asyncio.Event()
        self._sent: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._paused_until = 0.0  # monotonic: a spent second or a 429's Retry-After
        self._pause_reason: str | None = None
        self._day_until = 0.0  # wall clock: the day's budget is spent until then

    def day_blocked_for(self) -> float:
        """Seconds left before calls may be sent again after the day's budget ran out."""
        return max(0.0, self._day_until - time.time())

    def describe(self) -> str:
        """What a call waiting here waits for (``shared.waits``: why a job waits)."""
        if time.monotonic() < self._paused_until and self._pause_reason:
            return self._pause_reason
        if self.limit is None:
            return "Etsy requests (one at a time until Etsy reports the app's limit)"
        return f"Etsy requests ({self.limit} per second)"

    def _free_at(self) -> float:
        """About when (epoch seconds) the next send may leave."""
        now = time.monotonic()
        wait = max(0.0, self._paused_until - now)
        if self.limit is not None and len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.window_s - now)
        return time.time() + wait

    async def acquire(self) -> None:
        """Wait for the right to send one request (raises RateLimited for the day's limit).

        A call that waits says so, and while the stage stops is handed back having sent nothing
        (:func:`shared.waits.for_permission`): behind the sends before it, for a spent second,
        or for a 429's Retry-After."""
        behind = (
            for_permission("vendor_limit", self.describe(), until=self._free_at)
            if self._lock.locked()
            else permission()
        )
        async with behind:
            await self._lock.acquire()
        try:
            while True:
                left = self.day_blocked_for()
                if left > 0:
                    raise RateLimited(
                        f"Etsy's daily request budget is spent (x-remaining-today: 0); no "
                        f"calls for {left:.0f}s",
                        vendor=VENDOR,
                        status=429,
                        retry_after=left,
                    )
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.window_s:
                    self._sent.popleft()
                if self.limit is None and self._in_flight > 0:
                    # Etsy has not told us the app's limit yet: one request at a time.
                    self._answered.clear()
                    async with for_permission("vendor_limit", self.describe()):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._answered.wait(), timeout=self.window_s)
                    continue
                wait = self._paused_until - now
                if self.limit is not None and len(self._sent) >= self.limit:
                    wait = max(wait, self._sent[0] + self.window_s - now)
                if wait <= 0:
                    break
                async with for_permission(
                    "vendor_limit", self.describe(), until=time.time() + wait
                ):
                    await asyncio.sleep(wait)
            self._sent.append(time.monotonic())
            self._in_flight += 1
        finally:
            self._lock.release()

    def observe(self, headers: httpx.Headers) -> None:
        """Take in what an answer says of the budgets (call once per acquired request)."""
        self._in_flight = max(0, self._in_flight - 1)
        limit = _header_int(headers, "x-limit-per-second")
        if limit is not None and limit > 0:
            self.limit = limit
        if _header_int(headers, "x-remaining-this-second") == 0:
            self.pause(
                self.window_s,
                "Etsy requests: this second's budget of the app is spent "
                "(x-remaining-this-second: 0)",
            )
        if _header_int(headers, "x-remaining-today") == 0:
            self.block_day(self.day_wait_s)
        self._answered.set()

    def abandon(self) -> None:
        """The acquired request got no answer (timeout, dropped connection)."""
        self._in_flight = max(0, self._in_flight - 1)
        self._answered.set()

    def pause(self, seconds: float, reason: str | None = None) -> None:
        """No sends for ``seconds`` (a spent second, a 429's Retry-After); ``reason`` is what
        the calls held back wait for."""
        until = time.monotonic() + seconds
        if until >= self._paused_until:
            self._paused_until = until
            self._pause_reason = reason

    def block_day(self, seconds: float) -> None:
        """The day's budget is spent: calls raise RateLimited for ``seconds``."""
        self._day_until = max(self._day_until, time.time() + seconds)


# --------------------------------------------------------------------------------------------
# Etsy's answers the preflight reads (typed: only the fields used, others ignored)


class EtsyMe(BaseModel):
    """getMe: whose token it is and their shop."""

    user_id: int
    shop_id: int | None = None


class EtsyShop(BaseModel):
    """getShop (the fields the preflight shows)."""

    shop_id: int
    shop_name: str = ""
    user_id: int | None = None


class ShippingProfile(BaseModel):
    shipping_profile_id: int
    title: str | None = None


class ProcessingProfile(BaseModel):
    """A readiness state definition (Etsy's processing profile)."""

    readiness_state_id: int
    readiness_state: str
    min_processing_days: int | None = None
    max_processing_days: int | None = None


class ReturnPolicy(BaseModel):
    return_policy_id: int
    accepts_returns: bool | None = None
    accepts_exchanges: bool | None = None
    return_deadline: int | None = None


class TaxonomyNode(BaseModel):
    id: int
    name: str = ""
    children: list[TaxonomyNode] = Field(default_factory=list)

    def walk(self) -> Iterable[TaxonomyNode]:
        yield self
        for child in self.children:
            yield from child.walk()


def _typed(model: type[Any], value: Any, what: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError:
        raise PermanentError(
            f"Etsy's answer to {what} is not what its document describes", vendor=VENDOR
        ) from None


# --------------------------------------------------------------------------------------------
# Client


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)  # Etsy's lists: comma-separated
    return str(value)


def _form(fields: Mapping[str, object]) -> dict[str, str]:
    return {k: _form_value(v) for k, v in fields.items() if v is not None}


def _image_type(data: bytes) -> tuple[str, str]:
    """File extension and MIME type of image bytes, by their signature."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"GIF8"):
        return "gif", "image/gif"
    return "jpg", "image/jpeg"


def api_key_header(api_key: str, shared_secret: str | None) -> str:
    """The ``x-api-key`` Etsy takes: ``keystring:shared_secret`` (required since February
    2026; a bare keystring is refused with 403). ConfigError naming ETSY_SHARED_SECRET when
    there is no secret to send."""
    keystring, sep, secret = api_key.strip().partition(":")
    if not keystring:
        raise ConfigError("ETSY_API_KEY: empty (the app's keystring, from Your Apps on Etsy)")
    if sep and secret:
        return f"{keystring}:{secret}"  # given whole, as Etsy shows it
    if not shared_secret:
        raise ConfigError(
            "ETSY_SHARED_SECRET: required: Etsy refuses every call whose x-api-key is the bare "
            "keystring (403, since February 2026); copy the app's shared secret from "
            "https://www.etsy.com/developers/your-apps (or set ETSY_API_KEY to "
            "keystring:shared_secret)"
        )
    return f"{keystring}:{shared_secret}"


class EtsyClient:
    """One Etsy app acting for one shop owner (an OAuth token)."""

    def __init__(
        self,
        *,
        api_key: str,
        access_token: str | None = None,
        token: AccessToken | None = None,
        shared_secret: str | None = None,
        base_url: str = "https://openapi.etsy.com",
        timeout_s: float = 30.0,
        max_retry_wait_s: float = 5.0,
        day_wait_s: float = 3600.0,
        user_agent: str = "pod-engine",
        budget: RateBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        closing: Sequence[Any] = (),
    ) -> None:
        """``api_key`` is the app's keystring (``keystring:secret`` is accepted as it is);
        ``shared_secret`` its shared secret, sent with it as Etsy requires (ConfigError
        without one). The shop owner's OAuth token: ``token`` (renewed by it, e.g. a
        :class:`~shared.credentials.ManagedToken`), or a fixed ``access_token``. A 401 tells
        ``token`` its token was refused and the call is sent once more with the renewed one.
        A 429 waiting longer than ``max_retry_wait_s`` is raised instead of waited out;
        ``day_wait_s`` is how long calls stop once Etsy reports the day's budget spent.
        ``budget``: the app's per-second budget shared with its other clients (each call takes
        a slot first). ``transport`` replaces the network (tests: the simulator's app in
        process). ``closing``: what to close with the client (the token's grant)."""
        if not api_key or (token is None and not access_token):
            raise ValueError("api_key and an access token are required")
        key = api_key_header(api_key, shared_secret)
        self._token: AccessToken = token if token is not None else StaticToken(access_token or "")
        self._redact = Redactor(key, api_key, shared_secret, access_token)
        self._closing = list(closing)
        self._max_retry_wait_s = max_retry_wait_s
        self.throttle = EtsyThrottle(day_wait_s=day_wait_s)
        self.budget = budget
        self._http = async_client(
            base_url=base_url.rstrip("/"),
            headers={
                "x-api-key": key,
                "User-Agent": user_agent,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )

    # --- plumbing ------------------------------------------------------------------------------

    def _error(self, method: str, path: str, resp: httpx.Response) -> PodError:
        message = resp.reason_phrase or "error"
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error"):
            message = str(body["error"])
            if body.get("error_description"):
                message = f"{message}: {body['error_description']}"
        cls = classify_http_status(resp.status_code)
        return cls(
            self._redact(f"{method} {path}: {message}"),
            vendor=VENDOR,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        data: Mapping[str, str] | None = None,
        json: object | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        repeatable: bool | None = None,
        authorized: bool = True,
    ) -> Any:
        """Send one call within the budgets; wait out short 429s; map failures to PodError.
        ``authorized``: with the shop owner's token (else the app's key alone).

        A ``repeatable`` call (by default every method but POST: one that cannot make a second
        listing or image) is sent again after a server error or a dropped connection, up to
        TRANSIENT_RETRIES times: a publication is a chain of a dozen calls, and one 5xx should
        not start the whole chain over."""
        if repeatable is None:
            repeatable = method != "POST"
        transient = 0
        renewed = False
        for attempt in range(MAX_429_RETRIES + TRANSIENT_RETRIES + 2):
            # Asked outside the budgets: a token being renewed (or a grant waiting for the
            # seller) holds no request slot.
            token = await self._token.get() if authorized else None
            if token is not None:
                self._redact.remember(token)
            try:
                return await self._send(method, path, attempt, params, data, json, files, token)
            except _TryAgain:
                continue
            except PermanentError as exc:
                # Etsy refused the token (expired, revoked): renewed, the call is sent once
                # more (a 401 changed nothing, so even a POST may go again).
                if exc.status != 401 or renewed or token is None:
                    raise
                renewed = True
                self._token.rejected(token)
                if await self._token.get() == token:
                    raise  # a fixed token: nothing to renew it with
                logger.info(
                    "etsy refused the access token, sending again with a renewed one "
                    "method=%s path=%s",
                    method,
                    path,
                )
                continue
            except RetryableError as exc:
                if not repeatable or exc.status == 429 or transient >= TRANSIENT_RETRIES:
                    raise
                transient += 1
                logger.info(
                    "etsy call failed, sending again method=%s path=%s try=%d error=%s",
                    method,
                    path,
                    transient,
                    exc.describe()[:200],
                )
                await asyncio.sleep(TRANSIENT_BACKOFF_S * 2 ** (transient - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        attempt: int,
        params: Mapping[str, str | int] | None,
        data: Mapping[str, str] | None,
        json: object | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        token: str | None,
    ) -> Any:
        """One send with ``token`` (within the app's shared budget, when there is one); raises
        _TryAgain after a 429 it waited out."""
        async with self.budget.slot() if self.budget is not None else contextlib.nullcontext():
            await self.throttle.acquire()
            started = time.monotonic()
            try:
                resp = await self._http.request(
                    method,
                    path,
                    params=params,
                    data=data,
                    json=json,
                    files=files,
                    headers={"Authorization": f"Bearer {token}"} if token else None,
                )
            except httpx.TimeoutException as exc:
                self.throttle.abandon()
                raise VendorTimeout(
                    f"{method} {path}: timed out ({type(exc).__name__})", vendor=VENDOR
                ) from None
            except httpx.TransportError as exc:
                self.throttle.abandon()
                raise RetryableError(
                    self._redact(f"{method} {path}: {type(exc).__name__}: {exc}"), vendor=VENDOR
                ) from None
            self.throttle.observe(resp.headers)
            reported = self.throttle.limit
            if self.budget is not None and reported is not None and reported < self.budget.limit:
                # The app's real limit is lower than configured: the shared budget keeps to it.
                logger.warning(
                    "etsy reports a lower limit than configured limit_per_second=%d configured=%d",
                    reported,
                    self.budget.limit,
                )
                self.budget.limit = reported
            logger.debug(
                "etsy request method=%s path=%s status=%d elapsed_ms=%.0f remaining_second=%s "
                "remaining_today=%s",
                method,
                path,
                resp.status_code,
                (time.monotonic() - started) * 1000,
                resp.headers.get("x-remaining-this-second"),
                resp.headers.get("x-remaining-today"),
            )
            if resp.status_code < 400:
                return resp.json() if resp.content else {}
            error = self._error(method, path, resp)
            if resp.status_code != 429:
                raise error
            wait = error.retry_after if error.retry_after is not None else 1.0 + attempt
            error.retry_after = wait
            if _header_int(resp.headers, "x-remaining-today") == 0 or wait > 60:
                self.throttle.block_day(wait)  # the day's limit: nobody sends until then
                raise error
            # Every caller of this client waits, not only this one.
            self.throttle.pause(wait, f"Etsy's rate limit (429: Retry-After {wait:.0f}s)")
            if self.budget is not None:
                await self.budget.block(wait)  # and every other client of the app
            logger.warning(
                "etsy rate limited method=%s path=%s attempt=%d retry_after_s=%.1f",
                method,
                path,
                attempt + 1,
                wait,
            )
            if wait > self._max_retry_wait_s or attempt >= MAX_429_RETRIES:
                raise error
            raise _TryAgain

    # --- listings ------------------------------------------------------------------------------

    async def create_draft_listing(
        self, shop_id: int, fields: Mapping[str, object]
    ) -> dict[str, Any]:
        """createDraftListing: a draft listing from form fields (lists comma-separated)."""
        created: dict[str, Any] = await self._request(
            "POST", f"/v3/application/shops/{int(shop_id)}/listings", data=_form(fields)
        )
        logger.info(
            "etsy listing created shop_id=%s listing_id=%s", shop_id, created.get("listing_id")
        )
        return created

    async def get_readiness_state_definitions(self, shop_id: int) -> list[dict[str, Any]]:
        """getShopReadinessStateDefinitions: the shop's processing profiles (first 100)."""
        page: dict[str, Any] = await self._request(
            "GET",
            f"/v3/application/shops/{int(shop_id)}/readiness-state-definitions",
            params={"limit": 100},
        )
        return list(page.get("results") or [])

    # --- what the preflight reads ------------------------------------------------------------

    async def ping(self) -> int:
        """ping (the app's key alone): the application id."""
        pong: dict[str, Any] = await self._request(
            "GET", "/v3/application/openapi-ping", authorized=False
        )
        return int(pong.get("application_id") or 0)

    async def get_me(self) -> EtsyMe:
        """getMe: the token's user and their shop."""
        me: EtsyMe = _typed(EtsyMe, await self._request("GET", "/v3/application/users/me"), "getMe")
        return me

    async def get_shop(self, shop_id: int) -> EtsyShop:
        answer = await self._request("GET", f"/v3/application/shops/{int(shop_id)}")
        shop: EtsyShop = _typed(EtsyShop, answer, "getShop")
        return shop

    async def get_shipping_profiles(self, shop_id: int) -> list[ShippingProfile]:
        page = await self._request("GET", f"/v3/application/shops/{int(shop_id)}/shipping-profiles")
        results = page.get("results") if isinstance(page, dict) else None
        return [_typed(ShippingProfile, p, "getShopShippingProfiles") for p in results or []]

    async def get_shipping_profile(self, shop_id: int, profile_id: int) -> ShippingProfile:
        answer = await self._request(
            "GET", f"/v3/application/shops/{int(shop_id)}/shipping-profiles/{int(profile_id)}"
        )
        profile: ShippingProfile = _typed(ShippingProfile, answer, "getShopShippingProfile")
        return profile

    async def get_processing_profiles(self, shop_id: int) -> list[ProcessingProfile]:
        return [
            _typed(ProcessingProfile, p, "getShopReadinessStateDefinitions")
            for p in await self.get_readiness_state_definitions(shop_id)
        ]

    async def get_return_policies(self, shop_id: int) -> list[ReturnPolicy]:
        page = await self._request("GET", f"/v3/application/shops/{int(shop_id)}/policies/return")
        results = page.get("results") if isinstance(page, dict) else None
        return [_typed(ReturnPolicy, p, "getShopReturnPolicies") for p in results or []]

    async def get_seller_taxonomy(self) -> list[TaxonomyNode]:
        """getSellerTaxonomyNodes: the seller taxonomy's trees."""
        page = await self._request("GET", "/v3/application/seller-taxonomy/nodes")
        results = page.get("results") if isinstance(page, dict) else None
        return [_typed(TaxonomyNode, n, "getSellerTaxonomyNodes") for n in results or []]

    async def token_scopes(self) -> list[str] | None:
        """tokenScopes: the scopes of the token this client sends, or None when Etsy's answer
        does not say them in a form known here (its document leaves the answer's shape open)."""
        token = await self._token.get()
        answer = await self._request(
            "POST", "/v3/application/scopes", data={"token": token}, authorized=False
        )
        found = answer.get("scopes") if isinstance(answer, dict) else answer
        if isinstance(found, str):
            found = found.replace(",", " ").split()
        if isinstance(found, list) and all(isinstance(x, str) for x in found):
            return sorted(found)
        return None

    async def get_listings_by_shop(
        self,
        shop_id: int,
        *,
        state: str = "active",
        limit: int = 25,
        offset: int = 0,
        includes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """getListingsByShop: one page (``{"count": <all matching>, "results": [...]}``)."""
        params: dict[str, str | int] = {"state": state, "limit": limit, "offset": offset}
        if includes:
            params["includes"] = ",".join(includes)
        page: dict[str, Any] = await self._request(
            "GET", f"/v3/application/shops/{int(shop_id)}/listings", params=params
        )
        return page

    async def get_listing(self, listing_id: int, *, includes: Sequence[str] = ()) -> dict[str, Any]:
        """getListing (``includes``: e.g. ``Images``, ``Inventory``)."""
        params: dict[str, str | int] = {"includes": ",".join(includes)} if includes else {}
        listing: dict[str, Any] = await self._request(
            "GET", f"/v3/application/listings/{int(listing_id)}", params=params
        )
        return listing

    async def update_listing(
        self, shop_id: int, listing_id: int, fields: Mapping[str, object]
    ) -> dict[str, Any]:
        """updateListing (PATCH, form fields): e.g. ``{"state": "active"}`` publishes."""
        listing: dict[str, Any] = await self._request(
            "PATCH",
            f"/v3/application/shops/{int(shop_id)}/listings/{int(listing_id)}",
            data=_form(fields),
        )
        return listing

    async def update_listing_inventory(
        self, listing_id: int, inventory: Mapping[str, Any]
    ) -> dict[str, Any]:
        """updateListingInventory (PUT, JSON): replaces the listing's products."""
        stored: dict[str, Any] = await self._request(
            "PUT", f"/v3/application/listings/{int(listing_id)}/inventory", json=dict(inventory)
        )
        return stored

    async def upload_listing_image(
        self,
        shop_id: int,
        listing_id: int,
        image: bytes,
        *,
        rank: int,
        file_name: str | None = None,
        overwrite: bool = False,
        alt_text: str | None = None,
    ) -> dict[str, Any]:
        """uploadListingImage (multipart ``image`` file): the image at ``rank`` (1 = first);
        ``overwrite`` replaces the one already there."""
        ext, mime = _image_type(image)
        fields = _form({"rank": rank, "overwrite": overwrite, "alt_text": alt_text})
        uploaded: dict[str, Any] = await self._request(
            "POST",
            f"/v3/application/shops/{int(shop_id)}/listings/{int(listing_id)}/images",
            data=fields,
            files={"image": (file_name or f"image-{rank}.{ext}", image, mime)},
            # Overwriting its rank, a second send replaces the image instead of adding one.
            repeatable=overwrite,
        )
        return uploaded

    async def aclose(self) -> None:
        """Close the HTTP connection pool (and hand back the budget's last grants)."""
        await self._http.aclose()
        for item in self._closing:
            await item.aclose()
        await aclose_budgets(self.budget)

    async def __aenter__(self) -> EtsyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --------------------------------------------------------------------------------------------
# Settings


ETSY_API_URL = "https://openapi.etsy.com"
# Etsy's token endpoint as its authentication page gives it (the OAS's tokenUrl names
# openapi.etsy.com instead; the page's host is the one Etsy's examples and libraries use).
ETSY_TOKEN_URL = "https://api.etsy.com/v3/public/oauth/token"  # noqa: S105  # a URL
TOKEN_PATH = "/v3/public/oauth/token"  # noqa: S105  # a URL path
# A token endpoint's refusals that only the seller can undo: the grant revoked, expired or
# spent (invalid_grant), the app's keystring unknown or not allowed (invalid_client,
# unauthorized_client).
# A seed whose expiry nobody knows is treated as ending at once: renewed before its first use.
_UNKNOWN_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)


class EtsySettings(CredentialSettings):
    """One Etsy shop and the app that lists in it (``ETSY_*``); ``CREDENTIALS_KEY`` seals the
    shop owner's rotating OAuth tokens in the database."""

    etsy_api_url: str = ETSY_API_URL
    etsy_token_url: str | None = Field(
        default=None,
        description="Etsy's OAuth token endpoint; unset: Etsy's own, or <ETSY_API_URL>"
        "/v3/public/oauth/token when ETSY_API_URL points elsewhere (the simulator)",
    )
    etsy_api_key: SecretStr = Field(description="The app's keystring (x-api-key)")
    etsy_shared_secret: SecretStr | None = Field(
        default=None, description="The app's shared secret, sent as x-api-key keystring:secret"
    )
    etsy_refresh_token: SecretStr | None = Field(
        default=None,
        description="The shop owner's OAuth refresh token (from Etsy's OAuth with PKCE): the "
        "seed of tokens the engine renews, rotates and keeps in the database",
    )
    etsy_access_token: SecretStr | None = Field(
        default=None,
        description="The shop owner's OAuth access token; alone (no ETSY_REFRESH_TOKEN) it "
        "stops working an hour after Etsy issued it",
    )
    etsy_token_margin_s: float = Field(
        default=300.0, ge=0, description="An access token (1 hour) is renewed this long before"
    )
    etsy_shop_id: int = Field(ge=1)
    etsy_taxonomy_ids: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_TAXONOMY_IDS),
        description="Seller taxonomy id by product type (JSON); types not given keep defaults",
    )
    etsy_shipping_profile_id: int | None = Field(
        default=None, ge=1, description="Required: Etsy refuses physical listings without it"
    )
    etsy_readiness_state_id: int | None = Field(
        default=None,
        ge=1,
        description="Processing profile of the listings' products (Etsy requires one for a"
        " physical listing); unset, the shop's first made_to_order profile",
    )
    etsy_return_policy_id: int | None = Field(default=None, ge=1)
    etsy_who_made: WhoMade = "i_did"
    etsy_when_made: WhenMade = "made_to_order"
    etsy_quantity: int = Field(default=999, ge=1, le=999, description="Stock of each product")
    etsy_timeout_s: float = Field(default=30.0, gt=0)
    etsy_max_images: int = Field(default=10, ge=1, le=20)
    etsy_retry_after_max_s: float = Field(
        default=5.0, ge=0, description="Longest 429 Retry-After waited out; longer ones raise"
    )
    etsy_requests_per_second: int = Field(
        default=10,
        ge=1,
        description="The app's requests per second (Etsy's x-limit-per-second), shared by"
        " every publisher of the app",
    )
    etsy_day_exhausted_wait_s: float = Field(
        default=3600.0, gt=0, description="Calls stop this long once the day's budget is spent"
    )

    @field_validator(
        "etsy_shipping_profile_id",
        "etsy_readiness_state_id",
        "etsy_return_policy_id",
        "etsy_token_url",
        "etsy_shared_secret",
        "etsy_refresh_token",
        "etsy_access_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)  # compose's `ETSY_READINESS_STATE_ID=`: the shop's own

    def taxonomy_ids(self) -> dict[str, int]:
        """The defaults, overridden per product type by ETSY_TAXONOMY_IDS (JSON)."""
        return {**DEFAULT_TAXONOMY_IDS, **self.etsy_taxonomy_ids}

    def keystring(self) -> str:
        """The app's keystring (ETSY_API_KEY without a ``:secret`` given with it)."""
        return self.etsy_api_key.get_secret_value().split(":", 1)[0].strip()

    def api_key_header(self) -> str:
        """``x-api-key`` as Etsy takes it; ConfigError naming ETSY_SHARED_SECRET without one."""
        secret = self.etsy_shared_secret
        return api_key_header(
            self.etsy_api_key.get_secret_value(),
            None if secret is None else secret.get_secret_value(),
        )

    def token_url(self) -> str:
        """Where tokens are renewed: ETSY_TOKEN_URL, else Etsy's, else (ETSY_API_URL points
        elsewhere: the simulator) the same path on ETSY_API_URL."""
        if self.etsy_token_url:
            return self.etsy_token_url
        api = self.etsy_api_url.rstrip("/")
        return ETSY_TOKEN_URL if api == ETSY_API_URL else api + TOKEN_PATH

    def renews_tokens(self) -> bool:
        """True with a refresh token (the engine renews the access token); False with an
        access token alone (it stops working within the hour). ConfigError with neither."""
        if self.etsy_refresh_token is not None:
            return True
        if self.etsy_access_token is None:
            raise ConfigError(
                "no Etsy credential: set ETSY_REFRESH_TOKEN, the shop owner's OAuth refresh "
                "token from Etsy's OAuth with PKCE (README, Sales channels: Etsy)"
            )
        return False

    def account(self) -> str:
        """The name the shop owner's tokens are kept under: the app (a digest of its
        keystring, never the keystring) and the shop."""
        return f"{account_key(VENDOR, self.keystring())}:{self.etsy_shop_id}"


class EtsyRefreshGrant:
    """Etsy's refresh_token grant (developers.etsy.com, Authentication, "Requesting a Refresh
    OAuth Token"): ``POST https://api.etsy.com/v3/public/oauth/token``, form-encoded
    ``grant_type=refresh_token``, ``client_id`` (the keystring) and ``refresh_token``; the
    answer is ``access_token``, ``token_type``, ``expires_in`` (3600) and a NEW
    ``refresh_token``: the one sent is spent (Etsy's libraries report it stops working at
    once), so the caller must keep the new one before anything else (the
    :class:`~shared.credentials.TokenStore` does, under its lock).

    A refusal of the grant (400 ``invalid_grant``: revoked by the seller, expired after 90
    days, already spent) is :class:`GrantRevoked`; a server error, a timeout or a dropped
    connection is retryable and spends nothing we know of. No token, key or secret ever leaves
    this object in any text (:mod:`shared.oauth`)."""

    def __init__(
        self,
        *,
        keystring: str,
        api_key: str,
        token_url: str = ETSY_TOKEN_URL,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not keystring:
            raise ValueError("keystring is required")
        self.keystring = keystring
        self.token_url = token_url
        self._endpoint = TokenEndpoint(
            token_url,
            vendor=VENDOR,
            what="Etsy's token endpoint",
            revoked_hint="the seller must authorise the app again (Etsy's OAuth with PKCE) and "
            "set the new ETSY_REFRESH_TOKEN",
            redact=Redactor(keystring, api_key),
            # The app's key as every other call sends it (Etsy's 2026 rule is for every
            # request; the token endpoint is documented with client_id alone).
            headers={"x-api-key": api_key},
            timeout_s=timeout_s,
            transport=transport,
        )
        self.granted = 0  # refreshes made by this object (for logs and tests)

    async def __call__(self, current: TokenSet) -> TokenSet:
        refresh = current.refresh_token
        if not refresh:
            raise GrantRevoked(
                "no refresh token to renew the Etsy access token with: set ETSY_REFRESH_TOKEN",
                vendor=VENDOR,
            )
        self._endpoint.redact.remember(current.access_token)
        answer = await self._endpoint.request(
            {"grant_type": "refresh_token", "client_id": self.keystring, "refresh_token": refresh}
        )
        if answer.refresh_token is None:
            raise RetryableError(
                "Etsy's token endpoint: the answer has no refresh_token (the one sent may be "
                "spent)",
                vendor=VENDOR,
            )
        self.granted += 1
        logger.info("etsy access token renewed expires_in_s=%d", answer.expires_in)
        return TokenSet(answer.access_token, answer.refresh_token, expires_in(answer.expires_in))

    async def aclose(self) -> None:
        await self._endpoint.aclose()


def etsy_token(
    settings: EtsySettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    revoked_poll_s: float = 30.0,
) -> tuple[AccessToken, EtsyRefreshGrant | None]:
    """The shop owner's token: renewed through the refresh grant with ETSY_REFRESH_TOKEN, kept
    in PostgreSQL when there is a ``pool`` (every publisher shares the newest refresh token;
    CREDENTIALS_KEY seals it) and in memory otherwise; or ETSY_ACCESS_TOKEN as it is (it
    stops working an hour after Etsy issued it: said at start). With the grant, which the
    caller closes."""
    if not settings.renews_tokens():
        assert settings.etsy_access_token is not None  # renews_tokens said so
        logger.warning(
            "etsy has an access token and no refresh token: Etsy's access tokens live one "
            "hour, after which every Etsy call is refused; set ETSY_REFRESH_TOKEN "
            "shop_id=%s",
            settings.etsy_shop_id,
        )
        return StaticToken(settings.etsy_access_token.get_secret_value()), None
    assert settings.etsy_refresh_token is not None
    key = settings.api_key_header()
    store = store or token_store(
        settings,
        pool,
        why="ETSY_REFRESH_TOKEN: Etsy's refresh token rotates at every renewal, so the newest "
        "is kept in the database for every publisher, sealed with it",
    )
    grant = EtsyRefreshGrant(
        keystring=settings.keystring(),
        api_key=key,
        token_url=settings.token_url(),
        timeout_s=settings.etsy_timeout_s,
        transport=transport,
    )
    access = settings.etsy_access_token
    seed = TokenSet(
        "" if access is None else access.get_secret_value(),
        settings.etsy_refresh_token.get_secret_value(),
        _UNKNOWN_EXPIRY,
    )
    token = ManagedToken(
        store,
        settings.account(),
        grant,
        vendor=VENDOR,
        seed=seed,
        margin_s=settings.etsy_token_margin_s,
        revoked_poll_s=revoked_poll_s,
    )
    return token, grant


def etsy_client(
    settings: EtsySettings,
    *,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: TokenStore | None = None,
    token: AccessToken | None = None,
) -> EtsyClient:
    """The shop's client from its settings (ConfigError naming a missing setting); with a
    database pool, its per-second budget is the app's deployment-wide one in PostgreSQL (named
    after a hash of the keystring) and the owner's tokens are kept there too. ``store`` keeps
    the tokens instead (tests); ``token`` replaces them altogether."""
    key = settings.api_key_header()
    grant: EtsyRefreshGrant | None = None
    if token is None:
        token, grant = etsy_token(settings, pool=pool, transport=transport, store=store)
    budget = None
    if pool is not None:
        budget = SharedRateBudget(
            pool,
            f"{account_key(VENDOR, settings.keystring())}:requests",
            limit=settings.etsy_requests_per_second,
            window_s=1.0,
            # A grant whose holder died keeps counting this long: longer than any call lasts.
            hold_s=3 * settings.etsy_timeout_s + 10,
            purpose="Etsy requests",
        )
    return EtsyClient(
        api_key=key,
        budget=budget,
        token=token,
        base_url=settings.etsy_api_url,
        timeout_s=settings.etsy_timeout_s,
        max_retry_wait_s=settings.etsy_retry_after_max_s,
        day_wait_s=settings.etsy_day_exhausted_wait_s,
        transport=transport,
        closing=[grant] if grant is not None else [],
    )


# --------------------------------------------------------------------------------------------
# Listing a draft


def _depends_on(
    variants: Sequence[DraftVariant],
    props: Mapping[str, int],
    value: Callable[[DraftVariant], object],
) -> list[int]:
    """The fewest properties ``value`` depends on across ``variants`` (Etsy's
    ``*_on_property``): none when it is the same for all."""
    names = list(props)
    candidates: list[list[str]] = [[], *([n] for n in names)]
    if len(names) > 1:
        candidates.append(names)
    for chosen in candidates:
        seen: dict[tuple[str | None, ...], object] = {}
        if all(
            seen.setdefault(tuple(v.option(n) for n in chosen), value(v)) == value(v)
            for v in variants
        ):
            return [props[n] for n in chosen]
    return [props[n] for n in names]


def inventory_for(draft: ListingDraft, *, quantity: int, readiness_state_id: int) -> dict[str, Any]:
    """updateListingInventory's body for ``draft``: one product per variant with its SKU, its
    option values on Etsy's custom properties (513, 514), its price and its processing profile
    (each offering's ``readiness_state_id``, which Etsy's document requires).

    Raises PermanentError when Etsy cannot take it (more than two options, a SKU too long)."""
    if len(draft.options) > len(CUSTOM_PROPERTY_IDS):
        raise PermanentError(
            f"product {draft.marker} has {len(draft.options)} options; Etsy lists at most "
            f"{len(CUSTOM_PROPERTY_IDS)} variations",
            vendor=VENDOR,
        )
    props = {name: CUSTOM_PROPERTY_IDS[i] for i, (name, _) in enumerate(draft.options)}
    products: list[dict[str, Any]] = []
    for v in draft.variants:
        if len(v.sku) > MAX_SKU:
            raise PermanentError(
                f"SKU {v.sku!r} of product {draft.marker} is longer than Etsy's {MAX_SKU}",
                vendor=VENDOR,
            )
        offering: dict[str, Any] = {
            "price": round(v.price_cents / 100, 2),
            "quantity": quantity,
            "is_enabled": True,
            "readiness_state_id": readiness_state_id,
        }
        products.append(
            {
                "sku": v.sku,
                "property_values": [
                    {
                        "property_id": props[name],
                        "property_name": name,
                        "value_ids": [],
                        "values": [_variation_value(value)],
                    }
                    for name, value in v.options
                    if name in props
                ],
                "offerings": [offering],
            }
        )
    return {
        "products": products,
        "price_on_property": _depends_on(draft.variants, props, lambda v: v.price_cents),
        "quantity_on_property": [],
        "sku_on_property": _depends_on(draft.variants, props, lambda v: v.sku),
    }


def _skus(listing: Mapping[str, Any]) -> list[str]:
    inventory = listing.get("inventory") or {}
    return sorted(str(p.get("sku") or "") for p in inventory.get("products") or [])


def _tags(listing: Mapping[str, Any]) -> set[str]:
    return {str(t).lower() for t in listing.get("tags") or []}


class HttpImageFetcher:
    """Fetches a mockup by URL (Printify's image servers) for uploadListingImage."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._http = async_client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)), follow_redirects=True
        )

    async def __call__(self, url: str) -> bytes:
        try:
            resp = await self._http.get(url)
        except httpx.TimeoutException:
            raise VendorTimeout(f"GET {url}: timed out", vendor="printify") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"GET {url}: {type(exc).__name__}", vendor="printify") from None
        if resp.status_code >= 400:
            cls = classify_http_status(resp.status_code)
            raise cls(
                f"GET {url}: HTTP {resp.status_code}", vendor="printify", status=resp.status_code
            )
        return resp.content

    async def aclose(self) -> None:
        await self._http.aclose()


ImageFetcher = Callable[[str], Awaitable[bytes]]


class EtsyChannel:
    """Lists Printify products in an Etsy shop (a :class:`SalesChannel`).

    ``source`` reads the product (its draft: :func:`~shared.vendors.listing.draft_from_printify`);
    its Printify blueprint gives the product type (``catalog``, the default catalog unless given),
    whose Etsy taxonomy is ``ETSY_TAXONOMY_IDS``'s. ``fetch_image`` gets a mockup's bytes by URL
    (Etsy takes image files, the draft has URLs)."""

    name = "etsy"

    def __init__(
        self,
        etsy: EtsyClient,
        source: PrintifyClient,
        settings: EtsySettings,
        *,
        catalog: Mapping[ProductType, CatalogEntry] | None = None,
        fetch_image: ImageFetcher | None = None,
    ) -> None:
        self.etsy = etsy
        self.source = source
        self.settings = settings
        self.shop_id = settings.etsy_shop_id
        self.catalog = dict(catalog if catalog is not None else DEFAULT_CATALOG)
        self._own_fetcher: HttpImageFetcher | None = None
        if fetch_image is None:
            self._own_fetcher = fetch_image = HttpImageFetcher(settings.etsy_timeout_s)
        self.fetch_image: ImageFetcher = fetch_image
        # Marker tag -> listing id, for listings seen or made: a redelivery costs one getListing.
        self._known: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._readiness: int | None = settings.etsy_readiness_state_id

    # --- SalesChannel ----------------------------------------------------------------------------

    async def publish(self, product: ProductRef) -> ListingState:
        """List the product: the listing with its marker if there is one (finished when half
        made), else a new one. Raises PermanentError when its listing was deactivated or
        expired on Etsy (a human decides whether to list it again)."""
        async with self._lock(product.product_id):
            found = await self.find_listing(product.product_id)
            if found is None:
                return await self._create(product)
            state = await self._settle(product, found)
            if state.refused is not None:
                raise PermanentError(state.refused, vendor=VENDOR)
            return state

    async def reconcile(self, product: ProductRef) -> ListingState | None:
        """The listing with the product's marker (finished when half made), or None."""
        async with self._lock(product.product_id):
            found = await self.find_listing(product.product_id)
            return None if found is None else await self._settle(product, found)

    async def check(self, product: ProductRef) -> ListingState:
        """Listed when the listing is active (or sold out); refused when it was deleted,
        deactivated or expired on Etsy; pending while it is a draft."""
        found = await self.find_listing(product.product_id)
        if found is None:
            return ListingState(
                refused=f"no Etsy listing carries the marker {marker_tag(product.product_id)}: "
                "it was deleted on Etsy, or never made"
            )
        refused = self._refusal(found)
        if refused is not None:
            return ListingState(refused=refused)
        if found.get("state") == "draft":
            return PENDING
        return self._listed(int(found["listing_id"]))

    # --- finding -------------------------------------------------------------------------------

    async def find_listing(self, marker: str) -> dict[str, Any] | None:
        """The shop's listing tagged with ``marker``'s tag, in any state, or None.

        A listing seen before is read again (one call); otherwise the shop's listings are read,
        state by state (drafts first), a page of 100 at a time."""
        tag = marker_tag(marker)
        known = self._known.get(tag)
        if known is not None:
            try:
                listing = await self.etsy.get_listing(known)
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                listing = None
            if listing is not None and tag in _tags(listing):
                return listing
            self._known.pop(tag, None)
        for state in SCAN_STATES:
            offset = 0
            while True:
                page = await self.etsy.get_listings_by_shop(
                    self.shop_id, state=state, limit=PAGE_LIMIT, offset=offset
                )
                results = list(page.get("results") or [])
                found = None
                for listing in results:
                    self._remember(listing)
                    if found is None and tag in _tags(listing):
                        found = listing
                if found is not None:
                    logger.info(
                        "etsy listing found marker=%s listing_id=%s state=%s",
                        tag,
                        found.get("listing_id"),
                        found.get("state"),
                    )
                    return dict(found)
                offset += len(results)
                if not results or offset >= int(page.get("count") or 0):
                    break
        return None

    def _remember(self, listing: Mapping[str, Any]) -> None:
        for tag in _tags(listing):
            if tag.startswith(MARKER_PREFIX):
                self._known[tag] = int(listing["listing_id"])
                self._known.move_to_end(tag)
        while len(self._known) > 50_000:
            self._known.popitem(last=False)

    def _lock(self, product_id: str) -> asyncio.Lock:
        # One publication of a product at a time in this process.
        lock = self._locks.get(product_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[product_id] = lock
        return lock

    # --- listing -------------------------------------------------------------------------------

    def _listed(self, listing_id: int) -> ListingState:
        return ListingState(Listing(str(listing_id), LISTING_URL.format(listing_id)))

    @staticmethod
    def _refusal(listing: Mapping[str, Any]) -> str | None:
        state, lid = listing.get("state"), listing.get("listing_id")
        if state == "inactive":
            return f"the Etsy listing {lid} was deactivated (by the seller or by Etsy)"
        if state == "expired":
            return f"the Etsy listing {lid} expired and was not renewed"
        return None

    async def _draft(self, product: ProductRef) -> tuple[ListingDraft, Product]:
        found = await self.source.get_product(product.shop_id, product.product_id)
        try:
            return draft_from_printify(found), found
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from None

    def _taxonomy(self, printify_product: Product) -> int:
        blueprint = printify_product.blueprint_id
        ids = self.settings.taxonomy_ids()
        for product_type, entry in self.catalog.items():
            if entry.blueprint_id == blueprint and product_type.value in ids:
                return ids[product_type.value]
        raise ConfigError(
            f"ETSY_TAXONOMY_IDS: no Etsy taxonomy for Printify blueprint {blueprint} (product "
            f"types with a taxonomy: {sorted(ids)})"
        )

    async def readiness_state_id(self) -> int:
        """The processing profile of the listings' products: ``ETSY_READINESS_STATE_ID``, else
        the shop's first ``made_to_order`` profile (print on demand is made to order), read
        once. Etsy refuses a physical listing without one."""
        if self._readiness is None:
            profiles = await self.etsy.get_readiness_state_definitions(self.shop_id)
            made = [p for p in profiles if p.get("readiness_state") == "made_to_order"]
            if not made:
                raise ConfigError(
                    f"ETSY_READINESS_STATE_ID: Etsy shop {self.shop_id} has no made_to_order "
                    "processing profile; create one in Shop Manager or set the id"
                )
            self._readiness = int(made[0]["readiness_state_id"])
            logger.info(
                "etsy processing profile shop_id=%s readiness_state_id=%s days=%s-%s",
                self.shop_id,
                self._readiness,
                made[0].get("min_processing_days"),
                made[0].get("max_processing_days"),
            )
        return self._readiness

    async def _create(self, product: ProductRef) -> ListingState:
        settings = self.settings
        if settings.etsy_shipping_profile_id is None:
            raise ConfigError(
                "ETSY_SHIPPING_PROFILE_ID: Etsy lists physical products only with one"
            )
        readiness = await self.readiness_state_id()
        draft, printify_product = await self._draft(product)
        title = etsy_title(draft.title)
        if not title:
            raise PermanentError(f"product {draft.marker} has no title to list", vendor=VENDOR)
        tag = marker_tag(draft.marker)
        fields: dict[str, object] = {
            "quantity": settings.etsy_quantity,
            "title": title,
            "description": draft.description or title,
            "price": f"{draft.min_price_cents / 100:.2f}",
            "who_made": settings.etsy_who_made,
            "when_made": settings.etsy_when_made,
            "taxonomy_id": self._taxonomy(printify_product),
            "shipping_profile_id": settings.etsy_shipping_profile_id,
            "readiness_state_id": readiness,
            "return_policy_id": settings.etsy_return_policy_id,
            "is_supply": False,
            "type": "physical",
            # The marker first, so the product's own tags never push it out.
            "tags": [tag, *etsy_tags(draft.tags, MAX_TAGS - 1)],
        }
        created = await self.etsy.create_draft_listing(self.shop_id, fields)
        listing_id = int(created["listing_id"])
        self._known[tag] = listing_id
        await self._finish(listing_id, draft, images=0, skus=_skus(created))
        return self._listed(listing_id)

    async def _settle(self, product: ProductRef, found: Mapping[str, Any]) -> ListingState:
        """A found listing as it stands; a draft is finished first."""
        refused = self._refusal(found)
        if refused is not None:
            return ListingState(refused=refused)
        listing_id = int(found["listing_id"])
        if found.get("state") != "draft":
            return self._listed(listing_id)
        draft, _ = await self._draft(product)
        full = await self.etsy.get_listing(listing_id, includes=("Images", "Inventory"))
        if full.get("state") != "draft":  # finished meanwhile
            return await self._settle(product, full)
        logger.info("etsy listing half made, finishing listing_id=%s", listing_id)
        await self._finish(
            listing_id, draft, images=len(full.get("images") or []), skus=_skus(full)
        )
        return self._listed(listing_id)

    async def _finish(
        self, listing_id: int, draft: ListingDraft, *, images: int, skus: list[str]
    ) -> None:
        """Give a draft listing what it lacks (inventory, images from rank ``images + 1``),
        then publish it."""
        settings = self.settings
        if skus != sorted(v.sku for v in draft.variants):
            await self.etsy.update_listing_inventory(
                listing_id,
                inventory_for(
                    draft,
                    quantity=settings.etsy_quantity,
                    readiness_state_id=await self.readiness_state_id(),
                ),
            )
        wanted = draft.images[: settings.etsy_max_images]
        if not wanted and images == 0:
            raise PermanentError(
                f"product {draft.marker} has no mockup: Etsy publishes no listing without an image",
                vendor=VENDOR,
            )
        # Ranks in order, each overwritten if there: an upload that landed before a crash is
        # replaced, not doubled.
        for rank in range(images + 1, len(wanted) + 1):
            data = await self.fetch_image(wanted[rank - 1])
            ext, _ = _image_type(data)
            await self.etsy.upload_listing_image(
                self.shop_id,
                listing_id,
                data,
                rank=rank,
                overwrite=True,
                file_name=f"{marker_tag(draft.marker)}-{rank}.{ext}",
            )
        await self.etsy.update_listing(self.shop_id, listing_id, {"state": "active"})
        logger.info(
            "etsy listing active listing_id=%s marker=%s products=%d images=%d",
            listing_id,
            marker_tag(draft.marker),
            len(draft.variants),
            max(images, len(wanted)),
        )

    async def aclose(self) -> None:
        """Close the Etsy client and the image fetcher it made (not ``source``)."""
        await self.etsy.aclose()
        if self._own_fetcher is not None:
            await self._own_fetcher.aclose()


def etsy_channel(
    settings: EtsySettings,
    source: PrintifyClient,
    *,
    catalog: Mapping[ProductType, CatalogEntry] | None = None,
    fetch_image: ImageFetcher | None = None,
    pool: AsyncConnectionPool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EtsyChannel:
    """The Etsy channel of ``settings``' shop, reading products through ``source``; ``pool``
    holds the app's shared request budget."""
    return EtsyChannel(
        etsy_client(settings, pool=pool, transport=transport),
        source,
        settings,
        catalog=catalog,
        fetch_image=fetch_image,
    )


# The simulator's shop owner's refresh token under `make up`: the simulator takes a refresh token
# it has not seen as one it issued (a grant made before it started), then rotates it as Etsy
# does. Etsy's tokens start with the user's numeric id.
SIM_REFRESH_TOKEN = "1.sim-etsy-refresh-token"  # noqa: S105  # the simulator's, not a secret

# The channel as the engine registers it (shared.vendors.direct), with the simulator's app and
# shop (any keystring:secret is accepted unless SIM_ETSY_API_KEYS restricts them).
SPEC = ChannelSpec(
    name="etsy",
    settings=EtsySettings,
    build=etsy_channel,
    takes_pool=True,
    simulator="etsy",
    simulator_port=8192,
    credential="ETSY_REFRESH_TOKEN",
    # An access token alone is an account of one's own too (for an hour).
    other_credentials=("ETSY_ACCESS_TOKEN",),
    url_setting="ETSY_API_URL",
    simulator_env={
        "ETSY_API_KEY": "sim-etsy-keystring",
        "ETSY_SHARED_SECRET": "sim-etsy-secret",
        "ETSY_REFRESH_TOKEN": SIM_REFRESH_TOKEN,
        "ETSY_SHOP_ID": "51234567",
        "ETSY_SHIPPING_PROFILE_ID": "9001",
    },
)
