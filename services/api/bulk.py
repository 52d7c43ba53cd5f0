"""Jobs from a CSV file (``POST /jobs/bulk``): one job a line, each line checked as ``POST /jobs``
checks a body and submitted durably, one after the other.

Resumable: each line is submitted under an Idempotency-Key made of a digest of its normalised
request and its occurrence among the file's lines asking for the same thing (scoped to the
caller by :func:`services.api.submit.scoped_key`). Sending the same file again maps every line
to the job it was accepted as ("already accepted"); an edited line is a new request, so a new
job. A broker that does not acknowledge a line stops the file there: the lines before it are
accepted, it and the rest are reported "not submitted", and sending the file again completes it
without duplicates (a line whose event did reach the broker is produced again under the same
event id, which the stages recognise).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from psycopg import Error as DbError
from pydantic import ValidationError

from services.api.errors import ApiError, problems
from services.api.schemas.jobs import JobRequest
from services.api.state import ApiState
from services.api.submit import accept_job, request_hash

logger = logging.getLogger(__name__)

REQUIRED = ("theme", "style", "niche", "types", "count", "priority", "channels")
OPTIONAL = ("prompt", "review", "autoPublish")
# The file's column -> the request's field (as POST /jobs names it), to name errors by column.
_FIELDS = {"types": "productTypes"}
_COLUMNS = {v: k for k, v in _FIELDS.items()}
_LIST_SEPARATORS = re.compile(r"[|;]")
_INTEGER = re.compile(r"[+-]?\d{1,9}")
# JSON's words, in any case (spreadsheets write TRUE and FALSE); anything else is refused.
_BOOLEANS = {"true": True, "false": False}
KEY_PREFIX = "csv"


class LineStatus(StrEnum):
    """What became of one line."""

    ACCEPTED = "accepted"
    ALREADY_ACCEPTED = "already_accepted"
    INVALID = "invalid"
    NOT_SUBMITTED = "not_submitted"


@dataclass
class LineOutcome:
    """One line's answer: its job, or what is wrong with it."""

    line: int
    status: LineStatus
    job_id: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)


def _bad_file(message: str) -> ApiError:
    return ApiError(400, "bad_csv", [{"field": "body", "message": message}])


@dataclass(frozen=True)
class Line:
    """A data line of the file: its line number and its cells by column."""

    number: int
    cells: dict[str, str]
    extra_cells: int = 0  # cells past the header's columns (an error)


