"""``GET /_sim/books``: what each account did, and the products that look made twice."""

from __future__ import annotations

import collections

from simulators.printify.products import print_dpi
from simulators.printify.state import Account, Accounts, Limits, Product


def _keys(product: Product) -> set[str]:
    keys = {f"sku:{product.variants[0].sku}"} if product.variants else set()
    keys |= {f"tag:{t}" for t in product.tags if t.startswith("pod:")}
    if not any(str(v.sku).endswith(f"-{v.id}") for v in product.variants):
        # No SKU of the seller's (Printify did not keep them): the same upload on the same
        # blueprint and provider twice is one design made twice.
        art = (product.blueprint_id, product.print_provider_id, product.image_ids())
        keys.add(f"art:{art}")
    return keys


def duplicates(acct: Account) -> list[dict[str, object]]:
    """Live products sharing their first variant SKU or a ``pod:`` tag with another one."""
    by_key: dict[str, list[str]] = collections.defaultdict(list)
    for pid, product in acct.products.items():
        for key in _keys(product):
            by_key[key].append(pid)
    return [{"key": k, "product_ids": ids} for k, ids in by_key.items() if len(ids) > 1]


def _product_books(pid: str, p: Product) -> dict[str, object]:
    return {
        "product_id": pid,
        "title": p.title,
        "tags": p.tags,
        "skus": [v.sku for v in p.variants if v.is_enabled],
        "image_ids": p.image_ids(),
        "blueprint_id": p.blueprint_id,
        "print_dpi": print_dpi(p),
        # Profit of each enabled variant (price - production cost), in cents.
        "profits": {str(v.id): v.price - v.cost for v in p.variants if v.is_enabled},
        # Price and production cost of each enabled variant, in cents.
        "prices": {str(v.id): [v.price, v.cost] for v in p.variants if v.is_enabled},
        "listed": p.external is not None,
    }


def _account_books(acct: Account, dupes: list[dict[str, object]]) -> dict[str, object]:
    return {
        "user_id": acct.user_id,
        "requests": acct.requests,
        "rate_limited": acct.rate_limited,
        "uploads": acct.uploads_count,
        "uploads_by_url": acct.uploads_by_url,
        "products_created": acct.products_created,
        "products_deleted": acct.products_deleted,
        "products": [_product_books(pid, p) for pid, p in acct.products.items()],
        "products_updated": acct.products_updated,
        "publish_calls": dict(acct.publish_calls),
        "publish_below_cost": acct.publish_below_cost,
        "handshake_refused": acct.handshake_refused,
        "publishing_succeeded": dict(acct.publish_succeeded),
        "publishing_failed": dict(acct.publish_failed),
        "unpublished": dict(acct.unpublished),
        # Publications the non-custom channels listed or refused, by product id.
        "channel_listed": dict(acct.channel_listed),
        "channel_refused": dict(acct.channel_refused),
        "webhooks": [w.view() for w in acct.webhooks.values()],
        "webhooks_delivered": dict(acct.webhooks_delivered),
        "webhook_attempts_failed": acct.webhook_attempts_failed,
        "webhooks_given_up": acct.webhooks_given_up,
        "duplicates": dupes,
    }


def books(accounts: Accounts, limits: Limits) -> dict[str, object]:
    by_account: dict[str, object] = {}
    all_duplicates: list[dict[str, object]] = []
    for key, acct in accounts.by_key.items():
        dupes = duplicates(acct)
        all_duplicates += [{"account": key, **d} for d in dupes]
        by_account[key] = _account_books(acct, dupes)
    return {"accounts": by_account, "duplicates": all_duplicates, "limits": limits.as_dict()}
