"""The API's SQL: the job row it writes at submission, the idempotency ledger, and reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from psycopg import AsyncCursor
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from services.api.schemas.jobs import ImageView, JobView, LogView, ProductView
from shared.adapters.store import job_claims, jobs, products
from shared.contract.events import JobRequested
from shared.contract.sales_channels import DEFAULT_CHANNEL

# The job's Claude tokens: its briefs' (on its row, from its first image) and every risk review of
# its images by screening (image_screenings, by its primary key); None before either.
_TOKENS = ",\n    ".join(
    # One aggregate per column, by the table's primary key (never hashed over the whole table).
    f"""(SELECT CASE WHEN jobs.claude_{kind}_tokens IS NULL AND count(*) = 0 THEN NULL
        ELSE COALESCE(jobs.claude_{kind}_tokens, 0) + COALESCE(sum(s.{kind}_tokens), 0) END
        FROM image_screenings s WHERE s.job_id = jobs.job_id) AS claude_{kind}_tokens"""  # noqa: S608  # constants, no input
    for kind in ("input", "output", "cache_read", "cache_write")
)

# Named for what services.api.schemas.jobs.JobView shows: the seed's status (a partial job is
# `completed` there) beside the detailed one, the priority as given (its number, else the band).
_JOB_COLUMNS = f"""
    job_id, CASE status WHEN 'partial' THEN 'completed' WHEN 'awaiting_review' THEN 'processing'
        WHEN 'cancelled' THEN 'failed' ELSE status END AS status,
    status AS detailed_status, COALESCE(to_jsonb(priority_level), to_jsonb(band)) AS priority,
    band, theme, style, niche, prompt, product_types, image_count AS count, auto_publish,
    COALESCE(channels, ARRAY['{DEFAULT_CHANNEL}']) AS channels, request AS spec,
    expected_products, expected_publications,
    images_done, images_failed, products_done, products_failed, publications_done,
    publications_failed, error, retry_attempt, next_retry_at, last_error,
    created_at, updated_at, started_at, finished_at, {_TOKENS}
"""


class ConfirmationRecord(TypedDict):
    """A job's publications on one channel awaiting the channel's confirmation."""

    sales_channel: str
    count: int
    since: datetime
    next_check_at: datetime | None
    confirm_by: datetime | None


_SELECT_JOBS = f"SELECT {_JOB_COLUMNS} FROM jobs"  # noqa: S608  # fixed fragments only

_CLAIM_KEY = """
INSERT INTO api_idempotency (key, request_hash, job_id) VALUES (%(key)s, %(hash)s, %(job)s)
ON CONFLICT (key) DO NOTHING
RETURNING job_id
"""

_KEY_ROW = "SELECT job_id, request_hash, produced FROM api_idempotency WHERE key = %(key)s"

_MARK_PRODUCED = "UPDATE api_idempotency SET produced = TRUE WHERE key = %(key)s"

_GET_JOB = _SELECT_JOBS + " WHERE job_id = %(job)s"

_KNOWN_JOBS = "SELECT job_id FROM jobs WHERE job_id = ANY(%(ids)s)"

_JOB_IMAGES = """
SELECT image_index, sha256, uri, width, height, prompt, title, description, tags, created_at,
    screening
FROM images WHERE job_id = %(job)s ORDER BY image_index
"""

# A product's listing on each channel that has one, and, for a job that publishes, every channel
# of the job that has none yet as ``pending`` (a product that failed is never published).
_PRODUCT_CREATED = ", ".join(products.CREATED_COLUMNS)
_JOB_PRODUCTS = f"""
SELECT image_index, product_type, status, product_id, shop_id, {_PRODUCT_CREATED},
    external_id, error, created_at, published_at,
    (SELECT COALESCE(json_agg(json_build_object(
        'channel', c.channel, 'status', COALESCE(l.status, 'pending'), 'listing_id',
        l.external_id, 'url', l.url, 'sales_channel', l.sales_channel, 'error', l.error,
        'published_at', l.published_at) ORDER BY c.channel), '[]'::json)
     FROM (SELECT ls.channel FROM listings ls WHERE ls.job_id = p.job_id
             AND ls.image_index = p.image_index AND ls.product_type = p.product_type
           UNION
           SELECT unnest(COALESCE(j.channels, ARRAY['{DEFAULT_CHANNEL}'])) FROM jobs j
           WHERE j.job_id = p.job_id AND j.auto_publish AND p.status <> 'failed') c
     LEFT JOIN listings l ON l.job_id = p.job_id AND l.image_index = p.image_index
       AND l.product_type = p.product_type AND l.channel = c.channel) AS listings
