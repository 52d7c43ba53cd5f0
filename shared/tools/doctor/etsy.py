"""``pod doctor``'s Etsy checks: run when ``etsy`` is among PUBLISH_CHANNELS, with the settings
its publisher reads (``ETSY_*``, ``CREDENTIALS_KEY``, ``DATABASE_URL``).

- ``etsy.settings``: the settings load, with the shared secret Etsy requires and a credential;
- ``etsy.key``: Etsy accepts the app's ``keystring:shared_secret`` (ping);
- ``etsy.token``: the shop owner's OAuth grant gives a token Etsy takes. A renewal spends the
  refresh token (Etsy rotates it), so the doctor renews only through the store the publishers
  share (DATABASE_URL and CREDENTIALS_KEY set: the new refresh token is kept there, as a
  publisher would keep it); without them it only tries ETSY_ACCESS_TOKEN, and says that the
  refresh could not be checked;
- ``etsy.shop``: the token's owner owns ETSY_SHOP_ID (getMe);
- ``etsy.scopes``: the token holds the scopes the engine's calls need (tokenScopes; else what a
  read proves: listings_r by a getListingsByShop of one listing; listings_w cannot be proven
  without a write);
- ``etsy.shipping_profile``, ``etsy.processing_profile``, ``etsy.taxonomy``,
  ``etsy.return_policy``: what a listing names exists in the shop (or in the seller taxonomy).

Every call is a read, but for the renewal through the shared store (which is what any publisher
does an hour after the last one).
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg_pool import AsyncConnectionPool

from shared.adapters.credentials import AccessToken, CredentialRevoked, ManagedToken, StaticToken
from shared.adapters.vendors.etsy import (
    ENGINE_SCOPES,
    EtsyClient,
    EtsyRefreshGrant,
    EtsySettings,
    ProcessingProfile,
    etsy_token,
)
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, PodError
from shared.platform.settings import DatabaseSettings, load_settings
from shared.tools.doctor import Check, unless_selling_on

PART = "etsy"
LATER = ("shop", "scopes", "shipping_profile", "processing_profile", "taxonomy", "return_policy")
YOUR_APPS = "https://www.etsy.com/developers/your-apps"
AUTHORISE = (
    "authorise the app again as the shop's owner (Etsy's OAuth with PKCE, "
    f"scope={'%20'.join(sorted(ENGINE_SCOPES))}; README, Sales channels: Etsy) and set the new "
    "refresh token as ETSY_REFRESH_TOKEN"
)


def _skipped(names: Iterable[str], why: str) -> list[Check]:
    return [Check.skipped(f"{PART}.{n}", why) for n in names]


class _NoToken:
    """The token of a client that only sends the app's key (ping)."""

    async def get(self) -> str:
        raise ConfigError("no OAuth token here: this client only pings")

    def rejected(self, token: str) -> None:
        """Nothing to renew."""


def _client(settings: EtsySettings, token: AccessToken) -> EtsyClient:
    return EtsyClient(
        api_key=settings.api_key_header(),
        token=token,
        base_url=settings.etsy_api_url,
        timeout_s=settings.etsy_timeout_s,
        # A preflight reports a 429 rather than waiting it out.
        max_retry_wait_s=0.0,
    )


async def checks() -> list[Check]:
    if (not_selling := unless_selling_on(PART)) is not None:
        return not_selling
    try:
        settings = load_settings(EtsySettings)
        settings.api_key_header()
        renews = settings.renews_tokens()
        database = load_settings(DatabaseSettings).database_url
        if renews and database is not None:
            settings.box()  # the publishers keep the tokens in PostgreSQL, sealed with it
    except ConfigError as exc:
        return [_settings_failed(exc)]
    key = await _key(settings)
    if key.status == "fail":
        return [key, *_skipped(("token", *LATER), "Etsy refused the app's key")]
    pool = None
    if renews and database is not None:
        pool = await open_pool(database.get_secret_value(), max_size=2, name="doctor-etsy")
    try:
        return [key, *await _with_token(settings, renews, pool)]
    finally:
        if pool is not None:
            await pool.close()


def _settings_failed(exc: ConfigError) -> Check:
    message = exc.message
    if message.startswith("CREDENTIALS_KEY"):
        fix = "set CREDENTIALS_KEY, the same in every process of the deployment"
    elif message.startswith("ETSY_SHARED_SECRET"):
        fix = f"copy the app's shared secret from {YOUR_APPS} into ETSY_SHARED_SECRET"
    elif message.startswith("no Etsy credential"):
        fix = AUTHORISE
    else:
        fix = "set the ETSY_* settings of the shop (README, Configuration)"
    return Check.failed(f"{PART}.settings", message, fix)


