"""Topics, migrations and settings against the real broker and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from shared.contract.topics import TopicSpec, all_topics, ensure_topics
from shared.platform.db import migrate, migrations
from shared.platform.errors import ConfigError
from shared.platform.settings import KafkaSettings, load_settings
from tests.support.infra import unique


def test_registry_topics_exist_with_their_layout(pipeline_topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": pipeline_topics})
    md = admin.list_topics(timeout=10)
    for spec in all_topics():
        assert spec.name in md.topics, spec.name
        assert len(md.topics[spec.name].partitions) == 6
    # Running it again changes nothing.
    again = ensure_topics(admin, default_partitions=6)
    assert set(again.values()) == {"ok"}
    names = set(again)
    for required in (
        "jobs.requested.high",
        "jobs.requested.normal",
        "jobs.requested.low",
        "images.generated",
        "products.created",
        "published",
        "jobs.requested.retry.1",
        "jobs.requested.dlq",
        "images.generated.dlq",
        "products.created.dlq",
    ):
        assert required in names


def test_too_few_partitions_are_grown(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    spec = TopicSpec(unique("grow"), 3_600_000)
    assert ensure_topics(admin, default_partitions=2, specs=[spec]) == {spec.name: "created"}
    assert ensure_topics(admin, default_partitions=4, specs=[spec]) == {spec.name: "grown 2->4"}
    md = admin.list_topics(spec.name, timeout=10)
    assert len(md.topics[spec.name].partitions) == 4


def test_migrations_apply_once_and_rerun_cleanly(database_url: str) -> None:
    first = migrate(database_url)
    second = migrate(database_url)
    assert second == []
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='public'"
            )
        }
    assert versions == [v for v, _, _ in migrations()]
    assert {"jobs", "images", "products", "job_events", "workers"} <= tables
    assert len(first) in (0, len(versions))  # 0 when another test migrated first


def test_settings_from_env_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "pod.json"
    cfg.write_text(json.dumps({"KAFKA_PARTITIONS": 12, "kafka_port": 9999}))
    monkeypatch.setenv("CONFIG_PATH", str(cfg))
    monkeypatch.setenv("KAFKA_PORT", "19999")  # the environment wins over the file
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = load_settings(KafkaSettings)
    assert s.kafka_partitions == 12
    assert s.bootstrap == "127.0.0.1:19999"


def test_invalid_setting_names_key_and_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PARTITIONS", "0")
    with pytest.raises(ConfigError, match="KAFKA_PARTITIONS: Input should be greater than"):
        load_settings(KafkaSettings)


def test_bad_config_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "broken.json"
    cfg.write_text("{nope")
    monkeypatch.setenv("CONFIG_PATH", str(cfg))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(KafkaSettings)


def test_secret_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2-secret")
    s = load_settings(KafkaSettings)
    assert "hunter2-secret" not in repr(s)
    assert s.client_config()["sasl.password"] == "hunter2-secret"
