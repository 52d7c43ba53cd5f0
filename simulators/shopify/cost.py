"""Shopify's requested query cost, simplified."""

from __future__ import annotations

from typing import Any

from graphql import OperationDefinitionNode, OperationType
from graphql.language import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)


def query_cost(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> int:
    """Shopify's requested cost, simplified: a mutation 10, an object 1, a connection ``first``
    (default 10) times the cost of its node; scalars free."""

    def selection_cost(selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.selection_set is None:
                    continue
                first = next(
                    (
                        int(getattr(a.value, "value", 10))
                        for a in sel.arguments or ()
                        if a.name.value == "first"
                    ),
                    None,
                )
                inner = selection_cost(sel.selection_set)
                total += (first or 1) * max(inner, 1) if first is not None else 1 + inner
            elif isinstance(sel, InlineFragmentNode):
                total += selection_cost(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                frag = fragments.get(sel.name.value)
                total += selection_cost(frag.selection_set if frag else None)
        return total

    cost = selection_cost(operation.selection_set)
    if operation.operation == OperationType.MUTATION:
        cost += 10
    return max(cost, 1)
