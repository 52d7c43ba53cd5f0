"""``/jobs``: submit a job, read one back, list them (thin: the work is in submit/queries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Header, Path, Query, status
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from services.api import queries, thumbnails
from services.api.auth import Principal
from services.api.cursor import BadCursor, decode_cursor, encode_cursor
from services.api.errors import ApiError, invalid
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.schemas.jobs import (
    DeliveredImage,
    DeliveredProduct,
    DeliveredPublication,
    ImageSales,
    ImageView,
    JobAccepted,
    JobDetail,
    JobPage,
    JobRequest,
    JobResult,
    JobStatus,
    JobView,
    ProductView,
    WaitView,
)
from services.api.state import ApiState, State
from services.api.submit import submit_job
from shared.adapters.storage import ImageReadError
from shared.adapters.store import orders as order_store
from shared.adapters.store import workers as worker_store

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=COMMON_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses=error_responses(400),
)
async def create_job(
    body: JobRequest,
    state: State,
    principal: Principal,
    idempotency_key: Annotated[
        str | None,
        Header(description="Repeat a request safely: same key + same body = same job"),
    ] = None,
) -> JobAccepted:
    """Queue a design job; answers once the request is durably in Kafka."""
    job_id = await submit_job(state, body, principal=principal, idempotency_key=idempotency_key)
    return JobAccepted(job_id=job_id)


@router.get("/{job_id}", response_model=JobDetail, responses=error_responses(404))
async def get_job(
    job_id: Annotated[str, Path(min_length=1, max_length=100)],
    state: State,
    principal: Principal,
) -> JobDetail:
    """One job with its images, products and event log."""
    row = await queries.get_job(state.pool, job_id)
    if row is None:
        raise ApiError(404, "not_found", f"job {job_id} not found")
    images, products, logs = await queries.get_job_children(state.pool, job_id)
    images = await with_sales(state, job_id, images)
    return JobDetail(
        job=row.model_copy(update={"result": job_result(images, products)}),
        images=images,
        products=products,
        logs=logs,
        waits=await job_waits(state, row),
    )


async def with_sales(state: ApiState, job_id: str, images: list[ImageView]) -> list[ImageView]:
    """The job's images, each with what its design sold (only those that sold)."""
    async with state.pool.connection() as conn:
        sold = await order_store.job_designs(conn, job_id)
    return [
        i.model_copy(update={"sales": ImageSales(**sold[i.image_index])})
        if i.image_index in sold
        else i
        for i in images
    ]


_ENDED = (JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED)


async def job_waits(state: ApiState, row: JobView) -> list[WaitView]:
    """What a job still in progress waits for: its messages inside the stages (a vendor's
    limit, a GPU, a credential, from the live instances' heartbeats), a retry's delay, and
    channels that have not confirmed its listings yet."""
    if row.detailed_status in _ENDED:
        return []
    job_id = row.job_id
    waits = [
        WaitView(**r)
        for r in await worker_store.job_waits(state.pool, job_id, state.settings.worker_stale_s)
    ]
    if row.detailed_status == JobStatus.RETRYING and row.next_retry_at is not None:
        waits.append(
            WaitView(
                kind="retry",
                stage=None,
                what=f"retry {row.retry_attempt} after: {row.last_error or 'an error'}",
                count=1,
                since=None,
                until=row.next_retry_at,
            )
        )
    waits += [
        WaitView(
            kind="confirmation",
            stage="publisher",
            what=f"{r['sales_channel']} to confirm the listing",
            count=r["count"],
            since=r["since"],
            until=r["next_check_at"],
            deadline=r["confirm_by"],
        )
        for r in await queries.job_confirmations(state.pool, job_id)
    ]
    return waits


def job_result(images: list[ImageView], products: list[ProductView]) -> JobResult:
    """What the job delivered so far: its images, the products made and those listed."""
    made = [p for p in products if p.product_id and p.status not in ("failed",)]
    return JobResult(
        images=[
            DeliveredImage(image_index=i.image_index, uri=i.uri, title=i.title) for i in images
        ],
        products=[
            DeliveredProduct(
                image_index=p.image_index,
                product_type=p.product_type,
                product_id=str(p.product_id),
                status=p.status,
            )
            for p in made
        ],
        publications=[
            DeliveredPublication(
                image_index=p.image_index,
                product_type=p.product_type,
                product_id=str(p.product_id),
                external_id=p.external_id,
            )
            for p in made
            if p.status == "published"
        ],
    )