async def _key(settings: EtsySettings) -> Check:
    client = _client(settings, _NoToken())
    try:
        application = await client.ping()
    except PodError as exc:
        if exc.status in (401, 403):
            return Check.failed(
                f"{PART}.key",
                f"Etsy refused the app's key ({exc.status}: {exc.message[:200]})",
                f"set ETSY_API_KEY to the app's keystring and ETSY_SHARED_SECRET to its shared "
                f"secret, both from {YOUR_APPS} (Etsy takes them as keystring:shared_secret)",
            )
        return _unreachable(settings, "key", exc)
    finally:
        await client.aclose()
    return Check.passed(
        f"{PART}.key", f"Etsy accepts the app's keystring:shared_secret (application {application})"
    )


def _unreachable(settings: EtsySettings, name: str, exc: PodError) -> Check:
    return Check.failed(
        f"{PART}.{name}",
        f"could not ask Etsy at {settings.etsy_api_url}: {exc.describe()[:200]}",
        "check ETSY_API_URL (unset: Etsy's own) and the network",
    )


async def _with_token(
    settings: EtsySettings, renews: bool, pool: AsyncConnectionPool | None
) -> list[Check]:
    found: list[Check] = []
    grant: EtsyRefreshGrant | None = None
    if renews and pool is not None:
        token, grant = etsy_token(settings, pool=pool)
        assert isinstance(token, ManagedToken) and grant is not None
        try:
            await token.current()
        except CredentialRevoked as exc:
            await grant.aclose()
            return [
                Check.failed(
                    f"{PART}.token",
                    f"Etsy refused the shop owner's grant: {exc.message}",
                    AUTHORISE,
                ),
                *_skipped(LATER, "no token"),
            ]
        except PodError as exc:
            await grant.aclose()
            if isinstance(exc, ConfigError):
                fix = "set the CREDENTIALS_KEY the publishers use"
                return [
                    Check.failed(f"{PART}.token", exc.message, fix),
                    *_skipped(LATER, "no token"),
                ]
            return [_unreachable(settings, "token", exc), *_skipped(LATER, "no token")]
        how = (
            "the shop owner's grant is good: renewed it through the database the publishers "
            "share (the new refresh token is kept there)"
            if grant.granted
            else "the shop owner's grant is good: the token the publishers keep in the "
            "database is still valid"
        )
        client = _client(settings, token)
    else:
        access = settings.etsy_access_token
        if access is None:
            return [
                Check.skipped(
                    f"{PART}.token",
                    "the refresh could not be checked: renewing rotates ETSY_REFRESH_TOKEN, and "
                    "without DATABASE_URL and CREDENTIALS_KEY (the publishers' store) the new "
                    "one would be lost; run pod doctor with the publishers' DATABASE_URL and "
                    "CREDENTIALS_KEY, or give it a current ETSY_ACCESS_TOKEN",
                ),
                *_skipped(LATER, "no token to check with"),
            ]
        how = (
            "ETSY_ACCESS_TOKEN is accepted; ETSY_REFRESH_TOKEN was not tried (a renewal "
            "rotates it, and without DATABASE_URL and CREDENTIALS_KEY, the publishers' store, "
            "the new one would be lost)"
            if renews
            else "ETSY_ACCESS_TOKEN is accepted"
        )
        client = _client(settings, StaticToken(access.get_secret_value()))
    try:
        found += await _owner(client, settings, renews, how)
        if found[-1].status == "fail" and found[-1].name == f"{PART}.token":
            return [*found, *_skipped(LATER, "Etsy refused the token")]
        found += [
            await _scopes(client, settings),
            await _shipping(client, settings),
            await _processing(client, settings),
            await _taxonomy(client, settings),
            await _returns(client, settings),
        ]
        return found
    finally:
        await client.aclose()
        if grant is not None:
            await grant.aclose()


