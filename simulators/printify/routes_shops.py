"""Shops and image uploads: ``/v1/shops.json`` and ``/v1/uploads*``."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from simulators.printify.deps import Acct, Sim
from simulators.printify.errors import NotFound, ok
from simulators.printify.uploads import make_upload
from simulators.printify.validation import MAX_UPLOADS_PAGE, page_params, require_body

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")


def paginate(items: list[Any], page: int, limit: int) -> dict[str, object]:
    """Printify's (Laravel-style) pagination envelope."""
    total = len(items)
    last_page = max(1, math.ceil(total / limit))
    start = (page - 1) * limit
    data = items[start : start + limit]
    return {
        "current_page": page,
        "data": data,
        "first_page_url": "/?page=1",
        "from": start + 1 if data else None,
        "last_page": last_page,
        "last_page_url": f"/?page={last_page}",
        "next_page_url": f"/?page={page + 1}" if page < last_page else None,
        "path": "/",
        "per_page": limit,
        "prev_page_url": f"/?page={page - 1}" if page > 1 else None,
        "to": start + len(data) if data else None,
        "total": total,
    }


@router.get("/shops.json")
async def list_shops(sim: Sim) -> Response:
    return ok([s.as_json() for s in sim.shops])


@router.post("/uploads/images.json")
async def upload_image(request: Request, sim: Sim, acct: Acct) -> Response:
    body = await require_body(request)
    upload = await make_upload(body)
    sim.accounts.add_upload(acct, upload)
    acct.uploads_by_url += 1 if body.get("url") is not None else 0
    logger.info("upload account=%s id=%s size=%d", acct.key, upload.id, upload.size)
    return ok(upload.as_json())


@router.get("/uploads.json")
async def list_uploads(request: Request, acct: Acct) -> Response:
    params = page_params(request, MAX_UPLOADS_PAGE, 10)
    uploads = [u.as_json() for u in reversed(acct.uploads.values())]
    return ok(paginate(uploads, *params))


@router.get("/uploads/{upload_id}.json")
async def get_upload(upload_id: str, acct: Acct) -> Response:
    upload = acct.uploads.get(upload_id)
    if upload is None:
        raise NotFound("Upload")
    return ok(upload.as_json())
