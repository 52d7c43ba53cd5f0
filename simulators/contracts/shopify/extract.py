"""Extract the subset of Shopify's Admin GraphQL schema the engine and its simulator use, from
what Shopify publishes, and the access scopes that subset requires.

    python -m simulators.contracts.shopify.extract --version 2026-07 [--package-version 1.16.0]

Shopify ships the Admin API's introspection, per API version, in its npm package
``@shopify/dev-mcp`` (``package/dist/data/admin_<version>.json.gz``: ``{"data": {"__schema":
...}, "offline_scopes": {"items": [...]}}``, the second part naming the access scopes of each type
and field). The script reads the package version's metadata from the npm registry, takes the
tarball from the npm cache (or downloads it, and keeps it there), checks it against the
registry's ``sha512`` integrity, and writes beside itself:

- ``admin-<version>.graphql``: the schema of the root fields :data:`SIMULATED` lists and of every
  type reachable from them: output types pruned to the fields the simulator resolves (each must
  exist in Shopify's schema, with Shopify's arguments, types and deprecations), input types
  closed transitively and kept whole (a client sending a field Shopify does not know is refused);
- ``admin-<version>.scopes.json``: what each kept type and field requires (``anyOf``: any one of
  the scopes Shopify lists), as ``offline_scopes`` says;
- ``shared/adapters/vendors/shopify_contract.py``: the pinned version and, per GraphQL document the
  client sends (``shared.adapters.vendors.shopify.DOCUMENTS``), the scopes it needs, derived by
  walking the document over the extract (``--operations`` regenerates only this, from the committed
  extract, when a document changed).

Each file records its source (package, version, tarball URL and integrity, the member read), the
API version and the day it was extracted; tests/simulators/contracts/test_shopify_extract.py
checks that the committed files are what this script makes of that source.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
from graphql import (
    FieldNode,
    GraphQLSchema,
    InlineFragmentNode,
    IntrospectionQuery,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_client_schema,
    build_schema,
    get_named_type,
    is_abstract_type,
    parse,
    print_schema,
    visit,
)

from simulators.contracts.shopify import HERE, scopes_path, sdl_path

logger = logging.getLogger(__name__)

PACKAGE = "@shopify/dev-mcp"
PACKAGE_VERSION = "1.16.0"
REGISTRY = "https://registry.npmjs.org"
VERSIONS_MEMBER = "package/dist/data/supported-versions-schema.json"
OPERATIONS_MODULE = HERE.parents[2] / "shared" / "adapters" / "vendors" / "shopify_contract.py"
TIMEOUT_S = 120.0

# The fields the simulator resolves, per output type (simulators/shopify/). Everything else
# about them (arguments, types, nullability, deprecation, which interfaces a type implements)
# comes from Shopify's schema: a name here that Shopify does not have stops the extraction.
SIMULATED: dict[str, tuple[str, ...]] = {
    "QueryRoot": (
        "currentAppInstallation",
        "product",
        "productByIdentifier",
        "publicApiVersions",
        "publication",
        "publications",
        "shop",
    ),
    "Mutation": (
        "productDelete",
        "productSet",
        "productUpdate",
        "productVariantsBulkUpdate",
        "publishablePublish",
    ),
    "AccessScope": ("handle",),
    "ApiVersion": ("displayName", "handle", "supported"),
    "AppCatalog": ("id", "title"),
    "AppInstallation": ("accessScopes", "id"),
    "Catalog": ("id", "title"),
    "Count": ("count", "precision"),
    "Media": ("alt", "id", "status"),
    "MediaConnection": ("nodes",),
    "MediaImage": ("alt", "id", "status"),
    "Metafield": ("key", "namespace", "type", "value"),
    "Product": (
        "createdAt",
        "descriptionHtml",
        "handle",
        "id",
        "media",
        "metafield",
        "onlineStoreUrl",
        "options",
        "productType",
        "resourcePublicationsCount",
        "status",
        "tags",
        "title",
        "updatedAt",
        "variants",
        "vendor",
    ),
    "ProductDeletePayload": ("deletedProductId", "userErrors"),
    "ProductOption": ("name", "optionValues", "position"),
    "ProductOptionValue": ("name",),
    "ProductSetPayload": ("product", "userErrors"),
    "ProductSetUserError": ("code", "field", "message"),
    "ProductUpdatePayload": ("product", "userErrors"),
    "ProductVariant": (
        "id",
        "price",
        "resourcePublicationsCount",
        "selectedOptions",
        "sku",
        "title",
    ),
    "ProductVariantConnection": ("nodes",),
    "ProductVariantsBulkUpdatePayload": ("product", "productVariants", "userErrors"),
    "ProductVariantsBulkUpdateUserError": ("code", "field", "message"),
    "Publishable": ("resourcePublicationsCount",),
    "PublishablePublishPayload": ("publishable", "userErrors"),
    "Publication": ("catalog", "id", "name"),
    "PublicationConnection": ("nodes",),
    "SelectedOption": ("name", "value"),
    "Shop": ("myshopifyDomain", "name"),
    "UserError": ("field", "message"),
}

_OUTPUT_KINDS = {"OBJECT", "INTERFACE", "UNION"}


class ExtractError(Exception):
    """The published schema does not have what the subset names, or the source is not what
    its record says."""


@dataclass(frozen=True)
class Source:
    """Where an extract comes from: one file of one npm package version."""

    package: str
    version: str
    tarball: str
    integrity: str
    member: str

    @classmethod
    def of(cls, recorded: Mapping[str, Any]) -> Source:
        return cls(**{k: str(recorded[k]) for k in cls.__dataclass_fields__})


# ------------------------------------------------------------------------------- the package


def registry_source(api_version: str, package_version: str = PACKAGE_VERSION) -> Source:
    """The package version's tarball and integrity, as the npm registry publishes them."""
    url = f"{REGISTRY}/{quote(PACKAGE, safe='@')}/{package_version}"
    resp = httpx.get(url, timeout=TIMEOUT_S, follow_redirects=True)
    resp.raise_for_status()
    dist = resp.json()["dist"]
    return Source(
        package=PACKAGE,
        version=package_version,
        tarball=str(dist["tarball"]),
        integrity=str(dist["integrity"]),
        member=f"package/dist/data/admin_{api_version}.json.gz",
    )


