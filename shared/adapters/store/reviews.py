"""The ``image_reviews`` table: where the review of each image of a reviewed job stands.

Two writers, each with its own statements, never overwriting the other's news:

- the API *claims* a seller's decision before it produces it (a compare-and-set on the row's
  state and generation, so two decisions about one image cannot both go out);
- the monitor's fold makes an image ``awaiting`` once all of its products of its newest
  generation are made, confirms a decision when its event is folded (``decision_folded``), and
  applies a decision the API never claimed here (a topic replayed into a fresh database).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from shared.contract.events import DecisionAction, SellerDecision

# Every product type of the image's generation settled (made or failed), one at least made:
# the image waits for the seller. A row of an older generation (a regenerate) moves to this one;
# a row of this generation keeps whatever was decided.
_AWAIT = """
INSERT INTO image_reviews (job_id, image_index, generation, state, awaiting_since)
SELECT %(job)s, %(index)s, %(generation)s, 'awaiting', %(at)s
WHERE (SELECT count(*) FILTER (WHERE status <> 'failed') FROM products
       WHERE job_id = %(job)s AND image_index = %(index)s AND generation = %(generation)s) >= 1
  AND (SELECT count(*) FROM products
       WHERE job_id = %(job)s AND image_index = %(index)s
         AND (generation = %(generation)s OR status = 'failed')) >= %(types)s
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE job_id = %(job)s AND cancelled_at IS NOT NULL)
ON CONFLICT (job_id, image_index) DO UPDATE SET
    generation = EXCLUDED.generation, state = 'awaiting', awaiting_since = EXCLUDED.awaiting_since
WHERE image_reviews.generation < EXCLUDED.generation
"""

_CONFIRM = """
UPDATE image_reviews SET decision_folded = TRUE
WHERE job_id = %(job)s AND image_index = %(index)s AND decision_id = %(decision)s
"""

# A decision the API did not claim here: applied only to the image it was about, still waiting.
_APPLY = """
UPDATE image_reviews SET state = %(state)s, decision_id = %(decision)s, decision = %(action)s,
    decided_by = %(by)s, decided_at = %(at)s, decision_folded = TRUE, prompt = %(prompt)s
WHERE job_id = %(job)s AND image_index = %(index)s AND generation = %(generation)s
  AND state = 'awaiting'
"""

_CANCEL = """
UPDATE image_reviews SET state = 'cancelled'
WHERE job_id = %(job)s AND state IN ('awaiting', 'regenerating')
"""

# The state a decision leaves its image in.
STATE_AFTER = {
    DecisionAction.APPROVE: "approved",
    DecisionAction.REJECT: "rejected",
    DecisionAction.REGENERATE: "regenerating",
}


async def await_decision(
    conn: AsyncConnection[Any],
    *,
    job_id: str,
    image_index: int,
    generation: int,
    product_types: int,
    at: datetime,
) -> None:
    """After a product of a reviewed job was made: the image waits for the seller once every
    product type of its generation is settled."""
    await conn.execute(
        _AWAIT,
        {
            "job": job_id,
            "index": image_index,
            "generation": generation,
            "types": product_types,
            "at": at,
        },
    )


async def fold_decision(conn: AsyncConnection[Any], event: SellerDecision) -> None:
    """A seller's decision about an image, folded: the API's claim confirmed, or the decision
    applied where the API never claimed it. A cancel ends every review still open."""
    d = event.payload
    if d.action is DecisionAction.CANCEL:
        await conn.execute(_CANCEL, {"job": event.job_id})
        return
    state = STATE_AFTER.get(d.action)
    if state is None or d.image_index is None:
        return  # after launch: nothing of the review changes
    params = {"job": event.job_id, "index": d.image_index, "decision": d.decision_id}
    cur = await conn.execute(_CONFIRM, params)
    if cur.rowcount == 0:
        await conn.execute(
            _APPLY,
            {
                **params,
                "state": state,
                "action": d.action.value,
                "by": d.decided_by,
                "at": event.occurred_at,
                "generation": d.generation,
                "prompt": d.prompt,
            },
        )
