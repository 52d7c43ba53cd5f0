"""The contiguous-prefix rule, without a broker."""

from shared.runner import OffsetTracker


def test_prefix_advances_only_when_contiguous() -> None:
    t = OffsetTracker()
    for off in (10, 11, 12, 13):
        t.add(off)
    assert t.done(12) is None
    assert t.done(11) is None
    assert t.committable is None
    assert t.done(10) == 13  # 10, 11, 12 are done: next to consume is 13
    assert t.committable == 13
    assert len(t) == 1
    assert t.done(13) == 14
    assert len(t) == 0


def test_unknown_offset_is_ignored() -> None:
    t = OffsetTracker()
    t.add(5)
    assert t.done(4) is None
    assert t.committable is None
