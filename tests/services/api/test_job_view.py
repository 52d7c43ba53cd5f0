"""GET /jobs/{id}'s ``request``: the stored spec by the request's names, the priority as given;
a row whose stored request today's contract cannot read still shows (without one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.api.schemas.jobs import JobView

pytestmark = pytest.mark.unit

_AT = datetime(2026, 12, 1, tzinfo=UTC)


def row(**over: Any) -> dict[str, Any]:
    """A row as services.api.queries selects it."""
    base: dict[str, Any] = {
        "job_id": "j-1", "status": "completed", "detailed_status": "partial", "priority": 8,
        "band": "high", "theme": "cats", "style": "flat", "niche": "pets", "prompt": None,
        "product_types": ["mug"], "count": 2, "auto_publish": True, "channels": ["etsy"],
        "expected_products": 2, "expected_publications": 2, "images_done": 2,
        "images_failed": 0, "products_done": 1, "products_failed": 1, "publications_done": 1,
        "publications_failed": 0, "error": None, "retry_attempt": 0, "next_retry_at": None,
        "last_error": None, "created_at": _AT, "updated_at": _AT, "started_at": _AT,
        "finished_at": _AT,
        "spec": {
            "theme": "cats", "style": "flat", "niche": "pets", "prompt": None,
            "product_types": ["mug"], "count": 2, "auto_publish": True, "channels": ["etsy"],
            "priority": "high", "priority_level": 8, "submitted_by": "label-1",
        },
    }  # fmt: skip
    return base | over


def test_the_request_is_the_stored_spec_by_the_requests_names() -> None:
    shown = JobView.model_validate(row()).model_dump(mode="json", by_alias=True)
    assert shown["request"] == {
        "theme": "cats", "style": "flat", "niche": "pets", "prompt": None,
        "productTypes": ["mug"], "count": 2, "autoPublish": True, "channels": ["etsy"],
        "priority": 8, "review": False,
    }  # fmt: skip
    assert "spec" not in shown and "submittedBy" not in str(shown)
    assert (shown["status"], shown["detailedStatus"], shown["band"]) == (
        "completed", "partial", "high"
    )  # fmt: skip


def test_a_stored_field_since_dropped_is_left_out() -> None:
    spec = row()["spec"] | {"retired_field": 1}
    shown = JobView.model_validate(row(spec=spec)).model_dump(mode="json", by_alias=True)
    assert shown["request"]["theme"] == "cats"


@pytest.mark.parametrize("stored", [{}, {"theme": "t", "submitted_by": "x"}, None])
def test_a_row_without_a_readable_request_still_shows(stored: object) -> None:
    view = JobView.model_validate(row(spec=stored))
    shown = view.model_dump(mode="json", by_alias=True)
    assert shown["request"] == {}
    assert shown["theme"] == "cats" and shown["priority"] == 8
