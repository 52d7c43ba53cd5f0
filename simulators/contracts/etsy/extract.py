"""Extract the engine's subset of Etsy's published OpenAPI document.

    python -m simulators.contracts.etsy.extract --source <file or https URL, JSON or YAML> \\
        [--out simulators/contracts/etsy/openapi-subset.json] [--date YYYY-MM-DD] \\
        [--copy-repo owner/name --copy-path path --copy-commit sha] [--copy-note "..."] [--check]

It keeps the operations the engine uses (:data:`simulators.contracts.etsy.OPERATIONS`, by
operationId) with their parameters, request bodies (every media type), responses and ``security``
(the OAuth scopes each needs), and every component they reference, closed transitively. It drops
what does not constrain a request or an answer: descriptions (except the security schemes',
which say how the credentials are formatted), summaries, examples, the ``x-microcks-*`` keys a
mirror adds, and the document's tag lists. ``x-pod-source`` records where the document came from
(Etsy's URL, and the copy actually read when Etsy's own was out of reach), its ``info.version``,
its ``x-last-validated`` date, the extraction date and the sha256 of the source's bytes;
``x-pod-operations`` lists each kept operation with its method, path, scopes and caller.

The output is JSON with sorted keys: the same source, date and notes give the same bytes, which
the drift test checks (tests/simulators/contracts/etsy/test_extract.py). ``--check`` compares
with the file instead of writing it (exit status 1 on a difference).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from simulators.contracts.etsy import OPERATIONS, SOURCE_URL, SUBSET

logger = logging.getLogger(__name__)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keys whose value is a map from names (of fields, paths, statuses, media types, components...)
# to definitions: its keys are names, never keywords, so none of them is dropped.
NAME_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "paths",
        "responses",
        "content",
        "schemas",
        "parameters",
        "requestBodies",
        "securitySchemes",
        "scopes",
        "encoding",
        "headers",
        "links",
        "callbacks",
        "variables",
        "mapping",
    }
)
# Keywords that say nothing a request or an answer must satisfy.
DROPPED = frozenset({"description", "summary", "example", "examples", "externalDocs"})
DROPPED_TOP = frozenset({"tags", "x-tagGroups"})


class ExtractError(Exception):
    """The source cannot give the subset (not OpenAPI 3, operations missing, bad $ref)."""


def load_source(source: str) -> tuple[bytes, dict[str, Any]]:
    """The source's bytes and the document they hold (JSON, else YAML); ``source`` is a file
    path or an http(s) URL."""
    if source.startswith(("https://", "http://")):
        resp = httpx.get(source, timeout=60.0, follow_redirects=True)
        if resp.status_code != 200:
            raise ExtractError(f"GET {source}: HTTP {resp.status_code}")
        raw = resp.content
    else:
        raw = Path(source).read_bytes()
    text = raw.decode("utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ExtractError(f"{source}: neither JSON nor YAML ({exc})") from None
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise ExtractError(f"{source}: not an OpenAPI 3 document")
    return raw, document


def _strip(node: Any, *, names: bool = False, keep_descriptions: bool = False) -> Any:
    """``node`` without the keys in DROPPED or starting with ``x-microcks`` (``names``: its
    keys are names, kept all)."""
    if isinstance(node, list):
        return [_strip(item, keep_descriptions=keep_descriptions) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not names and (
            key.startswith("x-microcks") or (key in DROPPED and not keep_descriptions)
        ):
            continue
        out[key] = _strip(
            value,
            names=not names and key in NAME_MAPS,
            keep_descriptions=keep_descriptions or key == "securitySchemes",
        )
    return out


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _component(document: Mapping[str, Any], ref: str) -> tuple[str, str, Any]:
    parts = ref.split("/")
    if len(parts) != 4 or parts[:2] != ["#", "components"]:
        raise ExtractError(f"$ref {ref!r}: only #/components/<kind>/<name> is supported")
    kind, name = parts[2], parts[3]
    try:
        return kind, name, document["components"][kind][name]
    except KeyError:
        raise ExtractError(f"$ref {ref!r} names no component of the document") from None


Found = dict[str, tuple[str, str, Mapping[str, Any]]]


def _operations(
    document: Mapping[str, Any], wanted: list[str]
) -> tuple[dict[str, dict[str, Any]], Found]:
    """The paths holding the wanted operations (with their shared parameters), and each
    operation's method, path template and definition."""
    paths: dict[str, dict[str, Any]] = {}
    found: Found = {}
    for template, item in document.get("paths", {}).items():
        for method, op in item.items():
            if method not in HTTP_METHODS or op.get("operationId") not in wanted:
                continue
            opid = str(op["operationId"])
            if opid in found:
                raise ExtractError(f"operationId {opid} appears twice in the document")
            found[opid] = (method, template, op)
            entry = paths.setdefault(template, {})
            entry[method] = op
            if "parameters" in item:
                entry["parameters"] = item["parameters"]
    missing = [opid for opid in wanted if opid not in found]
    if missing:
        raise ExtractError(
            f"the document has no operation {', '.join(missing)}: Etsy renamed or removed "
            "it; the engine's call needs checking against the new document"
        )
    return paths, found


