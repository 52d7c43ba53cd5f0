"""A listing's images: uploadListingImage (multipart) and getListingImages."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simulators.etsy.deps import Sim
from simulators.etsy.errors import Invalid
from simulators.etsy.forms import Fields, multipart_body
from simulators.etsy.rules import MAX_IMAGES
from simulators.etsy.state import Listing, new_id
from simulators.etsy.validation import ImageInfo, hsv, image_info

router = APIRouter(prefix="/v3/application")


def _record(listing: Listing, info: ImageInfo, rank: int, alt_text: str) -> dict[str, Any]:
    """The ListingImage Etsy makes of an upload (colour figures from its average colour)."""
    width, height, ext, (r, g, b) = info
    image_id = new_id()
    base = f"https://i.etsystatic.com/sim/{listing.listing_id}/{image_id}"
    hue, sat, val = hsv(r, g, b)
    return {
        "listing_id": listing.listing_id,
        "listing_image_id": image_id,
        "hex_code": f"{r:02X}{g:02X}{b:02X}",
        "red": r,
        "green": g,
        "blue": b,
        "hue": hue,
        "saturation": sat,
        "brightness": val,
        "is_black_and_white": r == g == b,
        "creation_tsz": int(time.time()),
        "created_timestamp": int(time.time()),
        "rank": rank,
        "url_75x75": f"{base}/il_75x75.{ext}",
        "url_170x135": f"{base}/il_170x135.{ext}",
        "url_570xN": f"{base}/il_570xN.{ext}",
        "url_fullxfull": f"{base}/il_fullxfull.{ext}",
        "full_height": height,
        "full_width": width,
        "alt_text": alt_text,
    }


@router.post("/shops/{shop_id}/listings/{listing_id}/images")
async def upload_listing_image(
    request: Request, shop_id: str, listing_id: str, sim: Sim
) -> Response:
    listing = sim.listing(listing_id, shop_id)
    parts = await multipart_body(request)
    form = Fields(
        {k: [v.decode("utf-8", errors="replace")] for k, (v, f) in parts.items() if f is None}
    )
    image = parts.get("image")
    if image is None or not image[0]:
        raise Invalid("image (a file) or listing_image_id is required")
    rank = form.integer("rank", low=1) or 1
    overwrite = bool(form.boolean("overwrite"))
    alt_text = form.text("alt_text") or ""
    info = image_info(image[0])
    replacing = overwrite and rank <= len(listing.images)
    if not replacing and len(listing.images) >= MAX_IMAGES:
        raise Invalid(f"A listing may have at most {MAX_IMAGES} images")
    record = _record(listing, info, rank, alt_text)
    if replacing:
        listing.images[rank - 1] = record
    else:
        listing.images.insert(min(rank, len(listing.images) + 1) - 1, record)
    for i, img in enumerate(listing.images, start=1):
        img["rank"] = i
    listing.updated = int(time.time())
    sim.state.shop(listing.shop_id).images_uploaded += 1
    return JSONResponse(record, status_code=201)


@router.get("/listings/{listing_id}/images")
async def get_listing_images(listing_id: str, sim: Sim) -> Response:
    listing = sim.listing(listing_id)
    return JSONResponse({"count": len(listing.images), "results": listing.images})
