"""The broker enforces who may write what (shared.pipeline.acls): the ACL table follows the
registry's operations, and on a broker with SASL/SCRAM and the StandardAuthorizer (the session
broker's SASL listener) each principal can write exactly the topics its service sends to, read
exactly its inputs under its own consumer group, and the ``submitter`` nothing but job requests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from shared.contract.topics import (
    CONTROL,
    JOBS_BY_PRIORITY,
    STAGES,
    BrokerAuthError,
    all_topics,
    wait_for_broker,
)
from shared.pipeline import acls
from shared.pipeline.acls import SUBMITTER, Acl, acl_table, apply_acls, ensure_users, stage_group
from shared.pipeline.asyncapi import operations
from tests.support import infra

TOPICS = [t.name for t in all_topics()]
Config = dict[str, str | int | float | bool]


def sends(principal: str) -> set[str]:
    return {o.topic for o in operations() if o.service == principal and o.action == "send"}


def receives(principal: str) -> set[str]:
    return {o.topic for o in operations() if o.service == principal and o.action == "receive"}


def granted(principal: str, operation: str) -> set[str]:
    return {
        a.name for a in acl_table()[principal] if a.resource == "topic" and a.operation == operation
    }


# ------------------------------------------------------------------------------- the table


def test_every_service_of_the_registry_has_a_principal_and_nothing_else_does() -> None:
    services = {o.service for o in operations()}
    assert set(acl_table()) == services | {SUBMITTER}
    assert acls.ADMIN not in acl_table()  # the super user needs no ACL


@pytest.mark.parametrize("principal", sorted({o.service for o in operations()}))
def test_a_service_writes_and_reads_exactly_what_operations_say(principal: str) -> None:
    assert granted(principal, "write") == sends(principal)
    # The API reads every topic besides (the Topics page), by assignment: no group right.
    inspected = {t.name for t in all_topics()} if principal == acls.API else set()
    assert granted(principal, "read") == receives(principal) | inspected
    # No principal may do anything but read, write and describe topics, read or describe
    # groups and write idempotently: no create, delete, alter, or ALL.
    assert {a.operation for a in acl_table()[principal]} <= {
        "read",
        "write",
        "describe",
        "idempotent_write",
    }


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_reads_with_its_own_group_only(stage: str) -> None:
    groups = {a.name for a in acl_table()[stage] if a.resource == "group" and a.operation == "read"}
    assert groups == {stage_group(stage)}


def test_the_submitter_may_write_job_requests_and_nothing_else() -> None:
    assert sorted(acl_table()[SUBMITTER]) == sorted(
        {Acl("topic", t, op) for t in JOBS_BY_PRIORITY for op in ("write", "describe")}
    )


def test_only_the_api_may_command_the_pool() -> None:
    writers = {p for p, table in acl_table().items() if Acl("topic", CONTROL, "write") in table}
    assert writers == {"api"}


# ------------------------------------------------------------------------------ the broker


@pytest.fixture(scope="module")
def secured(pipeline_topics: str) -> Iterator[dict[str, str]]:
    """The session broker's SASL listener with every principal made and the table applied;
    yields principal -> password."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("a given cluster: its users and ACLs are its operator's")
    sasl = infra.session_sasl()
    admin = AdminClient(sasl.admin_config())
    passwords = {p: secrets.token_urlsafe(12) for p in acls.principals()}
    ensure_users(admin, passwords)
    apply_acls(admin)
    yield passwords


def login(principal: str, password: str) -> Config:
    return {
        **infra.session_sasl().admin_config(),
        "sasl.username": principal,
        "sasl.password": password,
    }


