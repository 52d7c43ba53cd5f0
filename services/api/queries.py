"""The API's SQL: the job row it writes at submission, the idempotency ledger, and reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
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

# Search (docs/decisions.md §63): the id's start (jobs_id_prefix_idx), or words of the theme,
# niche, style or prompt starting with each of the query's words (the stored search_doc,
# migration 0040). A substring anywhere (ILIKE '%x%') has no index: not offered.
#
# In two steps, so that neither a word on every job nor a rare one costs a scan of the matches:
# 1. the newest SEARCH_RECENT jobs after the cursor (of any status), newest first, each row
#    checked against the query and the status: a common word fills the page from the first
#    few hundred;
# 2. only if the page is not full, the matches older than those, from the indexes alone
#    (GIN and the id prefix), window by window (SEARCH_WINDOWS), at most
#    MAX_SEARCH_MATCHES + 1 of them per window, sorted; past that a 400. A query reaching
#    step 2 matched fewer than a page in the newest SEARCH_RECENT jobs, so only a word common
#    long ago and rare since is refused.
# Each word of the query is asked of the GIN index as the exact words that start with it
# (search_words, migration 0042): a prefix ('cat':*) costs the index 7-10x more at a million
# jobs. A prefix of more than MAX_PREFIX_WORDS words is asked as a prefix.
SEARCH_RECENT = 5_000
# Step 2 looks back from where step 1 stopped a week, then a quarter, then to the start: the
# index's matches are ANDed with the window's (created_at) before a row is read, so a page of
# a word on thousands of old jobs reads tens of rows, not all of them (1,956 heap blocks at a
# million jobs for three common words, against 40 in the first week).
SEARCH_WINDOWS: tuple[timedelta | None, ...] = (timedelta(days=7), timedelta(days=90), None)
MAX_SEARCH_MATCHES = 10_000
MAX_PREFIX_WORDS = 64
_SEARCH_DOCUMENT = "search_doc"
# Each word of the query as PostgreSQL's parser splits the searched text (the same 'simple'
# config), with the known words starting with it (one more than MAX_PREFIX_WORDS: too many).
_QUERY_WORDS = """
SELECT q.lexeme, ARRAY(
    SELECT word FROM search_words
    WHERE word LIKE replace(replace(replace(q.lexeme, '\\', '\\\\'), '%%', '\\%%'), '_', '\\_')
        || '%%'
    ORDER BY word LIMIT %(max_words)s) AS words
FROM (SELECT lexeme FROM unnest(to_tsvector('simple', %(q)s)) ORDER BY lexeme LIMIT 16) q
"""
# The words are lexemes already (the document's own, from search_words, or the query's as
# to_tsvector split it): cast, not parsed again. to_tsquery would parse each once more, alone,
# and a word such as '9e0e3044e1' (a hyphenated word's part in the document) alone reads as the
# number 9e0 and the word e3044e1, which the document does not hold.
_MATCHES = (
    f"({_SEARCH_DOCUMENT} @@ %(q_words)s::tsquery"  # fixed fragments only
    " OR job_id LIKE %(q_prefix)s)"
)
# {where}: the status and cursor conditions, or nothing; {match}: _MATCHES, or the id prefix.
_SEARCH_RECENT = (
    f"SELECT {_JOB_COLUMNS} FROM ("  # noqa: S608  # fixed fragments only
    "SELECT * FROM jobs {where} ORDER BY created_at DESC, job_id DESC LIMIT %(recent)s"
    ") AS jobs WHERE {match} ORDER BY created_at DESC, job_id DESC LIMIT %(limit)s"
)
# Where step 1 stopped: the last of the newest SEARCH_RECENT jobs it read (none: it read all).
_SEARCH_BOUNDARY = (
    "SELECT created_at, job_id FROM jobs {where}"
    " ORDER BY created_at DESC, job_id DESC OFFSET %(recent)s - 1 LIMIT 1"
)
_BY_ID_PREFIX = "SELECT job_id, created_at, status FROM jobs WHERE job_id LIKE %(q_prefix)s"
_BY_WORDS = (
    f"SELECT job_id, created_at, status FROM jobs WHERE {_SEARCH_DOCUMENT}"  # noqa: S608  # fixed fragments only
    " @@ %(q_words)s::tsquery"
)
# {matches}: _BY_ID_PREFIX, alone or UNION _BY_WORDS; {where}: the boundary, and the status.
# The planner cannot walk the newest-first index filtering row by row here (a rare word would
# read the whole table): the matches come from the indexes, then are sorted, and counted in
# the same pass.
_SEARCH_OLDER = """
WITH matched AS MATERIALIZED (SELECT job_id, created_at FROM ({matches}) m {where} LIMIT %(cap)s)
SELECT job_id, count(*) OVER () AS total FROM matched
ORDER BY created_at DESC, job_id DESC LIMIT %(limit)s
"""
# Step 2's plan, whatever the planner estimates: bitmaps of the indexes (GIN, the id prefix),
# never the table read in full nor the newest-first index walked (at a million jobs both are
# seconds when a word is rarer than estimated). Set for the transaction only.
BITMAPS_ONLY = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true)"
)
_SINCE = "created_at >= %(since)s"
_JOBS_BY_ID = _SELECT_JOBS + " WHERE job_id = ANY(%(ids)s) ORDER BY created_at DESC, job_id DESC"

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
    starting with every word of ``q`` (both by index); :class:`SearchTooBroad` when ``q``
    would sort more than :data:`MAX_SEARCH_MATCHES` jobs."""
    listing = Listing(status, limit, after)
    async with pool.connection() as conn:
        async with conn.cursor() as cur:
            search = await search_of(cur, q) if q else None
        async with conn.cursor(row_factory=class_row(JobView)) as jobs_cur:
            if search is None:
                await jobs_cur.execute(*listing.statement())
                return await jobs_cur.fetchall()
            await jobs_cur.execute(*search.recent(listing))
            found = await jobs_cur.fetchall()
        if len(found) == limit:
            return found
        async with conn.cursor() as cur:
            await cur.execute(*search.boundary(listing))
            boundary = await cur.fetchone()
            if boundary is None:  # step 1 read every job there is
                return found
            older: list[str] = []
            before: tuple[datetime, str] = (boundary[0], boundary[1])
            async with conn.transaction():
                await cur.execute(BITMAPS_ONLY)
                for span in SEARCH_WINDOWS:
                    since = None if span is None else boundary[0] - span
                    wanted = limit - len(found) - len(older)
                    await cur.execute(*search.older(listing, before, wanted, since))
                    rows = await cur.fetchall()
                    if rows and rows[0][1] > MAX_SEARCH_MATCHES:
                        raise SearchTooBroad(
                            f"matches more than {MAX_SEARCH_MATCHES} jobs: add a word, or more "
                            "of the id"
                        )
                    older += [row[0] for row in rows]
                    if since is None or len(found) + len(older) == limit:
                        break
                    before = (since, "")  # what is older than the window (no id sorts below "")
        if not older:
            return found
        async with conn.cursor(row_factory=class_row(JobView)) as jobs_cur:
            await jobs_cur.execute(_JOBS_BY_ID, {"ids": older})
            return found + await jobs_cur.fetchall()


