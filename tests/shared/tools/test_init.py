"""``python -m shared.tools.init`` against a broker that wants SASL: a managed cluster (MSK,
Confluent Cloud, Aiven, Strimzi) accepts nothing else, so init must build its clients from the whole
``KafkaSettings.client_config()`` (protocol, mechanism, user, password), not the bootstrap list.

One local node with a ``SASL_PLAINTEXT`` listener (SCRAM-SHA-512, the user created at format
time as KRaft requires) serves every test here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from devstack.launch.kafka import LocalKafka, SaslListener
from shared.contract.topics import all_topics
from tests.support.infra import TEST_STATE, free_port

USER = "pod-engine"
PASSWORD = "s3cret-Zq8vY2-scram"


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[LocalKafka]:
    state = TEST_STATE / "sasl"
    shutil.rmtree(state, ignore_errors=True)
    broker = LocalKafka(
        state,
        port=free_port(),
        controller_port=free_port(),
        partitions=2,
        heap="384m",
        sasl=SaslListener(port=free_port(), users={USER: PASSWORD}),
    ).start()
    try:
        yield broker
    finally:
        broker.stop()


def run_init(broker: LocalKafka, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert broker.sasl is not None
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_", "CONFIG_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "shared.tools.init"],
        env={
            **base,
            "KAFKA_BOOTSTRAP_SERVERS": broker.sasl.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_PARTITIONS": "2",
            "DATABASE_URL": database_url,
            "INIT_KAFKA_WAIT_S": "30",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_init_creates_the_topics_through_the_sasl_listener(
    sasl_broker: LocalKafka, database_url: str
) -> None:
    done = run_init(sasl_broker, database_url, KAFKA_SASL_PASSWORD=PASSWORD)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert PASSWORD not in output
    # Every topic of the registry is there (read through the node's plaintext listener).
    existing = AdminClient({"bootstrap.servers": sasl_broker.bootstrap}).list_topics(timeout=10)
    missing = {spec.name for spec in all_topics()} - set(existing.topics)
    assert not missing, missing


def test_a_wrong_password_fails_at_once_naming_the_problem_not_the_password(
    sasl_broker: LocalKafka, database_url: str
) -> None:
    wrong = "not-the-Password-7731"
    started = time.monotonic()
    done = run_init(sasl_broker, database_url, KAFKA_SASL_PASSWORD=wrong)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    # Refused credentials do not change by waiting: no waiting out INIT_KAFKA_WAIT_S (30 s).
    assert took < 20, took
    assert "refused" in output and "KAFKA_SASL_PASSWORD" in output, output
    assert wrong not in output and PASSWORD not in output
    assert "Traceback" not in output


def test_a_plaintext_client_at_a_sasl_listener_times_out_saying_what_to_check(
    sasl_broker: LocalKafka, database_url: str
) -> None:
    done = run_init(
        sasl_broker,
        database_url,
        KAFKA_SECURITY_PROTOCOL="",
        KAFKA_SASL_MECHANISM="",
        KAFKA_SASL_USERNAME="",
        INIT_KAFKA_WAIT_S="3",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "KAFKA_SECURITY_PROTOCOL" in output and "Traceback" not in output, output
