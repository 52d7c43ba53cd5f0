"""Shopify's Admin GraphQL API as Shopify publishes it: the subset the engine and the simulator
use, extracted by :mod:`simulators.contracts.shopify.extract` from the introspection Shopify
ships in its npm package ``@shopify/dev-mcp``, one file per API version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def sdl_path(version: str) -> Path:
    """The extracted schema of ``version`` (SDL)."""
    return HERE / f"admin-{version}.graphql"


def scopes_path(version: str) -> Path:
    """The access scopes the extracted fields and types require (JSON)."""
    return HERE / f"admin-{version}.scopes.json"


def load_scopes(version: str) -> dict[str, Any]:
    """The scopes file of ``version`` as written by the extractor."""
    data: dict[str, Any] = json.loads(scopes_path(version).read_text())
    return data
