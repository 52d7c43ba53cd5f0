"""What the Meta simulator keeps: the business's catalog and its items, the batches and their
outcome, the tokens it has seen and the business's call usage per use case.

A batch is checked request by request when it finishes, ``batch_delay_s`` after it arrived, as
Meta's ingestion does: ``items_batch`` answers at once with a handle, and an item that lacks a
required field, has a value outside the field's enum or that Meta rejects for another reason
(``reject_share``) becomes one of the batch's ``errors`` (and is not saved); the others are
saved. Items are keyed by retailer id in their catalog: one retailer id is one item, whatever
is sent.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from simulators.contracts.meta import CatalogContract
from simulators.meta.errors import GraphError
from simulators.meta.settings import MetaSettings

METHODS = ("CREATE", "UPDATE", "DELETE")
# "12.34 USD": an amount and an ISO 4217 code, as Meta's catalog fields take a price.
PRICE = re.compile(r"^\d{1,9}(\.\d{1,2})? [A-Z]{3}$")
URL = re.compile(r"^https?://[^\s/]+\S*$")
MAX_REQUESTS = 5000
# The use case types of Meta's Business Use Case limits for catalogs, and the code of the
# error a call over each one's budget gets (Graph rate-limiting docs, Catalog section).
CATALOG_BATCH, CATALOG_MANAGEMENT = "catalog_batch", "catalog_management"
THROTTLE_CODES = {CATALOG_BATCH: 80014, CATALOG_MANAGEMENT: 80009}
THROTTLE_MESSAGES = {
    CATALOG_BATCH: "(#80014) There have been too many calls for the batch uploads to this "
    "catalog account. Wait a bit and try again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting#catalog.",
    CATALOG_MANAGEMENT: "(#80009) There have been too many calls to this Catalog account. Wait "
    "a bit and try again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


@dataclass
class Item:
    meta_id: str
    retailer_id: str
    data: dict[str, str]
    created_at: float
    updated_at: float
    writes: int = 1
    review_status: str = "approved"

    def as_graph(self, catalog_id: str) -> dict[str, Any]:
        """The ProductItem as ``GET /{catalog}/products`` gives it."""
        fields: dict[str, Any] = {
            "id": self.meta_id,
            "retailer_id": self.retailer_id,
            "retailer_product_group_id": self.data.get("item_group_id"),
            "name": self.data.get("title"),
            "description": self.data.get("description"),
            "availability": self.data.get("availability"),
            "condition": self.data.get("condition"),
            "price": self.data.get("price"),
            "url": self.data.get("link"),
            "image_url": self.data.get("image_link"),
            "brand": self.data.get("brand"),
            "size": self.data.get("size"),
            "color": self.data.get("color"),
            "review_status": self.review_status,
            # "staging": hidden from shoppers, kept in the catalog (a seller's unpublish).
            "visibility": self.data.get("visibility", "published"),
            "errors": [],
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass
class Batch:
    handle: str
    catalog_id: str
    requests: list[Any]
    allow_upsert: bool
    finish_at: float
    result: dict[str, Any] | None = None


@dataclass
class Usage:
    calls: collections.deque[float] = field(default_factory=collections.deque)
    throttled: int = 0


class MetaState:
    def __init__(self, settings: MetaSettings, contract: CatalogContract) -> None:
        self.settings = settings
        self.contract = contract
        self.fields = contract.item_fields()
        self.rng = random.Random(settings.seed)  # a simulation, not security
        self.reset()

    def reset(self) -> None:
        self.items: dict[str, dict[str, Item]] = {self.settings.catalog_id: {}}
        self.batches: dict[str, Batch] = {}
        self.first_seen: dict[str, float] = {}
        self.expired: set[str] = set()
        self.usage: dict[str, Usage] = collections.defaultdict(Usage)
        self.calls = 0
        self.valid = 0  # valid items seen (reject_every counts them)

    # --- credentials ---------------------------------------------------------------------

    def check_token(self, token: str | None) -> None:
        if not token:
            raise GraphError("An access token is required to request this resource.", code=104)
        if token not in self.settings.token_list():
            raise GraphError("Invalid OAuth access token - Cannot parse access token", code=190)
        now = time.time()
        first = self.first_seen.setdefault(token, now)
        ttl = self.settings.token_ttl_s
        if token in self.expired or (ttl > 0 and now - first > ttl):
            raise GraphError(
                "Error validating access token: Session has expired on "
                f"{time.strftime('%A, %d-%b-%y %H:%M:%S UTC', time.gmtime(first + ttl))}.",
                code=190,
                subcode=463,
            )

    def proof(self, token: str) -> str:
        """The appsecret_proof of ``token``: HMAC-SHA256 of the token keyed by the app secret."""
        key = self.settings.app_secret.encode()
        return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()

    # --- usage -----------------------------------------------------------------------------

    def count(self, kind: str) -> tuple[dict[str, str], GraphError | None]:
        """Count one call of the business's use case ``kind``: the usage header, and the
        throttling error when the budget is spent (a refused call is not counted)."""
        usage = self.usage[kind]
        now = time.monotonic()
        window = self.settings.window_s
        while usage.calls and usage.calls[0] <= now - window:
            usage.calls.popleft()
        budget = self.settings.call_budget
        over = len(usage.calls) >= budget
        if not over:
            usage.calls.append(now)
        regain_s = usage.calls[0] + window - now if over and usage.calls else 0.0
        pct = min(100, math.ceil(100 * len(usage.calls) / budget))
        entry = {
            "type": kind,
            "call_count": pct,
            "total_cputime": pct // 2,
            "total_time": pct // 2,
            "estimated_time_to_regain_access": math.ceil(regain_s / 60) if over else 0,
        }
        header = {"X-Business-Use-Case-Usage": _json({self.settings.business_id: [entry]})}
        if not over:
            return header, None
        usage.throttled += 1
        return header, GraphError(
            THROTTLE_MESSAGES[kind],
            code=THROTTLE_CODES[kind],
            kind="OAuthException",
            headers=header,
        )

    # --- batches -----------------------------------------------------------------------------

    def submit(self, catalog_id: str, requests: list[Any], allow_upsert: bool) -> str:
        handle = secrets.token_urlsafe(48)
        self.batches[handle] = Batch(
            handle,
            catalog_id,
            requests,
            allow_upsert,
            time.monotonic() + self.settings.batch_delay_s,
        )
        return handle

    def settle(self) -> None:
        """Finish every batch whose time has come, in the order they came."""
        now = time.monotonic()
        for batch in self.batches.values():
            if batch.result is None and batch.finish_at <= now:
                batch.result = self._run(batch)

    def status(self, catalog_id: str, handle: str, load_ids: bool) -> dict[str, Any]:
        self.settle()
        batch = self.batches.get(handle)
        if batch is None or batch.catalog_id != catalog_id:
            raise GraphError(
                "(#100) Invalid parameter: handle is not a batch request of this catalog",
                code=100,
            )
        if batch.result is None:
            return {"handle": handle, "status": "started", "errors": [], "warnings": [],
                    "errors_total_count": 0, "warnings_total_count": 0,
                    "ids_of_invalid_requests": []}  # fmt: skip
        result = dict(batch.result)
        if not load_ids:
            result["ids_of_invalid_requests"] = []
        return result

    def _run(self, batch: Batch) -> dict[str, Any]:
        catalog = self.items[batch.catalog_id]
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        for line, request in enumerate(batch.requests):
            problem, notes, rid = self._apply(catalog, request, batch.allow_upsert)
            for note in notes:
                warnings.append({"line": line, "id": rid, "message": note})
            if problem is not None:
                errors.append(
                    {
                        "line": line,
                        "id": rid,
                        "message": f"Invalid value: Value passed at position {line} (id={rid}) "
                        f'is invalid: "{problem}"',
                    }
                )
        return {
            "handle": batch.handle,
            "status": "finished",
            "errors": errors,
            "errors_total_count": len(errors),
            "warnings": warnings,
            "warnings_total_count": len(warnings),
            "ids_of_invalid_requests": sorted({str(e["id"]) for e in errors if e["id"]}),
        }

    def _apply(
        self, catalog: dict[str, Item], request: Any, allow_upsert: bool
    ) -> tuple[str | None, list[str], str | None]:
        """Apply one request: (the error that kept it out, warnings, its retailer id)."""
        if not isinstance(request, dict):
            return "each request must be an object with method and data", [], None
        data = request.get("data")
        rid = data.get("id") if isinstance(data, dict) else None
        rid = rid if isinstance(rid, str) and rid else None
        method = request.get("method")
        if method not in METHODS:
            return f"method must be one of {', '.join(METHODS)}", [], rid
        if not isinstance(data, dict) or rid is None:
            return "data must be an object with the item's id", [], rid
        existing = catalog.get(rid)
        if method == "DELETE":
            if existing is not None:
                del catalog[rid]
            return None, [], rid
        if method == "UPDATE" and existing is None and not allow_upsert:
            return f"The item with id {rid} does not exist in this catalog", [], rid
        values, notes, problem = self._read(data)
        merged = {**(existing.data if existing is not None else {}), **values}
        problem = problem or self._invalid(merged, values)
        if problem is not None:
            return problem, notes, rid
        if "item_group_id" not in merged and ("size" in merged or "color" in merged):
            notes.append("A variant (size or color) should carry its item_group_id")
        self.valid += 1
        every = self.settings.reject_every
        if (every > 0 and self.valid % every == 0) or (
            self.settings.reject_share > 0 and self.rng.random() < self.settings.reject_share
        ):
            return self.settings.reject_reason, notes, rid
        now = time.time()
        if existing is None:
            catalog[rid] = Item(str(self.rng.randrange(10**15, 10**16)), rid, merged, now, now)
        else:
            existing.data = merged
            existing.updated_at = now
            existing.writes += 1
        return None, notes, rid

    def _read(self, data: dict[str, Any]) -> tuple[dict[str, str], list[str], str | None]:
        """The fields of an item the catalog knows (others are warnings), as strings."""
        values: dict[str, str] = {}
        notes: list[str] = []
        for name, value in data.items():
            if name not in self.fields:
                notes.append(f"The field {name} is not supported and was ignored")
            elif not isinstance(value, str | int | float) or isinstance(value, bool):
                return values, notes, f"{name} must be a string"
            else:
                values[name] = str(value)
        return values, notes, None

    def _invalid(self, merged: dict[str, str], values: dict[str, str]) -> str | None:
        """Why an item (its fields after the write) cannot be saved, by the extract."""
        for spec in self.fields.values():
            if spec.required and not merged.get(spec.name, "").strip():
                label = spec.name.replace("_", " ").title().replace(" ", "")
                return f"You cannot create a EntProductItem without required field {label}"
        for name, value in values.items():
            spec = self.fields[name]
            if spec.enum is not None and value not in spec.enum:
                return f"{name}: {value!r} is not one of {', '.join(spec.enum)}"
        for name in ("price", "sale_price"):
            if name in values and not PRICE.match(values[name]):
                return f"{name}: {values[name]!r} is not an amount and a currency code"
        for name in ("link", "image_link"):
            if name in values and not URL.match(values[name]):
                return f"{name}: {values[name]!r} is not a URL"
        return None

    # --- reads -----------------------------------------------------------------------------

    def products(self, catalog_id: str, rule: Any) -> list[dict[str, Any]]:
        self.settle()
        items = list(self.items[catalog_id].values())
        return [i.as_graph(catalog_id) for i in items if _matches(i, rule)]


def _matches(item: Item, rule: Any) -> bool:
    """Meta's product filter (a JSON rule) for the fields the engine filters on: retailer_id
    and retailer_product_group_id with ``eq`` or ``is_any``; ``and``/``or`` of rules."""
    if rule is None:
        return True
    if not isinstance(rule, dict):
        raise GraphError("(#100) filter must be a JSON object", code=100)
    for key, cond in rule.items():
        if key in ("and", "or"):
            if not isinstance(cond, list):
                raise GraphError(f"(#100) filter: {key} takes a list of rules", code=100)
            results = [_matches(item, sub) for sub in cond]
            if not (all(results) if key == "and" else any(results)):
                return False
            continue
        value = {
            "retailer_id": item.retailer_id,
            "retailer_product_group_id": item.data.get("item_group_id"),
        }.get(key)
        if key not in ("retailer_id", "retailer_product_group_id") or not isinstance(cond, dict):
            raise GraphError(f"(#100) filter: unsupported rule on {key!r}", code=100)
        for op, operand in cond.items():
            if op == "eq":
                ok = value == operand
            elif op == "is_any" and isinstance(operand, list):
                ok = value in operand
            else:
                raise GraphError(f"(#100) filter: unsupported operator {op!r}", code=100)
            if not ok:
                return False
    return True


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