class SearchTooBroad(ValueError):
    """A search that would sort more jobs than one page of results may."""


@dataclass(frozen=True)
class Listing:
    """What a page of GET /jobs asks for, search aside: its conditions as SQL."""

    status: str | None
    limit: int
    after: tuple[datetime, str] | None

    def conditions(self) -> tuple[list[str], dict[str, object]]:
        where: list[str] = []
        params: dict[str, object] = {"limit": self.limit}
        if self.status is not None:
            where.append(_STATUS_IN)
            params["statuses"] = SEED_STATUS_OF.get(self.status, [self.status])
        if self.after is not None:
            where.append(_AFTER)
            params["after_at"], params["after_job"] = self.after
        return where, params

    def where(self) -> tuple[str, dict[str, object]]:
        where, params = self.conditions()
        return (f"WHERE {' AND '.join(where)}" if where else ""), params

    def statement(self) -> tuple[str, dict[str, object]]:
        """The page without a search."""
        where, params = self.where()
        return _LIST_JOBS.format(where=where), params


@dataclass(frozen=True)
class Search:
    """A search's words as a tsquery (each the exact words starting with it where known; None
    when ``q`` has no word) and its start of an id (a LIKE pattern)."""

    words: str | None
    id_prefix: str

    def params(self) -> dict[str, object]:
        return {"q_words": self.words, "q_prefix": self.id_prefix, "recent": SEARCH_RECENT}

    def recent(self, listing: Listing) -> tuple[str, dict[str, object]]:
        """Step 1: the page's matches among the newest SEARCH_RECENT jobs (of any status: the
        jobs of one status are spread over the newest-first index, and two statuses, as
        ``failed`` asks, cannot be read from it in order)."""
        where, params = Listing(None, listing.limit, listing.after).where()
        status, status_params = Listing(listing.status, listing.limit, None).conditions()
        match = " AND ".join(
            [_MATCHES if self.words is not None else "job_id LIKE %(q_prefix)s", *status]
        )
        return _SEARCH_RECENT.format(where=where, match=match), {
            **params,
            **status_params,
            **self.params(),
        }

    def boundary(self, listing: Listing) -> tuple[str, dict[str, object]]:
        """The last job step 1 read."""
        where, params = Listing(None, listing.limit, listing.after).where()
        return _SEARCH_BOUNDARY.format(where=where), {**params, **self.params()}

    def older(
        self,
        listing: Listing,
        before: tuple[datetime, str],
        limit: int,
        since: datetime | None = None,
    ) -> tuple[str, dict[str, object]]:
        """Step 2: (job_id, matches in all) of the next ``limit`` matches older than
        ``before`` (and made at ``since`` or later), from the indexes."""
        older = Listing(listing.status, limit, before)
        conditions, params = older.conditions()
        if since is not None:
            conditions.append(_SINCE)
            params["since"] = since
        matches = _BY_ID_PREFIX + (" UNION " + _BY_WORDS if self.words is not None else "")
        sql = _SEARCH_OLDER.format(matches=matches, where=f"WHERE {' AND '.join(conditions)}")
        return sql, {**params, **self.params(), "cap": MAX_SEARCH_MATCHES + 1}


async def search_of(cur: AsyncCursor[Any], q: str) -> Search:
    """``q`` split into words by PostgreSQL (on ``cur``), each turned into the known words
    starting with it."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    await cur.execute(_QUERY_WORDS, {"q": q, "max_words": MAX_PREFIX_WORDS + 1})
    terms = []
    for lexeme, known in await cur.fetchall():
        if len(known) > MAX_PREFIX_WORDS:
            terms.append(f"{_ts_quote(lexeme)}:*")
        elif known:
            terms.append("(" + " | ".join(_ts_quote(w) for w in known) + ")")
        else:  # no job has a word starting with it: the index says so at once
            terms.append(_ts_quote(lexeme))
    return Search(" & ".join(terms) if terms else None, f"{escaped}%")


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