async def _owner(client: EtsyClient, settings: EtsySettings, renews: bool, how: str) -> list[Check]:
    """``etsy.token`` (and, for an access token alone, that it will stop) and ``etsy.shop``."""
    try:
        me = await client.get_me()
    except PodError as exc:
        if exc.status == 401:
            if renews:
                detail = (
                    f"Etsy refused ETSY_ACCESS_TOKEN ({exc.message[:160]}); the refresh token "
                    "was not tried: a renewal rotates it, and without DATABASE_URL and "
                    "CREDENTIALS_KEY (the publishers' store) the new one would be lost"
                )
                fix = (
                    "run pod doctor with the publishers' DATABASE_URL and CREDENTIALS_KEY (it "
                    "then renews through their store), or set a current ETSY_ACCESS_TOKEN"
                )
            else:
                detail = f"Etsy refused ETSY_ACCESS_TOKEN ({exc.message[:160]})"
                fix = f"set ETSY_REFRESH_TOKEN: {AUTHORISE}"
            return [Check.failed(f"{PART}.token", detail, fix)]
        if exc.status == 403:
            return [
                Check.passed(f"{PART}.token", how),
                Check.failed(
                    f"{PART}.shop",
                    f"getMe was refused ({exc.message[:160]}): the token lacks shops_r",
                    AUTHORISE,
                ),
            ]
        return [_unreachable(settings, "token", exc)]
    if renews:
        token = Check.passed(f"{PART}.token", how)
    else:
        token = Check.failed(
            f"{PART}.token",
            "ETSY_ACCESS_TOKEN is accepted, but without ETSY_REFRESH_TOKEN it stops working "
            "within the hour Etsy gives an access token, and every Etsy call then fails",
            f"set ETSY_REFRESH_TOKEN: {AUTHORISE}",
        )
    wanted = settings.etsy_shop_id
    if me.shop_id != wanted:
        shop = f"shop {me.shop_id}" if me.shop_id else "no shop"
        return [
            token,
            Check.failed(
                f"{PART}.shop",
                f"the token is Etsy user {me.user_id}'s, who owns {shop}; ETSY_SHOP_ID is {wanted}",
                f"set ETSY_SHOP_ID to {me.shop_id}"
                if me.shop_id
                else f"authorise the app as the owner of shop {wanted}",
            ),
        ]
    try:
        name = (await client.get_shop(wanted)).shop_name or f"shop {wanted}"
    except PodError:
        name = f"shop {wanted}"
    return [
        token,
        Check.passed(
            f"{PART}.shop", f"{name} ({wanted}) is the token's owner's (user {me.user_id})"
        ),
    ]


async def _scopes(client: EtsyClient, settings: EtsySettings) -> Check:
    name = f"{PART}.scopes"
    try:
        granted = await client.token_scopes()
    except PodError:
        granted = None
    if granted is not None:
        missing = {s: ops for s, ops in ENGINE_SCOPES.items() if s not in granted}
        if missing:
            lacking = "; ".join(f"{s} (for {', '.join(ops)})" for s, ops in missing.items())
            return Check.failed(
                name,
                f"the token lacks {lacking}; granted: {', '.join(granted) or 'none'}",
                AUTHORISE,
            )
        return Check.passed(
            name, f"granted {', '.join(granted)}: enough for every call the engine makes"
        )
    # Etsy's answer did not say: prove what a read can prove.
    try:
        await client.get_listings_by_shop(settings.etsy_shop_id, state="active", limit=1)
    except PodError as exc:
        if exc.status == 403:
            return Check.failed(
                name, f"reading the shop's listings was refused: {exc.message}", AUTHORISE
            )
        return _unreachable(settings, "scopes", exc)
    return Check.passed(
        name,
        "listings_r proven by a read (getListingsByShop); listings_w cannot be checked without a "
        "write (Etsy did not say the token's scopes)",
    )


async def _shipping(client: EtsyClient, settings: EtsySettings) -> Check:
    name, shop = f"{PART}.shipping_profile", settings.etsy_shop_id
    wanted = settings.etsy_shipping_profile_id
    try:
        if wanted is not None:
            profile = await client.get_shipping_profile(shop, wanted)
            return Check.passed(name, f"{profile.title or 'untitled'} ({wanted})")
    except PodError as exc:
        if exc.status not in (400, 404):
            return _unreachable(settings, "shipping_profile", exc)
    try:
        profiles = await client.get_shipping_profiles(shop)
    except PodError as exc:
        return _unreachable(settings, "shipping_profile", exc)
    listed = ", ".join(f"{p.shipping_profile_id} ({p.title or 'untitled'})" for p in profiles)
    has = f"the shop has: {listed}" if profiles else "the shop has none"
    detail = (
        "ETSY_SHIPPING_PROFILE_ID is unset: Etsy lists no physical product without one"
        if wanted is None
        else f"ETSY_SHIPPING_PROFILE_ID={wanted} is not a shipping profile of shop {shop}"
    )
    fix = (
        "set ETSY_SHIPPING_PROFILE_ID to one of those ids"
        if profiles
        else "create a shipping profile in Shop Manager -> Settings -> Shipping settings, then "
        "set ETSY_SHIPPING_PROFILE_ID to its id"
    )
    return Check.failed(name, f"{detail} ({has})", fix)


