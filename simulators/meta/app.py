"""``create_app``: the Meta simulator's wiring. What it simulates is described in
:mod:`simulators.meta`."""

from __future__ import annotations

import hmac
import json
import re
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.common import Knobs, SimControl, install_faults, sim_router
from simulators.common.control import as_float, as_int, json_object
from simulators.contracts.meta import contract
from simulators.meta.books import books
from simulators.meta.errors import GraphError, fault, invalid_param
from simulators.meta.settings import MetaSettings
from simulators.meta.state import CATALOG_BATCH, CATALOG_MANAGEMENT, MAX_REQUESTS, MetaState

VERSION = re.compile(r"^v\d+\.\d+$")
NODE = "ProductCatalog"


def _limits(state: MetaState) -> dict[str, object]:
    s = state.settings
    return {"call_budget": s.call_budget, "window_s": s.window_s}


def _set_limits(state: MetaState, values: dict[str, object] | Any) -> None:
    if "call_budget" in values:
        state.settings.call_budget = max(1, as_int(values["call_budget"]))
    if "window_s" in values:
        state.settings.window_s = max(0.001, as_float(values["window_s"]))


BEHAVIOUR = (
    "batch_delay_s",
    "reject_share",
    "reject_every",
    "reject_reason",
    "require_proof",
    "token_ttl_s",
)


def _behaviour(state: MetaState) -> dict[str, object]:
    return {name: getattr(state.settings, name) for name in BEHAVIOUR}


async def _params(request: Request) -> dict[str, Any]:
    """The call's parameters: the query string, and a POST's form or JSON body, as Graph
    takes them."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            raw = await request.body()
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise invalid_param("the body must be a JSON object")
            params.update(body)
        elif kind.startswith("application/x-www-form-urlencoded"):
            params.update(urllib.parse.parse_qsl((await request.body()).decode()))
    return params


def _token(request: Request, params: dict[str, Any]) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = params.get("access_token")
    return token if isinstance(token, str) and token else None


def _check_proof(state: MetaState, token: str, params: dict[str, Any]) -> None:
    proof = params.get("appsecret_proof")
    if not proof:
        if state.settings.require_proof:
            raise GraphError(
                "API calls from the server require an appsecret_proof argument",
                code=100,
                kind="GraphMethodException",
            )
        return
    if not isinstance(proof, str) or not hmac.compare_digest(proof, state.proof(token)):
        raise GraphError(
            "Invalid appsecret_proof provided in the API argument",
            code=100,
            kind="GraphMethodException",
        )


def _json_param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise invalid_param(f"Param {name} must be a valid JSON value") from None
    return value


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true")


async def _graph(state: MetaState, request: Request, path: str) -> Response:
    state.calls += 1
    params = await _params(request)
    parts = [p for p in path.split("/") if p]
    if parts and VERSION.match(parts[0]):
        parts = parts[1:]
    token = _token(request, params)
    state.check_token(token)
    assert token is not None
    _check_proof(state, token, params)
    if parts == ["me"] and request.method == "GET":
        return JSONResponse({"id": "100090000000001", "name": "POD Engine system user"})
    if not parts or parts[0] not in state.items:
        object_id = parts[0] if parts else ""
        raise GraphError(
            f"Unsupported {request.method.lower()} request. Object with ID '{object_id}' does "
            "not exist, cannot be loaded due to missing permissions, or does not support this "
            "operation. Please read the Graph API documentation at "
            "https://developers.facebook.com/docs/graph-api",
            code=100,
            subcode=33,
            kind="GraphMethodException",
        )
    catalog_id, edge = parts[0], "/".join(parts[1:])
    kind = CATALOG_BATCH if edge == "items_batch" else CATALOG_MANAGEMENT
    header, throttled = state.count(kind)
    if throttled is not None:
        raise throttled
    try:
        body = _serve(state, request.method, catalog_id, edge, params)
    except GraphError as exc:
        exc.headers.update(header)
        raise
    return JSONResponse(body, headers=header)


def _serve(
    state: MetaState, method: str, catalog_id: str, edge: str, params: dict[str, Any]
) -> dict[str, Any]:
    c = state.contract
    if edge and (method, edge) not in {
        ("POST", "items_batch"),
        ("GET", "check_batch_request_status"),
        ("GET", "products"),
    }:
        raise invalid_param(f"Unknown path components: /{edge}")
    if edge:
        for name in c.required_params(NODE, method, edge):
            if params.get(name) in (None, ""):
                raise invalid_param(f"The parameter {name} is required")
    if not edge:
        if method != "GET":
            raise invalid_param("Unsupported operation on a catalog node")
        return {
            "id": catalog_id,
            "name": "POD Engine catalog",
            "business": {"id": state.settings.business_id, "name": "POD Engine"},
        }
    if edge == "items_batch":
        if params["item_type"] != "PRODUCT_ITEM":
            raise invalid_param("item_type: the simulator's catalog holds PRODUCT_ITEM only")
        requests = _json_param(params, "requests")
        if not isinstance(requests, list) or not requests:
            raise invalid_param("requests must be a non-empty JSON array of requests")
        if len(requests) > MAX_REQUESTS:
            raise invalid_param(f"requests may hold at most {MAX_REQUESTS} items")
        upsert = _truthy(params.get("allow_upsert"), True)
        handle = state.submit(catalog_id, requests, upsert)
        return {"handles": [handle], "validation_status": []}
    if edge == "check_batch_request_status":
        load = _truthy(params.get("load_ids_of_invalid_requests"), False)
        return {"data": [state.status(catalog_id, str(params["handle"]), load)]}
    rule = _json_param(params, "filter")
    return {"data": state.products(catalog_id, rule)}


def create_app(knobs: Knobs | None = None) -> FastAPI:
    """Build the simulator app (knobs default to ``Knobs.from_env("meta")``)."""
    knobs = knobs or Knobs.from_env("meta")
    state = MetaState(MetaSettings.load(), contract())
    app = FastAPI(title="Meta Graph API simulator", docs_url=None, redoc_url=None)
    app.state.sim = state
    install_faults(app, knobs, fault)

    async def _error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GraphError)
        return exc.response()

    app.add_exception_handler(GraphError, _error)
    app.include_router(
        sim_router(
            SimControl(
                books=lambda: books(state),
                reset=state.reset,
                limits=lambda: _limits(state),
                set_limits=lambda values: _set_limits(state, values),
            )
        )
    )

    @app.get("/_sim/behaviour")
    async def get_behaviour() -> dict[str, object]:
        return _behaviour(state)

    @app.post("/_sim/behaviour")
    async def set_behaviour(request: Request) -> dict[str, object]:
        values = await json_object(request)
        for name in BEHAVIOUR:
            if name in values:
                setattr(state.settings, name, values[name])
        if values.get("expire_tokens"):
            state.expired.update(state.settings.token_list())
        return _behaviour(state)

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def graph(request: Request, path: str) -> Response:
        return await _graph(state, request, path)

    return app
