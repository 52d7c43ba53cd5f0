"""Who may do what on the broker: one SASL/SCRAM principal per service, each with only the ACLs
its work needs, derived from the topic registry (``shared.pipeline.asyncapi.operations()``), never
listed by hand; and a ``submitter`` principal for other systems, which may write job requests and
nothing else.

The broker runs Kafka's ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``:
whatever is not granted here is refused. ``admin`` is the brokers' and controllers' own principal
(a super user) and the one the init step (``shared.tools.init``, ``make up``) creates the users and
ACLs as. The table is applied idempotently: bindings that exist are kept, missing ones are
created, and a service principal's bindings the table no longer holds are deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr, create_model

from shared.contract.topics import JOBS_BY_PRIORITY, STAGES, all_topics
from shared.pipeline.runner.model import RunnerSettings
from shared.platform.settings import PodSettings

logger = logging.getLogger(__name__)

MECHANISM = "SCRAM-SHA-512"
# The brokers' and controllers' principal, a super user; init and `make up` act as it.
ADMIN = "admin"
# Another system that submits jobs: it may write job.requested events, nothing else.
SUBMITTER = "submitter"
# The pool manager reads the control topic under a fresh group of its own each start
# (services/pool/__main__.py), named under this prefix.
POOL_GROUP_PREFIX = "pod.pool."
# The non-stage services of shared.pipeline.asyncapi.operations().
API = "api"
POOL = "pool"

Resource = Literal["topic", "group", "cluster"]
Operation = Literal["read", "write", "describe", "idempotent_write"]
Pattern = Literal["literal", "prefixed"]

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,  # librdkafka's name for Kafka's CLUSTER resource
}
_OPERATION = {
    "read": AclOperation.READ,
    "write": AclOperation.WRITE,
    "describe": AclOperation.DESCRIBE,
    "idempotent_write": AclOperation.IDEMPOTENT_WRITE,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
CLUSTER = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule of a principal (from any host)."""

    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"

    def binding(self, principal: str) -> AclBinding:
        return AclBinding(
            _RESOURCE[self.resource],
            self.name,
            _PATTERN[self.pattern],
            f"User:{principal}",
            "*",
            _OPERATION[self.operation],
            AclPermissionType.ALLOW,
        )

    def __str__(self) -> str:
        star = "*" if self.pattern == "prefixed" else ""
        return f"{self.operation} {self.resource}:{self.name}{star}"


def stage_group(stage: str) -> str:
    """A stage's consumer group (shared.pipeline.runner.core: the prefix, a dot, the stage's
    name)."""
    return f"{RunnerSettings.model_fields['group_id_prefix'].default}.{stage}"


def principals() -> list[str]:
    """Every principal but ``admin``: the stages, the API, the pool manager, the submitter."""
    return [*STAGES, API, POOL, SUBMITTER]


def acl_table() -> dict[str, list[Acl]]:
    """Principal -> its ACLs: what ``operations()`` says each service sends and receives, its
    consumer group, the idempotent producer's cluster right, and what the services read besides
    their messages (the API's /health and the monitor's lag: every topic's and every stage
    group's description; the API's Topics page: every topic's messages; the pool manager's
    scaling ceiling: its stages' input partitions)."""
    from shared.pipeline.asyncapi import operations  # imports the services' settings: kept local

    rights: dict[str, set[Acl]] = {p: set() for p in principals()}
    for op in operations():
        mine = rights[op.service]
        mine.add(Acl("topic", op.topic, "describe"))
        if op.action == "send":
            mine.add(Acl("topic", op.topic, "write"))
            # Every service producer is idempotent (shared.pipeline.runner.producer.make_producer).
            mine.add(Acl("cluster", CLUSTER, "idempotent_write"))
        else:
            mine.add(Acl("topic", op.topic, "read"))
            if op.service in STAGES:
                mine.add(Acl("group", stage_group(op.service), "read"))
            elif op.service == POOL:
                mine.add(Acl("group", POOL_GROUP_PREFIX, "read", "prefixed"))
    every_topic = [t.name for t in all_topics()]
    for watcher in (API, "monitor"):
        rights[watcher] |= {Acl("topic", t, "describe") for t in every_topic}
        rights[watcher] |= {Acl("group", stage_group(s), "describe") for s in STAGES}
    # The API's Topics page (admin only at the API) shows the last messages of any of the
    # engine's topics: read by assignment, with no group (so no group right) and no commit.
    rights[API] |= {Acl("topic", t, "read") for t in every_topic}
    rights[POOL] |= {Acl("topic", t, "describe") for s in STAGES.values() for t in s.inputs}
    # Another system: job requests only, without the cluster right (Kafka 3.0+ lets a producer
    # with WRITE on a topic be idempotent, KIP-679).
    for topic in JOBS_BY_PRIORITY:
        rights[SUBMITTER] |= {Acl("topic", topic, "write"), Acl("topic", topic, "describe")}
    return {p: sorted(acls) for p, acls in rights.items()}