def read_lines(body: bytes, *, max_rows: int) -> list[Line]:
    """The file's data lines (blank ones skipped); a 400 for a file that is not a CSV of the
    documented columns, a 422 past ``max_rows`` lines (nothing is submitted then)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad_file(f"must be UTF-8 text (a bad byte at {exc.start})") from None
    if "\x00" in text:
        raise _bad_file("must not contain NUL characters")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise _bad_file("is empty: the first line names the columns")
        columns = [h.strip() for h in header]
        by_lower = {c.lower(): c for c in (*REQUIRED, *OPTIONAL)}
        named = [by_lower.get(c.lower()) for c in columns]
        unknown = [c for c, n in zip(columns, named, strict=True) if n is None]
        if unknown:
            raise _bad_file(
                f"unknown column(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; the columns "
                f"are {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}"
            )
        missing = [c for c in REQUIRED if c not in named]
        if missing:
            raise _bad_file(f"missing column(s): {', '.join(missing)}")
        if len(set(named)) != len(named):
            raise _bad_file("a column is named twice")
        lines: list[Line] = []
        start = reader.line_num + 1
        for row in reader:
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(lines) == max_rows:
                raise ApiError(
                    422,
                    "too_many_lines",
                    [{"field": "body", "message": f"must have at most {max_rows} job lines"}],
                )
            cells = {n: row[i] if i < len(row) else "" for i, n in enumerate(named) if n}
            lines.append(Line(number, cells, max(0, len(row) - len(named))))
    except csv.Error as exc:
        raise _bad_file(f"line {reader.line_num}: {exc}") from None
    return lines


def _split(cell: str) -> list[str]:
    return [part.strip() for part in _LIST_SEPARATORS.split(cell) if part.strip()]


def _scalar(cell: str, pattern: re.Pattern[str]) -> object:
    # Only the shape of an integer is read as one; anything else goes to the model as text,
    # which names it ("must be an integer").
    return int(cell) if pattern.fullmatch(cell) else cell


def request_body(cells: dict[str, str]) -> dict[str, object]:
    """A line as the ``POST /jobs`` body it stands for (an empty cell: the field not given)."""
    body: dict[str, object] = {}
    for column, raw in cells.items():
        cell = raw.strip()
        if not cell:
            continue
        name = _FIELDS.get(column, column)
        if column in ("types", "channels"):
            body[name] = _split(cell)
        elif column == "count":
            body[name] = _scalar(cell, _INTEGER)
        elif column == "priority":
            body[name] = _scalar(cell, _INTEGER) if _INTEGER.fullmatch(cell) else cell.lower()
        elif column in ("review", "autoPublish"):
            body[name] = _BOOLEANS.get(cell.lower(), cell)
        else:
            body[name] = raw  # the model strips and bounds text
    return body


def _by_column(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for error in errors:
        name = error["field"]
        head, sep, rest = name.partition("[")
        out.append({**error, "field": _COLUMNS.get(head, head) + sep + rest})
    return out


def check_line(line: Line) -> JobRequest | list[dict[str, str]]:
    """The line's request, or its errors by column (the API's messages for POST /jobs)."""
    if line.extra_cells:
        more = line.extra_cells
        return [{"field": "line", "message": f"has {more} cell(s) more than the header's columns"}]
    try:
        return JobRequest.model_validate(request_body(line.cells))
    except ValidationError as exc:
        return _by_column(problems(exc.errors()))


async def submit_lines(
    state: ApiState, lines: list[Line], *, principal: str | None
) -> list[LineOutcome]:
    """Check every line, then submit the good ones in order until the broker fails."""
    outcomes: list[LineOutcome] = []
    seen: Counter[str] = Counter()
    stopped: str | None = None
    for line in lines:
        checked = check_line(line)
        if not isinstance(checked, JobRequest):
            outcomes.append(LineOutcome(line.number, LineStatus.INVALID, errors=checked))
            continue
        digest = request_hash(checked)
        seen[digest] += 1
        if stopped is not None:
            outcomes.append(_not_submitted(line.number, stopped))
            continue
        key = f"{KEY_PREFIX}-{digest[:48]}-{seen[digest]}"
        try:
            accepted = await accept_job(state, checked, principal=principal, idempotency_key=key)
        except ApiError as exc:
            if exc.status < 500:
                detail = exc.detail
                errors = (
                    _by_column(detail)
                    if isinstance(detail, list)
                    else [{"field": "line", "message": str(detail or exc.error)}]
                )
                outcomes.append(LineOutcome(line.number, LineStatus.INVALID, errors=errors))
                continue
            stopped = "the broker did not acknowledge it" if exc.status == 503 else exc.error
        except (DbError, OSError, TimeoutError) as exc:
            stopped = f"the database failed ({type(exc).__name__})"
        if stopped is not None:
            logger.warning(
                "bulk submission stopped line=%d lines_left=%d reason=%s",
                line.number,
                len(lines) - len(outcomes),
                stopped,
            )
            outcomes.append(_not_submitted(line.number, stopped))
            continue
        status = LineStatus.ALREADY_ACCEPTED if accepted.replayed else LineStatus.ACCEPTED
        outcomes.append(LineOutcome(line.number, status, job_id=accepted.job_id))
    return outcomes


def _not_submitted(number: int, reason: str) -> LineOutcome:
    message = f"not submitted (retry: send the file again): {reason}"
    return LineOutcome(
        number, LineStatus.NOT_SUBMITTED, errors=[{"field": "line", "message": message}]
    )
