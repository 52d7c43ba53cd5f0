"""Test access to the real broker and database: the same launchers `make up` uses.

When ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` are set, those are used and nothing is
started. Otherwise a broker and a PostgreSQL are started once per test session in
``.state/test`` on their own ports (so a running ``make up`` is left alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Message, TopicPartition
from psycopg.conninfo import make_conninfo

from devstack.launch.kafka import LocalKafka, SaslListener
from devstack.launch.ports import free_port
from devstack.launch.postgres import LocalPostgres
from shared.pipeline.acls import ADMIN
from shared.platform.db import migrate
from shared.platform.settings import REPO_ROOT

__all__ = ["free_port"]  # re-exported for the tests

TEST_STATE = REPO_ROOT / ".state" / "test"
KAFKA_PORT = int(os.environ.get("POD_TEST_KAFKA_PORT", "19092"))
PG_PORT = int(os.environ.get("POD_TEST_PG_PORT", "15433"))


def fresh_state() -> Path:
    """Wipe the test state folder so every session starts from an empty broker and database."""
    for sub in ("kafka", "postgres"):
        path = TEST_STATE / sub
        if path.exists():
            # Stop leftovers from a killed session before removing their files.
            if sub == "postgres":
                LocalPostgres(TEST_STATE, port=PG_PORT).stop("immediate")
            shutil.rmtree(path, ignore_errors=True)
    TEST_STATE.mkdir(parents=True, exist_ok=True)
    return TEST_STATE


# The session broker's super user on its SASL listener (the password is made per session).
KAFKA_ADMIN_PASSWORD = secrets.token_urlsafe(18)


def session_sasl() -> SaslListener:
    """The session broker's SASL/SCRAM listener (port ``POD_TEST_KAFKA_PORT`` + 2), where ACLs
    are enforced: the tests of the principals' rights log in there (``shared.pipeline.acls``)."""
    return SaslListener(port=KAFKA_PORT + 2, users={ADMIN: KAFKA_ADMIN_PASSWORD}, admin=ADMIN)


def start_kafka() -> LocalKafka:
    """The session broker (caller stops it). Its consumer groups beat every 2 s, not 5: the
    tests start, scale and stop hundreds of groups, and each rebalance step waits for a beat.

    It enforces ACLs as `make up`'s does, on its SASL listener; its loopback PLAINTEXT listener,
    which the harness and most tests use, is anonymous and a super user."""
    return LocalKafka(
        TEST_STATE,
        port=KAFKA_PORT,
        controller_port=KAFKA_PORT + 1,
        heap="512m",
        group_heartbeat_ms=2000,
        sasl=session_sasl(),
    ).start()


def start_postgres() -> LocalPostgres:
    """The session database (caller stops it)."""
    return LocalPostgres(TEST_STATE, port=PG_PORT).start()


def unique(prefix: str) -> str:
    """A name no earlier test used: tests share one broker and must not see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def until(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """:func:`wait_for` on the event loop (it sleeps without blocking the loop); ``predicate``
    may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Wait until ``predicate()`` is truthy, or fail naming ``what``; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[Message]], bool], timeout: float = 30.0
) -> list[Message]:
    """Read ``topic`` from the start (fresh group) until ``until(messages)`` or fail."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(out):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s reading {topic}: {len(out)} messages"
                )
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Message]:
    """Every message on ``topic`` right now: read from the start up to each partition's end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in md.topics[topic].partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[Message] = []
        seen = {p: 0 for p in ends}
        deadline = time.monotonic() + timeout
        while any(seen[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic} to its end")
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
                    partition, offset = msg.partition(), msg.offset()
                    assert partition is not None and offset is not None  # set on every message
                    seen[partition] = offset + 1
        return out
    finally:
        consumer.close()


@contextlib.contextmanager
def migrated_database(database_url: str, prefix: str) -> Iterator[str]:
    """A database of its own beside ``database_url``'s, migrated, dropped on leaving (for a
    test that fills it, drops its partitions or is a second deployment)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_conninfo(database_url, dbname=name)
        migrate(url)
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
