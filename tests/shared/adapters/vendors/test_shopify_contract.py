"""Every GraphQL document the Shopify client sends, and the variables it sends with them,
checked against the schema Shopify publishes for the pinned API version (the extract in
simulators/contracts/shopify): a document Shopify would refuse fails here, before any simulator
is involved. Deprecated fields fail too: Shopify removes them in a later version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse, specified_rules, validate
from graphql.execution.values import get_variable_values
from graphql.validation import NoDeprecatedCustomRule

from shared.adapters.vendors.listing import DraftVariant, ListingDraft
from shared.adapters.vendors.shopify import DOCUMENTS, PRODUCT_SET, product_set_input
from shared.adapters.vendors.shopify_contract import API_VERSION, OPERATION_SCOPES
from simulators.contracts.shopify.extract import load_schema
from simulators.shopify import supported_versions

SCHEMA = load_schema(API_VERSION)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_document_validates_against_shopifys_schema(name: str) -> None:
    document = parse(DOCUMENTS[name])
    problems = validate(SCHEMA, document, [*specified_rules, NoDeprecatedCustomRule])
    assert [p.message for p in problems] == []
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert [o.name.value for o in operations if o.name] == [name]
    assert name in OPERATION_SCOPES, "regenerate shared/adapters/vendors/shopify_contract.py"


def test_a_document_shopify_refuses_fails_here() -> None:
    """The check above can fail: the document the client sent before (a Count selected as if
    it were an Int) and a field Shopify deprecated are both reported."""
    before = "query { product(id: 1) { id resourcePublicationsCount } }"
    [problem] = validate(SCHEMA, parse(before))
    assert "must have a selection of subfields" in problem.message
    deprecated = "query { publications(first: 1) { nodes { name } } }"
    [problem] = validate(SCHEMA, parse(deprecated), [*specified_rules, NoDeprecatedCustomRule])
    assert "Publication.name is deprecated" in problem.message


def _variables(document: str, values: dict[str, Any]) -> Any:
    [operation] = [d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)]
    return get_variable_values(SCHEMA, operation.variable_definitions or (), values)


def test_the_product_set_input_the_client_builds_is_shopifys() -> None:
    draft = ListingDraft(
        marker="6650b4c3d2e1f0a9b8c7d6e5",
        title="Moon Cat <Tee> & friends",
        description="Soft.\nPrinted on demand.",
        tags=("cat", "moon"),
        options=(("Color", ("Black", "White")), ("Size", ("S", "M"))),
        variants=tuple(
            DraftVariant(f"SKU-{c}-{s}", 2499, (("Color", c), ("Size", s)))
            for c in ("Black", "White")
            for s in ("S", "M")
        ),
        images=("https://images.test/front.png", "https://images.test/back.png"),
    )
    handle = "moon-cat-tee-6650b4c3"
    variables = {
        "input": product_set_input(draft, handle, "POD Engine"),
        "identifier": {"handle": handle},
    }
    problems = _variables(PRODUCT_SET, variables)
    assert not isinstance(problems, list), [str(e) for e in problems]  # a list: the errors
    # An input field Shopify does not know is refused the same way.
    wrong = {"input": {**variables["input"], "images": ["https://images.test/x.png"]}}
    refused = _variables(PRODUCT_SET, wrong)
    assert isinstance(refused, list) and "images" in str(refused[0])


def test_the_pinned_version_is_supported_for_another_quarter() -> None:
    """Shopify supports a version 12 months and then answers it with another (it falls
    forward): 2025-10 was pinned past that. This fails 90 days before the pinned version's
    end, to re-pin while it is still served (docs/decisions.md, the Shopify API version)."""
    soon = datetime.now(UTC).date() + timedelta(days=90)
    assert API_VERSION in supported_versions(soon), (
        f"Shopify stops supporting {API_VERSION} within 90 days: extract a newer version "
        "(python -m simulators.contracts.shopify.extract --version <v>) and re-pin"
    )