def produce_everywhere(config: Config) -> dict[str, KafkaError | None]:
    """Topic -> the delivery error of one message produced to it (None: delivered), from an
    idempotent producer as the services use."""
    outcome: dict[str, KafkaError | None] = {}
    producer = Producer(
        {**config, "enable.idempotence": True, "acks": "all", "message.timeout.ms": 20_000}
    )
    for topic in TOPICS:
        producer.produce(
            topic,
            b"{}",
            key=b"acl-test",
            on_delivery=lambda err, msg: outcome.__setitem__(str(msg.topic()), err),
        )
    infra.wait_for(
        lambda: producer.flush(0.2) == 0 and len(outcome) == len(TOPICS),
        30,
        "every delivery report",
    )
    return outcome


def test_the_submitter_is_refused_on_every_topic_but_job_requests(
    secured: dict[str, str],
) -> None:
    outcome = produce_everywhere(login(SUBMITTER, secured[SUBMITTER]))
    delivered = {t for t, err in outcome.items() if err is None}
    refused = {
        t
        for t, err in outcome.items()
        if err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    }
    assert delivered == set(JOBS_BY_PRIORITY)
    assert refused == set(TOPICS) - set(JOBS_BY_PRIORITY), outcome


@pytest.mark.parametrize("principal", sorted({o.service for o in operations()}))
def test_a_service_may_write_only_where_it_sends(secured: dict[str, str], principal: str) -> None:
    outcome = produce_everywhere(login(principal, secured[principal]))
    delivered = {t for t, err in outcome.items() if err is None}
    refused = {
        t
        for t, err in outcome.items()
        if err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    }
    assert delivered == sends(principal)
    assert refused == set(TOPICS) - sends(principal), outcome


