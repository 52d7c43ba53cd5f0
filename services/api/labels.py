"""Callers' labels: the deployment's label secret, and the relabelling of what older versions
stored (``key-`` + an unsalted SHA-256 of the key: the same in every deployment, and a test
for a guessed key).

At start the API replaces every such legacy label in the rows it shows (a job's
``submitted_by``, its stored request, the ``job.requested`` entry of its log) and in its
idempotency ledger: a configured key's old label by the key's new one, so its old jobs and its
new ones carry the same name; any other (a key no longer configured) by an HMAC of the old label
under the secret, which names the same caller across rows but nothing outside this deployment.
Idempotent, so API instances starting together do no harm; partial indexes (migration 0026)
make it a no-op lookup once done.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from psycopg_pool import AsyncConnectionPool

from services.api.auth import LABEL_PREFIX, label_of, legacy_label
from services.api.settings import ApiSettings
from shared.platform.errors import ConfigError

logger = logging.getLogger(__name__)

_LOAD = "SELECT secret FROM api_label_secret"
# Literal in each statement (not a parameter): the partial indexes of migration 0026 have this
# very predicate, and the planner uses them only when it can see the query implies it.
_LEGACY = "'^key-[0-9a-f]{16}$'"
_LEGACY_JOBS = f"SELECT DISTINCT submitted_by FROM jobs WHERE submitted_by ~ {_LEGACY}"  # noqa: S608
_LEGACY_LOGS = f"""
SELECT DISTINCT data->>'submitted_by' FROM job_events
WHERE type = 'job.requested' AND data->>'submitted_by' ~ {_LEGACY}
"""  # noqa: S608
_RELABEL_JOBS = f"""
UPDATE jobs SET submitted_by = %(new)s,
    request = CASE WHEN request ? 'submitted_by'
                   THEN jsonb_set(request, '{{submitted_by}}', to_jsonb(%(new)s::text))
                   ELSE request END
WHERE submitted_by ~ {_LEGACY} AND submitted_by = %(old)s
"""  # noqa: S608
_RELABEL_LOGS = f"""
UPDATE job_events SET data = jsonb_set(data, '{{submitted_by}}', to_jsonb(%(new)s::text))
WHERE type = 'job.requested' AND data->>'submitted_by' ~ {_LEGACY}
  AND data->>'submitted_by' = %(old)s
"""  # noqa: S608
# Ledger keys are "<label>:<Idempotency-Key>": a configured caller's retry after the upgrade
# must find its key under its new label.
_RELABEL_LEDGER = """
UPDATE api_idempotency SET key = %(new)s || substr(key, %(cut)s)
WHERE key ~ '^key-[0-9a-f]{16}:' AND key LIKE %(old_like)s
"""


async def load_secret(pool: AsyncConnectionPool) -> bytes:
    """The deployment's label secret (created by migration 0026)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_LOAD)
        row = await cur.fetchone()
    if row is None or not row[0]:
        raise ConfigError(
            "api_label_secret is empty: run the migrations (python -m shared.tools.init)"
        )
    return str(row[0]).encode()


def legacy_replacement(old: str, secret: bytes) -> str:
    """The label of a legacy one whose key is not configured here (not reversible)."""
    mac = hmac.new(secret, b"legacy:" + old.encode(), hashlib.sha256)
    return LABEL_PREFIX + mac.hexdigest()[:16]


async def relabel(pool: AsyncConnectionPool, settings: ApiSettings, secret: bytes) -> int:
    """Replace every legacy label; return how many distinct ones were replaced."""
    configured = {
        legacy_label(k): label_of(k, secret)
        for k in [*settings.key_list(), *settings.admin_key_list()]
    }
    async with pool.connection() as conn:
        found: set[str] = set()
        for query in (_LEGACY_JOBS, _LEGACY_LOGS):
            cur = await conn.execute(query)
            found |= {str(r[0]) for r in await cur.fetchall()}
        for old in sorted(found):
            new = configured.get(old) or legacy_replacement(old, secret)
            async with conn.transaction():
                await conn.execute(_RELABEL_JOBS, {"old": old, "new": new})
                await conn.execute(_RELABEL_LOGS, {"old": old, "new": new})
        for old, new in configured.items():
            await conn.execute(
                _RELABEL_LEDGER, {"old_like": f"{old}:%", "new": new, "cut": len(old) + 1}
            )
    if found:
        logger.info("legacy caller labels replaced count=%d", len(found))
    return len(found)
