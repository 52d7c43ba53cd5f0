"""The platform's preflight against the real test broker and database, misconfigured in turn."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest

from devstack.launch.ports import free_port
from devstack.launch.postgres import SERVICE_ROLE, LocalPostgres
from shared.tools.doctor import Check
from shared.tools.doctor.platform import checks
from tests.support import infra


def by_name(found: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in found}


@pytest.fixture
def configured(
    monkeypatch: pytest.MonkeyPatch, pipeline_topics: str, migrated_db: str
) -> pytest.MonkeyPatch:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", pipeline_topics)
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    monkeypatch.setenv("CREDENTIALS_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    return monkeypatch


async def test_a_reachable_broker_and_migrated_database_pass(
    configured: pytest.MonkeyPatch,
) -> None:
    found = by_name(await checks())
    for name in (
        "platform.broker",
        "platform.topics",
        "platform.database",
        "platform.migrations",
        "platform.credentials_key",
    ):
        assert found[name].status == "pass", found[name]


async def test_unset_broker_and_database_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "CREDENTIALS_KEY"):
        monkeypatch.delenv(name, raising=False)
    found = by_name(await checks())
    assert {found[n].status for n in found} == {"skip"}
    assert "make up starts" in found["platform.broker"].detail


async def test_a_broker_that_does_not_answer_fails_naming_the_settings(
    configured: pytest.MonkeyPatch,
) -> None:
    configured.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    found = by_name(await checks())
    broker = found["platform.broker"]
    assert broker.status == "fail" and "KAFKA_BOOTSTRAP_SERVERS" in (broker.fix or "")


async def test_a_wrong_database_password_fails_without_showing_it(
    configured: pytest.MonkeyPatch, migrated_db: str
) -> None:
    # The server asks every connection for its password: a wrong one is refused, and the
    # URL's password shows nowhere.
    url = urlsplit(migrated_db)
    wrong = url._replace(netloc=f"{url.username}:hunter2-secret@{url.hostname}:{url.port}")
    configured.setenv("DATABASE_URL", urlunsplit(wrong))
    found = by_name(await checks())
    db = found["platform.database"]
    assert db.status == "fail" and "password authentication failed" in db.detail
    assert "hunter2-secret" not in repr(found)


async def test_a_superuser_in_database_url_fails_with_the_fix(
    configured: pytest.MonkeyPatch, migrated_db: str
) -> None:
    configured.setenv("DATABASE_URL", migrated_db)  # the test harness's: the superuser
    role = by_name(await checks())["platform.database_role"]
    assert role.status == "fail" and "'postgres', a superuser" in role.detail
    assert "NOSUPERUSER" in (role.fix or "") and "DATABASE_URL" in (role.fix or "")
    assert (urlsplit(migrated_db).password or "\0") not in repr(role)


async def test_the_services_role_passes(configured: pytest.MonkeyPatch, migrated_db: str) -> None:
    embedded = LocalPostgres(infra.TEST_STATE, port=infra.PG_PORT)
    if not embedded.password_path(SERVICE_ROLE).exists():
        pytest.skip("a given DATABASE_URL: no embedded server with the services' role")
    configured.setenv("DATABASE_URL", embedded.url)
    role = by_name(await checks())["platform.database_role"]
    assert role.status == "pass" and "'pod', no superuser" in role.detail


async def test_a_malformed_credentials_key_fails(configured: pytest.MonkeyPatch) -> None:
    configured.setenv("CREDENTIALS_KEY", "too-short")
    key = by_name(await checks())["platform.credentials_key"]
    assert key.status == "fail" and "32 random bytes" in key.detail
