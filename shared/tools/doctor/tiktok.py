"""``pod doctor``'s TikTok Shop checks: run when ``tiktok`` is among PUBLISH_CHANNELS, with the
settings its publisher reads (``TIKTOK_*``, ``CREDENTIALS_KEY``, ``DATABASE_URL``).

- ``tiktok.settings``: the settings load, with an app key, its secret and a credential;
- ``tiktok.token``: the seller's grant gives a token TikTok takes. A renewal may rotate the
  refresh token, so the doctor renews only through the store the publishers share
  (DATABASE_URL and CREDENTIALS_KEY set); without them it only tries TIKTOK_ACCESS_TOKEN;
- ``tiktok.shop``: the app is authorised for the shop (Get Authorized Shops, which also
  proves the signature: TIKTOK_APP_SECRET) and TIKTOK_SHOP_CIPHER is its cipher, or is found;
- ``tiktok.warehouse``: TIKTOK_WAREHOUSE_ID is a sales warehouse of the shop, or it has a
  default one;
- ``tiktok.category``: each of TIKTOK_CATEGORY_IDS is a leaf category of the shop, or TikTok's
  category recommendation answers (what the channel uses without them).

Every call is a read, but for the renewal through the shared store.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg_pool import AsyncConnectionPool

from shared.adapters.credentials import AccessToken, CredentialRevoked, ManagedToken, StaticToken
from shared.adapters.vendors.tiktok import (
    TikTokClient,
    TikTokRefreshGrant,
    TikTokSettings,
    tiktok_client,
    tiktok_token,
)
from shared.platform.db import open_pool
from shared.platform.errors import ConfigError, PodError
from shared.platform.settings import DatabaseSettings, load_settings
from shared.tools.doctor import Check, unless_selling_on

PART = "tiktok"
LATER = ("shop", "warehouse", "category")
AUTHORISE = (
    "authorise the app again as the seller (TikTok Shop Partner Center's authorisation link, "
    "then /api/v2/token/get; README, Sales channels: TikTok Shop) and set the answer's "
    "refresh_token as TIKTOK_REFRESH_TOKEN"
)
TOKEN_CODES = ("105001", "105002")


def _skipped(names: Iterable[str], why: str) -> list[Check]:
    return [Check.skipped(f"{PART}.{n}", why) for n in names]


async def checks() -> list[Check]:
    if (not_selling := unless_selling_on(PART)) is not None:
        return not_selling
    try:
        settings = load_settings(TikTokSettings)
        settings.app_key()
        renews = settings.renews_tokens()
        database = load_settings(DatabaseSettings).database_url
        if renews and database is not None:
            settings.box()
    except ConfigError as exc:
        fix = (
            "set CREDENTIALS_KEY, the same in every process of the deployment"
            if exc.message.startswith("CREDENTIALS_KEY")
            else AUTHORISE
            if exc.message.startswith("no TikTok credential")
            else "set the TIKTOK_* settings of the shop (README, Configuration)"
        )
        return [Check.failed(f"{PART}.settings", exc.message, fix)]
    found = [Check.passed(f"{PART}.settings", "the TIKTOK_* settings load")]
    pool = None
    if renews and database is not None:
        pool = await open_pool(database.get_secret_value(), max_size=2, name="doctor-tiktok")
    try:
        return [*found, *await _with_token(settings, renews, pool)]
    finally:
        if pool is not None:
            await pool.close()


def _unreachable(settings: TikTokSettings, name: str, exc: PodError) -> Check:
    return Check.failed(
        f"{PART}.{name}",
        f"could not ask TikTok at {settings.tiktok_api_url}: {exc.describe()[:200]}",
        "check TIKTOK_API_URL / TIKTOK_AUTH_URL (unset: TikTok's own) and the network",
    )


async def _token(
    settings: TikTokSettings, renews: bool, pool: AsyncConnectionPool | None
) -> tuple[AccessToken | None, TikTokRefreshGrant | None, Check]:
    name = f"{PART}.token"
    if renews and pool is not None:
        token, grant = tiktok_token(settings, pool=pool)
        assert isinstance(token, ManagedToken) and grant is not None
        try:
            await token.current()
        except CredentialRevoked as exc:
            await grant.aclose()
            return (
                None,
                None,
                Check.failed(name, f"TikTok refused the grant: {exc.message}", AUTHORISE),
            )
        except ConfigError as exc:
            await grant.aclose()
            return (
                None,
                None,
                Check.failed(name, exc.message, "set the publishers' CREDENTIALS_KEY"),
            )
        except PodError as exc:
            await grant.aclose()
            return None, None, _unreachable(settings, "token", exc)
        how = (
            "the seller's grant is good: renewed it through the database the publishers share"
            if grant.granted
            else "the seller's grant is good: the token the publishers keep is still valid"
        )
        return token, grant, Check.passed(name, how)
    access = settings.tiktok_access_token
    if access is None:
        return (
            None,
            None,
            Check.skipped(
                name,
                "the refresh could not be checked: a renewal may rotate TIKTOK_REFRESH_TOKEN, and "
                "without DATABASE_URL and CREDENTIALS_KEY (the publishers' store) the new one "
                "would be lost; run pod doctor with them, or give it a TIKTOK_ACCESS_TOKEN",
            ),
        )
    how = "TIKTOK_ACCESS_TOKEN is accepted" + (
        "; TIKTOK_REFRESH_TOKEN was not tried (no DATABASE_URL/CREDENTIALS_KEY)"
        if renews
        else "; without TIKTOK_REFRESH_TOKEN it stops when it expires"
    )
    return StaticToken(access.get_secret_value()), None, Check.passed(name, how)


async def _with_token(
    settings: TikTokSettings, renews: bool, pool: AsyncConnectionPool | None
) -> list[Check]:
    token, grant, check = await _token(settings, renews, pool)
    if token is None:
        return [check, *_skipped(LATER, "no token to check with")]
    client = tiktok_client(settings, token=token)
    try:
        shop = await _shop(client, settings)
        if shop.status == "fail":
            if shop.name == f"{PART}.token":  # TikTok refused the access token
                return [shop, *_skipped(LATER, "TikTok refused the token")]
            return [check, shop, *_skipped(LATER[1:], "no shop")]
        return [check, shop, await _warehouse(client, settings), await _category(client, settings)]
    finally:
        await client.aclose()
        if grant is not None:
            await grant.aclose()


async def _shop(client: TikTokClient, settings: TikTokSettings) -> Check:
    name = f"{PART}.shop"
    try:
        shops = (await client.get_authorized_shops()).shops
    except PodError as exc:
        if exc.code == "106001":
            return Check.failed(
                name,
                "TikTok refused the request's signature (106001)",
                "set TIKTOK_APP_SECRET to the secret of TIKTOK_APP_KEY's app (Partner Center)",
            )
        if exc.code in TOKEN_CODES:
            return Check.failed(
                f"{PART}.token", f"TikTok refused the access token ({exc.code})", AUTHORISE
            )
        return _unreachable(settings, "shop", exc)
    wanted = [
        s
        for s in shops
        if (settings.tiktok_shop_id in (None, s.id))
        and (settings.tiktok_shop_cipher in (None, s.cipher))
    ]
    listed = ", ".join(f"{s.name} ({s.id}, {s.region})" for s in shops) or "none"
    if len(wanted) != 1:
        return Check.failed(
            name,
            f"{len(wanted)} of the shops authorised to the app match TIKTOK_SHOP_ID / "
            f"TIKTOK_SHOP_CIPHER (authorised: {listed})",
            "authorise the app for the shop, or set TIKTOK_SHOP_ID (and TIKTOK_SHOP_CIPHER) to "
            "one of the authorised shops",
        )
    shop = wanted[0]
    return Check.passed(name, f"{shop.name} ({shop.id}, {shop.region}): its cipher is known")


async def _warehouse(client: TikTokClient, settings: TikTokSettings) -> Check:
    name = f"{PART}.warehouse"
    try:
        found = (await client.get_warehouses()).warehouses
    except PodError as exc:
        return _unreachable(settings, "warehouse", exc)
    sales = [w for w in found if w.type == "SALES_WAREHOUSE"]
    if settings.tiktok_warehouse_id is not None:
        match = [w for w in sales if w.id == settings.tiktok_warehouse_id]
        if not match:
            return Check.failed(
                name,
                f"TIKTOK_WAREHOUSE_ID {settings.tiktok_warehouse_id} is not a sales warehouse of "
                f"the shop (have: {', '.join(w.id for w in sales) or 'none'})",
                "set TIKTOK_WAREHOUSE_ID to one of them, or unset it for the default one",
            )
        return Check.passed(name, f"{match[0].name} ({match[0].id})")
    default = [w for w in sales if w.is_default] or sales
    if not default:
        return Check.failed(
            name,
            "the shop has no sales warehouse",
            "add a sales warehouse in TikTok Seller Center",
        )
    return Check.passed(
        name, f"the shop's default sales warehouse: {default[0].name} ({default[0].id})"
    )


async def _category(client: TikTokClient, settings: TikTokSettings) -> Check:
    name = f"{PART}.category"
    wanted = settings.tiktok_category_ids
    try:
        if not wanted:
            leaf = (await client.recommend_category("T-shirt")).leaf_category_id
            return Check.passed(
                name, f"no TIKTOK_CATEGORY_IDS: TikTok's recommendation answers (e.g. {leaf})"
            )
        leaves = {
            c.id: c.local_name for c in (await client.get_categories()).categories if c.is_leaf
        }
    except PodError as exc:
        return _unreachable(settings, "category", exc)
    bad = {t: c for t, c in wanted.items() if c not in leaves}
    if bad:
        return Check.failed(
            name,
            f"not leaf categories of the shop: {', '.join(f'{t} -> {c}' for t, c in bad.items())}",
            "set TIKTOK_CATEGORY_IDS to leaf categories (Get Categories), or unset them for "
            "TikTok's recommendation",
        )
    return Check.passed(name, ", ".join(f"{t} -> {c} ({leaves[c]})" for t, c in wanted.items()))
