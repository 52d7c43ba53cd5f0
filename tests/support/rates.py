"""How a run used a vendor's rate limit, from the times the vendor accepted each request."""

from __future__ import annotations


def busiest_window(times: list[float], window: float) -> int:
    """The most requests the vendor counted at once: in (t - window, t] at each arrival t."""
    return max(sum(1 for u in times if t - window < u <= t) for t in times)


def share_used(times: list[float], limit: int, window: float) -> float:
    """How fully the budget was used while work waited: every ``limit`` consecutive requests
    take at least a window when the budget is respected, and took ``window / share`` at worst."""
    ordered = sorted(times)
    spans = [ordered[i] - ordered[i - limit] for i in range(limit, len(ordered))]
    assert spans, "too few requests to have waited for the budget"
    return window / max(spans)
