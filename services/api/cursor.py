"""Opaque page cursors for ``GET /jobs``: the keyset position of the last job on a page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from services.api.text import text_problem

# Positions are job ids (at most 100 characters) or dead letter ids (digits).
MAX_POSITION_LENGTH = 200


class BadCursor(ValueError):
    """A cursor this API did not issue (or one that was altered)."""


def encode_cursor(created_at: datetime, job_id: str) -> str:
    """The cursor pointing just past the job (created_at, job_id)."""
    raw = json.dumps({"t": created_at.isoformat(), "j": job_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The keyset position inside ``cursor``; BadCursor if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at = datetime.fromisoformat(data["t"])
        job_id = data["j"]
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError) as exc:
        raise BadCursor("is not a valid page cursor") from exc
    # A cursor is client input: one we did not issue may hold anything JSON can, e.g. a NUL
    # that PostgreSQL would refuse, so its position is checked like any other text.
    if (
        not isinstance(job_id, str)
        or not job_id
        or len(job_id) > MAX_POSITION_LENGTH
        or text_problem(job_id) is not None
        or created_at.tzinfo is None
    ):
        raise BadCursor("is not a valid page cursor")
    return created_at, job_id
