"""Checking HTTP requests against an OpenAPI 3.0 document (or the subset of one a simulator
keeps), the way a strict server would: any vendor whose contract is an OpenAPI document.

:meth:`OpenApiContract.check_request` finds the operation by method and path template and
returns every :class:`Problem` with the request, each naming the field and the reason:

- path parameters, query parameters and header parameters: required ones present, each value
  of its schema's type (read from text: integers, numbers, ``true``/``false``), enum, minimum
  and maximum, length, format (``int32``/``int64`` ranges); a parameter the operation does not
  declare is refused, and so is a scalar given twice;
- arrays in the query string and in form bodies: OpenAPI 3.0's default (``style: form``,
  ``explode: true``) is the name repeated (``includes=Images&includes=Inventory``);
  ``comma_separated=True`` also accepts (and splits) ``includes=Images,Inventory``, for vendors
  whose documentation says their lists are comma-separated;
- the credentials the operation's ``security`` asks for (an API key in its header, a bearer
  token), and, when the caller says which scopes its token holds, the OAuth scopes;
- the request body: its media type must be one the operation declares (a form body where the
  operation takes JSON is refused, and the other way round); ``application/json`` is parsed as
  JSON, ``application/x-www-form-urlencoded`` and ``multipart/form-data`` as fields read from
  text; required fields, types, ``nullable``, enum, minimum/maximum, lengths, nested objects
  and arrays (``products[0].offerings[0].price``). A body field the schema does not name is
  refused, whatever ``additionalProperties`` says by its absence: a misspelt field that a lenient
  server drops in silence is the drift this exists to catch.

:meth:`OpenApiContract.check_response` checks an answer (status declared, JSON body of the
declared schema) so a simulator can hold its own answers to the document too.

Only what the vendor documents is checked: rules a server enforces beyond its document (a title's
characters, a price's range) stay in the simulator.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
import re
import urllib.parse
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ProblemKind = Literal["route", "method", "auth", "scope", "request"]
_KIND_ORDER: tuple[ProblemKind, ...] = ("route", "method", "auth", "scope", "request")

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON_MEDIA = "application/json"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (``query.limit``, ``body.products[0].sku``,
    ``header.x-api-key``, ``content-type``, ...), why, and what kind of wrong it is: ``route``
    (no such path), ``method`` (the path takes other methods), ``auth`` (credentials missing),
    ``scope`` (the token lacks a scope) or ``request`` (the request itself)."""

    where: str
    reason: str
    kind: ProblemKind = "request"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Operation:
    """One operation of the document: its id, method, path template and definition."""

    operation_id: str
    method: str
    template: str
    definition: Mapping[str, Any]
    path_parameters: tuple[Mapping[str, Any], ...] = ()
    _pattern: re.Pattern[str] = field(repr=False, default=re.compile(""))

    @property
    def parameters(self) -> list[Mapping[str, Any]]:
        """Path-level parameters overridden by the operation's own (same name and place)."""
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for param in (*self.path_parameters, *self.definition.get("parameters", ())):
            merged[(str(param["name"]), str(param["in"]))] = param
        return list(merged.values())


