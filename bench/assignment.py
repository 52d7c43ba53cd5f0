"""Which partitions each instance of a stage owns: does every instance get every band?

    python bench/assignment.py [--instances 3] [--partitions 6] [--protocol consumer]

Uses ``KAFKA_BOOTSTRAP_SERVERS`` or a throw-away local broker, creates the generator's input
topics (three priority bands and three delay topics), runs ``--instances`` real StageRunners of
one group with the project's assignor settings, waits until the assignment is complete and
stable, and prints a table: partitions of each topic per instance.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from confluent_kafka.admin import AdminClient

from bench.common import broker, table
from shared.contract.events import Event
from shared.contract.topics import GENERATOR, HEARTBEATS, TopicSpec, ensure_topics
from shared.pipeline.runner import MessageContext, Output, RunnerSettings, StageRunner


async def nothing(event: Event, ctx: MessageContext) -> list[Output]:
    return []


async def measure(bootstrap: str, instances: int, partitions: int, protocol: str) -> None:
    topics = [*GENERATOR.retry_topics, *GENERATOR.inputs]
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        default_partitions=partitions,
        specs=[TopicSpec(t, 3_600_000) for t in [*topics, HEARTBEATS]],
    )
    settings = RunnerSettings(
        kafka_bootstrap_servers=bootstrap,
        group_protocol=protocol,
        group_id_prefix=f"bench-{protocol}",
        heartbeat_interval_s=60,
    )
    runners = [
        StageRunner(
            stage=GENERATOR,
            handler=nothing,
            settings=settings.model_copy(update={"instance_id": f"generator-{i}"}),
        )
        for i in range(instances)
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    total = partitions * len(topics)
    stable = 0
    for _ in range(600):
        await asyncio.sleep(0.1)
        owned = [len(r.assignment()) for r in runners]
        stable = stable + 1 if sum(owned) == total and min(owned) > 0 else 0
        if stable >= 20:  # two seconds without a change
            break
    rows = []
    for r in runners:
        mine = r.assignment()
        counts = [sum(1 for t, _ in mine if t == topic) for topic in topics]
        rows.append([r.instance_id, *(str(c) for c in counts), str(len(mine))])
    short = [t.replace("jobs.requested.", "") for t in topics]
    title = f"\nprotocol={protocol} instances={instances} partitions/topic={partitions}"
    print(table(title, ["instance", *short, "total"], rows))
    for r in runners:
        r.request_stop()
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--protocol", choices=["consumer", "classic", "both"], default="both")
    args = parser.parse_args()
    protocols = ["consumer", "classic"] if args.protocol == "both" else [args.protocol]
    with broker() as bootstrap:
        for protocol in protocols:
            asyncio.run(measure(bootstrap, args.instances, args.partitions, protocol))


if __name__ == "__main__":
    main()