FROM products p WHERE job_id = %(job)s ORDER BY image_index, product_type
"""  # noqa: S608  # constants, no input

_JOB_LOG = """
SELECT type, level, message, data, occurred_at
FROM job_events WHERE job_id = %(job)s ORDER BY occurred_at, recorded_at
"""

# {where}: _STATUS_IN and/or _AFTER, or nothing.
_LIST_JOBS = (
    _SELECT_JOBS
    + """
{where}
ORDER BY created_at DESC, job_id DESC LIMIT %(limit)s
"""
)
# A seed status asks for every detailed one it shows as (their detailedStatus tells them apart;
# `partial`, `awaiting_review` or `cancelled` asks for those alone).
SEED_STATUS_OF = {
    "completed": ["completed", "partial"],
    "processing": ["processing", "awaiting_review"],
    "failed": ["failed", "cancelled"],
}
_STATUS_IN = "status = ANY(%(statuses)s)"
# Row comparison = keyset pagination on (created_at DESC, job_id DESC): stable under
# concurrent inserts, no OFFSET scan.
_AFTER = "(created_at, job_id) < (%(after_at)s, %(after_job)s)"

# Search: the id's start (jobs_id_prefix_idx), or words of the theme, niche, style or prompt
# starting with each of the query's words (jobs_search_doc_idx, over the stored column
# search_doc: migration 0040; a match is rechecked on the row, which then reads the column
# rather than parsing the four fields again). A substring anywhere (ILIKE '%x%') has no index:
# not offered.
_SEARCH_DOCUMENT = "search_doc"
_BY_ID_PREFIX = "SELECT job_id FROM jobs WHERE job_id LIKE %(q_prefix)s"
_BY_WORDS = (
    f"SELECT job_id FROM jobs WHERE {_SEARCH_DOCUMENT}"  # noqa: S608  # fixed fragments only
    " @@ to_tsquery('simple', %(q_words)s)"
)
# The matches come from the search indexes alone, at most MAX_SEARCH_MATCHES + 1 of them, then
# are sorted: the planner cannot walk the newest-first index filtering row by row instead (a
# rare word would read the whole table), and a word that matches everything costs no more.
# {matches}: _BY_ID_PREFIX, alone or UNION _BY_WORDS.
_MATCHED = "matched AS MATERIALIZED (SELECT job_id FROM ({matches}) m LIMIT %(cap)s)"
_IN_MATCHED = "job_id IN (SELECT job_id FROM matched)"
_COUNT_MATCHED = "WITH {matched} SELECT count(*) FROM matched"
# The words of a query as PostgreSQL's parser splits the searched text (the same 'simple' config).
_LEXEMES = "SELECT lexeme FROM unnest(to_tsvector('simple', %(q)s)) ORDER BY lexeme LIMIT 16"
MAX_SEARCH_MATCHES = 10_000

_IMAGE = "SELECT uri, sha256 FROM images WHERE job_id = %(job)s AND image_index = %(index)s"

_PING = "SELECT 1"


async def insert_queued_job(pool: AsyncConnectionPool, event: JobRequested) -> bool:
    """Claim the job's id for its request and record the job as ``queued``; False if a row
    existed (the monitor was first). Claimed here, before the id is shown anywhere (GET /jobs
    lists the row), so no other request can take the id before the job's own is folded."""
    async with pool.connection() as conn, conn.transaction():
        await job_claims.claim(conn, event)  # a fresh id: this request owns it
        return await jobs.open_requested(conn, event)


@dataclass(frozen=True)
class IdempotencyRecord:
    """One ledger row: which job a key stands for and whether its event reached Kafka."""

    job_id: str
    request_hash: str
    produced: bool
    created: bool  # True when this call inserted the row


async def claim_idempotency_key(
    pool: AsyncConnectionPool, key: str, request_hash: str, job_id: str
) -> IdempotencyRecord:
    """Insert ``key`` for ``job_id`` unless present; return the row as it now stands."""
    async with pool.connection() as conn:
        cur = await conn.execute(_CLAIM_KEY, {"key": key, "hash": request_hash, "job": job_id})
        if await cur.fetchone() is not None:
            return IdempotencyRecord(job_id, request_hash, produced=False, created=True)
        cur = await conn.execute(_KEY_ROW, {"key": key})
        row = await cur.fetchone()
    if row is None:  # only if someone deleted the key between our two statements
        raise RuntimeError("idempotency key vanished while being claimed")
    return IdempotencyRecord(str(row[0]), str(row[1]), bool(row[2]), created=False)


async def mark_produced(pool: AsyncConnectionPool, key: str) -> None:
    """The key's event is acknowledged by the broker: later replays must not produce again."""
    async with pool.connection() as conn:
        await conn.execute(_MARK_PRODUCED, {"key": key})


async def known_jobs(pool: AsyncConnectionPool, ids: list[str]) -> set[str]:
    """Which of ``ids`` name a job (the Topics page links only those)."""
    if not ids:
        return set()
    async with pool.connection() as conn:
        cur = await conn.execute(_KNOWN_JOBS, {"ids": ids})
        return {str(row[0]) for row in await cur.fetchall()}


async def get_job(pool: AsyncConnectionPool, job_id: str) -> JobView | None:
    """The job as the API shows it (without its result), or None."""
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(JobView)) as cur:
        await cur.execute(_GET_JOB, {"job": job_id})
        return await cur.fetchone()


