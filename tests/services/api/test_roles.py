"""Roles: API_KEYS read and submit; ADMIN_API_KEYS also scale, restart and replay."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from services.api.auth import KeyRing, label_of
from services.api.settings import ApiSettings
from shared.pipeline.asyncapi import render_asyncapi
from tests.services.api.conftest import ADMIN_KEY, API_KEY, serve
from tests.services.api.test_api import job_body

ADMIN_ROUTES = [
    ("POST", "/scale", {"workerCount": 1}),
    ("POST", "/workers/generator-0/restart", None),
    ("POST", "/dlq/replay", {"stage": "printify"}),
]
DOCS = ["/openapi.json", "/asyncapi.json", "/docs", "/redoc"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_a_normal_key_is_403_on_admin_routes(
    api_roles: httpx.Client, method: str, path: str, body: object
) -> None:
    resp = api_roles.request(method, path, json=body, headers=bearer(API_KEY))
    assert resp.status_code == 403, resp.text
    assert resp.json() == {
        "error": "forbidden",
        "detail": "this operation needs an admin key (one of ADMIN_API_KEYS)",
    }


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_no_key_or_a_wrong_key_is_401_on_admin_routes(
    api_roles: httpx.Client, method: str, path: str, body: object
) -> None:
    for headers in ({}, bearer("nope"), bearer(ADMIN_KEY + "x"), {"Authorization": ADMIN_KEY}):
        resp = api_roles.request(method, path, json=body, headers=headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.json()["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_an_admin_key_gets_past_authorisation(
    api_roles: httpx.Client, method: str, path: str, body: object
) -> None:
    # What follows depends on the deployment (no pool manager runs in these tests: 503; no
    # such worker: 404 ...): only that it is neither 401 nor 403.
    resp = api_roles.request(method, path, json=body, headers=bearer(ADMIN_KEY))
    assert resp.status_code not in (401, 403), resp.text


def test_an_admin_key_does_what_a_normal_key_does(api_roles: httpx.Client) -> None:
    for key in (API_KEY, ADMIN_KEY):
        accepted = api_roles.post("/jobs", json=job_body(), headers=bearer(key))
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["jobId"]
        assert api_roles.get(f"/jobs/{job_id}", headers=bearer(key)).status_code == 200
        for path in ("/jobs", "/dlq", "/stats", "/alerts", "/workers", "/dashboard"):
            assert api_roles.get(path, headers=bearer(key)).status_code == 200, path


def test_docs_and_schema_need_a_key_when_auth_is_on(api_roles: httpx.Client) -> None:
    for path in DOCS:
        assert api_roles.get(path).status_code == 401, path
        assert api_roles.get(path, headers=bearer("wrong")).status_code == 401, path
        assert api_roles.get(path, headers=bearer(API_KEY)).status_code == 200, path
        assert api_roles.get(path, headers=bearer(ADMIN_KEY)).status_code == 200, path
    spec = api_roles.get("/openapi.json", headers=bearer(API_KEY)).json()
    scale = spec["paths"]["/scale"]["post"]["responses"]
    assert {"401", "403", "413", "422", "503"} <= set(scale)
    # /health stays public.
    assert api_roles.get("/health").status_code == 200


def test_docs_are_public_when_auth_is_off(api: httpx.Client) -> None:
    for path in DOCS:
        assert api.get(path).status_code == 200, path


def test_the_asyncapi_document_is_served_outside_the_openapi_schema(api: httpx.Client) -> None:
    resp = api.get("/asyncapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    doc = resp.json()
    assert doc["asyncapi"] == "3.0.0"
    assert doc == render_asyncapi()
    assert "/asyncapi.json" not in api.get("/openapi.json").json()["paths"]


def test_the_asyncapi_document_needs_a_key_when_auth_is_on(api_roles: httpx.Client) -> None:
    resp = api_roles.get("/asyncapi.json")
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "unauthorized"
    doc = api_roles.get("/asyncapi.json", headers=bearer(API_KEY)).json()
    assert doc["asyncapi"] == "3.0.0"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_nothing_from_another_host(api: httpx.Client, page: str) -> None:
    html = api.get(page).text
    # Every script, style, icon and font the page names is the API's own.
    refs = re.findall(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']""", html)
    assert refs and all(r.startswith("/") for r in refs), refs
    assert "cdn." not in html and "fonts.googleapis" not in html
    for ref in refs:
        if ref.startswith("/docs-assets/"):
            got = api.get(ref)
            assert got.status_code == 200 and len(got.content) > 1000, ref


def test_only_admin_keys_set_turns_auth_on_for_admins_only(
    pipeline_topics: str, migrated_db: str
) -> None:
    with serve(
        kafka_bootstrap_servers=pipeline_topics, database_url=migrated_db, admin_api_keys=ADMIN_KEY
    ) as client:
        assert client.get("/jobs").status_code == 401
        assert client.get("/jobs", headers=bearer(API_KEY)).status_code == 401
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/jobs", headers=bearer(ADMIN_KEY)).status_code == 200
        resp = client.post("/jobs", json=job_body(), headers=bearer(ADMIN_KEY))
        assert resp.status_code == 202, resp.text


def test_keys_are_never_echoed_or_logged(
    pipeline_topics: str, migrated_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        api_keys=API_KEY,
        admin_api_keys=ADMIN_KEY,
    ) as client:
        for key in (API_KEY, ADMIN_KEY, "wrong"):
            for method, path, body in [*ADMIN_ROUTES, ("POST", "/jobs", job_body())]:
                resp = client.request(method, path, json=body, headers=bearer(key))
                seen.append(resp.text + str(resp.headers))
    for key in (API_KEY, ADMIN_KEY):
        assert all(key not in text for text in seen)
        assert key not in caplog.text


def test_empty_key_lists_mean_no_authentication() -> None:
    settings = ApiSettings(api_keys="", admin_api_keys=" ")
    assert settings.api_keys is None and settings.admin_api_keys is None
    assert not settings.auth_enabled()
    assert not KeyRing.from_settings(settings, b"secret").enabled
    # Keys are secrets in the settings object too.
    shown = repr(ApiSettings(api_keys=API_KEY, admin_api_keys=ADMIN_KEY))
    assert API_KEY not in shown and ADMIN_KEY not in shown


def test_keyring_roles() -> None:
    ring = KeyRing.from_settings(
        ApiSettings(api_keys=f"{API_KEY},both", admin_api_keys=f"{ADMIN_KEY}, both"), b"s"
    )
    normal, admin, both = ring.lookup(API_KEY), ring.lookup(ADMIN_KEY), ring.lookup("both")
    assert normal is not None and not normal.admin and normal.principal == label_of(API_KEY, b"s")
    assert admin is not None and admin.admin
    assert both is not None and both.admin  # listed in both: the larger role
    assert ring.lookup("") is None and ring.lookup(API_KEY[:-1]) is None
