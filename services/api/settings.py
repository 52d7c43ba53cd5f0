"""Configuration of the HTTP API: where it listens, who may call it, and its request limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.adapters.storage import ImageStorageSettings
from shared.contract.events import MAX_LEVEL, MIN_LEVEL, Priority
from shared.contract.topics import ChannelSettings
from shared.pipeline.runner.model import RunnerSettings
from shared.platform.settings import (
    DatabaseSettings,
    JobLimitSettings,
    KafkaSettings,
    WorkerLivenessSettings,
    empty_is_unset,
)


class ApiSettings(
    KafkaSettings,
    DatabaseSettings,
    JobLimitSettings,
    WorkerLivenessSettings,
    ChannelSettings,
    ImageStorageSettings,
):
    """Settings of ``services.api`` (env vars, then the CONFIG_PATH JSON file)."""

    api_host: str = Field(default="127.0.0.1", description="Interface the API listens on")
    api_port: int = Field(default=3000, ge=1, le=65535)
    api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated bearer keys that may read and submit jobs",
    )
    # Operator keys: everything a normal key may do, plus the endpoints that change the running
    # system (/scale, worker restarts, DLQ replay). Neither list set = no authentication; only
    # this one set = authentication on, and only these keys get in.
    admin_api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated bearer keys that may also scale, restart and replay",
    )
    # A job that does not say whether it is reviewed (`review` in POST /jobs) is, when this is
    # on: its products wait for the seller's approval before anything is listed.
    review_default: bool = Field(
        default=False, description="Review every job's images before publishing unless it says"
    )
    # The secret Printify signs its webhook calls with (X-Pfy-Signature); unset = no
    # /webhooks/printify. `pod webhooks register` registers the URL with this secret.
    printify_webhook_secret: SecretStr | None = None
    # Checked before anything parses the body or authenticates the caller (services/api/limits.py).
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest request body"
    )
    # With PostgreSQL down or stuck, a request waits at most this long for a pooled connection
    # and a statement runs at most this long on the server; either answers 503, never a hang.
    db_acquire_timeout_s: float = Field(default=5.0, gt=0, le=120)
    db_statement_timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_page_size: int = Field(default=100, ge=1, le=1000)
    # GET /dashboard: up to this many jobs in its window, durations are computed exactly from
    # the rows; above, their min, max and percentiles are read from the hourly summaries'
    # 5 %-wide buckets. The exact joins grow with the window and with the tables: ~8 µs a job
    # on a small database, ~33 µs at a million jobs (140 ms for a window of 4,282, so ~33 ms
    # at 1,000); the buckets take ~2 ms there whatever the window.
    dashboard_exact_max_jobs: int = Field(default=1000, ge=0, le=1_000_000)
    # POST /jobs/bulk: a file of more job lines than this is refused whole (MAX_BODY_BYTES
    # bounds its size); each line is one acknowledged produce, so this bounds the request's time.
    bulk_max_rows: int = Field(
        default=500, ge=1, le=10_000, description="Most job lines in one bulk CSV"
    )
    # Live streams (/jobs/{id}/events, /events) wait on PostgreSQL's notifications. They look
    # again every EVENTS_POLL_S only while an entry is held back behind a transaction still in
    # flight, or while the listening connection is down; otherwise every EVENTS_RECHECK_S as a
    # safety net.
    events_poll_s: float = Field(default=0.5, gt=0, le=60)
    events_recheck_s: float = Field(default=30.0, gt=0, le=3600)
    # Open streams per caller (an API key, or the client's address with auth off) and in all,
    # per API process; past either, a 429 with Retry-After.
    sse_max_streams: int = Field(default=200, ge=1, le=100_000)
    sse_max_streams_per_caller: int = Field(default=20, ge=1, le=100_000)
    # uvicorn's limit_concurrency: past this many connections and requests at once, new ones
    # get a 503 instead of queueing on the process. Well above SSE_MAX_STREAMS, so that
    # streams at their cap still leave room for the other routes.
    api_limit_concurrency: int = Field(default=500, ge=2, le=1_000_000)
    # A connection's request line and headers must all be in this long after its first byte
    # (or after it opened): a client dribbling a header, or sending nothing, is cut off.
    api_head_timeout_s: float = Field(default=10.0, gt=0, le=300)
    produce_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Wait this long for the broker's ack"
    )
    health_timeout_s: float = Field(default=3.0, gt=0, le=60)
    # /topics and /topics/{name}/messages wait this long for the broker in all (the Topics page).
    topics_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # /health also wants a live instance of each of these stages ("" = don't check; unset =
    # every stage this deployment runs) ...
    health_stages: str | None = None
    # ... and, when set, a ComfyUI that answers (one URL or a comma-separated pool).
    comfyui_api_url: str | None = None

    # The stages' consumer groups are `<GROUP_ID_PREFIX>.<stage>` (the runner's setting):
    # `/health/ready?stages=true` asks the broker who holds their partitions ...
    group_id_prefix: str = "pod"
    # ... and wants them held this long (the stages' own FETCH_WAIT_MAX_MS, the same variable
    # and default: a partition taken while a long poll is out is first fetched when it returns).
    fetch_wait_max_ms: int = Field(
        default=RunnerSettings.model_fields["fetch_wait_max_ms"].default, ge=0, le=10_000
    )

    def stage_list(self) -> list[str]:
        """The stages /health requires a live instance of."""
        return self.stages() if self.health_stages is None else _split(self.health_stages)

    shutdown_flush_s: float = Field(default=10.0, ge=0, le=120)
    # Who runs the stage processes: the worker-pool manager (`python -m services.pool`, run by
    # `make up` and compose) carries out /scale and restarts; on a platform that scales by
    # itself (Kubernetes replicas, KEDA) those endpoints answer 409 saying so.
    scaling: Literal["pool", "platform"] = "pool"

    # Browsers on these origins may call the API (comma-separated, "*" for any); unset: no
    # CORS headers, so only same-origin pages can.
    cors_origins: str | None = Field(default=None, description="Origins allowed by CORS")

    # The dashboard's previews of each image (services/api/thumbnails.py), rendered once and
    # kept here (unset: IMAGE_STORAGE_DIR/thumbnails); an image of more pixels than this is not
    # decoded for one (the memory a render takes: about 4 bytes a pixel).
    thumbnail_dir: Path | None = None
    thumbnail_max_pixels: int = Field(default=64_000_000, ge=1_000_000, le=400_000_000)

    def thumbnail_root(self) -> Path:
        """Where previews are kept."""
        return self.thumbnail_dir or self.image_storage_dir / "thumbnails"

    # The names this API answers to besides localhost and IP addresses (comma-separated; "*" for
    # any). With no API keys the check is always on (a guard against DNS rebinding: a page on
    # another site reaching the operator's local API under its own name); with keys it is on
    # only when this is set.
    api_allowed_hosts: str | None = Field(
        default=None, description="Host names the API answers to besides localhost"
    )

    def allowed_host_list(self) -> list[str]:
        """The configured host names (none: localhost and IP addresses only, without keys)."""
        return _split(self.api_allowed_hosts) if self.api_allowed_hosts else []

    def cors_origin_list(self) -> list[str]:
        """The CORS origins (none: CORS off)."""
        return _split(self.cors_origins) if self.cors_origins else []

    # A priority given as a number (the seed's 1-10, higher is more urgent) goes to the high
    # band from PRIORITY_HIGH_MIN, to the low band up to PRIORITY_LOW_MAX, else to normal.
    priority_high_min: int = Field(default=8, ge=MIN_LEVEL + 1, le=MAX_LEVEL)
    priority_low_max: int = Field(default=3, ge=MIN_LEVEL, le=MAX_LEVEL - 1)

    @model_validator(mode="after")
    def _streams_leave_room(self) -> ApiSettings:
        if self.sse_max_streams_per_caller > self.sse_max_streams:
            raise ValueError(
                f"sse_max_streams_per_caller ({self.sse_max_streams_per_caller}) must not be "
                f"above sse_max_streams ({self.sse_max_streams})"
            )
        # uvicorn counts the connection of the request it admits: a stream cap of N leaves
        # room for one other request from N + 2.
        if self.api_limit_concurrency < self.sse_max_streams + 2:
            raise ValueError(
                f"api_limit_concurrency ({self.api_limit_concurrency}) must be at least "
                f"sse_max_streams + 2 ({self.sse_max_streams + 2}): streams at their cap "
                "would leave no room for any other request"
            )
        return self

    @model_validator(mode="after")
    def _bands_in_order(self) -> ApiSettings:
        if self.priority_low_max >= self.priority_high_min:
            raise ValueError(
                f"priority_low_max ({self.priority_low_max}) must be below priority_high_min "
                f"({self.priority_high_min})"
            )
        return self

    def band_for(self, level: int) -> Priority:
        """The band of a numeric priority."""
        if level >= self.priority_high_min:
            return Priority.HIGH
        if level <= self.priority_low_max:
            return Priority.LOW
        return Priority.NORMAL

    @field_validator("api_keys", "admin_api_keys", "printify_webhook_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return empty_is_unset(value)  # compose's `API_KEYS=`: no keys

    @field_validator("api_keys", "admin_api_keys")
    @classmethod
    def _keys_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _split(value.get_secret_value()):
            raise ValueError("must hold at least one non-empty key (comma-separated)")
        return value

    @field_validator("printify_webhook_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # A guessable secret would let anyone forge Printify's calls.
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    def key_list(self) -> list[str]:
        """The normal (read/submit) API keys."""
        return _split(self.api_keys.get_secret_value()) if self.api_keys else []

    def admin_key_list(self) -> list[str]:
        """The admin API keys."""
        return _split(self.admin_api_keys.get_secret_value()) if self.admin_api_keys else []

    def auth_enabled(self) -> bool:
        """Authentication is on as soon as either list holds a key."""
        return bool(self.key_list() or self.admin_key_list())


def _split(raw: str) -> list[str]:
    return [k.strip() for k in raw.split(",") if k.strip()]
