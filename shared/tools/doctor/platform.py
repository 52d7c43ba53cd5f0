"""The platform under the stages: the broker and PostgreSQL, reached with the settings given.

Unset (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``) means ``make up`` starts its own: those
checks are skipped, saying so. Given, the broker must answer with the client settings every
service uses (``KafkaSettings.client_config``: SASL and TLS included) and hold every topic of
the registry with its partitions; PostgreSQL must accept a connection, as a role that is no
superuser (a leaked DATABASE_URL must not hand over the server), and have every migration.
The credentials key, when set, must be a valid key.
"""

from __future__ import annotations

import asyncio

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from shared.adapters.credentials import CredentialSettings
from shared.contract.topics import all_topics
from shared.platform.db import migrations
from shared.platform.errors import ConfigError
from shared.platform.settings import DatabaseSettings, KafkaSettings, load_settings
from shared.tools.doctor import Check

TIMEOUT_S = 10.0


async def checks() -> list[Check]:
    found: list[Check] = []
    try:
        kafka = load_settings(KafkaSettings)
        db = load_settings(DatabaseSettings)
    except ConfigError as exc:
        return [Check.failed("platform.settings", exc.message, "correct the settings named")]
    found += await asyncio.to_thread(_broker, kafka)
    found += await asyncio.to_thread(_database, db)
    found.append(_credentials_key())
    return found


def _broker(settings: KafkaSettings) -> list[Check]:
    if settings.kafka_bootstrap_servers is None:
        return [
            Check.skipped(
                "platform.broker",
                "KAFKA_BOOTSTRAP_SERVERS unset here: not checked (make up starts a local broker)",
            )
        ]
    admin = AdminClient({**settings.client_config(), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        return [
            Check.failed(
                "platform.broker",
                f"no broker answered at {settings.bootstrap} ({exc.args[0].name()})",
                "check KAFKA_BOOTSTRAP_SERVERS and, for a secured cluster, "
                "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD",
            )
        ]
    brokers = len(metadata.brokers)
    found = [Check.passed("platform.broker", f"{brokers} broker(s) at {settings.bootstrap}")]
    missing, short = [], []
    for spec in all_topics():
        topic = metadata.topics.get(spec.name)
        want = spec.partitions or settings.kafka_partitions
        if topic is None or topic.error is not None:
            missing.append(spec.name)
        elif len(topic.partitions) < want:
            short.append(f"{spec.name} ({len(topic.partitions)} of {want})")
    if missing or short:
        parts = []
        if missing:
            parts.append(
                f"missing: {', '.join(missing[:10])}" + (" …" if len(missing) > 10 else "")
            )
        if short:
            parts.append(f"too few partitions: {', '.join(short[:10])}")
        found.append(
            Check.failed(
                "platform.topics",
                "; ".join(parts),
                "run `python -m shared.tools.init` (it creates and grows the topics, changing "
                "nothing "
                "else)",
            )
        )
    else:
        found.append(Check.passed("platform.topics", f"all {len(all_topics())} topics present"))
    if brokers < settings.kafka_replication_factor:
        found.append(
            Check.failed(
                "platform.replication",
                f"KAFKA_REPLICATION_FACTOR is {settings.kafka_replication_factor} but the "
                f"cluster has {brokers} broker(s)",
                "lower KAFKA_REPLICATION_FACTOR or add brokers",
            )
        )
    return found


def _database(settings: DatabaseSettings) -> list[Check]:
    if settings.database_url is None:
        return [
            Check.skipped(
                "platform.database",
                "DATABASE_URL unset here: not checked (make up starts an embedded PostgreSQL)",
            )
        ]
    try:
        with psycopg.connect(settings.url, connect_timeout=int(TIMEOUT_S)) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            role = conn.execute(
                "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            applied = {
                row[0]
                for row in conn.execute(
                    "SELECT version FROM schema_migrations"
                    if _has_migrations_table(conn)
                    else "SELECT NULL WHERE false"
                )
            }
    except psycopg.Error as exc:
        # libpq's message names host and reason; it never holds the password.
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return [
            Check.failed(
                "platform.database",
                f"cannot connect: {reason}",
                "check DATABASE_URL (host, port, user, password, database) and that the server "
                "accepts connections from here",
            )
        ]
    found = [
        Check.passed("platform.database", f"PostgreSQL {version[0] if version else '?'}"),
        _role(role),
    ]
    pending = [name for number, name, _ in migrations() if number not in applied]
    if pending:
        found.append(
            Check.failed(
                "platform.migrations",
                f"{len(pending)} migration(s) not applied: {', '.join(pending[:5])}",
                "run `python -m shared.tools.init` (it applies them)",
            )
        )
    else:
        found.append(Check.passed("platform.migrations", f"all {len(migrations())} applied"))
    return found


def _role(role: tuple[object, ...] | None) -> Check:
    name = str(role[0]) if role else "?"
    if role is None or role[1] is not False:
        return Check.failed(
            "platform.database_role",
            f"the services connect as {name!r}, a superuser: anyone holding DATABASE_URL can "
            "run programs on the database server (COPY ... TO PROGRAM) and read every password",
            "create a login role with NOSUPERUSER NOCREATEDB NOCREATEROLE that owns the "
            "services' database (compose: deploy/postgres/initdb; make up makes `pod`), and "
            "put it in DATABASE_URL",
        )
    return Check.passed("platform.database_role", f"the services connect as {name!r}, no superuser")


def _has_migrations_table(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _credentials_key() -> Check:
    try:
        settings = load_settings(CredentialSettings)
        if settings.credentials_key is None:
            return Check.skipped(
                "platform.credentials_key",
                "CREDENTIALS_KEY unset: needed only for vendor grants kept in the database "
                "(Etsy's refresh token, Shopify's client credentials)",
            )
        settings.box()
    except ConfigError as exc:
        return Check.failed("platform.credentials_key", exc.message, "set a valid key")
    return Check.passed("platform.credentials_key", "a valid 256-bit key")