def read_from_start(
    config: Config, group: str, topics: list[str], *, subscribe: bool = False
) -> dict[str, KafkaError | None]:
    """Topic -> what reading its partition 0 from the start answers (None: a message came);
    ``subscribe``: as a member of ``group`` (librdkafka reports a topic it may not describe
    only to a subscriber)."""
    consumer = Consumer(
        {**config, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    outcome: dict[str, KafkaError | None] = {}
    try:
        if subscribe:
            consumer.subscribe(topics)
        else:
            consumer.assign([TopicPartition(t, 0, 0) for t in topics])

        def read() -> bool:
            for msg in consumer.consume(100, 0.2):
                error, topic = msg.error(), msg.topic()
                if topic is not None and (
                    error is None or error.code() != KafkaError._PARTITION_EOF
                ):
                    outcome.setdefault(topic, error)
            return set(outcome) >= set(topics)

        infra.wait_for(read, 30, f"a message or a refusal on each of {topics}")
        if all(e is None for e in outcome.values()):
            # Its position, committed where its group keeps it.
            consumer.commit(asynchronous=False)
        return outcome
    finally:
        consumer.close()


def group_offsets_error(config: Config, group: str) -> KafkaError | None:
    """What asking for ``group``'s committed offsets answers (None: they came)."""
    admin = AdminClient(config)
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    try:
        future.result(timeout=20)
    except KafkaException as exc:
        return exc.args[0] if isinstance(exc.args[0], KafkaError) else None
    return None


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_reads_its_inputs_under_its_group_and_nothing_else(
    secured: dict[str, str], pipeline_topics: str, stage: str
) -> None:
    # Something to read on every topic (partition 0), produced by the harness.
    harness = Producer({"bootstrap.servers": pipeline_topics})
    for topic in TOPICS:
        harness.produce(topic, b"{}", partition=0)
    assert harness.flush(20) == 0
    config = login(stage, secured[stage])
    inputs = sorted(receives(stage))
    assert read_from_start(config, stage_group(stage), inputs) == dict.fromkeys(inputs)
    assert group_offsets_error(config, stage_group(stage)) is None
    # Another stage's group: refused, unless it may describe it (the monitor's lag).
    other = next(s for s in sorted(STAGES) if s != stage)
    err = group_offsets_error(config, stage_group(other))
    if Acl("group", stage_group(other), "describe") in acl_table()[stage]:
        assert err is None
    else:
        assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    # Topics it does not read: refused (one consumer each: librdkafka reports one fetch error
    # per response).
    for foreign in [t for t in TOPICS if t not in receives(stage)][:2]:
        outcome = read_from_start(config, stage_group(stage), [foreign], subscribe=True)[foreign]
        assert outcome is not None, foreign
        assert outcome.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, outcome


def test_anonymous_and_wrong_password_clients_get_nothing_at_the_sasl_listener(
    secured: dict[str, str],
) -> None:
    sasl = infra.session_sasl()
    with pytest.raises(TimeoutError):
        wait_for_broker({"bootstrap.servers": sasl.bootstrap}, timeout=4)
    with pytest.raises(BrokerAuthError) as refused:
        wait_for_broker(login(SUBMITTER, "not-" + secured[SUBMITTER]), timeout=15)
    assert secured[SUBMITTER] not in str(refused.value)


def test_applying_the_table_again_changes_nothing(secured: dict[str, str]) -> None:
    admin = AdminClient(infra.session_sasl().admin_config())
    # The first application's bindings become visible through the metadata log: wait for them.
    infra.wait_for(
        lambda: apply_acls(admin) == {"created": 0, "deleted": 0}, 20, "a no-op application"
    )


def test_init_as_admin_makes_the_logins_and_the_acls(
    secured: dict[str, str], database_url: str
) -> None:
    """compose's and Kubernetes' init step: ``python -m shared.tools.init`` with ``KAFKA_ACLS=true``
    logs in as the super user and sets each login it is given (a new submitter password here)
    and the table."""
    sasl = infra.session_sasl()
    new_password = secrets.token_urlsafe(12)
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_", "CONFIG_"))
    }
    env = {
        **base,
        "KAFKA_BOOTSTRAP_SERVERS": sasl.bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": acls.MECHANISM,
        "KAFKA_SASL_USERNAME": acls.ADMIN,
        "KAFKA_SASL_PASSWORD": infra.KAFKA_ADMIN_PASSWORD,
        "KAFKA_PARTITIONS": "6",
        "KAFKA_ACLS": "true",
        **{acls.stage_credential_env(p): pw for p, pw in secured.items()},
        acls.stage_credential_env(SUBMITTER): new_password,
        "DATABASE_URL": database_url,
        "INIT_KAFKA_WAIT_S": "30",
    }
    # One login missing: refused before anything is changed, naming the variable.
    short = {**env, acls.stage_credential_env("monitor"): "short"}
    done = subprocess.run(
        [sys.executable, "-m", "shared.tools.init"],
        env=short,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "KAFKA_SASL_PASSWORD_MONITOR" in done.stderr and "short" not in done.stderr.replace(
        "shorter", ""
    )
    done = subprocess.run(
        [sys.executable, "-m", "shared.tools.init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert new_password not in done.stdout + done.stderr
    secured[SUBMITTER] = new_password
    outcome = produce_everywhere(login(SUBMITTER, new_password))
    assert {t for t, err in outcome.items() if err is None} == set(JOBS_BY_PRIORITY)


def test_the_api_principal_inspects_every_topic_without_a_group(
    secured: dict[str, str], pipeline_topics: str
) -> None:
    """What the Topics page does as the API's principal: every topic's offsets, the stages'
    groups' lag, and the last message of a topic it neither sends nor receives."""
    from services.api import topics as inspect  # the API's reader, as its principal runs it

    foreign = next(t for t in TOPICS if t not in receives(acls.API) | sends(acls.API))
    harness = Producer({"bootstrap.servers": pipeline_topics})
    harness.produce(foreign, b'{"acl": "inspect"}', partition=0)
    assert harness.flush(20) == 0
    config = login(acls.API, secured[acls.API])
    seen = {t.name for t in inspect.topic_offsets(config, timeout_s=20)}
    assert set(TOPICS) <= seen
    page = inspect.read_messages(config, foreign, partition=0, limit=1, before=None, timeout_s=20)
    assert [m.raw for m in page.messages] == ['{"acl": "inspect"}']
    # Writing is still only what operations() says.
    if foreign not in sends(acls.API):
        refused = produce_everywhere(config)[foreign]
        assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
