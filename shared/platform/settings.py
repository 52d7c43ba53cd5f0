"""Settings shared by every service, and the base class each service's settings extend.

Values come from environment variables (the names in the README's Configuration table) and,
below them, from an optional JSON file named by ``CONFIG_PATH`` (flat keys, or the seed's nested
layout: :mod:`shared.platform.seed_config`). An invalid value stops the start with a message that
names the key and the problem (:func:`load_settings`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.platform.errors import ConfigError
from shared.platform.seed_config import is_seed_layout, translate

# The folder holding the ``shared`` package (a checkout, or the image's /app), however deep in
# the package this module sits.
REPO_ROOT = next(p.parent for p in Path(__file__).resolve().parents if p.name == "shared")


class JsonConfigSource(PydanticBaseSettingsSource):
    """Reads the JSON object at ``CONFIG_PATH``; keys are field names or env names."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, object] = {}
        path = os.environ.get("CONFIG_PATH")
        if path:
            try:
                raw = json.loads(Path(path).read_text())
            except FileNotFoundError as exc:
                raise ConfigError(f"CONFIG_PATH: file not found: {path}") from exc
            except json.JSONDecodeError as exc:
                raise ConfigError(f"CONFIG_PATH: {path} is not valid JSON: {exc}") from exc
            if not isinstance(raw, dict):
                raise ConfigError(f"CONFIG_PATH: {path} must hold a JSON object")
            if is_seed_layout(raw):
                raw, _ = translate(raw, path)
            # Accept both `kafka_bootstrap_servers` and `KAFKA_BOOTSTRAP_SERVERS`.
            self._data = {k.lower(): v for k, v in raw.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        for key in (field_name, alias):
            if key and key.lower() in self._data:
                return self._data[key.lower()], field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                out[key] = value
        return out


def empty_is_unset(value: object) -> object:
    """A blank string as None: compose passes ``NAME=`` for a setting nobody configured."""
    return None if isinstance(value, str) and not value.strip() else value


class PodSettings(BaseSettings):
    """Base of every settings class: env vars first, then the CONFIG_PATH JSON file."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, JsonConfigSource(settings_cls))


class KafkaSettings(PodSettings):
    """Where the broker is and how topics are laid out."""

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="Existing cluster; unset = start the local broker"
    )
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Unset: 2 when topics have 3 replicas or more (one node may die, nothing acknowledged is
    # lost), else the broker's default.
    kafka_min_insync_replicas: int | None = Field(default=None, ge=1)
    # How long a producer holds a message for others to share its request (librdkafka's
    # ``linger.ms``). A lone message waits it out on every hop of a job (2.8 ms a hop at 0,
    # 4.8 at 2, 7.9 at 5: bench/broker.py); under a backlog messages share requests anyway
    # while earlier ones are in flight (bench/pipeline.py: no difference above this VM's drift).
    kafka_linger_ms: int = Field(default=0, ge=0, le=1000)
    # librdkafka's names: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.
    kafka_security_protocol: str | None = Field(
        default=None, pattern=r"^(?i:PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (or OAUTHBEARER, GSSAPI with librdkafka's own keys).
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The CA that signed the brokers' certificates (SSL, SASL_SSL), as a file or as PEM text
    # (a Kubernetes Secret's value); unset: the system's CA store.
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_ca_pem: str | None = None

    @field_validator(
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_ssl_ca_location",
        "kafka_ssl_ca_pem",
        "kafka_min_insync_replicas",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.kafka_min_insync_replicas is not None and (
            self.kafka_min_insync_replicas > self.kafka_replication_factor
        ):
            raise ValueError(
                "KAFKA_MIN_INSYNC_REPLICAS must not exceed KAFKA_REPLICATION_FACTOR "
                f"({self.kafka_min_insync_replicas} > {self.kafka_replication_factor}): "
                "no write could ever be acknowledged"
            )
        protocol = (self.kafka_security_protocol or "PLAINTEXT").upper()
        if self.kafka_sasl_mechanism and not protocol.startswith("SASL"):
            raise ValueError(
                "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT "
                "or SASL_SSL: the credentials would never be sent"
            )
        return self

    @property
    def min_insync_replicas(self) -> int | None:
        """``min.insync.replicas`` for the topics the engine creates (None: the broker's)."""
        if self.kafka_min_insync_replicas is not None:
            return self.kafka_min_insync_replicas
        return 2 if self.kafka_replication_factor >= 3 else None

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers the clients use (the local broker's when none is set)."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka settings common to producers, consumers and admin clients."""
        cfg: dict[str, str | int | float | bool] = {"bootstrap.servers": self.bootstrap}
        if self.kafka_security_protocol:
            cfg["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            cfg["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            cfg["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            cfg["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            cfg["ssl.ca.location"] = self.kafka_ssl_ca_location
        if self.kafka_ssl_ca_pem:
            cfg["ssl.ca.pem"] = self.kafka_ssl_ca_pem
        return cfg


class DatabaseSettings(PodSettings):
    """Where PostgreSQL is."""

    database_url: SecretStr | None = Field(
        default=None, description="Existing PostgreSQL; unset = start the embedded one"
    )
    postgres_port: int = Field(default=5433, ge=1, le=65535)
    db_pool_max: int = Field(default=10, ge=1, le=200)

    @property
    def url(self) -> str:
        """The connection URL (the embedded server's when none is set)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/postgres"


class InitSettings(KafkaSettings, DatabaseSettings):
    """``python -m shared.tools.init``: the broker and database it prepares, and how long it waits
    for the broker (one started beside it may take a minute to answer)."""

    init_kafka_wait_s: float = Field(default=120.0, gt=0)
    # Create the services' SCRAM logins and apply the ACL table (shared.pipeline.acls): the broker
    # enforces ACLs and init logs in as its super user.
    kafka_acls: bool = False


class JobLimitSettings(PodSettings):
    """Limits on what one job may ask for, enforced at every door: the API and each stage that
    reads jobs produced directly to its topics."""

    # The event contract caps a job at 100 images; a deployment may be stricter, never looser.
    max_images_per_job: int = Field(
        default=50, ge=1, le=100, description="Most images one job may ask for"
    )


class WorkerLivenessSettings(PodSettings):
    """When an instance counts as live: one threshold for the API (/health, /workers, /stats)
    and the monitor's alerts alike."""

    # Silent this long (without saying it stops): no longer live (three missed heartbeats at
    # the default HEARTBEAT_INTERVAL_S of 10 s) ...
    worker_stale_s: float = Field(default=30.0, gt=0)
    # ... and forgotten (no longer counted, listed or alerted on) once silent this long.
    worker_forget_s: float = Field(default=3600.0, gt=0)


class StateSettings(PodSettings):
    """Where local state lives (broker data, embedded PostgreSQL, logs, images)."""

    pod_state_dir: Path = Field(default=REPO_ROOT / ".state")


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build ``cls`` from the environment; raise ConfigError naming each bad key."""
    try:
        return cls()
    except ValidationError as exc:
        origins = _seed_origins()
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            key = field.upper() or "?"
            if field in origins and field.upper() not in os.environ:
                key = f"{origins[field]} (CONFIG_PATH)"
            problems.append(f"{key}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def _seed_origins() -> dict[str, str]:
    """Setting -> the seed path it was read from, when CONFIG_PATH is a seed-layout file."""
    path = os.environ.get("CONFIG_PATH")
    try:
        raw = json.loads(Path(path).read_text()) if path else None
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or not is_seed_layout(raw):
        return {}
    return translate(raw, path or "", warn=False)[1]
