"""Screening's findings in words for people: the job's log line of a screened image and the short
summary a blocked image leaves in the job's error (image numbers 1-based, as the log counts)."""

from __future__ import annotations

from collections.abc import Iterable

from shared.contract.events import Screening, ScreeningCheck, ScreeningDecision, ScreeningReason

# The log and the job's error stay readable, however many findings an image had.
MAX_SUMMARY = 200
MAX_LINE = 600

_VERB = {ScreeningDecision.REVIEW: "held for review", ScreeningDecision.BLOCK: "blocked"}


def reason_text(r: ScreeningReason) -> str:
    """One finding: the check and what it found, e.g. ``deny_list — 'Nike' in title``."""
    check = r.check.value
    if r.check in (ScreeningCheck.DENY_LIST, ScreeningCheck.RENDERED_TEXT) and r.terms:
        where = f" in {r.field}" if r.field else ""
        return f"{check} — {_quoted(r.terms)}{where}"
    if r.check is ScreeningCheck.RISK_REVIEW and r.level is not None:
        named = f": {_quoted(r.terms)}" if r.terms else ""
        return f"{check} — {r.level} risk{named}"
    if r.check is ScreeningCheck.NEAR_DUPLICATE and r.resembles is not None:
        d = r.resembles
        return (
            f"{check} — resembles job {d.job_id} image {d.image_index + 1} (distance {d.distance})"
        )
    if r.check is ScreeningCheck.UNSAFE_IMAGE and r.label is not None:
        score = f" ({r.score:.2f})" if r.score is not None else ""
        return f"{check} — {r.label}{score}"
    return f"{check} — {r.detail}"


def log_line(image_index: int, s: Screening) -> str | None:
    """What the job's log says of a screened image held or blocked (None: allowed)."""
    verb = _VERB.get(s.decision)
    if verb is None:
        return None
    found = "; ".join(reason_text(r) for r in _deciding(s))
    return _cut(f"image {image_index + 1} {verb} by screening: {found}", MAX_LINE)


def summary(s: Screening) -> str | None:
    """Why an image was held or blocked, short (``deny_list: Nike``), for the job's error; None
    when it was allowed."""
    if s.decision is ScreeningDecision.ALLOW:
        return None
    # Each check once, with every term its findings named (in the order found).
    terms: dict[str, list[str]] = {}
    for r in _deciding(s):
        named = terms.setdefault(r.check.value, [])
        named.extend(t for t in r.terms if t not in named)
    parts = (f"{check}: {', '.join(named)}" if named else check for check, named in terms.items())
    return _cut("; ".join(parts), MAX_SUMMARY)


def flagged(s: Screening) -> dict[ScreeningCheck, ScreeningDecision]:
    """Each check that found something, with the strictest outcome its findings asked for."""
    out: dict[ScreeningCheck, ScreeningDecision] = {}
    for r in s.reasons:
        before = out.get(r.check)
        if before is None or r.outcome.severity > before.severity:
            out[r.check] = r.outcome
    return out


def _deciding(s: Screening) -> Iterable[ScreeningReason]:
    """The findings that made the decision (those asking for it)."""
    return (r for r in s.reasons if r.outcome is s.decision)


def _quoted(terms: list[str]) -> str:
    return ", ".join(f"'{t}'" for t in terms)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
