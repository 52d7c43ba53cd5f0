"""``GET /doctor`` and ``pod doctor``: the same checks, admin only over the API, exit code 0 only
when nothing failed."""

from __future__ import annotations

import json

import httpx
import pytest

from devstack.launch.ports import free_port
from shared.tools.cli import main
from tests.services.api.conftest import ADMIN_KEY, API_KEY


@pytest.fixture
def broken_database(monkeypatch: pytest.MonkeyPatch, migrated_db: str) -> None:
    """The settings the checks read (this process's environment) name a database that does not
    exist; nothing else is configured."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "CLAUDE_API_KEY", "CREDENTIALS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", migrated_db.rsplit("/", 1)[0] + "/no_such_database")


def test_the_doctor_is_for_admin_keys(api_roles: httpx.Client) -> None:
    assert api_roles.get("/doctor").status_code == 401
    normal = api_roles.get("/doctor", headers={"Authorization": f"Bearer {API_KEY}"})
    assert normal.status_code == 403


def test_the_api_reports_a_failing_check(api_roles: httpx.Client, broken_database: None) -> None:
    resp = api_roles.get("/doctor", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status_code == 200
    body = resp.json()
    checks = {c["name"]: c for c in body["checks"]}
    assert body["ok"] is False
    assert checks["platform.database"]["status"] == "fail"
    assert checks["platform.broker"]["status"] == "skip"


def test_pod_doctor_exits_1_on_a_failure_and_0_when_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], broken_database: None
) -> None:
    assert main(["--json", "doctor"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in body["checks"] if c["status"] == "fail"} == {"platform.database"}
    monkeypatch.delenv("DATABASE_URL")
    assert main(["--json", "doctor"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_pod_doctor_api_asks_the_running_api(
    api_roles: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    broken_database: None,
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api_roles.base_url))
    monkeypatch.setenv("POD_API_KEY", ADMIN_KEY)
    assert main(["--json", "doctor", "--api"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    monkeypatch.setenv("POD_API_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["--json", "doctor", "--api"]) == 2  # the API cannot be reached
