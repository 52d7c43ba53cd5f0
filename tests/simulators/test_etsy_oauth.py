"""The Etsy simulator's OAuth, as Etsy's authentication page documents it and, where it is
silent, strictly: access tokens that end after SIM_ETSY_TOKEN_TTL_S, the token endpoint's
refresh_token grant with single-use refresh tokens (a spent one presented again revokes the
grant), refresh tokens that end after 90 days, a grant the seller revokes, scopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simulators import etsy as etsy_sim
from simulators.contracts.etsy import answer_problems

KEY = "ks-oauth:ss-oauth"
KEYSTRING = KEY.split(":")[0]
SHOP = 51234567
ME = 4242


def app_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> FastAPI:
    monkeypatch.setenv("SIM_ETSY_QPS", "1000")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return etsy_sim.create_app()


class Etsy:
    """Raw HTTP to the simulator in process, each API answer checked against Etsy's document."""

    def __init__(self, app: FastAPI) -> None:
        async def check(response: httpx.Response) -> None:
            await response.aread()
            path = response.request.url.path
            if path.startswith(("/_sim", "/v3/public")):
                return
            body = response.json() if response.content else None
            found = answer_problems(response.request.method, path, response.status_code, body)
            assert found == [], (path, found)

        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://etsy",
            headers={"x-api-key": KEY},
            event_hooks={"response": [check]},
        )

    async def authorize(self, **body: Any) -> dict[str, Any]:
        resp = await self.http.post("/_sim/oauth/authorize", json={"user_id": ME, **body})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def refresh(self, refresh_token: str, client_id: str = KEYSTRING) -> httpx.Response:
        form = {"grant_type": "refresh_token", "client_id": client_id}
        return await self.http.post(
            "/v3/public/oauth/token", data={**form, "refresh_token": refresh_token}
        )

    async def me(self, access_token: str) -> httpx.Response:
        return await self.http.get(
            "/v3/application/users/me", headers={"Authorization": f"Bearer {access_token}"}
        )

    async def books(self) -> dict[str, Any]:
        return dict((await self.http.get("/_sim/oauth")).json())


@pytest.fixture
async def etsy_on(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[..., Etsy]]:
    made: list[Etsy] = []

    def on(**env: str) -> Etsy:
        made.append(Etsy(app_with(monkeypatch, **env)))
        return made[-1]

    yield on
    for etsy in made:
        await etsy.http.aclose()


def refusal(resp: httpx.Response, status: int, error: str, description: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"error": error, "error_description": description}


async def test_a_refresh_gives_new_tokens_and_spends_the_old_refresh_token(
    etsy_on: Callable[..., Etsy],
) -> None:
    etsy = etsy_on()
    first = await etsy.authorize(client_id=KEYSTRING)
    assert first["expires_in"] == 3600 and first["token_type"] == "Bearer"
    assert first["access_token"].startswith(f"{ME}.") and first["refresh_token"].startswith(
        f"{ME}."
    )
    resp = await etsy.refresh(first["refresh_token"])
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["refresh_token"] != first["refresh_token"]
    assert (await etsy.me(second["access_token"])).json() == {"user_id": ME, "shop_id": SHOP}
    # The refresh token sent is spent: presented again, refused, and (reuse detection) the
    # grant is revoked, its newest tokens too.
    refusal(
        await etsy.refresh(first["refresh_token"]),
        400,
        "invalid_grant",
        "refresh_token is revoked (already used)",
    )
    refusal(await etsy.me(second["access_token"]), 401, "invalid_token", "access token is revoked")
    refusal(
        await etsy.refresh(second["refresh_token"]),
        400,
        "invalid_grant",
        "refresh_token is revoked",
    )
    books = await etsy.books()
    assert (books["refreshed"], books["reuse_detected"], books["revoked_grants"]) == (1, 1, 1)


async def test_reuse_can_refuse_only_that_request(etsy_on: Callable[..., Etsy]) -> None:
    etsy = etsy_on(SIM_ETSY_REFRESH_REUSE="refuse")
    first = await etsy.authorize(client_id=KEYSTRING)
    second = (await etsy.refresh(first["refresh_token"])).json()
    assert (await etsy.refresh(first["refresh_token"])).status_code == 400
    assert (await etsy.refresh(second["refresh_token"])).status_code == 200


