"""``/doctor``: the preflight (:mod:`shared.tools.doctor`) run by the API, with its own settings.

Admin only: it makes read-only calls to every configured vendor (some of them rate-limited, e.g.
Printify's catalog), so it runs when asked, never on a timer. The answer is what ``pod doctor``
prints: one row per check, and ``ok`` only when nothing failed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.api.auth import Admin
from services.api.schemas.common import COMMON_ERRORS, error_responses
from shared.tools import doctor

router = APIRouter(tags=["operations"], responses={**COMMON_ERRORS, **error_responses(403)})


class CheckView(BaseModel):
    """One finding of the preflight."""

    name: str = Field(description="<part>.<what>, e.g. printify.shop")
    status: Literal["pass", "fail", "skip"]
    detail: str = Field(description="What was found (never a secret)")
    fix: str | None = Field(description="What to do, when it failed")


class DoctorReport(BaseModel):
    """Every configured part's checks; ``ok`` when none failed."""

    ok: bool
    checks: list[CheckView]


@router.get("/doctor", response_model=DoctorReport)
async def run_doctor(principal: Admin) -> DoctorReport:
    """Check every configured vendor, the broker and the database from the API's own settings:
    credentials valid and scoped, shop and catalog, models, bucket; read-only (admin key)."""
    checks = await doctor.run()
    return DoctorReport(
        ok=doctor.all_passed(checks), checks=[CheckView(**c.as_dict()) for c in checks]
    )