def npm_cache_dir() -> Path:
    """npm's cache (``npm config get cache``: ``npm_config_cache``, else ``~/.npm``)."""
    configured = os.environ.get("npm_config_cache")  # noqa: SIM112  # npm's own spelling
    return Path(configured) if configured else Path.home() / ".npm"


def _sha512_hex(integrity: str) -> str:
    algorithm, _, digest = integrity.partition("-")
    if algorithm != "sha512" or not digest:
        raise ExtractError(f"integrity {integrity!r} is not a sha512 subresource integrity")
    return base64.b64decode(digest).hex()


def cache_path(integrity: str, cache: Path | None = None) -> Path:
    """Where npm's content-addressed cache (cacache) keeps the content of ``integrity``."""
    digest = _sha512_hex(integrity)
    root = (cache or npm_cache_dir()) / "_cacache" / "content-v2" / "sha512"
    return root / digest[:2] / digest[2:4] / digest[4:]


def verify(data: bytes, integrity: str) -> None:
    """ExtractError unless ``data`` is what ``integrity`` (``sha512-<base64>``) names."""
    if hashlib.sha512(data).hexdigest() != _sha512_hex(integrity):
        raise ExtractError(f"the tarball does not match its integrity {integrity}")


def cached_tarball(source: Source, cache: Path | None = None) -> bytes | None:
    """The tarball from npm's cache, checked; None when it is not there."""
    path = cache_path(source.integrity, cache)
    if not path.is_file():
        return None
    data = path.read_bytes()
    verify(data, source.integrity)
    return data


