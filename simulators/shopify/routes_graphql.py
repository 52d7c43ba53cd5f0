"""``POST /admin/api/{version}/graphql.json``: the version calendar, the token, the document
parsed and validated against the extracted schema, the leaky bucket, then execution."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    execute_sync,
    parse,
    validate,
)
from graphql.language import FragmentDefinitionNode

from simulators.shopify.cost import query_cost
from simulators.shopify.deps import ShopifySim, Sim, store_of
from simulators.shopify.resolvers import Root
from simulators.shopify.state import Bucket
from simulators.shopify.versions import served_version

router = APIRouter()

UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"


class _Answer(Exception):
    """An answer given before the document runs (refused, malformed, throttled)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _body(raw: bytes, headers: dict[str, str]) -> tuple[str, dict[str, Any], str | None]:
    """The query, variables and operation name of a request body."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(query, str) or not query.strip():
        raise _Answer(
            JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}},
                status_code=400,
                headers=headers,
            )
        )
    return query, body.get("variables") or {}, body.get("operationName")


def _document(sim: ShopifySim, query: str, headers: dict[str, str]) -> DocumentNode:
    try:
        document = parse(query)
    except GraphQLError as exc:
        raise _Answer(JSONResponse({"errors": [exc.formatted]}, headers=headers)) from None
    problems = validate(sim.schema, document)
    if problems:
        raise _Answer(JSONResponse({"errors": [p.formatted for p in problems]}, headers=headers))
    return document


def _cost(document: DocumentNode) -> int:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return query_cost(operations[0], fragments)


def _throttled(cost: int, bucket: Bucket, headers: dict[str, str]) -> JSONResponse:
    error = {
        "message": "Throttled",
        "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
    }
    cost_status = {
        "requestedQueryCost": cost,
        "actualQueryCost": None,
        "throttleStatus": bucket.status(),
    }
    return JSONResponse({"errors": [error], "extensions": {"cost": cost_status}}, headers=headers)


@router.post("/admin/api/{version}/graphql.json")
async def graphql(request: Request, version: str, sim: Sim) -> Response:
    today = sim.settings.today_or_now()
    served = served_version(version, today)
    if served is None:
        return JSONResponse({"errors": "Not Found"}, status_code=404)
    headers = {"X-Shopify-API-Version": served}
    store = store_of(request, sim)
    scopes = sim.scopes_of(request.headers.get("x-shopify-access-token"))
    if scopes is None:
        store.unauthorized += 1
        return JSONResponse({"errors": UNAUTHORIZED}, status_code=401, headers=headers)
    store.requests += 1
    try:
        query, variables, operation_name = _body(await request.body(), headers)
        document = _document(sim, query, headers)
    except _Answer as given:
        return given.response
    cost = _cost(document)
    bucket = store.bucket
    if bucket.refill() < cost:
        store.throttled += 1
        return _throttled(cost, bucket, headers)
    bucket.available -= cost
    result = execute_sync(
        sim.schema,
        document,
        root_value=Root(store, sim.media_s, scopes, today),
        context_value={"scopes": scopes},
        variable_values=variables,
        operation_name=operation_name,
        middleware=[sim.guard],
    )
    answer: dict[str, Any] = {}
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
    if result.data is not None or not result.errors:
        answer["data"] = result.data  # a request error (bad variables) has no data
    # The real cost of a mutation may be lower than requested: Shopify refunds the rest.
    answer["extensions"] = {
        "cost": {
            "requestedQueryCost": cost,
            "actualQueryCost": cost,
            "throttleStatus": bucket.status(),
        }
    }
    return JSONResponse(answer, headers=headers)