def _profile(p: ProcessingProfile) -> str:
    days = (
        f", {p.min_processing_days}-{p.max_processing_days} days"
        if p.min_processing_days is not None
        else ""
    )
    return f"{p.readiness_state_id} ({p.readiness_state}{days})"


async def _processing(client: EtsyClient, settings: EtsySettings) -> Check:
    name, shop = f"{PART}.processing_profile", settings.etsy_shop_id
    try:
        profiles = await client.get_processing_profiles(shop)
    except PodError as exc:
        return _unreachable(settings, "processing_profile", exc)
    listed = ", ".join(_profile(p) for p in profiles) or "none"
    wanted = settings.etsy_readiness_state_id
    if wanted is not None:
        match = [p for p in profiles if p.readiness_state_id == wanted]
        if match:
            return Check.passed(name, f"ETSY_READINESS_STATE_ID={_profile(match[0])}")
        return Check.failed(
            name,
            f"ETSY_READINESS_STATE_ID={wanted} is not a processing profile of shop {shop} "
            f"(it has: {listed})",
            "set ETSY_READINESS_STATE_ID to one of those ids, or unset it to use the shop's "
            "made_to_order profile",
        )
    made = [p for p in profiles if p.readiness_state == "made_to_order"]
    if made:
        return Check.passed(
            name, f"ETSY_READINESS_STATE_ID unset: the shop's made_to_order {_profile(made[0])}"
        )
    return Check.failed(
        name,
        f"shop {shop} has no made_to_order processing profile, and ETSY_READINESS_STATE_ID is "
        f"unset (it has: {listed})",
        "create a made to order processing profile in Shop Manager (print on demand is made to "
        "order), or set ETSY_READINESS_STATE_ID to one of the shop's profiles",
    )


async def _taxonomy(client: EtsyClient, settings: EtsySettings) -> Check:
    name = f"{PART}.taxonomy"
    try:
        trees = await client.get_seller_taxonomy()
    except PodError as exc:
        return _unreachable(settings, "taxonomy", exc)
    nodes = {node.id: node.name for tree in trees for node in tree.walk()}
    wanted = settings.taxonomy_ids()
    unknown = {t: i for t, i in wanted.items() if i not in nodes}
    if unknown:
        shown = ", ".join(f"{t} -> {i}" for t, i in sorted(unknown.items()))
        return Check.failed(
            name,
            f"not nodes of Etsy's seller taxonomy: {shown}",
            "pick each product type's node from getSellerTaxonomyNodes (GET "
            "/v3/application/seller-taxonomy/nodes) and set ETSY_TAXONOMY_IDS, e.g. "
            "'{\"mug\": <id>}'",
        )
    shown = ", ".join(f"{t} -> {i} ({nodes[i]})" for t, i in sorted(wanted.items()))
    return Check.passed(name, shown)


async def _returns(client: EtsyClient, settings: EtsySettings) -> Check:
    name, shop = f"{PART}.return_policy", settings.etsy_shop_id
    wanted = settings.etsy_return_policy_id
    if wanted is None:
        return Check.skipped(name, "ETSY_RETURN_POLICY_ID unset: listings name none")
    try:
        policies = await client.get_return_policies(shop)
    except PodError as exc:
        return _unreachable(settings, "return_policy", exc)
    if any(p.return_policy_id == wanted for p in policies):
        return Check.passed(name, f"ETSY_RETURN_POLICY_ID={wanted} is a return policy of the shop")
    return Check.failed(
        name,
        f"ETSY_RETURN_POLICY_ID={wanted} is not a return policy of shop {shop} (it has: "
        f"{', '.join(str(p.return_policy_id) for p in policies) or 'none'})",
        "set ETSY_RETURN_POLICY_ID to one of those ids, or unset it",
    )
