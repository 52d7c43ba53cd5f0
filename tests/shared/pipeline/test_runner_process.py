"""The runner as a real process: SIGKILL mid-batch loses nothing; SIGTERM drains and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Message

from shared.contract.events import parse_event
from tests.support.infra import read_all, read_topic, unique
from tests.support.kafka import committed, job, produce
from tests.support.stages import create_stage_topics, echo_stage, output_topic

PARTITIONS = 3
MAX_IN_FLIGHT = 10


def start_stage(bootstrap: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "BUFFER_PER_BAND": str(MAX_IN_FLIGHT),
        # With a buffer this small every resume waits for a refetch: keep those short.
        "FETCH_WAIT_MAX_MS": "100",
        "COMMIT_INTERVAL_MS": "100",
        "HEARTBEAT_INTERVAL_S": "1",
        "SHUTDOWN_GRACE_S": "20",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.stages", name],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def outputs(bootstrap: str, name: str, until: Callable[[list[Message]], bool]) -> list[Message]:
    return read_topic(bootstrap, output_topic(name), until=until, timeout=90)


def is_committed(m: Message, offsets: dict[int, int]) -> bool:
    """Whether ``m`` lies below its partition's committed offset."""
    partition, offset = m.partition(), m.offset()
    assert partition is not None and offset is not None  # set on every consumed message
    return offset < offsets.get(partition, -1)


def test_sigkill_mid_batch_loses_nothing(pipeline_topics: str, tmp_path: Path) -> None:
    bootstrap = pipeline_topics
    name = unique("crash")
    stage = echo_stage(name)
    create_stage_topics(bootstrap, stage, PARTITIONS)
    total = 400
    produce(bootstrap, stage.inputs[0], [job(f"k{i}", niche="delay:40") for i in range(total)])

    first = start_stage(bootstrap, name, tmp_path / "stage.log")
    seen = outputs(bootstrap, name, until=lambda ms: len(ms) >= 60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert len(seen) < total, "the kill must land mid-run"

    second = start_stage(bootstrap, name, tmp_path / "stage.log")
    try:
        all_out = outputs(
            bootstrap,
            name,
            until=lambda ms: len({parse_event(m.value()).job_id for m in ms}) >= total,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)

    ids_by_job: dict[str, set[str]] = defaultdict(set)
    for m in all_out:
        event = parse_event(m.value())
        ids_by_job[event.job_id].add(str(event.event_id))
    assert set(ids_by_job) == {f"k{i}" for i in range(total)}  # nothing lost
    # A redone input yields the same event id, so duplicates are recognisable downstream.
    assert all(len(ids) == 1 for ids in ids_by_job.values())
    duplicates = len(all_out) - total
    # Only the in-flight window (+ buffered + one commit interval of work) may be redone.
    assert duplicates <= 3 * MAX_IN_FLIGHT + 30, duplicates
    assert second.returncode == 0


def test_sigterm_drains_commits_and_exits_zero(pipeline_topics: str, tmp_path: Path) -> None:
    bootstrap = pipeline_topics
    name = unique("drain")
    stage = echo_stage(name)
    create_stage_topics(bootstrap, stage, PARTITIONS)
    total = 200
    produce(bootstrap, stage.inputs[0], [job(f"d{i}", niche="delay:100") for i in range(total)])

    proc = start_stage(bootstrap, name, tmp_path / "stage.log")
    outputs(bootstrap, name, until=lambda ms: len(ms) >= 20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0

    # Everything the stopped process wrote, up to the topic's end: an output committed
    # together with its input must not look missing because we stopped reading early.
    done = {parse_event(m.value()).job_id for m in read_all(bootstrap, output_topic(name))}
    offsets = committed(bootstrap, f"pod.{name}", stage.inputs[0], PARTITIONS)
    inputs = read_all(bootstrap, stage.inputs[0])
    committed_inputs = {parse_event(m.value()).job_id for m in inputs if is_committed(m, offsets)}
    assert committed_inputs
    # Every committed input has its output: the drain committed nothing unfinished.
    assert committed_inputs <= done, committed_inputs - done
    log = (tmp_path / "stage.log").read_text()
    assert "runner stopped" in log
    assert "abandoned" not in log

    # The rest is picked up by the next instance.
    again = start_stage(bootstrap, name, tmp_path / "stage.log")
    try:
        outputs(
            bootstrap,
            name,
            until=lambda ms: len({parse_event(m.value()).job_id for m in ms}) >= total,
        )
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