@router.get("", response_model=JobPage)
async def list_jobs(
    state: State,
    principal: Principal,
    status: Annotated[
        JobStatus | None,
        Query(description="Only jobs in this state (`completed` includes the partial ones)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, description="Page size (at most MAX_PAGE_SIZE)")] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="nextCursor")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="Search: the start of the job id, or words starting with the query's "
            "words in its theme, niche, style or prompt (a 400 when a word is on more than 10000 "
            "jobs older than the newest 5000, and on almost none of those)",
        ),
    ] = None,
) -> JobPage:
    """Jobs, newest first, one page at a time."""
    if limit > state.settings.max_page_size:
        raise invalid("limit", f"must be at most {state.settings.max_page_size}")
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except BadCursor as exc:
        raise invalid("cursor", str(exc)) from exc
    # One extra row tells whether another page exists without a COUNT.
    try:
        rows = await queries.list_jobs(
            state.pool, status=status.value if status else None, limit=limit + 1, after=after, q=q
        )
    except queries.SearchTooBroad as exc:
        # Past the cap a page would sort an unbounded number of rows: refused, not slow.
        raise ApiError(400, "search_too_broad", [{"field": "q", "message": str(exc)}]) from None
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1].created_at, page[-1].job_id) if more else None
    return JobPage(jobs=page, next_cursor=next_cursor)


@router.get(
    "/{job_id}/images/{image_index}",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}, "image/webp": {}},
            "description": "The stored art (PNG), or with `size` a preview of it (WebP)",
        },
        304: {"description": "The preview named by If-None-Match is still current"},
        307: {"description": "Where the bucket serves it (a presigned URL)"},
        **error_responses(404),
    },
)
async def get_job_image(
    job_id: Annotated[str, Path(min_length=1, max_length=100)],
    image_index: Annotated[int, Path(ge=0, le=1000)],
    state: State,
    principal: Principal,
    size: Annotated[
        int | None,
        Query(description=f"A preview this long on its longest side: one of {thumbnails.SIZES}"),
    ] = None,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """One of the job's images: as stored, or a preview (the dashboard's thumbnails)."""
    if size is not None and size not in thumbnails.SIZES:
        raise invalid("size", f"must be one of {', '.join(map(str, thumbnails.SIZES))}")
    found = await queries.image_of(state.pool, job_id, image_index)
    if found is None:
        raise ApiError(404, "not_found", f"job {job_id} has no image {image_index}")
    uri, sha256 = found
    store = state.image_store()
    max_bytes = state.settings.image_max_bytes
    try:
        if size is not None:
            return await _preview(state, uri, sha256, size, if_none_match)
        url = await asyncio.to_thread(store.fetch_url, uri)
        if url is not None:
            return RedirectResponse(url, status_code=307)
        source = await asyncio.to_thread(store.open, uri, sha256=sha256, max_bytes=max_bytes)
    except thumbnails.TooLarge as exc:
        raise ApiError(422, "too_large", [{"field": "size", "message": str(exc)}]) from None
    except ImageReadError:
        raise ApiError(
            404, "not_found", f"image {image_index} of job {job_id} is not stored"
        ) from None
    # Streamed in blocks: a 64 MiB print file is never held whole.
    return StreamingResponse(
        _blocks(source),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", "ETag": f'"{sha256}"'},
    )


async def _preview(
    state: ApiState, uri: str, sha256: str, size: int, if_none_match: str | None
) -> Response:
    etag = thumbnails.ThumbnailCache.etag(sha256, size)
    # Revalidated rather than cached for long: a regenerated image keeps its URL.
    headers = {"ETag": etag, "Cache-Control": "private, max-age=60"}
    if if_none_match is not None and etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    cache = thumbnails.ThumbnailCache(
        state.settings.thumbnail_root(), max_pixels=state.settings.thumbnail_max_pixels
    )
    path = await asyncio.to_thread(
        cache.get,
        state.image_store(),
        uri,
        sha256=sha256,
        size=size,
        max_bytes=state.settings.image_max_bytes,
    )
    return FileResponse(path, media_type="image/webp", headers=headers)


async def _blocks(source: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while block := await asyncio.to_thread(source.read, 1 << 20):
            yield block
    finally:
        source.close()
