"""The trust boundaries under load (issue 25, item 7): 30 producers that may only submit jobs
forge events of every kind onto every topic, and 200 hostile HTTP clients hold streams, send
slowly, lie about the Host, post forms and huge bodies, probe and filter; beside them, good
jobs go through the API at a steady rate, each followed by its SSE stream.

Outcomes, not timings, are asserted: every good job completed with its own art and products,
no forged event folded or left off a dead-letter topic (unless the broker refused it), the API
answered GET /jobs/{id} and /health throughout (no pool exhaustion), and every good job's
stream carried each of its events once. The figures (including p95 of GET /jobs/{id} with and
without the attack) go to ``hostile-summary.json`` in the stack's state folder and to the
terminal.

POD_HOSTILE_SECONDS sets the attack's length (default 60; 0 runs the normal traffic alone,
which checks the harness itself). POD_HOSTILE_KINDS (comma-separated, see
tests.support.hostile.FORGE_KINDS) narrows the forgeries to a few kinds, to look at one defence
without the others' effects.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.services.conftest import e2e_stack
from tests.support.hostile import FORGE_KINDS, RARE_KINDS, attack, settle
from tests.support.pipeline import api, submitter_config

logger = logging.getLogger(__name__)

BASELINE_S = 20.0
ALL_KINDS = FORGE_KINDS + RARE_KINDS


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A stack of its own: the attack leaves dead letters and load the others do not expect."""
    with e2e_stack("hostile") as s:
        yield s


def test_good_jobs_hold_under_hostile_producers_and_clients(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    seconds = float(os.environ.get("POD_HOSTILE_SECONDS", "60"))
    kinds = os.environ.get("POD_HOSTILE_KINDS", "")
    run = attack(
        api(stack),
        submitter_config(stack),
        baseline_s=BASELINE_S,
        attack_s=seconds,
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()) or ALL_KINDS,
    )
    found = settle(run, api(stack), stack.bootstrap, stack.database_url)

    failed = found.failed_checks()
    summary = json.dumps({**found.figures, "failed_checks": failed}, indent=2, sort_keys=True)
    (stack.state_dir / "hostile-summary.json").write_text(summary)
    logger.info("hostile load figures %s", json.dumps(found.figures, sort_keys=True))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(f"hostile load figures:\n{summary}")

    assert found.figures["good_jobs"] >= BASELINE_S / 4, found.figures  # traffic did flow
    # Every check at once, each with (the first of) what it found: a failure names them all.
    assert not failed, json.dumps({k: v[:10] for k, v in failed.items()}, indent=2)