async def get_job_children(
    pool: AsyncConnectionPool, job_id: str
) -> tuple[list[ImageView], list[ProductView], list[LogView]]:
    """A job's images, products and event log, each in its natural order."""
    async with pool.connection() as conn:
        async with conn.cursor(row_factory=class_row(ImageView)) as images:
            await images.execute(_JOB_IMAGES, {"job": job_id})
            image_rows = await images.fetchall()
        async with conn.cursor(row_factory=class_row(ProductView)) as products:
            await products.execute(_JOB_PRODUCTS, {"job": job_id})
            product_rows = await products.fetchall()
        async with conn.cursor(row_factory=class_row(LogView)) as logs:
            await logs.execute(_JOB_LOG, {"job": job_id})
            log_rows = await logs.fetchall()
    return image_rows, product_rows, log_rows


# Publications of the job still waiting for their channel to confirm the listing, per channel.
_JOB_CONFIRMATIONS = """
SELECT sales_channel, count(*) AS count, min(requested_at) AS since,
    min(next_check_at) AS next_check_at, max(confirm_by) AS confirm_by
FROM publications WHERE job_id = %(job)s AND state = 'pending'
GROUP BY sales_channel ORDER BY sales_channel
"""


async def job_confirmations(pool: AsyncConnectionPool, job_id: str) -> list[ConfirmationRecord]:
    """The job's publications awaiting their channel's confirmation, per channel."""
    rows = class_row(ConfirmationRecord)
    async with pool.connection() as conn, conn.cursor(row_factory=rows) as cur:
        await cur.execute(_JOB_CONFIRMATIONS, {"job": job_id})
        return list(await cur.fetchall())


async def list_jobs(
    pool: AsyncConnectionPool,
    *,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    q: str | None = None,
) -> list[JobView]:
    """Up to ``limit`` jobs, newest first, strictly after the keyset position ``after``;
    ``q`` matches the start of the id, or jobs with words in the theme, niche, style or prompt
    starting with every word of ``q`` (both by index)."""
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            sql, params = await list_jobs_statement(
                cur, status=status, limit=limit, after=after, q=q
            )
        async with conn.cursor(row_factory=class_row(JobView)) as jobs_cur:
            await jobs_cur.execute(sql, params)
            return await jobs_cur.fetchall()


class SearchTooBroad(ValueError):
    """A search that matches more jobs than one page of results may sort."""


async def list_jobs_statement(
    cur: AsyncCursor[Any],
    *,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    q: str | None,
) -> tuple[str, dict[str, object]]:
    """The statement :func:`list_jobs` runs (the search's words split by PostgreSQL on ``cur``);
    :class:`SearchTooBroad` when ``q`` matches more than :data:`MAX_SEARCH_MATCHES` jobs."""
    where: list[str] = []
    params: dict[str, object] = {"limit": limit}
    prefix = ""
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["q_prefix"], params["cap"] = f"{escaped}%", MAX_SEARCH_MATCHES + 1
        await cur.execute(_LEXEMES, {"q": q})
        words = [str(_first(row)) for row in await cur.fetchall()]
        matches = _BY_ID_PREFIX
        if words:  # else no word in it: an id's start only
            matches += " UNION " + _BY_WORDS
            params["q_words"] = " & ".join(f"{_ts_quote(w)}:*" for w in words)
        matched = _MATCHED.format(matches=matches)
        await cur.execute(_COUNT_MATCHED.format(matched=matched), params)
        if _first(await cur.fetchone()) > MAX_SEARCH_MATCHES:
            raise SearchTooBroad(
                f"matches more than {MAX_SEARCH_MATCHES} jobs: add a word, or more of the id"
            )
        prefix = f"WITH {matched} "
        where.append(_IN_MATCHED)
    if status is not None:
        where.append(_STATUS_IN)
        params["statuses"] = SEED_STATUS_OF.get(status, [status])
    if after is not None:
        where.append(_AFTER)
        params["after_at"], params["after_job"] = after
    return prefix + _LIST_JOBS.format(where=f"WHERE {' AND '.join(where)}" if where else ""), params


def _first(row: Any) -> Any:
    """The first column of a row of either row factory (tuple or dict)."""
    if row is None:
        raise RuntimeError("a query that always returns a row returned none")
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _ts_quote(lexeme: str) -> str:
    """A lexeme as a quoted tsquery operand (its quotes and backslashes escaped)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


async def image_of(pool: AsyncConnectionPool, job_id: str, index: int) -> tuple[str, str] | None:
    """(uri, sha256) of a job's image, None when it was not generated (yet)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_IMAGE, {"job": job_id, "index": index})
        row = await cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


async def ping(pool: AsyncConnectionPool, timeout: float) -> None:
    """Raise unless PostgreSQL answers a trivial query within ``timeout`` seconds."""
    async with pool.connection(timeout=timeout) as conn:
        await conn.execute(_PING)