def tarball(source: Source) -> bytes:
    """The package tarball: from npm's cache, else downloaded, checked and kept in the cache
    (so the drift test can read it again without the network)."""
    data = cached_tarball(source)
    if data is not None:
        return data
    logger.info("downloading %s", source.tarball)
    resp = httpx.get(source.tarball, timeout=TIMEOUT_S, follow_redirects=True)
    resp.raise_for_status()
    data = resp.content
    verify(data, source.integrity)
    path = cache_path(source.integrity)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def read_member(data: bytes, member: str) -> Any:
    """A JSON file of the tarball (gunzipped when its name ends in ``.gz``)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        try:
            extracted = tar.extractfile(member)
        except KeyError:
            raise ExtractError(f"the package has no {member}") from None
        if extracted is None:
            raise ExtractError(f"{member} is not a file")
        raw = extracted.read()
    return json.loads(gzip.decompress(raw) if member.endswith(".gz") else raw)


def version_status(data: bytes, api_version: str) -> str:
    """What the package says of the version: ``latestVersion``, ``releaseCandidate``..."""
    listed = read_member(data, VERSIONS_MEMBER).get("admin") or []
    entry = next((v for v in listed if v.get("name") == api_version), None)
    if entry is None:
        raise ExtractError(f"the package does not list Admin API version {api_version}")
    flags = [k for k, v in entry.items() if k != "name" and v is True]
    return ", ".join(flags) or "supported"


# ---------------------------------------------------------------------------------- pruning


def _named(ref: Mapping[str, Any]) -> str:
    while ref.get("ofType") is not None:
        ref = ref["ofType"]
    return str(ref["name"])


def _input_value(value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": value["name"],
        "description": None,
        "type": value["type"],
        "defaultValue": value.get("defaultValue"),
        "isDeprecated": bool(value.get("isDeprecated")),
        "deprecationReason": value.get("deprecationReason"),
    }


def _field(field: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": field["name"],
        "description": None,
        "args": [_input_value(a) for a in field.get("args") or []],
        "type": field["type"],
        "isDeprecated": bool(field.get("isDeprecated")),
        "deprecationReason": field.get("deprecationReason"),
    }


def _ref(kind: str, name: str) -> dict[str, Any]:
    return {"kind": kind, "name": name, "ofType": None}


Types = Mapping[str, Mapping[str, Any]]
Simulated = Mapping[str, Sequence[str]]


def _outputs(types: Types, roots: list[str], simulated: Simulated) -> dict[str, Mapping[str, Any]]:
    """The output types of the subset, each checked to exist with the fields listed."""
    problems = [f"root type {r} is not in the subset" for r in roots if r not in simulated]
    outputs: dict[str, Mapping[str, Any]] = {}
    for name, wanted in simulated.items():
        found = types.get(name)
        if found is None:
            problems.append(f"{name}: no such type")
            continue
        if found["kind"] not in _OUTPUT_KINDS:
            problems.append(f"{name}: a {found['kind']}, not an output type")
            continue
        have = {f["name"] for f in found.get("fields") or []}
        problems += [f"{name}.{f}: no such field" for f in wanted if f not in have]
        outputs[name] = found
    if problems:
        raise ExtractError("; ".join(problems))
    return outputs


def _needed(
    types: Types,
    outputs: Mapping[str, Mapping[str, Any]],
    simulated: Simulated,
    directives: list[Mapping[str, Any]],
) -> set[str]:
    """Every type the subset's fields, their arguments and the directives name, input types
    closed transitively."""
    problems: list[str] = []
    pending: list[str] = []
    for name, found in outputs.items():
        for field in found.get("fields") or []:
            if field["name"] not in simulated[name]:
                continue
            result = _named(field["type"])
            if types[result]["kind"] in _OUTPUT_KINDS and result not in outputs:
                problems.append(f"{name}.{field['name']} returns {result}, not in the subset")
            pending.append(result)
            pending += [_named(a["type"]) for a in field.get("args") or []]
    if problems:
        raise ExtractError("; ".join(problems))
    pending += [_named(a["type"]) for d in directives for a in d.get("args") or []]
    needed: set[str] = set(outputs)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        if types[name]["kind"] == "INPUT_OBJECT":
            pending += [_named(f["type"]) for f in types[name]["inputFields"]]
    return needed


def _kept_interfaces(
    found: Mapping[str, Any], outputs: Mapping[str, Any], simulated: Simulated
) -> list[dict[str, Any]]:
    out = []
    for iface in found.get("interfaces") or []:
        if iface["name"] not in outputs:
            continue
        missing = set(simulated[iface["name"]]) - set(simulated[found["name"]])
        if missing:
            raise ExtractError(
                f"{found['name']} implements {iface['name']}: also list "
                f"{', '.join(sorted(missing))} for it"
            )
        out.append(_ref("INTERFACE", iface["name"]))
    return out


def _possible(found: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        _ref(t["kind"], t["name"]) for t in found.get("possibleTypes") or [] if t["name"] in outputs
    ]


def _enum_value(v: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": v["name"],
        "description": None,
        "isDeprecated": bool(v.get("isDeprecated")),
        "deprecationReason": v.get("deprecationReason"),
    }


def _kept(
    name: str, types: Types, outputs: Mapping[str, Any], simulated: Simulated
) -> dict[str, Any]:
    """One type of the subset, cut to the simulated fields, descriptions dropped."""
    found = types[name]
    kind = found["kind"]
    out: dict[str, Any] = {"kind": kind, "name": name, "description": None}
    if kind == "SCALAR":
        out["specifiedByURL"] = found.get("specifiedByURL")
    elif kind in ("OBJECT", "INTERFACE"):
        out["fields"] = [_field(f) for f in found["fields"] if f["name"] in simulated[name]]
        out["interfaces"] = _kept_interfaces(found, outputs, simulated)
        if kind == "INTERFACE":
            out["possibleTypes"] = _possible(found, outputs)
    elif kind == "UNION":
        out["possibleTypes"] = _possible(found, outputs)
    elif kind == "ENUM":
        out["enumValues"] = [_enum_value(v) for v in found["enumValues"]]
    elif kind == "INPUT_OBJECT":
        out["inputFields"] = [_input_value(f) for f in found["inputFields"]]
        out["isOneOf"] = bool(found.get("isOneOf"))
    return out


def _directive(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": d["name"],
        "description": None,
        "isRepeatable": bool(d.get("isRepeatable")),
        "locations": d["locations"],
        "args": [_input_value(a) for a in d.get("args") or []],
    }


def prune(schema: Mapping[str, Any], simulated: Simulated) -> dict[str, Any]:
    """The introspection ``__schema`` cut down to ``simulated`` (output type -> its fields) and
    what those fields need: their result types (each output one must be listed too), their
    arguments' types, and every input type closed transitively, kept whole. Descriptions are
    dropped; names, types, defaults and deprecations are Shopify's."""
    types = {t["name"]: t for t in schema["types"]}
    roots = [schema["queryType"]["name"]]
    if schema.get("mutationType"):
        roots.append(schema["mutationType"]["name"])
    outputs = _outputs(types, roots, simulated)
    directives = list(schema.get("directives") or [])
    needed = _needed(types, outputs, simulated, directives)
    return {
        "queryType": {"name": roots[0]},
        "mutationType": {"name": roots[1]} if len(roots) > 1 else None,
        "subscriptionType": None,
        "types": [_kept(n, types, outputs, simulated) for n in sorted(needed)],
        "directives": [_directive(d) for d in directives],
    }


