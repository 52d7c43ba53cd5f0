"""One Printify budget for the whole deployment: three printify and two publisher instances,
each told the account's limit, against a Printify limited to 40 requests per 20 s window (the
600-a-minute rule, scaled down so that the backlog outlasts a window quickly)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devstack.stack import Stack, isolated_settings
from tests.support.infra import TEST_STATE, wait_for
from tests.support.pipeline import api, sim_url, stack_env, submit, wait_done
from tests.support.rates import busiest_window, share_used

RPM = 40  # requests per WINDOW_S
WINDOW_S = 20.0
JOBS = 10  # ~6 requests each (upload, create, price, publish, ...): about a window and a half


@pytest.fixture(scope="module")
def budget_stack() -> Iterator[Stack]:
    state = TEST_STATE / "budget"
    shutil.rmtree(state, ignore_errors=True)
    settings = isolated_settings(
        state,
        kafka_partitions=3,
        worker_count_printify=3,
        worker_count_publisher=2,
    )
    env = {
        **stack_env(state, 64),
        "SIM_PRINTIFY_RPM": str(RPM),
        "SIM_PRINTIFY_RATE_WINDOW_S": str(WINDOW_S),
        "PRINTIFY_REQUESTS_PER_MINUTE": str(RPM),
        "PRINTIFY_RATE_WINDOW_S": str(WINDOW_S),
        "SIM_LATENCY_MS": "0",
        "SIM_FAILURE_RATE": "0",
    }
    stack = Stack(settings, extra_env=env).start()
    try:
        wait_for(lambda: _healthy(stack), 90, "the stack with five Printify callers", interval=0.5)
        yield stack
    finally:
        stack.stop()


def _healthy(stack: Stack) -> bool:
    try:
        workers = httpx.get(f"{api(stack)}/workers", timeout=5).json()["workers"]
    except (httpx.HTTPError, KeyError, ValueError):
        return False
    live = [w for w in workers if w["status"] == "running" and w["partitions"]]
    return (
        sum(w["service"] == "printify" for w in live) == 3
        and sum(w["service"] == "publisher" for w in live) == 2
        and any(w["service"] == "generator" for w in live)
    )


def test_five_callers_share_one_account_budget(budget_stack: Stack) -> None:
    stack = budget_stack
    with ThreadPoolExecutor(8) as pool:
        ids = list(
            pool.map(
                lambda i: submit(
                    stack, theme=f"budget {i}", productTypes=["mug"], autoPublish=True
                ),
                range(JOBS),
            )
        )
    results = wait_done(stack, ids, timeout=300)
    assert {r["job"]["detailedStatus"] for r in results.values()} == {"completed"}

    printify = sim_url(stack, "printify")
    account = hashlib.sha256(b"sim-printify-token").hexdigest()[:12]
    books = httpx.get(f"{printify}/_sim/books", timeout=5).json()["accounts"][account]
    times = sorted(httpx.get(f"{printify}/_sim/request_times", timeout=5).json()[account])
    used = share_used(times, RPM, WINDOW_S)
    busiest = busiest_window(times, WINDOW_S)
    print(
        f"BUDGET-FIGURES requests={len(times)} rate_limited={books['rate_limited']} "
        f"busiest_window={busiest} used={used:.1%} span_s={times[-1] - times[0]:.1f}"
    )
    assert books["rate_limited"] == 0
    assert busiest <= RPM
    assert times[-1] - times[0] > WINDOW_S, "the work must have waited for the budget"
    assert used >= 0.9
