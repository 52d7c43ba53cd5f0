"""TikTok Shop's Partner API as the engine uses it: the operations, their required request
fields and the fields of their answers (``contract.json``), with where each came from
(``x-pod-source``: Partner Center pages, versions, date, what could not be verified).

TikTok publishes no machine-readable description of the API that could be had here, so the
file is a transcription of the Partner Center pages, not an extract; :func:`missing` checks a
request body against it mechanically, and the simulator refuses what it finds missing as
TikTok does (``invalid_params``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACT = Path(__file__).with_name("contract.json")


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    shop_cipher: bool
    query_required: tuple[str, ...]
    body_required: tuple[str, ...]
    multipart_required: tuple[str, ...]
    enums: Mapping[str, tuple[str, ...]]
    limits: Mapping[str, tuple[int, int]]
    host: str
    pattern: re.Pattern[str]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", path)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex)


@functools.cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CONTRACT.read_text())
    return loaded


@functools.cache
def operations() -> tuple[Operation, ...]:
    ops = []
    for name, raw in document()["operations"].items():
        ops.append(
            Operation(
                name=name,
                method=raw["method"],
                path=raw["path"],
                shop_cipher=bool(raw.get("shop_cipher", False)),
                query_required=tuple(raw.get("query_required", ())),
                body_required=tuple(raw.get("body_required", ())),
                multipart_required=tuple(raw.get("multipart_required", ())),
                enums={k: tuple(v) for k, v in raw.get("enums", {}).items()},
                limits={k: (int(v[0]), int(v[1])) for k, v in raw.get("limits", {}).items()},
                host=raw.get("host", "api"),
                pattern=_pattern(raw["path"]),
            )
        )
    return tuple(ops)


def error_code(name: str) -> int:
    """TikTok's ``code`` for a kind of error (``contract.json`` ``errors``)."""
    code: int = document()["errors"][name]
    return code


def find(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation a request is, with its path parameters; None when it is none."""
    for op in operations():
        params = op.match(method, path)
        if params is not None:
            return op, params
    return None


def _values(node: object, parts: list[str]) -> Iterable[tuple[str, object]]:
    """Each value at a dotted path (``skus[].price.amount``), with where it is; a missing
    step yields the path with ``None``."""
    if not parts:
        yield "", node
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    key = head[:-2] if many else head
    value = node.get(key) if isinstance(node, dict) else None
    if not many:
        for where, found in _values(value, rest):
            yield f"{key}{'.' + where if where else ''}", found
        return
    if not isinstance(value, list) or not value:
        yield key, None
        return
    for i, item in enumerate(value):
        for where, found in _values(item, rest):
            yield f"{key}[{i}]{'.' + where if where else ''}", found


def missing(op: Operation, body: object) -> list[str]:
    """The required fields ``body`` lacks (empty strings and empty lists count as missing)."""
    out: list[str] = []
    for path in op.body_required:
        for where, value in _values(body, path.split(".")):
            if value is None or value == "" or value == []:
                out.append(where or path)
    return sorted(set(out))


def bad_enums(op: Operation, body: object) -> list[str]:
    """``field: value`` for each enum field whose value TikTok does not list."""
    out = []
    for path, allowed in op.enums.items():
        for where, value in _values(body, path.split(".")):
            if value is not None and value not in allowed:
                out.append(f"{where}: {value!r} (one of {', '.join(allowed)})")
    return out