async def test_an_access_token_ends_after_its_life(etsy_on: Callable[..., Etsy]) -> None:
    etsy = etsy_on(SIM_ETSY_TOKEN_TTL_S="0.3")
    tokens = await etsy.authorize()
    assert tokens["expires_in"] == 1  # whole seconds, never less than one
    assert (await etsy.me(tokens["access_token"])).status_code == 200
    await asyncio.sleep(0.35)
    refusal(await etsy.me(tokens["access_token"]), 401, "invalid_token", "access token is expired")
    # A token it did not issue is taken as issued when first seen, and ends the same way.
    assert (await etsy.me(f"{ME}.configured-before-the-simulator-started")).status_code == 200
    await asyncio.sleep(0.35)
    refusal(
        await etsy.me(f"{ME}.configured-before-the-simulator-started"),
        401,
        "invalid_token",
        "access token is expired",
    )
    assert (await etsy.books())["expired_access"] == 2


async def test_a_refresh_token_ends_after_90_days(etsy_on: Callable[..., Etsy]) -> None:
    etsy = etsy_on(SIM_ETSY_REFRESH_TTL_S="0.2")
    tokens = await etsy.authorize(client_id=KEYSTRING)
    await asyncio.sleep(0.25)
    refusal(
        await etsy.refresh(tokens["refresh_token"]),
        400,
        "invalid_grant",
        "refresh_token is expired",
    )


async def test_the_seller_removing_the_app_revokes_its_tokens(
    etsy_on: Callable[..., Etsy],
) -> None:
    etsy = etsy_on()
    tokens = await etsy.authorize(client_id=KEYSTRING)
    revoked = await etsy.http.post("/_sim/oauth/revoke", json={"user_id": ME})
    assert revoked.json() == {"revoked": 1}
    refusal(await etsy.me(tokens["access_token"]), 401, "invalid_token", "access token is revoked")
    refusal(
        await etsy.refresh(tokens["refresh_token"]),
        400,
        "invalid_grant",
        "refresh_token is revoked",
    )
    # Authorising again makes a new grant that works.
    again = await etsy.authorize(client_id=KEYSTRING)
    assert (await etsy.me(again["access_token"])).status_code == 200


async def test_the_token_endpoint_refuses_what_oauth_refuses(
    etsy_on: Callable[..., Etsy],
) -> None:
    etsy = etsy_on(SIM_ETSY_STRICT_TOKENS="1")
    tokens = await etsy.authorize(client_id=KEYSTRING)
    refusal(
        await etsy.refresh(tokens["refresh_token"], client_id="another-app"),
        400,
        "invalid_grant",
        "refresh_token was issued to another client",
    )
    refusal(
        await etsy.refresh(f"{ME}.never-issued"),
        400,
        "invalid_grant",
        "refresh_token is invalid (no such token)",
    )
    refusal(await etsy.me(f"{ME}.never-issued"), 401, "invalid_token", "access token is invalid")
    code = await etsy.http.post(
        "/v3/public/oauth/token", data={"grant_type": "authorization_code", "code": "x"}
    )
    assert code.status_code == 400 and code.json()["error"] == "unsupported_grant_type"
    as_json = await etsy.http.post(
        "/v3/public/oauth/token",
        json={"grant_type": "refresh_token", "client_id": KEYSTRING, "refresh_token": "x"},
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_scopes_are_the_grants(etsy_on: Callable[..., Etsy]) -> None:
    etsy = etsy_on()
    reader = await etsy.authorize(scopes=["listings_r", "shops_r"])
    bearer = {"Authorization": f"Bearer {reader['access_token']}"}
    listings = f"/v3/application/shops/{SHOP}/listings"
    assert (await etsy.http.get(listings, headers=bearer)).status_code == 200
    write = await etsy.http.post(listings, headers=bearer, data={"title": "x"})
    refusal(write, 403, "insufficient_scope", "Insufficient scope")
    scopes = await etsy.http.post("/v3/application/scopes", data={"token": reader["access_token"]})
    assert scopes.status_code == 200 and scopes.json() == {"scopes": ["listings_r", "shops_r"]}


async def test_the_bare_keystring_is_refused_as_etsy_does(etsy_on: Callable[..., Etsy]) -> None:
    etsy = etsy_on()
    resp = await etsy.http.get("/v3/application/openapi-ping", headers={"x-api-key": KEYSTRING})
    assert resp.status_code == 403
    assert resp.json() == {"error": "Shared secret is required in x-api-key header."}
