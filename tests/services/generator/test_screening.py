"""The generator's screening: the policy over each check's findings (the checks in process, each
tested with its real implementation in its own module), and what the generator hands on (on the
real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from services.generator.handler import GeneratorHandler
from services.generator.screening import Screener, build_screener
from shared.adapters.storage import LocalImageStorage
from shared.contract.events import (
    DesignRef,
    ImageGenerated,
    JobRequested,
    JobRequestedPayload,
    Priority,
    ScreeningCheck,
    ScreeningDecision,
    TokenCounts,
)
from shared.domain.screening.checks import (
    DesignText,
    RiskFinding,
    RiskLevel,
    RiskReview,
    TermHit,
    UnsafeFinding,
)
from shared.domain.screening.gate import PriorityGate
from shared.domain.screening.phash import DesignHashes
from shared.domain.screening.settings import DEFAULT_POLICY, ScreeningSettings
from shared.pipeline.runner import MessageContext
from shared.platform.db import open_pool
from shared.platform.errors import PermanentError, RetryableError
from tests.services.generator.test_handler import FakeBriefs, FakeRenderer
from tests.support.hashes import MemoryHashes
from tests.support.infra import unique

CTX = MessageContext("jobs.requested.normal", 0, 7, 0, "test")


class Terms:
    """A deny list of whole words (the real matcher is shared.domain.screening.terms)."""

    def __init__(self, *terms: str) -> None:
        self.terms = terms

    def find(self, text: str, field: str) -> list[TermHit]:
        words = text.casefold().replace(",", " ").split()
        return [
            TermHit(term=t, category="brand", found=t, field=field)  # type: ignore[arg-type]
            for t in self.terms
            if t.casefold() in words
        ]


@dataclass
class Reviewer:
    level: RiskLevel = RiskLevel.NONE
    calls: list[DesignText] = field(default_factory=list)
    fail: bool = False

    async def review_risk(self, text: DesignText, *, job_id: str) -> RiskReview:
        self.calls.append(text)
        if self.fail:
            raise RetryableError("overloaded", vendor="claude")
        findings = (RiskFinding("Acme", "a registered mark", "title"),) if self.level else ()
        return RiskReview(self.level, findings, TokenCounts(input=120, output=30))


@dataclass
class Reader:
    text: str = ""

    async def read_text(self, image: bytes) -> str:
        assert image.startswith(b"\x89PNG")
        return self.text


@dataclass
class Unsafe:
    findings: list[UnsafeFinding] = field(default_factory=list)

    def classify(self, image: bytes) -> list[UnsafeFinding]:
        return self.findings


def request(
    *, auto_publish: bool = True, count: int = 2, theme: str = "space cats"
) -> JobRequested:
    return JobRequested(
        job_id=unique("job-scr"),
        producer="t",
        payload=JobRequestedPayload(
            theme=theme,
            style="retro",
            niche="astronomy",
            product_types=["tshirt"],
            count=count,
            auto_publish=auto_publish,
        ),
    )


def generator(
    tmp_path: Path, screener: Screener, pool: AsyncConnectionPool | None = None
) -> GeneratorHandler:
    return GeneratorHandler(
        briefs=FakeBriefs(),
        renderer=FakeRenderer(),
        storage=LocalImageStorage(tmp_path),
        width=32,
        height=32,
        claims=pool,
        screener=screener,
    )


def screener(tmp_path: Path, **checks: object) -> Screener:
    return Screener(storage=LocalImageStorage(tmp_path), policy=dict(DEFAULT_POLICY), **checks)  # type: ignore[arg-type]


def screened(outputs: object) -> list[ImageGenerated]:
    events = [o.event for o in outputs]  # type: ignore[attr-defined]
    assert all(isinstance(e, ImageGenerated) and e.payload.screening for e in events)
    return events


async def test_a_protected_term_in_the_copy_blocks_the_design_and_says_where(
    tmp_path: Path,
) -> None:
    gen = generator(tmp_path, screener(tmp_path, terms=Terms("space")))
    first, second = screened(await gen(request(), CTX))
    s = first.payload.screening
    assert s is not None and s.decision is ScreeningDecision.BLOCK
    fields = {r.field for r in s.reasons}
    # FakeBriefs writes "space cats tee <i>" titles and "space cats art <i>" prompts.
    assert {"title", "prompt"} <= fields
    assert all(r.check is ScreeningCheck.DENY_LIST and r.terms == ["space"] for r in s.reasons)
    # A block keeps the routing: the printify stage reads the decision itself.
    assert first.payload.routing.review is False
    assert second.payload.screening is not None


async def test_text_in_the_art_is_its_own_check(tmp_path: Path) -> None:
    gen = generator(tmp_path, screener(tmp_path, terms=Terms("acme"), reader=Reader("GO ACME GO")))
    [image] = screened(await gen(request(count=1), CTX))
    s = image.payload.screening
    assert s is not None and s.decision is ScreeningDecision.BLOCK
    [reason] = s.reasons
    assert (reason.check, reason.field, reason.terms) == (
        ScreeningCheck.RENDERED_TEXT,
        "image_text",
        ["acme"],
    )
    assert ScreeningCheck.RENDERED_TEXT in s.checks


async def test_a_review_holds_the_image_when_its_job_publishes(tmp_path: Path) -> None:
    risky = Reviewer(RiskLevel.HIGH)
    gen = generator(tmp_path, screener(tmp_path, reviewer=risky, reader=Reader("x"), terms=Terms()))
    [image] = screened(await gen(request(count=1), CTX))
    s = image.payload.screening
    assert s is not None and s.decision is ScreeningDecision.REVIEW
    assert s.reasons[0].level == "high" and s.reasons[0].terms == ["Acme"]
    assert s.tokens == TokenCounts(input=120, output=30)
    # A lone letter read in the art is not worth Claude's second look: the copy's review stands.
    assert [c.image_text for c in risky.calls] == [None]
    assert image.payload.routing.review is True
    # A job that only makes drafts lists nothing: its screening is shown, nothing is held.
    [draft] = screened(await gen(request(count=1, auto_publish=False), CTX))
    assert draft.payload.screening is not None
    assert draft.payload.screening.decision is ScreeningDecision.REVIEW
    assert draft.payload.routing.review is False


async def test_risk_below_the_configured_level_is_not_a_finding(tmp_path: Path) -> None:
    gen = generator(tmp_path, screener(tmp_path, reviewer=Reviewer(RiskLevel.LOW)))
    [image] = screened(await gen(request(count=1), CTX))
    s = image.payload.screening
    assert s is not None and s.decision is ScreeningDecision.ALLOW and s.reasons == []
    # Its tokens are spent all the same.
    assert s.tokens == TokenCounts(input=120, output=30)


async def test_a_near_duplicate_names_the_design_it_resembles(tmp_path: Path) -> None:
    hashes = MemoryHashes()
    # Every image hashes alike: the second job's first image resembles the first job's.
    check = screener(tmp_path, hash_image=lambda data: DesignHashes(0x0F0F, 0xF0F0), hashes=hashes)
    gen = generator(tmp_path, check)
    one = request(count=1)
    [first] = screened(await gen(one, CTX))
    assert first.payload.screening is not None
    assert first.payload.screening.decision is ScreeningDecision.ALLOW
    assert first.payload.screening.phash == "0000000000000f0f"
    [second] = screened(await gen(request(count=1), CTX))
    s = second.payload.screening
    assert s is not None and s.decision is ScreeningDecision.REVIEW
    [reason] = s.reasons
    assert reason.resembles == DesignRef(job_id=one.job_id, image_index=0, distance=0)


async def test_the_policy_decides_and_an_allowed_finding_is_still_recorded(tmp_path: Path) -> None:
    policy = {**DEFAULT_POLICY, ScreeningCheck.UNSAFE_IMAGE: ScreeningDecision.ALLOW}
    check = Screener(
        storage=LocalImageStorage(tmp_path),
        policy=policy,
        unsafe=Unsafe([UnsafeFinding("adult", 0.91)]),
    )
    gen = generator(tmp_path, check)
    [image] = screened(await gen(request(count=1), CTX))
    s = image.payload.screening
    assert s is not None and s.decision is ScreeningDecision.ALLOW
    [reason] = s.reasons
    assert (reason.outcome, reason.label, reason.score) == (ScreeningDecision.ALLOW, "adult", 0.91)
    assert s.checks == [ScreeningCheck.UNSAFE_IMAGE]


async def test_a_check_that_cannot_run_fails_the_job_it_never_passes_it(tmp_path: Path) -> None:
    gen = generator(tmp_path, screener(tmp_path, reviewer=Reviewer(fail=True)))
    with pytest.raises(RetryableError):
        await gen(request(count=1), CTX)


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(migrated_db, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_redelivered_job_keeps_its_screening_and_asks_claude_once(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    reviewer = Reviewer(RiskLevel.MEDIUM)
    job = request(count=2)
    first = screened(
        await generator(tmp_path, screener(tmp_path, reviewer=reviewer), pool)(job, CTX)
    )
    assert len(reviewer.calls) == 2
    # Claude would answer otherwise now: the redelivery hands on what was decided.
    reviewer.level = RiskLevel.NONE
    again = screened(
        await generator(tmp_path, screener(tmp_path, reviewer=reviewer), pool)(job, CTX)
    )
    assert len(reviewer.calls) == 2
    assert [e.payload.screening for e in again] == [e.payload.screening for e in first]
    assert [e.event_id for e in again] == [e.event_id for e in first]


async def test_claude_reviews_the_copy_while_the_cpus_read_the_art(tmp_path: Path) -> None:
    """The review is seconds of Claude's time: serially after OCR it put both on the job's
    path. The reader here finishes only once Claude has been asked (serially: never)."""
    reviewer = Reviewer()

    @dataclass
    class WaitsForClaude:
        async def read_text(self, image: bytes) -> str:
            async with asyncio.timeout(10):
                while not reviewer.calls:
                    await asyncio.sleep(0.01)
            return "   "

    check = screener(tmp_path, terms=Terms("acme"), reader=WaitsForClaude(), reviewer=reviewer)
    [image] = screened(await generator(tmp_path, check)(request(count=1), CTX))
    # Nothing worth a second look in the art: one call, for the copy alone.
    assert [c.image_text for c in reviewer.calls] == [None]
    s = image.payload.screening
    assert s is not None and s.tokens == TokenCounts(input=120, output=30)


async def test_words_read_in_the_art_are_reviewed_again_with_the_copy(tmp_path: Path) -> None:
    reviewer = Reviewer(RiskLevel.MEDIUM)
    check = screener(tmp_path, terms=Terms("nothing"), reader=Reader("GO TEAM"), reviewer=reviewer)
    [image] = screened(await generator(tmp_path, check)(request(count=1), CTX))
    assert [c.image_text for c in reviewer.calls] == [None, "GO TEAM"]
    s = image.payload.screening
    # Both calls were paid for; the finding is the whole design's review's, once.
    assert s is not None and s.tokens == TokenCounts(input=240, output=60)
    assert [r.check for r in s.reasons] == [ScreeningCheck.RISK_REVIEW]


async def test_claude_declining_to_review_is_a_finding_not_a_failure(tmp_path: Path) -> None:
    class Declines:
        async def review_risk(self, text: DesignText, *, job_id: str) -> RiskReview:
            raise PermanentError("Claude declined", vendor="claude", code="refusal")

    gen = generator(tmp_path, screener(tmp_path, reviewer=Declines()))
    [image] = screened(await gen(request(count=1), CTX))
    s = image.payload.screening
    assert s is not None and s.decision is ScreeningDecision.REVIEW
    assert s.reasons[0].check is ScreeningCheck.RISK_REVIEW and "declined" in s.reasons[0].detail


async def test_the_deployment_screener_runs_every_check_unless_turned_off(
    tmp_path: Path, pool: AsyncConnectionPool
) -> None:
    storage = LocalImageStorage(tmp_path)

    def build(**env: object) -> Screener | None:
        return build_screener(
            ScreeningSettings(**env),  # type: ignore[arg-type]
            storage=storage,
            reviewer=Reviewer(),
            pool=pool,
            image_max_bytes=1 << 20,
        )

    every = build()
    assert every is not None and every.checks == list(ScreeningCheck)
    assert every.policy[ScreeningCheck.DENY_LIST] is ScreeningDecision.BLOCK
    assert build(screening_enabled=False) is None
    some = build(
        screening_checks_off=[ScreeningCheck.DENY_LIST, ScreeningCheck.UNSAFE_IMAGE],
        screening_policy={ScreeningCheck.RENDERED_TEXT: ScreeningDecision.REVIEW},
    )
    assert some is not None and ScreeningCheck.DENY_LIST not in some.checks
    assert ScreeningCheck.RENDERED_TEXT in some.checks and some.unsafe is None
    assert some.outcome(ScreeningCheck.RENDERED_TEXT) is ScreeningDecision.REVIEW
    # The deny list still reads the art's text, and nothing of the copy is reported.
    gen = generator(tmp_path, some, pool)
    [image] = screened(await gen(request(count=1, theme="Nike running"), CTX))
    s = image.payload.screening
    assert s is not None and all(r.check is not ScreeningCheck.DENY_LIST for r in s.reasons)


async def test_a_high_jobs_design_is_screened_before_a_low_backlog(tmp_path: Path) -> None:
    order: list[str] = []
    first_in = asyncio.Event()
    go_on = asyncio.Event()

    class SlowReader:
        async def read_text(self, image: bytes) -> str:
            order.append("read")
            first_in.set()
            await go_on.wait()
            return ""

    check = screener(tmp_path, terms=Terms(), reader=SlowReader())
    check.gate = PriorityGate(1)
    gen = generator(tmp_path, check)
    low = [request(count=1, theme=f"low {i}") for i in range(3)]
    lows = [asyncio.create_task(gen(job, CTX)) for job in low]
    await first_in.wait()
    urgent = request(count=1, theme="urgent")
    urgent = urgent.model_copy(
        update={"payload": urgent.payload.model_copy(update={"priority": Priority.HIGH})}
    )
    high = asyncio.create_task(gen(urgent, CTX))
    finished: list[str] = []

    def when_done(name: str) -> Callable[[object], None]:
        return lambda _: finished.append(name)

    for name, task in [("high", high), *((f"low {i}", t) for i, t in enumerate(lows))]:
        task.add_done_callback(when_done(name))
    await asyncio.sleep(0.2)  # every job has rendered and waits for screening's one slot
    go_on.set()
    await asyncio.gather(high, *lows)
    # The low design already on the CPU first (whichever got there), then the high one, then
    # the rest of the backlog.
    assert finished[0].startswith("low") and finished[1] == "high", finished
