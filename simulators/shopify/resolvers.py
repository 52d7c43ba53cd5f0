"""The resolvers of QueryRoot and Mutation for one request's shop and token."""

from __future__ import annotations

from datetime import date
from typing import Any

from simulators.shopify.products import Invalid, product_set
from simulators.shopify.state import Store
from simulators.shopify.undo import product_delete, product_update, variants_bulk_update
from simulators.shopify.versions import public_api_versions
from simulators.shopify.views import product_view, publication_view


class Root:
    """Resolvers of QueryRoot and Mutation for one request's shop and token."""

    def __init__(self, store: Store, media_s: float, scopes: frozenset[str], today: date) -> None:
        self.store = store
        self.media_s = media_s
        self.scopes = scopes
        self.today = today

    def shop(self, _info: Any) -> dict[str, str]:
        return {"name": self.store.domain.split(".")[0], "myshopifyDomain": self.store.domain}

    def currentAppInstallation(self, _info: Any) -> dict[str, Any]:
        return {
            "id": "gid://shopify/AppInstallation/1",
            "accessScopes": [{"handle": s} for s in sorted(self.scopes)],
        }

    def publicApiVersions(self, _info: Any) -> list[dict[str, Any]]:
        return public_api_versions(self.today)

    def product(self, _info: Any, id: str) -> dict[str, Any] | None:
        return product_view(self.store, self.store.products.get(id))

    def productByIdentifier(self, _info: Any, identifier: dict[str, Any]) -> dict[str, Any] | None:
        found = None
        if identifier.get("id"):
            found = self.store.products.get(identifier["id"])
        elif identifier.get("handle"):
            found = self.store.by_handle(identifier["handle"])
        elif identifier.get("customId"):
            c = identifier["customId"]
            found = self.store.by_custom_id(c.get("namespace"), c["key"], c["value"])
        return product_view(self.store, found)

    def publications(self, _info: Any, first: int | None = None, **_: Any) -> dict[str, Any]:
        chosen = self.store.publications[: first if first is not None else None]
        return {"nodes": [publication_view(p) for p in chosen]}

    def publication(self, _info: Any, id: str) -> dict[str, Any] | None:
        found = next((p for p in self.store.publications if p["id"] == id), None)
        return publication_view(found) if found else None

    def productSet(
        self,
        _info: Any,
        input: dict[str, Any],
        synchronous: bool = True,
        identifier: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not synchronous:
            # The engine always asks for the product back; the asynchronous mode is not served.
            return {
                "product": None,
                "userErrors": [
                    {
                        "field": ["synchronous"],
                        "message": "asynchronous mode is not simulated",
                        "code": "GENERIC_ERROR",
                    }
                ],
            }
        try:
            product = product_set(
                self.store, {"input": input, "identifier": identifier}, self.media_s
            )
        except Invalid as exc:
            return {
                "product": None,
                "userErrors": [{"field": exc.path, "message": exc.message, "code": exc.code}],
            }
        return {"product": product_view(self.store, product), "userErrors": []}

    def publishablePublish(
        self, _info: Any, id: str, input: list[dict[str, Any]]
    ) -> dict[str, Any]:
        product = self.store.products.get(id)
        if product is None:
            return {
                "publishable": None,
                "userErrors": [{"field": ["id"], "message": "Product does not exist"}],
            }
        known = {p["id"] for p in self.store.publications}
        for i, pub in enumerate(input):
            if pub.get("publicationId") not in known:
                return {
                    "publishable": None,
                    "userErrors": [
                        {
                            "field": ["input", str(i), "publicationId"],
                            "message": "Publication does not exist",
                        }
                    ],
                }
        product.publications |= {p["publicationId"] for p in input}
        self.store.publishes += 1
        return {"publishable": product_view(self.store, product), "userErrors": []}

    def productUpdate(
        self, _info: Any, product: dict[str, Any] | None = None, **given: Any
    ) -> dict[str, Any]:
        if given.get("input") is not None or given.get("identifier") is not None:
            # The deprecated ``input`` and the ``identifier`` form are not simulated.
            return _refused("product", ["input"], "use `product` (ProductUpdateInput)")
        try:
            updated = product_update(self.store, product)
        except Invalid as exc:
            return _refused("product", exc.path, exc.message)
        return {"product": product_view(self.store, updated), "userErrors": []}

    def productDelete(
        self, _info: Any, input: dict[str, Any], synchronous: bool = True
    ) -> dict[str, Any]:
        try:
            deleted = product_delete(self.store, str(input.get("id") or ""))
        except Invalid as exc:
            return {
                "deletedProductId": None,
                "userErrors": [{"field": exc.path, "message": exc.message}],
            }
        return {"deletedProductId": deleted, "userErrors": []}

    def productVariantsBulkUpdate(
        self,
        _info: Any,
        productId: str,
        variants: list[dict[str, Any]],
        allowPartialUpdates: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        try:
            product, changed = variants_bulk_update(self.store, productId, variants)
        except Invalid as exc:
            error = {"field": exc.path, "message": exc.message, "code": exc.code}
            return {"product": None, "productVariants": None, "userErrors": [error]}
        return {
            "product": product_view(self.store, product),
            "productVariants": list(changed),
            "userErrors": [],
        }


def _refused(result: str, path: list[str], message: str) -> dict[str, Any]:
    return {result: None, "userErrors": [{"field": path, "message": message}]}