def scope_requirements(
    items: Sequence[Mapping[str, Any]], pruned: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """What each kept type and field requires, from ``offline_scopes``: one entry per type or
    field that names scopes, ``anyOf`` the scopes Shopify lists for it (any one suffices)."""
    fields = {(t["name"], f["name"]) for t in pruned["types"] for f in t.get("fields") or []}
    type_names = {t["name"] for t in pruned["types"]}
    out = []
    for item in items:
        scopes = list(dict.fromkeys(item.get("offlineScopes") or []))
        if not scopes:
            continue
        if item["type"] == "type":
            key: tuple[str, str | None] = (item["typeName"], None)
            if item["typeName"] not in type_names:
                continue
        elif item["type"] == "field":
            key = (item["typeName"], item.get("fieldName"))
            if key not in fields:
                continue
        else:
            continue
        access = str(item.get("requiredAccess") or "")
        if "both" in access.lower():
            # "any one of the listed scopes" does not read this one: decide it by hand.
            raise ExtractError(f"{key}: {access!r} needs all of its scopes, not any one")
        out.append({"type": key[0], "field": key[1], "anyOf": scopes, "requiredAccess": access})
    return sorted(out, key=lambda r: (r["type"], r["field"] or ""))


# ---------------------------------------------------------------------------------- writing


def header(source: Source, api_version: str, status: str, day: str) -> list[str]:
    """The record of where an extract comes from (the drift test reads it back)."""
    return [
        "Extracted by `python -m simulators.contracts.shopify.extract`: do not edit.",
        f"source: npm {source.package}@{source.version} {source.member}",
        f"tarball: {source.tarball}",
        f"integrity: {source.integrity}",
        f"api version: {api_version} ({status} in the package's supported-versions list)",
        f"extracted: {day}",
    ]


def render_sdl(pruned: Mapping[str, Any], lines: Sequence[str]) -> str:
    schema = build_client_schema(cast(IntrospectionQuery, {"__schema": pruned}))
    return "".join(f"# {line}\n" for line in lines) + "\n" + print_schema(schema) + "\n"


def render_scopes(
    requirements: Sequence[Mapping[str, Any]],
    source: Source,
    api_version: str,
    status: str,
    day: str,
) -> str:
    body = {
        "comment": "Extracted by `python -m simulators.contracts.shopify.extract`: do not edit.",
        "source": asdict(source),
        "apiVersion": api_version,
        "versionStatus": status,
        "extracted": day,
        "requirements": list(requirements),
    }
    return json.dumps(body, indent=1, sort_keys=False) + "\n"


@dataclass(frozen=True)
class Extract:
    """The two files of one API version, as text."""

    sdl: str
    scopes: str


def extract_from(data: bytes, source: Source, api_version: str, day: str) -> Extract:
    """The extract of ``api_version`` from the package tarball ``data`` (already checked)."""
    introspection = read_member(data, source.member)
    status = version_status(data, api_version)
    pruned = prune(introspection["data"]["__schema"], SIMULATED)
    items = (introspection.get("offline_scopes") or {}).get("items") or []
    return Extract(
        sdl=render_sdl(pruned, header(source, api_version, status, day)),
        scopes=render_scopes(scope_requirements(items, pruned), source, api_version, status, day),
    )


def recorded_source(api_version: str) -> Source:
    """The source the committed extract of ``api_version`` records."""
    return Source.of(json.loads(scopes_path(api_version).read_text())["source"])


# ------------------------------------------------------------------------ operations' scopes


def load_schema(api_version: str) -> GraphQLSchema:
    """The committed extract of ``api_version`` as a schema."""
    return build_schema(sdl_path(api_version).read_text())


def document_scopes(
    schema: GraphQLSchema, requirements: Sequence[Mapping[str, Any]], document: str
) -> list[tuple[str, ...]]:
    """The scope requirements of one document: each field and each type it selects that
    requires scopes (a tuple: any one of them)."""
    by_field = {(r["type"], r["field"]): tuple(r["anyOf"]) for r in requirements if r["field"]}
    by_type = {r["type"]: tuple(r["anyOf"]) for r in requirements if not r["field"]}
    info = TypeInfo(schema)
    found: set[tuple[str, ...]] = set()

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = info.get_parent_type()
            if parent is not None and (parent.name, node.name.value) in by_field:
                found.add(by_field[(parent.name, node.name.value)])
            self._type()

        def enter_inline_fragment(self, node: InlineFragmentNode, *_: object) -> None:
            self._type()

        def _type(self) -> None:
            current = info.get_type()
            if current is None:
                return
            named = get_named_type(current)
            # An abstract type is checked on the object Shopify resolves: any of them may be.
            objects = schema.get_possible_types(named) if is_abstract_type(named) else [named]
            for name in (named.name, *(o.name for o in objects)):
                if name in by_type:
                    found.add(by_type[name])

    visit(parse(document), TypeInfoVisitor(info, Collect()))
    return sorted(found)


def _literal(scopes: Sequence[tuple[str, ...]]) -> list[str]:
    """A list of scope lists as ruff formats it, one requirement a line."""
    if not scopes:
        return ["[]"]
    return ["[", *(f"        [{', '.join(json.dumps(s) for s in r)}]," for r in scopes), "    ]"]


def render_operations(api_version: str, documents: Mapping[str, str]) -> str:
    """``shared/adapters/vendors/shopify_contract.py``: the pinned version, and each document's
    scopes."""
    schema = load_schema(api_version)
    scopes = json.loads(scopes_path(api_version).read_text())
    rows = []
    for name, document in sorted(documents.items()):
        first, *rest = _literal(document_scopes(schema, scopes["requirements"], document))
        rows += [f"    {json.dumps(name)}: {first}", *rest]
        rows[-1] += ","
    source = scopes["source"]
    origin = f"simulators/contracts/shopify/admin-{api_version}.*"
    return "\n".join(
        [
            '"""Shopify\'s Admin API as the engine uses it: the pinned version, and the access',
            "scopes each GraphQL document the client sends "
            "(shared.adapters.vendors.shopify.DOCUMENTS)",
            f"needs, derived from the extract of that version ({origin},",
            f"from npm {source['package']}@{source['version']}).",
            "",
            "Generated by `python -m simulators.contracts.shopify.extract`: do not edit.",
            '"""',
            "",
            "# The Admin API version the client calls, the simulator serves and the extract is of.",
            f"API_VERSION = {json.dumps(api_version)}",
            "",
            "# Per operation: the access scopes it needs, each list any one of its scopes (a",
            "# write_ scope also grants the read_ scope of the same resource).",
            "OPERATION_SCOPES: dict[str, list[list[str]]] = {",
            *rows,
            "}",
            "",
        ]
    )


def write_operations(api_version: str) -> None:
    from shared.adapters.vendors.shopify import DOCUMENTS

    OPERATIONS_MODULE.write_text(render_operations(api_version, DOCUMENTS))
    logger.info("wrote %s", OPERATIONS_MODULE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="Admin API version, e.g. 2026-07")
    parser.add_argument("--package-version", default=PACKAGE_VERSION)
    parser.add_argument(
        "--operations",
        action="store_true",
        help=(
            "only regenerate shared/adapters/vendors/shopify_contract.py from the committed extract"
        ),
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.operations:
        source = registry_source(args.version, args.package_version)
        day = datetime.now(UTC).date().isoformat()
        made = extract_from(tarball(source), source, args.version, day)
        sdl_path(args.version).write_text(made.sdl)
        scopes_path(args.version).write_text(made.scopes)
        logger.info("wrote %s and %s", sdl_path(args.version), scopes_path(args.version))
    write_operations(args.version)


if __name__ == "__main__":
    main()
