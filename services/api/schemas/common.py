"""What every router's bodies share: camelCase on the wire, checked text, the error body."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from services.api.text import SAFE_TEXT

# Every string a request body carries goes through SAFE_TEXT (no NUL, no lone surrogate).
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SAFE_TEXT
]
PromptText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), SAFE_TEXT
]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class FieldProblem(BaseModel):
    """One thing wrong with a request, and where."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a stable code, and a message or a list of field problems."""

    error: str
    detail: str | list[FieldProblem] | None = None


_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, not JSON, or a bad parameter",
    401: "Missing or wrong API key",
    403: "A valid key without the role this operation needs (an admin key)",
    404: "No such resource",
    409: "Not possible in this deployment",
    413: "Request body larger than MAX_BODY_BYTES (refused before it is read)",
    422: "Invalid request, with one entry per bad field",
    429: "Too many open event streams (for this caller or in all); retry after Retry-After s",
    503: "A dependency (Kafka or PostgreSQL) is unavailable; retry later",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries, all with :class:`ErrorBody`, for these status codes."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


# What any route may answer: the body limit and the text check apply to every request, and
# every route but /health reads PostgreSQL (503 when it is down or slow).
COMMON_ERRORS = error_responses(401, 413, 422, 503)
