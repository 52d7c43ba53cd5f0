"""The contiguous-prefix rule, without a broker."""

from shared.pipeline.runner import OffsetTracker, OwnedPartitions


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


def test_owned_partitions_track_only_what_is_owned() -> None:
    owned = OwnedPartitions()
    owned.assign([("in", 0), ("in", 1)])
    assert owned.track(("in", 0), 7)
    assert not owned.track(("other", 0), 7)  # fetched before a revoke: not ours
    assert owned.pending(("in", 0)) == (1, None)
    assert owned.done(("in", 0), 7) == 8
    assert owned.done(("other", 0), 7) is None
    assert owned.committable() == [(("in", 0), 8)]
    assert owned.owned() == [("in", 0), ("in", 1)]


def test_released_partitions_give_their_committable_position_once() -> None:
    owned = OwnedPartitions()
    owned.assign([("in", 0), ("in", 1)])
    for off in (3, 4):
        owned.track(("in", 0), off)
    owned.done(("in", 0), 3)
    # 4 is still in flight: only the finished prefix is handed back for the revoke's commit.
    assert owned.release([("in", 0), ("in", 1)]) == [(("in", 0), 4)]
    assert owned.release([("in", 0)]) == []
    assert owned.owned() == []
    assert owned.done(("in", 0), 4) is None  # the new owner redoes it from the commit
