"""Ctrl+C on a stage waiting for a vendor budget: the real printify stage, under its pool manager,
against the Printify simulator and the account's shared budget in PostgreSQL.

- A product waiting for a request slot of a budget blocked for ten minutes (a 429's Retry-After)
  has sent nothing: SIGTERM stops the stage within a second or two (it used to wait out the 30 s
  grace), exit 0, and the next instance makes the product, once.
- A product whose calls are under way (the simulator slowed) is finished before the stage exits,
  and not made again by the next instance.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from typing import Any

import httpx
import psutil
import psycopg

from devstack.stack import Stack
from services.printify.handler import sku_prefix
from shared.domain.budget import account_key
from tests.services.conftest import e2e_stack
from tests.support.infra import wait_for
from tests.support.pipeline import printify_books, sim_url, submit, wait_done

logger = logging.getLogger(__name__)

TOKEN = "sim-printify-token"  # what make up gives the stages with the simulator
BUDGET = f"{account_key('printify', TOKEN)}:requests"
ACCOUNT = hashlib.sha256(TOKEN.encode()).hexdigest()[:12]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def printify_worker(s: Stack) -> dict[str, Any] | None:
    workers = httpx.get(f"http://127.0.0.1:{s.settings.api_port}/workers", timeout=5).json()
    return next((w for w in workers["workers"] if w["id"] == "printify-0"), None)


def exit_codes(s: Stack) -> list[int | None]:
    """The exits the pool manager reported for printify-0, oldest first."""
    with psycopg.connect(s.database_url) as conn:
        rows = conn.execute(
            "SELECT data ->> 'exit_code' FROM worker_events WHERE kind = 'exited'"
            " AND instance_id = 'printify-0' ORDER BY occurred_at"
        ).fetchall()
    return [None if r[0] is None else int(r[0]) for r in rows]


def products_of(s: Stack, job_id: str) -> list[dict[str, Any]]:
    prefix = sku_prefix(job_id, 0, "tshirt")
    account = printify_books(s)["accounts"][ACCOUNT]
    return [p for p in account["products"] if any(k.startswith(prefix) for k in p["skus"])]


def stop_printify(s: Stack) -> float:
    """SIGTERM printify-0 (as Ctrl+C's stop does); seconds until the process is gone."""
    pid = s.kill_instance("printify-0", signal.SIGTERM)
    stopped_at = time.monotonic()
    wait_for(lambda: gone(pid), 45, "printify-0 to exit", interval=0.02)
    return time.monotonic() - stopped_at


def test_a_budget_wait_is_handed_back_at_once_and_a_call_under_way_is_finished() -> None:
    with e2e_stack("handback") as s:
        assert s.wait_ready(120)
        with psycopg.connect(s.database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO rate_budgets (name, blocked_until)"
                " VALUES (%s, now() + interval '10 minutes')"
                " ON CONFLICT (name) DO UPDATE SET blocked_until = EXCLUDED.blocked_until",
                (BUDGET,),
            )
        requests_before = printify_books(s)["accounts"][ACCOUNT]["requests"]

        parked = submit(s)
        wait_for(
            lambda: (printify_worker(s) or {}).get("inFlight") == 1,
            90,
            "printify-0 to take the product and wait for the budget",
            interval=0.2,
        )
        assert printify_books(s)["accounts"][ACCOUNT]["requests"] == requests_before
        stop_s = stop_printify(s)
        wait_for(lambda: exit_codes(s), 30, "the pool to report the exit")
        assert exit_codes(s) == [0]
        assert stop_s < 3.0, f"stopping took {stop_s:.1f}s"
        assert products_of(s, parked) == []

        # The budget frees; the pool's next printify-0 reads the product again and makes it.
        with psycopg.connect(s.database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE rate_budgets SET blocked_until = '-infinity' WHERE name = %s", (BUDGET,)
            )
        done = wait_done(s, [parked], 120)
        assert done[parked]["job"]["status"] == "completed", done[parked]["job"]
        assert len(products_of(s, parked)) == 1

        # Mid-call: every Printify request takes 1.5 s; stopped once the upload is done and the
        # product's creation is on its way, the stage finishes it before it exits.
        httpx.post(f"{sim_url(s, 'printify')}/_sim/config", json={"latency_ms": 1500}, timeout=5)
        wait_for(lambda: (printify_worker(s) or {}).get("status") == "running", 60, "restart")
        uploads = printify_books(s)["accounts"][ACCOUNT]["uploads"]
        under_way = submit(s)
        # The image's upload answered: the product's creation is the next call, 1.5 s away.
        wait_for(
            lambda: printify_books(s)["accounts"][ACCOUNT]["uploads"] > uploads,
            90,
            "the image uploaded",
            interval=0.05,
        )
        assert products_of(s, under_way) == []
        finish_s = stop_printify(s)
        assert len(products_of(s, under_way)) == 1, "the product was not made before the exit"
        assert finish_s > 1.0, "exited without waiting for the calls under way"
        wait_for(lambda: len(exit_codes(s)) == 2, 30, "the pool to report the exit")
        assert exit_codes(s) == [0, 0]
        httpx.post(f"{sim_url(s, 'printify')}/_sim/config", json={"latency_ms": 0}, timeout=5)
        done = wait_done(s, [under_way], 120)
        assert done[under_way]["job"]["status"] == "completed", done[under_way]["job"]
        assert len(products_of(s, under_way)) == 1
        assert printify_books(s)["duplicates"] == []
        logger.info("HANDBACK-FIGURES parked_stop_s=%.2f under_way_stop_s=%.2f", stop_s, finish_s)
