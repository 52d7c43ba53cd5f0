"""``/dlq``: dead letters and their replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from services.api.schemas.common import _Wire
from services.api.text import SAFE_TEXT
from shared.contract.topics import StageName

# Every stage has a DLQ, the monitor's included (what it could not record, replayed to it alone).
DlqStage = StageName


class DeadLetterView(_Wire):
    """One dead letter: where it sits in Kafka, why it failed, whether it was replayed."""

    id: int
    stage: str
    job_id: str | None
    error_class: str
    message: str
    retryable: bool
    topic: str
    partition: int
    offset: int
    original_topic: str | None
    replay_to: str | None = Field(
        description="The topic a replay re-produces it onto (one of its stage's inputs, or its "
        "stage's first delay topic); null when it has nothing replayable"
    )
    failed_at: datetime
    replayed_at: datetime | None
    replay_count: int


class DeadLetterPage(_Wire):
    """``GET /dlq`` answer: newest first; pass ``nextCursor`` back for the next page."""

    dead_letters: list[DeadLetterView]
    next_cursor: str | None


JobIdText = Annotated[str, Field(min_length=1, max_length=100, description="One job's"), SAFE_TEXT]


class ReplayRequest(_Wire):
    """``POST /dlq/replay`` body: exactly one of ``id``, ``jobId``, ``stage``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    # le: ids are bigints; a larger number cannot name a letter.
    id: (
        Annotated[int, Field(strict=True, ge=1, le=2**63 - 1, description="One dead letter")] | None
    ) = None
    job_id: JobIdText | None = None
    stage: Annotated[DlqStage, Field(description="Every dead letter of a stage")] | None = None
    include_replayed: Annotated[
        bool, Field(strict=True, description="Replay again what was replayed before")
    ] = False
    dry_run: Annotated[
        bool,
        Field(
            strict=True,
            description="Produce nothing: answer which letters would go where (``targets``)",
        ),
    ] = False

    @model_validator(mode="after")
    def _exactly_one(self) -> ReplayRequest:
        given = [n for n in ("id", "job_id", "stage") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of id, jobId, stage")
        return self


class ReplayTarget(_Wire):
    """One dead letter of a replay and the topic its copy goes to."""

    id: int
    job_id: str | None
    dead_letter: str = Field(description="``topic:partition:offset`` of the DLQ record")
    replay_to: str


class ReplayResult(_Wire):
    """``POST /dlq/replay`` answer: what was re-produced, and what had nothing to replay."""

    replayed: int
    ids: list[int]
    skipped: list[int] = Field(
        default_factory=list, description="Matching dead letters with nothing replayable"
    )
    targets: list[ReplayTarget] = Field(
        default_factory=list,
        description="Each letter replayed (or, with dryRun, that would be) and where it goes",
    )
