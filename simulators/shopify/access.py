"""Access scopes: what a token carries and what each field of the schema requires (the
extract's ``.scopes.json``), enforced as graphql-core middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, get_named_type

ACCESS_SCOPES_DOC = "https://shopify.dev/api/usage/access-scopes"


def scope_set(raw: str | Iterable[str]) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(s.strip() for s in items if s.strip())


def has_access(granted: frozenset[str], any_of: Iterable[str]) -> bool:
    """Whether ``granted`` holds one of ``any_of``: a write_ scope also grants its read_ one
    (Shopify's access-scopes page: "any scope that writes a resource also grants read access
    to it")."""
    implied = granted | {"read_" + s[len("write_") :] for s in granted if s.startswith("write_")}
    return any(s in implied for s in any_of)


class Requirements:
    """The access each type and field of the extract requires (its ``.scopes.json``)."""

    def __init__(self, items: Iterable[dict[str, Any]]) -> None:
        self.fields: dict[tuple[str, str], dict[str, Any]] = {}
        self.types: dict[str, dict[str, Any]] = {}
        for item in items:
            if item["field"]:
                self.fields[(item["type"], item["field"])] = item
            else:
                self.types[item["type"]] = item

    def denied(
        self, info: GraphQLResolveInfo[Any], granted: frozenset[str]
    ) -> dict[str, Any] | None:
        """The requirement resolving this field breaks, if any: the field's own, the type it
        belongs to, or the (object) type it returns."""
        returns = get_named_type(info.return_type).name
        for item in (
            self.fields.get((info.parent_type.name, info.field_name)),
            self.types.get(info.parent_type.name),
            self.types.get(returns),
        ):
            if item is not None and not has_access(granted, item["anyOf"]):
                return item
        return None

    def guard(self) -> Callable[..., Any]:
        """graphql-core middleware: a field the token may not read resolves to an
        ACCESS_DENIED error, as Shopify answers it."""

        def middleware(
            next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo[Any], **args: Any
        ) -> Any:
            denied = self.denied(info, info.context["scopes"])
            if denied is not None:
                raise GraphQLError(
                    f"Access denied for {info.field_name} field. Required access: "
                    f"{denied['requiredAccess']}",
                    extensions={
                        "code": "ACCESS_DENIED",
                        "documentation": ACCESS_SCOPES_DOC,
                        "requiredAccess": denied["requiredAccess"],
                    },
                )
            return next_(root, info, **args)

        return middleware
