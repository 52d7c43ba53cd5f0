"""The worker-pool manager run alone, as compose runs it: a broker, PostgreSQL, the vendor
simulators, ``python -m services.pool`` and the API; scaling through ``/scale``, a SIGKILLed
stage process restarted, and no stage process outliving its manager."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from devstack.stack import Stack, isolated_settings
from tests.services.api.conftest import serve
from tests.support.infra import TEST_STATE, wait_for

# Real service processes, a real broker.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def infra() -> Iterator[Stack]:
    """A broker, a database and the simulators: no services."""
    state = TEST_STATE / "pool"
    shutil.rmtree(state, ignore_errors=True)
    stack = Stack(isolated_settings(state, kafka_partitions=3))
    stack.start_infra()
    try:
        stack.vendor_env()  # starts the simulators
        yield stack
    finally:
        stack.stop()


def pool_env(infra: Stack) -> dict[str, str]:
    return {
        **os.environ,
        **infra.vendor_env(),
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "DATABASE_URL": infra.database_url,
        "POD_STATE_DIR": str(infra.state_dir),
        "POOL_LOG_DIR": str(infra.log_dir),
        "WORKER_COUNT": "1",
        "RESTART_DELAY_S": "0.5",
        "HEARTBEAT_INTERVAL_S": "1",
        "IMAGE_STORAGE_DIR": str(infra.state_dir / "images"),
    }


def start_pool(infra: Stack) -> subprocess.Popen[bytes]:
    # The child gets its own copy of the descriptor: ours is closed at once.
    with open(infra.log_dir / "pool.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.pool"], env=pool_env(infra), stdout=log, stderr=log
        )


def running(api: httpx.Client, service: str) -> list[dict[str, Any]]:
    workers = api.get("/workers").json()["workers"]
    return [w for w in workers if w["service"] == service and w["status"] == "running"]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_scale_restart_and_stop_without_make_up(infra: Stack) -> None:
    pool = start_pool(infra)
    try:
        with serve(
            kafka_bootstrap_servers=infra.bootstrap,
            database_url=infra.database_url,
            health_stages="",
        ) as api:
            wait_for(
                lambda: all(running(api, s) for s in ("pool", "generator", "printify", "monitor")),
                60,
                "the pool manager and its stages in /workers",
                interval=0.3,
            )
            assert (
                api.post("/scale", json={"service": "printify", "workerCount": 2}).status_code
                == 202
            )
            wait_for(
                lambda: len([w for w in running(api, "printify") if w["partitions"]]) == 2,
                60,
                "two printify instances sharing the partitions",
                interval=0.3,
            )
            assert (
                api.post("/scale", json={"service": "printify", "workerCount": 1}).status_code
                == 202
            )
            wait_for(
                lambda: {w["id"] for w in api.get("/workers").json()["workers"]
                         if w["service"] == "printify" and w["status"] == "running"}
                == {"printify-0"},
                60,
                "back to one printify instance",
                interval=0.3,
            )  # fmt: skip

            victim = running(api, "publisher")[0]
            os.kill(victim["pid"], signal.SIGKILL)
            wait_for(
                lambda: any(w["pid"] != victim["pid"] for w in running(api, "publisher")),
                60,
                "the killed publisher restarted",
                interval=0.3,
            )
        children = [i["pid"] for i in running_from_status(infra, pool)]
        assert len(children) == 4
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(90) == 0
        assert not any(alive(pid) for pid in children)
    finally:
        if pool.poll() is None:
            pool.kill()


def running_from_status(infra: Stack, manager: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    """The running instances in the status file of this manager (not an earlier one's)."""
    try:
        status = json.loads((infra.state_dir / "pool" / "status.json").read_text())
    except (OSError, ValueError):
        return []
    if status.get("manager_pid") != manager.pid:
        return []
    return [i for i in status["instances"] if i["running"]]


def test_stage_processes_die_with_a_killed_manager(infra: Stack) -> None:
    """A SIGKILLed manager leaves nothing behind to join the next stack's groups, and the
    next manager on the same state folder starts clean."""
    pool = start_pool(infra)
    try:
        wait_for(lambda: len(running_from_status(infra, pool)) == 4, 60, "four stage processes")
        children = [i["pid"] for i in running_from_status(infra, pool)]
        pool.kill()
        pool.wait(10)
        wait_for(lambda: not any(alive(p) for p in children), 45, "the orphans to exit")
    finally:
        if pool.poll() is None:
            pool.kill()
    again = start_pool(infra)
    try:
        wait_for(lambda: len(running_from_status(infra, again)) == 4, 60, "a fresh pool")
        assert not {i["pid"] for i in running_from_status(infra, again)} & set(children)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(90) == 0


def test_scale_is_409_where_the_platform_scales(infra: Stack) -> None:
    with serve(
        kafka_bootstrap_servers=infra.bootstrap,
        database_url=infra.database_url,
        health_stages="",
        scaling="platform",
    ) as api:
        # A body that is not a count is refused before anything else (found by the fuzzer:
        # JSON false was taken as 0 workers).
        for bad in (False, "2", 2.5, None):
            refused = api.post("/scale", json={"service": "generator", "workerCount": bad})
            assert refused.status_code == 422 and "workerCount" in refused.text, refused.text
        resp = api.post("/scale", json={"service": "generator", "workerCount": 2})
        assert resp.status_code == 409
        assert "platform" in resp.json()["detail"]
        assert api.post("/workers/generator-0/restart").status_code == 409