@dataclass(frozen=True)
class CheckedRequest:
    """The verdict on one request: the operation it is (None when no path matched), its path
    parameters as sent, and every problem found (none: the request conforms)."""

    operation: Operation | None
    path_params: Mapping[str, str]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def first_kind(self) -> ProblemKind | None:
        """The gravest kind of problem (route, method, auth, scope, then request)."""
        for kind in _KIND_ORDER:
            if any(p.kind == kind for p in self.problems):
                return kind
        return None

    def message(self) -> str:
        """All problems in one line, as a 400's error message."""
        return "; ".join(str(p) for p in self.problems)


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join(
        f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") and p.endswith("}") else re.escape(p)
        for p in parts
    )
    return re.compile(f"^{regex}$")


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header (no parameters, lowercase)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class OpenApiContract:
    """An OpenAPI 3.0 document as the requests a server accepts.

    ``comma_separated``: array values in the query string and in form bodies may also be given
    as one comma-separated value (split on commas). ``document_name`` names the document in
    messages."""

    def __init__(self, document: Mapping[str, Any], *, comma_separated: bool = False) -> None:
        if not str(document.get("openapi", "")).startswith("3."):
            raise ValueError("not an OpenAPI 3 document (no openapi: 3.x)")
        self.document = document
        self.comma_separated = comma_separated
        self._schemes: Mapping[str, Any] = document.get("components", {}).get("securitySchemes", {})
        ops: list[Operation] = []
        for template, item in document.get("paths", {}).items():
            shared = tuple(item.get("parameters", ()))
            for method, definition in item.items():
                if method not in HTTP_METHODS:
                    continue
                ops.append(
                    Operation(
                        operation_id=str(definition.get("operationId", f"{method} {template}")),
                        method=method.upper(),
                        template=template,
                        definition=definition,
                        path_parameters=shared,
                        _pattern=_template_pattern(template),
                    )
                )
        # A literal segment beats a parameter (/users/me before /users/{user_id}).
        ops.sort(key=lambda op: (op.template.count("{"), -len(op.template)))
        self.operations = ops
        self.by_id = {op.operation_id: op for op in ops}

    @classmethod
    def from_file(cls, path: Path | str, *, comma_separated: bool = False) -> OpenApiContract:
        """A contract from a JSON file (an extract this repository keeps)."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(document, comma_separated=comma_separated)

    # --- looking up ------------------------------------------------------------------------------

    def match(
        self, method: str, path: str
    ) -> tuple[Operation | None, dict[str, str], list[Problem]]:
        """The operation for ``method`` and ``path``, its path parameters, or a route/method
        problem."""
        path = urllib.parse.unquote(path.split("?", 1)[0]) or "/"
        allowed: list[str] = []
        for op in self.operations:
            found = op._pattern.match(path)
            if found is None:
                continue
            if op.method == method.upper():
                return op, found.groupdict(), []
            allowed.append(op.method)
        if allowed:
            return (
                None,
                {},
                [
                    Problem(
                        "method",
                        f"{method.upper()} {path} is not an operation; the path takes "
                        f"{', '.join(sorted(set(allowed)))}",
                        "method",
                    )
                ],
            )
        return None, {}, [Problem("path", f"no operation matches {method.upper()} {path}", "route")]

    def required_scopes(self, operation_id: str) -> list[list[str]]:
        """The OAuth scopes each alternative security requirement of an operation asks for."""
        op = self.by_id[operation_id]
        out: list[list[str]] = []
        for requirement in self._security(op):
            scopes: list[str] = []
            for name, wanted in requirement.items():
                if self._schemes.get(name, {}).get("type") == "oauth2":
                    scopes.extend(str(s) for s in wanted)
            out.append(scopes)
        return out

    def _security(self, op: Operation) -> list[Mapping[str, Sequence[str]]]:
        security = op.definition.get("security", self.document.get("security", []))
        return list(security or [])

    # --- requests -------------------------------------------------------------------------------

    def check_request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] | Mapping[str, Sequence[str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        scopes: Collection[str] | None = None,
    ) -> CheckedRequest:
        """Every problem with one request. ``query``: the query string's pairs in order (or
        name -> values); ``headers``: case-insensitive names; ``scopes``: the scopes the
        request's token holds, when the caller knows them (else scopes are not checked)."""
        op, path_params, problems = self.match(method, path)
        if op is None:
            return CheckedRequest(None, {}, problems)
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        if content_type is None:
            content_type = lowered.get("content-type")
        query_values: dict[str, list[str]] = {}
        if isinstance(query, Mapping):
            for name, values in query.items():
                query_values[name] = [values] if isinstance(values, str) else list(values)
        else:
            for name, value in query:
                query_values.setdefault(name, []).append(value)
        problems = []
        self._check_security(op, lowered, scopes, problems)
        self._check_parameters(op, path_params, query_values, lowered, problems)
        self._check_body(op, body, content_type, problems)
        return CheckedRequest(op, path_params, problems)

    def _check_security(
        self,
        op: Operation,
        headers: Mapping[str, str],
        scopes: Collection[str] | None,
        problems: list[Problem],
    ) -> None:
        requirements = self._security(op)
        if not requirements:
            return
        best: list[Problem] | None = None
        for requirement in requirements:
            found: list[Problem] = []
            for name, wanted in requirement.items():
                found.extend(self._check_scheme(name, list(wanted), headers, scopes))
            if not found:
                return
            if best is None or len(found) < len(best):
                best = found
        problems.extend(best or [])

    def _check_scheme(
        self,
        name: str,
        wanted: list[str],
        headers: Mapping[str, str],
        scopes: Collection[str] | None,
    ) -> list[Problem]:
        scheme = self._schemes.get(name)
        if scheme is None:
            return [Problem("security", f"the document names no security scheme {name!r}", "auth")]
        kind = scheme.get("type")
        if kind == "apiKey":
            where = scheme.get("in")
            key = str(scheme.get("name", ""))
            if where == "header" and not headers.get(key.lower(), "").strip():
                return [
                    Problem(
                        f"header.{key}",
                        f"required (security scheme {name!r}, an API key in this header)",
                        "auth",
                    )
                ]
            return []
        if kind in ("oauth2", "openIdConnect") or (
            kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer"
        ):
            auth = headers.get("authorization", "")
            bearer, _, token = auth.partition(" ")
            if bearer.lower() != "bearer" or not token.strip():
                return [
                    Problem(
                        "header.Authorization",
                        f"required: 'Bearer <token>' (security scheme {name!r})",
                        "auth",
                    )
                ]
            if scopes is not None:
                missing = [s for s in wanted if s not in scopes]
                if missing:
                    return [
                        Problem(
                            "header.Authorization",
                            f"the token lacks the scope(s) {', '.join(missing)}",
                            "scope",
                        )
                    ]
            return []
        return []  # schemes this checker does not know are the server's to enforce

    def _check_parameters(
        self,
        op: Operation,
        path_params: Mapping[str, str],
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        problems: list[Problem],
    ) -> None:
        declared_query: set[str] = set()
        for param in op.parameters:
            name, where = str(param["name"]), str(param["in"])
            schema = self._resolve(param.get("schema", {}))
            label = f"{where}.{name}"
            if where == "path":
                raw: list[str] | None = [path_params[name]] if name in path_params else None
            elif where == "query":
                declared_query.add(name)
                raw = query.get(name)
            elif where == "header":
                value = headers.get(name.lower())
                raw = None if value is None else [value]
            else:  # cookie: not checked
                continue
            if raw is None:
                if param.get("required") or where == "path":
                    problems.append(Problem(label, "required"))
                continue
            self._check_text(raw, schema, label, problems, explode=bool(param.get("explode", True)))
        for name in query:
            if name not in declared_query:
                problems.append(Problem(f"query.{name}", f"not a parameter of {op.operation_id}"))

    # --- bodies ---------------------------------------------------------------------------------

    def _check_body(
        self, op: Operation, body: bytes, content_type: str | None, problems: list[Problem]
    ) -> None:
        spec = op.definition.get("requestBody")
        if spec is not None:
            spec = self._resolve(spec)
        given = media_type(content_type)
        if spec is None:
            if body:
                problems.append(Problem("body", f"{op.operation_id} takes no request body"))
            return
        content: Mapping[str, Any] = spec.get("content", {})
        if not body and not given:
            self._check_empty_body(spec, problems)
            return
        if given not in content:
            problems.append(
                Problem(
                    "content-type",
                    f"{op.operation_id} takes {' or '.join(sorted(content))}, "
                    f"not {given or 'a body without a Content-Type'}",
                )
            )
            return
        schema = self._resolve(content[given].get("schema", {}))
        self._check_media(given, body, content_type, schema, problems)

    def _check_empty_body(self, spec: Mapping[str, Any], problems: list[Problem]) -> None:
        """Nothing sent: refused when a body is required, else checked as an empty one, so
        required fields are still asked for."""
        if spec.get("required"):
            problems.append(Problem("body", "a request body is required"))
            return
        content: Mapping[str, Any] = spec.get("content", {})
        first = next(iter(content), None)
        if first is not None:
            schema = self._resolve(content[first].get("schema", {}))
            self._check_value({}, schema, "body", problems)

    def _check_media(
        self,
        given: str,
        body: bytes,
        content_type: str | None,
        schema: Mapping[str, Any],
        problems: list[Problem],
    ) -> None:
        """A body of the media type ``given`` (JSON, form or multipart) against ``schema``."""
        if given == JSON_MEDIA or given.endswith("+json"):
            try:
                value = json.loads(body.decode("utf-8")) if body else None
            except (UnicodeDecodeError, ValueError) as exc:
                problems.append(Problem("body", f"not valid JSON ({exc})"))
                return
            self._check_value(value, schema, "body", problems)
        elif given == FORM:
            try:
                pairs = urllib.parse.parse_qsl(
                    body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)
                )
            except (UnicodeDecodeError, ValueError) as exc:
                problems.append(Problem("body", f"not a valid form body ({exc})"))
                return
            fields: dict[str, list[str]] = {}
            for name, value in pairs:
                fields.setdefault(name, []).append(value)
            self._check_fields(fields, schema, problems)
        elif given == MULTIPART:
            parts = _multipart_fields(body, content_type or "", problems)
            if parts is not None:
                self._check_fields(parts, schema, problems, files=True)

    def _check_fields(
        self,
        fields: Mapping[str, list[str] | list[bytes]],
        schema: Mapping[str, Any],
        problems: list[Problem],
        *,
        files: bool = False,
    ) -> None:
        """A form's fields (each a list of text values) against an object schema."""
        props: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in fields:
                problems.append(Problem(f"body.{name}", "required"))
        for name, values in fields.items():
            if name not in props:
                problems.append(Problem(f"body.{name}", "not a field of this request"))
                continue
            prop = self._resolve(props[name])
            if files and prop.get("format") == "binary":
                if len(values) > 1:
                    problems.append(Problem(f"body.{name}", "given more than once"))
                continue
            texts = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
            self._check_text(texts, prop, f"body.{name}", problems, explode=True)

    # --- values ---------------------------------------------------------------------------------

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen: set[str] = set()
        while "$ref" in schema:
            ref = str(schema["$ref"])
            if ref in seen or not ref.startswith("#/"):
                raise ValueError(f"cannot resolve $ref {ref!r}")
            seen.add(ref)
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = target
        return schema

    def _check_text(
        self,
        raw: list[str],
        schema: Mapping[str, Any],
        where: str,
        problems: list[Problem],
        *,
        explode: bool,
    ) -> None:
        """Values read from text (a query string, a form) against ``schema``."""
        schema = self._single(schema)
        if schema.get("type") == "array":
            items = self._single(self._resolve(schema.get("items", {})))
            texts: list[str] = []
            for value in raw:
                if self.comma_separated or not explode:
                    texts.extend(value.split(",") if value != "" else [])
                else:
                    texts.append(value)
            converted: list[Any] = []
            for i, text in enumerate(texts):
                value = _from_text(text, items)
                if value is _MISSING:
                    problems.append(Problem(f"{where}[{i}]", _type_reason(items, text)))
                else:
                    converted.append(value)
            self._check_value(converted, schema, where, problems)
            return
        if len(raw) != 1:
            problems.append(Problem(where, f"given {len(raw)} times; it takes one value"))
            return
        value = _from_text(raw[0], schema)
        if value is _MISSING:
            problems.append(Problem(where, _type_reason(schema, raw[0])))
            return
        self._check_value(value, schema, where, problems)

    def _single(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """A schema that is only ``oneOf``/``allOf`` one schema (Etsy's wrapping), unwrapped."""
        schema = self._resolve(schema)
        for key in ("oneOf", "anyOf", "allOf"):
            options = schema.get(key)
            if isinstance(options, list) and len(options) == 1 and "type" not in schema:
                inner = dict(self._resolve(options[0]))
                if schema.get("nullable"):
                    inner["nullable"] = True
                return inner
        return schema

    def _check_value(
        self,
        value: Any,
        schema: Mapping[str, Any],
        where: str,
        problems: list[Problem],
    ) -> None:
        """A value parsed from JSON (or converted from text) against ``schema``."""
        schema = self._single(schema)
        if value is None:
            if not schema.get("nullable") and schema:
                problems.append(Problem(where, "must not be null"))
            return
        for sub in schema.get("allOf", ()):
            self._check_value(value, sub, where, problems)
        self._check_alternatives(value, schema, where, problems)
        kind = schema.get("type")
        if kind is not None and not _is_type(value, str(kind)):
            problems.append(
                Problem(where, f"expected {_type_name(str(kind), schema)}, got {_show(value)}")
            )
            return
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(_show(v) for v in schema["enum"])
            problems.append(Problem(where, f"{_show(value)} is not one of {allowed}"))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check_number(value, schema, where, problems)
        elif isinstance(value, str):
            _check_string(value, schema, where, problems)
        elif isinstance(value, list):
            self._check_array(value, schema, where, problems)
        elif isinstance(value, dict):
            self._check_object(value, schema, where, problems)

    def _check_alternatives(
        self, value: Any, schema: Mapping[str, Any], where: str, problems: list[Problem]
    ) -> None:
        """``oneOf`` (exactly one shape matches) and ``anyOf`` (at least one)."""
        for key in ("oneOf", "anyOf"):
            options = schema.get(key)
            if not isinstance(options, list) or not options:
                continue
            matching = 0
            for sub in options:
                trial: list[Problem] = []
                self._check_value(value, sub, where, trial)
                matching += not trial
            if matching == 0 or (key == "oneOf" and matching > 1):
                problems.append(
                    Problem(where, f"matches {matching} of the {len(options)} allowed shapes")
                )

    def _check_array(
        self, value: list[Any], schema: Mapping[str, Any], where: str, problems: list[Problem]
    ) -> None:
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(Problem(where, f"fewer than {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(Problem(where, f"more than {schema['maxItems']} items"))
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(
            value
        ):
            problems.append(Problem(where, "items must be unique"))
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                self._check_value(item, items, f"{where}[{i}]", problems)

    def _check_number(
        self, value: float, schema: Mapping[str, Any], where: str, problems: list[Problem]
    ) -> None:
        fmt = schema.get("format")
        if isinstance(value, int) and fmt in _INT_RANGES:
            low, high = _INT_RANGES[str(fmt)]
            if not low <= value <= high:
                problems.append(Problem(where, f"{value} does not fit in {fmt}"))
        if "minimum" in schema:
            low_bound = schema["minimum"]
            if value < low_bound or (schema.get("exclusiveMinimum") is True and value == low_bound):
                problems.append(
                    Problem(where, f"{_show(value)} is below the minimum {_show(low_bound)}")
                )
        if "maximum" in schema:
            high_bound = schema["maximum"]
            if value > high_bound or (
                schema.get("exclusiveMaximum") is True and value == high_bound
            ):
                problems.append(
                    Problem(where, f"{_show(value)} is above the maximum {_show(high_bound)}")
                )
        if "multipleOf" in schema:
            step = schema["multipleOf"]
            if step and not math.isclose(value / step, round(value / step), abs_tol=1e-9):
                problems.append(Problem(where, f"{_show(value)} is not a multiple of {step}"))

    def _check_object(
        self,
        value: Mapping[str, Any],
        schema: Mapping[str, Any],
        where: str,
        problems: list[Problem],
    ) -> None:
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", False)
        for name in schema.get("required", ()):
            if name not in value:
                problems.append(Problem(f"{where}.{name}", "required"))
        for name, item in value.items():
            if name in props:
                self._check_value(item, props[name], f"{where}.{name}", problems)
            elif isinstance(extra, Mapping):
                self._check_value(item, extra, f"{where}.{name}", problems)
            elif extra is not True:
                problems.append(Problem(f"{where}.{name}", "not a field of this object"))

    # --- responses ------------------------------------------------------------------------------

    def check_response(
        self, operation_id: str, status: int, body: Any, *, content_type: str = JSON_MEDIA
    ) -> list[Problem]:
        """Problems with an answer to ``operation_id``: its status must be declared (or a
        ``default``/``NXX`` range), its JSON body of the declared schema (fields the schema
        does not name are reported too)."""
        op = self.by_id[operation_id]
        responses: Mapping[str, Any] = op.definition.get("responses", {})
        # By presence, not truth: a declared answer without a body (a 204) is an empty mapping.
        spec = next(
            (
                responses[key]
                for key in (str(status), f"{str(status)[0]}XX", "default")
                if key in responses
            ),
            None,
        )
        if spec is None:
            return [
                Problem(
                    "status",
                    f"{status} is not an answer {operation_id} declares "
                    f"({', '.join(sorted(responses))})",
                )
            ]
        spec = self._resolve(spec)
        content: Mapping[str, Any] = spec.get("content", {})
        if not content:
            return [] if body in (None, b"", "") else [Problem("body", f"{status} has no body")]
        given = media_type(content_type)
        if given not in content:
            return [
                Problem("content-type", f"{status} is {' or '.join(sorted(content))}, not {given}")
            ]
        problems: list[Problem] = []
        self._check_value(body, content[given].get("schema", {}), "response", problems)
        return problems


# --------------------------------------------------------------------------------------------
# Text values


def _from_text(text: str, schema: Mapping[str, Any]) -> Any:
    """A text value (query string, form field) as the type its schema declares, or _MISSING."""
    kind = schema.get("type")
    if text == "" and kind not in (None, "string"):
        return None  # an empty value is no value: null, refused unless nullable
    if kind == "integer":
        return int(text) if _INTEGER_TEXT.fullmatch(text) else _MISSING
    if kind == "number":
        if not _NUMBER_TEXT.fullmatch(text):
            return _MISSING
        number = float(text)
        return (
            int(number)
            if number.is_integer() and "." not in text and "e" not in text.lower()
            else number
        )
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, _MISSING)
    if kind in ("object", "array"):
        return _MISSING
    return text


def _type_reason(schema: Mapping[str, Any], text: str) -> str:
    kind = str(schema.get("type", "a value"))
    if kind == "boolean":
        return f"expected true or false, got {text!r}"
    return f"expected {_type_name(kind, schema)}, got {text!r}"


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _type_name(kind: str, schema: Mapping[str, Any]) -> str:
    names = {
        "integer": "an integer",
        "number": "a number",
        "boolean": "a boolean",
        "string": "a string",
        "array": "an array",
        "object": "an object",
    }
    name = names.get(kind, kind)
    return f"{name} or null" if schema.get("nullable") else name


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value) if isinstance(value, (bool, type(None), list, dict)) else str(value)


def _multipart_fields(
    body: bytes, content_type: str, problems: list[Problem]
) -> dict[str, list[bytes]] | None:
    """A multipart/form-data body as field name -> contents (files as their bytes)."""
    if "boundary=" not in content_type.lower():
        problems.append(Problem("content-type", "multipart/form-data without a boundary"))
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart() or message.defects:
        problems.append(Problem("body", "not a valid multipart/form-data body"))
        return None
    fields: dict[str, list[bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            problems.append(Problem("body", "a multipart part without a field name"))
            continue
        payload = part.get_payload(decode=True)
        fields.setdefault(name, []).append(payload if isinstance(payload, bytes) else b"")
    return fields


def error_body(checked: CheckedRequest, key: str = "error") -> dict[str, str]:
    """A vendor's one-message error body (``{"error": "..."}`` by default) for a refusal."""
    return {key: checked.message()}


def _check_string(
    value: str, schema: Mapping[str, Any], where: str, problems: list[Problem]
) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(Problem(where, f"shorter than {schema['minLength']} characters"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(Problem(where, f"longer than {schema['maxLength']} characters"))
    if "pattern" in schema and re.search(str(schema["pattern"]), value) is None:
        problems.append(Problem(where, f"does not match {schema['pattern']!r}"))
