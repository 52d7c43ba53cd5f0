"""Reading a vendor's answer into the model of what the engine reads of it.

Every client parses an answer right where it arrives, so nothing untyped passes the client; an
answer that lacks a field the engine needs, or gives it in another shape, is a permanent error
naming that field (the vendor answered, and asking again gets the same answer).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from shared.platform.errors import PermanentError

T = TypeVar("T")

_ADAPTERS: dict[object, TypeAdapter[Any]] = {}  # built once per kind: a build is not cheap


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def read_answer(kind: type[T], body: object, *, vendor: str, what: str) -> T:
    """``body`` (a vendor's answer to ``what``) as ``kind``: a model, or a list of them."""
    try:
        answer: T = _adapter(kind).validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise PermanentError(
            f"{what}: {vendor}'s answer has no usable {field} ({first['msg']})", vendor=vendor
        ) from None
    return answer