def bindings(table: Mapping[str, list[Acl]] | None = None) -> list[AclBinding]:
    """The table as the AdminClient's bindings."""
    table = acl_table() if table is None else table
    return [acl.binding(p) for p, acls in table.items() for acl in acls]


def apply_acls(admin: AdminClient, timeout: float = 30.0) -> dict[str, int]:
    """Make the broker's ACLs of our principals those of :func:`acl_table`; returns how many
    bindings were ``created`` and ``deleted`` (0 and 0 when nothing changed)."""
    wanted = bindings()
    existing: set[AclBinding] = set()
    for principal in principals():
        found = admin.describe_acls(_of(principal), request_timeout=timeout).result()
        existing |= set(found)
    missing = [b for b in wanted if b not in existing]
    stale = [b for b in existing if b not in set(wanted)]
    if missing:
        for fut in admin.create_acls(missing, request_timeout=timeout).values():
            fut.result()
    if stale:
        filters = [
            AclBindingFilter(
                b.restype,
                b.name,
                b.resource_pattern_type,
                b.principal,
                b.host,
                b.operation,
                b.permission_type,
            )
            for b in stale
        ]
        for fut in admin.delete_acls(filters, request_timeout=timeout).values():
            fut.result()
    logger.info("kafka acls applied created=%d deleted=%d", len(missing), len(stale))
    return {"created": len(missing), "deleted": len(stale)}


def _of(principal: str) -> AclBindingFilter:
    # None matches any name and any host (the stubs say str).
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def ensure_users(admin: AdminClient, passwords: Mapping[str, str], timeout: float = 30.0) -> None:
    """Create or update each principal's SCRAM credential (idempotent: the same password again
    is a new salt, the same login). Raises RuntimeError naming the user, never the password."""
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
        )
        for user, password in passwords.items()
    ]
    if not upserts:
        return
    for user, fut in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            raise RuntimeError(f"cannot set the SCRAM credential of {user}: {exc}") from None
    logger.info("kafka users ensured count=%d", len(upserts))


# The pool manager reads each stage's password from KAFKA_SASL_PASSWORD_<STAGE> (its principal
# is the stage's name) and hands it to that stage's processes alone.
STAGE_PASSWORD_PREFIX = "KAFKA_SASL_PASSWORD_"  # noqa: S105 — a variable name


def stage_credential_env(stage: str) -> str:
    """The variable that holds a stage's (or any principal's) password for the pool manager and
    the init step: ``KAFKA_SASL_PASSWORD_<PRINCIPAL>``."""
    return f"{STAGE_PASSWORD_PREFIX}{stage.upper()}"


def submitter_properties(bootstrap: str, password: str, protocol: str = "SASL_PLAINTEXT") -> str:
    """The submitter's librdkafka client settings, as a .properties file."""
    return "\n".join(
        [
            "# POD Engine: the submitter's Kafka client settings (librdkafka / Java keys).",
            "# It may write job.requested events to jobs.requested.<priority> and nothing else.",
            f"bootstrap.servers={bootstrap}",
            f"security.protocol={protocol}",
            f"sasl.mechanism={MECHANISM}",
            f"sasl.username={SUBMITTER}",
            f"sasl.password={password}",
            "",
        ]
    )


if TYPE_CHECKING:
    PrincipalPasswordSettings = PodSettings
else:
    # KAFKA_SASL_PASSWORD_<PRINCIPAL> for each principal of the registry: what the init step
    # makes the logins with, and the pool manager hands its stages.
    PrincipalPasswordSettings = create_model(
        "PrincipalPasswordSettings",
        __base__=PodSettings,
        **{stage_credential_env(p).lower(): (SecretStr | None, None) for p in principals()},
    )


def principal_passwords(settings: PodSettings) -> dict[str, str]:
    """Principal -> password, for each principal whose password ``settings`` hold."""
    out: dict[str, str] = {}
    for p in principals():
        value = getattr(settings, stage_credential_env(p).lower(), None)
        if isinstance(value, SecretStr) and value.get_secret_value():
            out[p] = value.get_secret_value()
    return out
