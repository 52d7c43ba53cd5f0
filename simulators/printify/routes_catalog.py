"""The catalog (``/v1/catalog/*``) and the mockup images Printify's image servers serve."""

from __future__ import annotations

import hashlib
import io

from fastapi import APIRouter
from fastapi.responses import Response
from PIL import Image

from simulators.printify.catalog import BLUEPRINTS, PROVIDERS, VARIANTS
from simulators.printify.errors import NotFound, ok

router = APIRouter()


@router.get("/v1/catalog/blueprints.json")
async def list_blueprints() -> Response:
    return ok(list(BLUEPRINTS.values()))


@router.get("/v1/catalog/blueprints/{blueprint_id}.json")
async def get_blueprint(blueprint_id: int) -> Response:
    bp = BLUEPRINTS.get(blueprint_id)
    if bp is None:
        raise NotFound("Blueprint")
    return ok(bp)


@router.get("/v1/catalog/blueprints/{blueprint_id}/print_providers.json")
async def list_print_providers(blueprint_id: int) -> Response:
    if blueprint_id not in PROVIDERS:
        raise NotFound("Blueprint")
    return ok([{"id": i, "title": t} for i, t in PROVIDERS[blueprint_id].items()])


@router.get("/v1/catalog/blueprints/{blueprint_id}/print_providers/{provider_id}/variants.json")
async def list_variants(blueprint_id: int, provider_id: int) -> Response:
    catalog = VARIANTS.get((blueprint_id, provider_id))
    if catalog is None:
        raise NotFound("Print provider")
    return ok(
        {
            "id": provider_id,
            "title": PROVIDERS[blueprint_id][provider_id],
            "variants": [v.as_json() for v in catalog.values()],
        }
    )


@router.get("/mockup/{product_id}/{variant_id}/{position}.jpg")
async def mockup(product_id: str, variant_id: int, position: str) -> Response:
    """A product's mockup image (a small JPEG, the same bytes for the same URL)."""
    seed = hashlib.sha256(f"{product_id}:{variant_id}:{position}".encode()).digest()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (seed[0], seed[1], seed[2])).save(buf, "JPEG")
    return Response(buf.getvalue(), media_type="image/jpeg")
