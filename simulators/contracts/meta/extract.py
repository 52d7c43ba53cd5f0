"""Extract the Graph catalog contract the Meta simulator enforces from Meta's SDK codegen specs.

    python -m simulators.contracts.meta.extract PATH [--date YYYY-MM-DD] [--out FILE] [--check]

``PATH`` is a checkout of github.com/facebook/facebook-business-sdk-codegen, or a git directory
of one (its ``HEAD`` is read with ``git show``). It keeps, from ``api_specs/specs/``:

- the edges of :data:`simulators.contracts.meta.EDGES` (method, params with required and type);
- the fields of :data:`simulators.contracts.meta.NODES` (name -> type);
- the enums (``enum_types.json``) those fields and params name, as ``<node>.<field>``;
- :data:`~simulators.contracts.meta.ITEM_FIELDS`, each with the type and enum of the ProductItem
  field it maps to;

with ``_source``: repository, commit, commit date, Graph API version (``version.txt``) and the
extraction date. The output is JSON with sorted keys, so the same source and date give the same
bytes (the drift test checks the committed file against this script's output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from simulators.contracts.meta import EDGES, EXTRACT, ITEM_FIELDS, ITEMS_DOC, NODES, REPOSITORY

SPECS = "api_specs/specs"


class ExtractError(Exception):
    """The source lacks something the engine relies on."""


class Source:
    """Files of a codegen checkout, or of a git directory's HEAD."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.worktree = (path / SPECS).is_dir()
        if not self.worktree and not (path / "HEAD").is_file():
            raise ExtractError(f"{path}: neither a codegen checkout nor a git directory")

    def _git(self, *args: str) -> str:
        return subprocess.run(  # git, with arguments of our own
            ["git", "--git-dir" if not self.worktree else "-C", str(self.path), *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def read(self, name: str) -> str:
        if self.worktree:
            return (self.path / name).read_text()
        try:
            return self._git("show", f"HEAD:{name}")
        except subprocess.CalledProcessError as exc:
            raise ExtractError(f"{name}: not in the source ({exc.stderr.strip()})") from None

    def commit(self) -> tuple[str, str]:
        """(commit sha, commit date as ISO 8601)."""
        out = self._git("log", "-1", "--format=%H %cI", "HEAD").split()
        return out[0], out[1]


def _spec(source: Source, node: str) -> dict[str, Any]:
    try:
        spec: dict[str, Any] = json.loads(source.read(f"{SPECS}/{node}.json"))
    except FileNotFoundError:
        raise ExtractError(f"{node}: Meta publishes no spec of this node") from None
    return spec


def extract(source: Source, date: str) -> dict[str, Any]:
    enums_by_name = {e["name"]: e for e in json.loads(source.read(f"{SPECS}/enum_types.json"))}
    wanted_enums: dict[str, str] = {}  # enum type name -> "<node>.<field>"
    edges: dict[str, dict[str, Any]] = {}
    for node, wanted in EDGES.items():
        apis = _spec(source, node)["apis"]
        kept: dict[str, Any] = {}
        for method, edge in wanted:
            found = [a for a in apis if a.get("method") == method and a.get("endpoint") == edge]
            if not found:
                raise ExtractError(f"{node}: no {method} {edge} edge in Meta's spec")
            api = found[0]
            params = sorted(
                (
                    {"name": p["name"], "required": bool(p.get("required")), "type": p["type"]}
                    for p in api.get("params", [])
                ),
                key=lambda p: p["name"],
            )
            for p in params:
                if p["type"] in enums_by_name:
                    wanted_enums[p["type"]] = f"{edge}.{p['name']}"
            kept[f"{method} {edge}"] = {"return": api.get("return"), "params": params}
        edges[node] = kept
    nodes: dict[str, dict[str, str]] = {}
    for node in NODES:
        fields = {f["name"]: f["type"] for f in _spec(source, node)["fields"]}
        nodes[node] = dict(sorted(fields.items()))
        for name, kind in fields.items():
            if kind in enums_by_name:
                wanted_enums[kind] = f"{node}.{name}"
    enums = {label: list(enums_by_name[kind]["values"]) for kind, label in wanted_enums.items()}
    item_fields: dict[str, Any] = {}
    product_item = nodes["ProductItem"]
    for name, (graph_field, required) in ITEM_FIELDS.items():
        if graph_field not in product_item:
            raise ExtractError(f"items_batch field {name}: ProductItem has no {graph_field}")
        kind = product_item[graph_field]
        item_fields[name] = {
            "graph_field": graph_field,
            "type": kind,
            "required": required,
            "enum": enums.get(f"ProductItem.{graph_field}"),
        }
    commit, committed = source.commit()
    return {
        "_source": {
            "repository": f"https://github.com/{REPOSITORY}",
            "files": f"{SPECS}/*.json, {SPECS}/enum_types.json, {SPECS}/version.txt",
            "commit": commit,
            "commit_date": committed,
            "graph_api_version": source.read(f"{SPECS}/version.txt").strip(),
            "extracted": date,
            "item_fields_from": ITEMS_DOC,
        },
        "edges": edges,
        "nodes": nodes,
        "enums": dict(sorted(enums.items())),
        "item_fields": item_fields,
    }


def render(extracted: dict[str, Any]) -> str:
    return json.dumps(extracted, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.contracts.meta.extract")
    parser.add_argument("path", type=Path)
    parser.add_argument("--date", default=dt.date.today().isoformat())
    parser.add_argument("--out", type=Path, default=EXTRACT)
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args(argv)
    text = render(extract(Source(args.path), args.date))
    if args.check:
        same = args.out.read_text() == text
        sys.stderr.write(f"{args.out}: {'up to date' if same else 'differs'}\n")
        return 0 if same else 1
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
