"""Hostile-load benchmark: what 30 forging producers and 200 hostile HTTP clients do to normal
traffic, and what the stack made of the forged events.

    python bench/hostile.py [--seconds 60] [--baseline 20] [--producers 30] [--clients 200]
                            [--submit-every 2]

Starts its own stack (broker, PostgreSQL, simulators, the pool manager and its stages, the API)
in a temp folder, runs the normal traffic alone for ``--baseline`` seconds, then beside the
attack for ``--seconds`` (tests/support/hostile.py, as tests/services/test_hostile_e2e.py does),
waits for the good jobs and the dead letters, and prints: good jobs completed, forged events
sent / refused by the broker / dead-lettered / folded, hostile HTTP requests by outcome, and
p95 of GET /jobs/{id} with and without the attack. The forgers use the stack's
``submitter.properties`` when it has one (the submitter principal), else its plain listener.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import table
from devstack.stack import Stack, isolated_settings
from tests.support.hostile import attack, settle
from tests.support.infra import wait_for
from tests.support.pipeline import api, api_up, stack_env, submitter_config


def run(seconds: float, baseline: float, producers: int, clients: int, every: float) -> None:
    with tempfile.TemporaryDirectory(prefix="pod-bench-") as tmp:
        state = Path(tmp)
        settings = isolated_settings(state, kafka_partitions=3)
        env = {
            **stack_env(state, 256),
            "MAX_IN_FLIGHT": "8",
            "SIM_LATENCY_MS": "0",
            "SIM_FAILURE_RATE": "0",
            "LOG_LEVEL": "WARNING",
        }
        stack = Stack(settings, extra_env=env).start()
        try:
            wait_for(lambda: api_up(stack), 120, "the API to answer /health", interval=0.2)
            stack.supervise_in_background(0.2)
            done = attack(
                api(stack),
                submitter_config(stack),
                baseline_s=baseline,
                attack_s=seconds,
                producers=producers,
                clients=clients,
                submit_every=every,
            )
            found = settle(done, api(stack), stack.bootstrap, stack.database_url)
        finally:
            stack.stop()
    f = found.figures
    rows = [
        ["attack (s)", f"{f['attack_seconds']:g}"],
        ["good jobs completed / submitted", f"{f['good_jobs_completed']} / {f['good_jobs']}"],
        ["good jobs intact (own art, products)", str(f["good_jobs_intact"])],
        ["forged events sent", str(f["forged_sent"])],
        ["  refused by the broker", str(f["forged_refused_by_broker"])],
        ["  accepted", str(f["forged_accepted"])],
        ["  dead-lettered", str(f["forged_dead_lettered"])],
        ["  folded (must be 0)", str(f["forged_folded"])],
        ["hostile HTTP requests", str(f["http_hostile_requests"])],
        ["GET /jobs/{id} p95 ms, no attack", str(f["get_job_p95_ms_baseline"])],
        ["GET /jobs/{id} p95 ms, under attack", str(f["get_job_p95_ms_attack"])],
        ["SSE reconnects of good jobs", str(f["sse_reconnects"])],
    ]
    print(table(f"Hostile load ({producers} producers, {clients} clients)", ["measure", "value"],
                rows))  # fmt: skip
    print()
    kinds = [
        [kind, *(str(c.get(k, 0)) for k in ("sent", "accepted")),
         ", ".join(f"{k} {n}" for k, n in c.items() if k.startswith("refused")) or "-"]
        for kind, c in f["forged_by_kind"].items()
    ]  # fmt: skip
    print(table("Forged events by kind", ["kind", "sent", "accepted", "refused"], kinds))
    print()
    http = [
        [kind, ", ".join(f"{o}: {n}" for o, n in outcomes.items())]
        for kind, outcomes in f["http_hostile_by_outcome"].items()
    ]
    print(table("Hostile HTTP requests by outcome", ["client", "outcomes"], http))
    failed = found.failed_checks()
    print()
    print("checks that failed:" if failed else "every check held")
    if failed:
        print(json.dumps({k: v[:10] for k, v in failed.items()}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the attack")
    parser.add_argument("--baseline", type=float, default=20.0, help="normal traffic alone")
    parser.add_argument("--producers", type=int, default=30)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--submit-every", type=float, default=2.0, help="seconds between jobs")
    args = parser.parse_args()
    run(args.seconds, args.baseline, args.producers, args.clients, args.submit_every)


if __name__ == "__main__":
    main()
