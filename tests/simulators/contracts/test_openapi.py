"""The OpenAPI request checker (simulators/contracts/openapi.py) on a small document shaped like
a marketplace's: each kind of problem is caught, named by its field, with its reason."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from simulators.contracts.openapi import CheckedRequest, OpenApiContract, error_body

ERROR = {"$ref": "#/components/schemas/Error"}
INTEGER = {"type": "integer"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": INTEGER}


SHOP_ID = {
    "name": "shop_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "format": "int64", "minimum": 1},
}
DOC: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {"title": "Shop API", "version": "1.0.0"},
    "security": [{"api_key": []}],
    "paths": {
        "/shops/{shop_id}/items": {
            "get": {
                "operationId": "listItems",
                "parameters": [
                    SHOP_ID,
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["active", "draft"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {
                        "name": "includes",
                        "in": "query",
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["Images", "Inventory"]},
                        },
                    },
                    {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {
                    "200": json_of(ref("Items")),
                    "400": json_of(ERROR),
                },
                "security": [{"api_key": [], "oauth2": ["items_r"]}],
            },
            "post": {
                "operationId": "createItem",
                "parameters": [SHOP_ID],
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["title", "price"],
                                "properties": {
                                    "title": {"type": "string", "maxLength": 20},
                                    "price": {"type": "number", "minimum": 0.2},
                                    "quantity": {"type": "integer", "minimum": 1},
                                    "kind": {"type": "string", "enum": ["physical", "download"]},
                                    "section_id": {"type": "integer", "nullable": True},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "is_supply": {"type": "boolean"},
                                },
                            }
                        }
                    }
                },
                "responses": {"201": json_of(ref("Item"))},
                "security": [{"api_key": [], "oauth2": ["items_w"]}],
            },
        },
        "/items/{item_id}/stock": {
            "put": {
                "operationId": "updateStock",
                "parameters": [path_param("item_id")],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["products"],
                                "properties": {
                                    "products": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["offerings"],
                                            "properties": {
                                                "sku": {"type": "string", "nullable": True},
                                                "offerings": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "required": ["price", "profile_id"],
                                                        "properties": {
                                                            "price": {"type": "number"},
                                                            "profile_id": {
                                                                **INTEGER,
                                                                "nullable": True,
                                                                "minimum": 1,
                                                            },
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    }
                                },
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/shops/{shop_id}/items/{item_id}/images": {
            "post": {
                "operationId": "uploadImage",
                "parameters": [
                    SHOP_ID,
                    path_param("item_id"),
                ],
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "image": {"type": "string", "format": "binary"},
                                    "rank": {"type": "integer", "minimum": 1},
                                    "overwrite": {"type": "boolean"},
                                },
                            }
                        }
                    }
                },
                "responses": {"201": {"description": "uploaded"}},
            }
        },
        "/users/me": {"get": {"operationId": "getMe", "responses": {"200": {"description": "me"}}}},
        "/users/{user_id}": {
            "get": {
                "operationId": "getUser",
                "parameters": [path_param("user_id")],
                "responses": {"200": {"description": "a user"}},
            }
        },
    },
    "components": {
        "securitySchemes": {
            "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
            "oauth2": {"type": "oauth2", "flows": {}},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "Item": {
                "type": "object",
                "properties": {
                    "item_id": {"type": "integer"},
                    "price": {"oneOf": [ref("Money")], "nullable": True},
                },
            },
            "Items": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "results": {"type": "array", "items": ref("Item")},
                },
            },
            "Money": {
                "type": "object",
                "properties": {"amount": {"type": "integer"}, "divisor": {"type": "integer"}},
            },
        },
    },
}
CREDENTIALS = {"x-api-key": "key:secret", "Authorization": "Bearer 1.token"}


@pytest.fixture
def contract() -> OpenApiContract:
    return OpenApiContract(DOC)


def check(
    contract: OpenApiContract,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    scopes: set[str] | None = None,
    **body: Any,
) -> CheckedRequest:
    """The request httpx would send for these arguments, checked (as a simulator sees it)."""
    request = httpx.Request(
        method, "http://vendor" + url, headers={**CREDENTIALS, **(headers or {})}, **body
    )
    content = request.read()
    return contract.check_request(
        request.method,
        request.url.path,
        query=request.url.params.multi_items(),
        headers=request.headers,
        body=content,
        scopes=scopes,
    )


def problems(checked: CheckedRequest) -> list[str]:
    return [str(p) for p in checked.problems]


def test_a_conforming_request_has_no_problem(contract: OpenApiContract) -> None:
    ok = check(contract, "GET", "/shops/7/items?state=draft&limit=100&includes=Images&verbose=true")
    assert ok.ok and ok.operation is not None and ok.operation.operation_id == "listItems"
    assert ok.path_params == {"shop_id": "7"}
    created = check(
        contract, "POST", "/shops/7/items",
        data={"title": "Moon Cat", "price": "24.99", "tags": ["a", "b"], "is_supply": "false"},
    )  # fmt: skip
    assert created.ok, problems(created)
    body = {"products": [{"sku": None, "offerings": [{"price": 2, "profile_id": None}]}]}
    assert check(contract, "PUT", "/items/5/stock", json=body).ok


def test_routes_and_methods(contract: OpenApiContract) -> None:
    unknown = check(contract, "GET", "/shops/7/things")
    assert unknown.operation is None and unknown.first_kind() == "route"
    assert problems(unknown) == ["path: no operation matches GET /shops/7/things"]
    wrong = check(contract, "DELETE", "/shops/7/items")
    assert wrong.first_kind() == "method"
    assert "the path takes GET, POST" in problems(wrong)[0]
    # A literal segment is matched before a parameter: /users/me is getMe, not getUser("me").
    me = check(contract, "GET", "/users/me")
    assert me.ok and me.operation is not None and me.operation.operation_id == "getMe"


def test_path_parameters_are_typed(contract: OpenApiContract) -> None:
    assert problems(check(contract, "GET", "/shops/abc/items")) == [
        "path.shop_id: expected an integer, got 'abc'"
    ]
    assert problems(check(contract, "GET", "/shops/0/items")) == [
        "path.shop_id: 0 is below the minimum 1"
    ]


def test_query_parameters(contract: OpenApiContract) -> None:
    assert problems(check(contract, "GET", "/shops/7/items?state=sold")) == [
        "query.state: 'sold' is not one of 'active', 'draft'"
    ]
    assert problems(check(contract, "GET", "/shops/7/items?limit=101")) == [
        "query.limit: 101 is above the maximum 100"
    ]
    assert problems(check(contract, "GET", "/shops/7/items?limit=ten")) == [
        "query.limit: expected an integer, got 'ten'"
    ]
    assert problems(check(contract, "GET", "/shops/7/items?verbose=1")) == [
        "query.verbose: expected true or false, got '1'"
    ]
    assert problems(check(contract, "GET", "/shops/7/items?limit=1&limit=2")) == [
        "query.limit: given 2 times; it takes one value"
    ]
    # A misspelt parameter is not ignored.
    assert problems(check(contract, "GET", "/shops/7/items?stat=draft")) == [
        "query.stat: not a parameter of listItems"
    ]


def test_arrays_repeated_or_comma_separated(contract: OpenApiContract) -> None:
    assert check(contract, "GET", "/shops/7/items?includes=Images&includes=Inventory").ok
    # OpenAPI's default array form repeats the name: one comma-joined value is one item...
    assert problems(check(contract, "GET", "/shops/7/items?includes=Images,Inventory")) == [
        "query.includes[0]: 'Images,Inventory' is not one of 'Images', 'Inventory'"
    ]
    # ... unless the vendor documents comma-separated lists.
    commas = OpenApiContract(DOC, comma_separated=True)
    assert check(commas, "GET", "/shops/7/items?includes=Images,Inventory").ok
    assert problems(check(commas, "GET", "/shops/7/items?includes=Images,Videos")) == [
        "query.includes[1]: 'Videos' is not one of 'Images', 'Inventory'"
    ]


def test_credentials_and_scopes(contract: OpenApiContract) -> None:
    no_key = check(contract, "GET", "/shops/7/items", headers={"x-api-key": ""})
    assert no_key.first_kind() == "auth"
    assert problems(no_key)[0].startswith("header.x-api-key: required")
    no_token = check(contract, "GET", "/shops/7/items", headers={"Authorization": "Basic x"})
    assert no_token.first_kind() == "auth"
    assert problems(no_token)[0].startswith("header.Authorization: required: 'Bearer <token>'")
    # Scopes are checked when the caller knows the token's.
    assert check(contract, "GET", "/shops/7/items", scopes={"items_r"}).ok
    lacking = check(
        contract, "POST", "/shops/7/items", scopes={"items_r"}, data={"title": "t", "price": "1"}
    )
    assert lacking.first_kind() == "scope"
    assert problems(lacking) == ["header.Authorization: the token lacks the scope(s) items_w"]
    assert contract.required_scopes("createItem") == [["items_w"]]


def test_a_body_in_another_encoding_is_refused(contract: OpenApiContract) -> None:
    as_json = check(contract, "POST", "/shops/7/items", json={"title": "t", "price": 1})
    assert problems(as_json) == [
        "content-type: createItem takes application/x-www-form-urlencoded, not application/json"
    ]
    as_form = check(contract, "PUT", "/items/5/stock", data={"products": "[]"})
    assert problems(as_form) == [
        "content-type: updateStock takes application/json, not application/x-www-form-urlencoded"
    ]
    as_multipart = check(contract, "POST", "/shops/7/items", files={"title": (None, b"t")})
    assert problems(as_multipart)[0].startswith("content-type: createItem takes application/x-www")


def test_form_fields(contract: OpenApiContract) -> None:
    def form(**data: Any) -> list[str]:
        return problems(check(contract, "POST", "/shops/7/items", data=data))

    assert form(title="t") == ["body.price: required"]
    # A misspelt field is refused, not dropped.
    assert form(title="t", price="1", quantiy="2") == ["body.quantiy: not a field of this request"]
    assert form(title="t", price="cheap") == ["body.price: expected a number, got 'cheap'"]
    assert form(title="t", price="0.1") == ["body.price: 0.1 is below the minimum 0.2"]
    assert form(title="t", price="1", quantity="1.5") == [
        "body.quantity: expected an integer, got '1.5'"
    ]
    assert form(title="t", price="1", kind="digital") == [
        "body.kind: 'digital' is not one of 'physical', 'download'"
    ]
    assert form(title="t" * 21, price="1") == ["body.title: longer than 20 characters"]
    assert form(title="t", price="1", is_supply="yes") == [
        "body.is_supply: expected true or false, got 'yes'"
    ]
    # An empty value is null: accepted where nullable only.
    assert form(title="t", price="1", section_id="") == []
    assert form(title="t", price="1", quantity="") == ["body.quantity: must not be null"]
    # Nothing sent at all: the required fields are still asked for.
    nothing = contract.check_request("POST", "/shops/7/items", headers=CREDENTIALS)
    assert problems(nothing) == ["body.title: required", "body.price: required"]


def test_json_bodies_are_checked_field_by_field(contract: OpenApiContract) -> None:
    def stock(body: Any) -> list[str]:
        return problems(check(contract, "PUT", "/items/5/stock", json=body))

    good = {"price": 2.5, "profile_id": 3}
    assert stock({"products": [{"offerings": [good]}]}) == []
    assert stock({"products": [{"offerings": [{"price": "2.50", "profile_id": 3}]}]}) == [
        "body.products[0].offerings[0].price: expected a number, got '2.50'"
    ]
    assert stock({"products": [{"offerings": [good, {"price": 1}]}]}) == [
        "body.products[0].offerings[1].profile_id: required"
    ]
    assert stock({"products": [{"offerings": [{**good, "qty": 1}]}]}) == [
        "body.products[0].offerings[0].qty: not a field of this object"
    ]
    assert stock({"products": [{"offerings": [{**good, "profile_id": 0}]}]}) == [
        "body.products[0].offerings[0].profile_id: 0 is below the minimum 1"
    ]
    assert stock({"products": [{"sku": 12, "offerings": None}]}) == [
        "body.products[0].sku: expected a string or null, got 12",
        "body.products[0].offerings: must not be null",
    ]
    assert stock({"products": {}}) == ["body.products: expected an array, got {}"]
    assert stock({}) == ["body.products: required"]
    bad = contract.check_request(
        "PUT", "/items/5/stock", headers=CREDENTIALS, body=b"{nope", content_type="application/json"
    )
    assert problems(bad)[0].startswith("body: not valid JSON")


def test_multipart_bodies(contract: OpenApiContract) -> None:
    def upload(**kw: Any) -> list[str]:
        return problems(check(contract, "POST", "/shops/7/items/5/images", **kw))

    png = ("a.png", b"\x89PNG\r\n\x1a\nbytes", "image/png")
    assert upload(files={"image": png}, data={"rank": "1", "overwrite": "true"}) == []
    assert upload(files={"image": png}, data={"rank": "first"}) == [
        "body.rank: expected an integer, got 'first'"
    ]
    assert upload(files={"picture": png}) == ["body.picture: not a field of this request"]
    assert upload(data={"rank": "1"}) == [
        "content-type: uploadImage takes multipart/form-data, not application/x-www-form-urlencoded"
    ]


def test_the_refusal_is_one_error_message(contract: OpenApiContract) -> None:
    refused = check(contract, "GET", "/shops/7/items?limit=0&state=x")
    assert error_body(refused) == {
        "error": "query.state: 'x' is not one of 'active', 'draft'; "
        "query.limit: 0 is below the minimum 1"
    }
    # Shaped as the document's error schema says.
    assert contract.check_response("listItems", 400, error_body(refused)) == []


def test_responses(contract: OpenApiContract) -> None:
    good = {"count": 1, "results": [{"item_id": 4, "price": {"amount": 250, "divisor": 100}}]}
    assert contract.check_response("listItems", 200, good) == []
    assert [str(p) for p in contract.check_response("listItems", 404, {"error": "x"})] == [
        "status: 404 is not an answer listItems declares (200, 400)"
    ]
    drifted = {"count": "1", "results": [{"item_id": 4, "price": None, "priced": True}]}
    assert [str(p) for p in contract.check_response("listItems", 200, drifted)] == [
        "response.count: expected an integer, got '1'",
        "response.results[0].priced: not a field of this object",
    ]
    assert [str(p) for p in contract.check_response("listItems", 200, json.loads("[]"))] == [
        "response: expected an object, got []"
    ]


def test_an_answer_declared_without_a_body_is_declared() -> None:
    """An extract drops descriptions, so a 204 is declared as ``{}``: still declared."""
    doc = {
        "openapi": "3.0.2",
        "paths": {
            "/items/{id}": {
                "delete": {"operationId": "deleteItem", "responses": {"204": {}, "404": {}}}
            }
        },
    }
    checker = OpenApiContract(doc)
    assert checker.check_response("deleteItem", 204, None) == []
    assert [str(p) for p in checker.check_response("deleteItem", 200, None)] == [
        "status: 200 is not an answer deleteItem declares (204, 404)"
    ]


def test_a_document_that_is_not_openapi_3_is_refused() -> None:
    with pytest.raises(ValueError, match="not an OpenAPI 3 document"):
        OpenApiContract({"swagger": "2.0"})