def _referenced(document: Mapping[str, Any], paths: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every component the paths reference, transitively."""
    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        kind, name, definition = _component(document, ref)
        components.setdefault(kind, {})[name] = definition
        pending.extend(_refs(definition))
    return components


def _used_schemes(security: list[Any], found: Found, schemes: Mapping[str, Any]) -> list[str]:
    """The security schemes the document's and the operations' requirements name."""
    used: set[str] = set()
    for requirements in [security, *(op.get("security", []) for *_, op in found.values())]:
        for requirement in requirements:
            used.update(requirement)
    for name in sorted(used):
        if name not in schemes:
            raise ExtractError(f"security scheme {name!r} is used but not defined")
    return sorted(used)


def _scopes(op: Mapping[str, Any], security: list[Any], schemes: Mapping[str, Any]) -> list[str]:
    """The OAuth scopes an operation's security names."""
    return sorted(
        {
            str(scope)
            for requirement in op.get("security", security)
            for name, scopes in requirement.items()
            if schemes.get(name, {}).get("type") == "oauth2"
            for scope in scopes
        }
    )


def prune(document: Mapping[str, Any], operation_ids: Iterable[str]) -> dict[str, Any]:
    """The subset of ``document`` with the given operations and what they reference."""
    paths, found = _operations(document, list(dict.fromkeys(operation_ids)))
    security = document.get("security") or []
    components = _referenced(document, paths)
    schemes: dict[str, Any] = document.get("components", {}).get("securitySchemes", {})
    for name in _used_schemes(security, found, schemes):
        components.setdefault("securitySchemes", {})[name] = schemes[name]
    subset: dict[str, Any] = {
        key: value
        for key, value in document.items()
        if key not in ("paths", "components") and key not in DROPPED_TOP
    }
    subset["paths"] = paths
    subset["components"] = components
    subset = _strip(subset)
    subset["x-pod-operations"] = {
        opid: {"method": method.upper(), "path": template, "scopes": _scopes(op, security, schemes)}
        for opid, (method, template, op) in found.items()
    }
    return subset


def extract(
    raw: bytes,
    document: Mapping[str, Any],
    *,
    date: str,
    copy: Mapping[str, str] | None = None,
    operations: Mapping[str, str] = OPERATIONS,
) -> str:
    """The extract's text: the subset, ``x-pod-source`` and each operation's caller."""
    subset = prune(document, operations)
    for opid, entry in subset["x-pod-operations"].items():
        entry["used_by"] = operations[opid]
    info: Mapping[str, Any] = document.get("info", {})
    source: dict[str, Any] = {
        "url": SOURCE_URL,
        "openapi": document.get("openapi"),
        "info_version": info.get("version"),
        "x_last_validated": info.get("x-last-validated"),
        "x_generated_from": info.get("x-generated-from"),
        "extracted": date,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "extractor": "python -m simulators.contracts.etsy.extract",
    }
    if copy:
        source["read_from"] = dict(copy)
    subset["x-pod-source"] = source
    return json.dumps(subset, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--source", required=True, help="Etsy's OAS: a file or an http(s) URL")
    parser.add_argument("--out", default=str(SUBSET), help="where to write the extract")
    parser.add_argument(
        "--date",
        default=dt.datetime.now(dt.UTC).date().isoformat(),
        help="the extraction date recorded (default: today, UTC)",
    )
    parser.add_argument("--copy-repo", help="the copy read, when not Etsy's own: owner/name")
    parser.add_argument("--copy-path", help="the copy's path in that repository")
    parser.add_argument("--copy-commit", help="the copy's commit")
    parser.add_argument("--copy-note", help="anything else to record about the copy read")
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    copy = {
        key: value
        for key, value in (
            ("repo", args.copy_repo),
            ("path", args.copy_path),
            ("commit", args.copy_commit),
            ("note", args.copy_note),
        )
        if value
    }
    try:
        dt.date.fromisoformat(args.date)
        raw, document = load_source(args.source)
        text = extract(raw, document, date=args.date, copy=copy)
    except (ExtractError, OSError, ValueError, httpx.HTTPError) as exc:
        logger.error("extraction failed: %s", exc)
        return 2
    out = Path(args.out)
    if args.check:
        same = out.exists() and out.read_text(encoding="utf-8") == text
        logger.info("%s %s", out, "is up to date" if same else "differs from a fresh extraction")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    logger.info(
        "wrote %s: %d operations, %d schemas, %d bytes",
        out,
        len(OPERATIONS),
        len(json.loads(text)["components"].get("schemas", {})),
        len(text.encode()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
