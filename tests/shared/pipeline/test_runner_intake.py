"""The runner's scheduling rules without a broker: band order, per-band slots, backpressure with
hysteresis, delayed partitions, and what a revoke drops."""

from shared.contract.events import Event
from shared.contract.topics import GENERATOR, JOBS_BY_PRIORITY, SELLER_DECISIONS
from shared.pipeline.runner import Intake, MessageContext, Output, RunnerSettings, StageRunner

RETRY, HIGH, LOW = "retry", "high", "low"
BANDS = {RETRY: 0, HIGH: 1, LOW: 2}


def _intake(*, max_in_flight: int = 2, buffer_max: int = 4) -> Intake[str]:
    return Intake(BANDS, max_in_flight=max_in_flight, buffer_max=buffer_max)


def test_work_starts_highest_band_first_within_each_bands_slots() -> None:
    intake = _intake(max_in_flight=2)
    for i in range(3):
        intake.add((LOW, 0), f"low{i}")
    for i in range(3):
        intake.add((HIGH, 0), f"high{i}")
    intake.add((RETRY, 0), "retry0")

    started = intake.take()
    # Each band gets its own two slots, so the low backlog still moves while high is busy,
    # and no band takes another's.
    assert started == [(0, "retry0"), (1, "high0"), (1, "high1"), (2, "low0"), (2, "low1")]
    assert intake.in_flight() == 5
    assert intake.take() == []  # high and low bands are at their slot limit

    intake.finished(2)
    assert intake.take() == [(2, "low2")]
    intake.finished(1)
    assert intake.take() == [(1, "high2")]


def test_a_full_band_is_paused_and_resumed_only_when_half_empty() -> None:
    intake = _intake(max_in_flight=1, buffer_max=4)
    owned = [(HIGH, 0), (LOW, 0), (LOW, 1)]
    assert intake.backpressure(lambda: owned) == ([], [])
    for i in range(4):
        intake.add((LOW, i % 2), f"low{i}")
    assert intake.backpressure(lambda: owned) == ([(LOW, 0), (LOW, 1)], [])
    assert intake.backpressured()
    assert intake.paused() == [(LOW, 0), (LOW, 1)]

    intake.take()  # one starts: three buffered, still above the low mark
    assert intake.backpressure(lambda: owned) == ([], [])
    intake.finished(2)
    intake.take()  # two buffered: down to half, not below it
    assert intake.backpressure(lambda: owned) == ([], [])
    intake.finished(2)
    intake.take()  # one buffered
    assert intake.backpressure(lambda: owned) == ([], [(LOW, 0), (LOW, 1)])
    assert not intake.backpressured()
    assert intake.paused() == []


def test_backpressure_pauses_partitions_assigned_while_their_band_is_full() -> None:
    intake = _intake(buffer_max=2)
    owned = [(LOW, 0)]
    intake.add((LOW, 0), "a")
    intake.add((LOW, 0), "b")
    assert intake.backpressure(lambda: owned) == ([(LOW, 0)], [])
    owned.append((LOW, 1))
    assert intake.backpressure(lambda: owned) == ([], [])  # nothing changed as far as it knows
    intake.assigned()
    assert intake.backpressure(lambda: owned) == ([(LOW, 1)], [])


def test_delayed_partitions_wait_until_due_and_backpressure_leaves_them_alone() -> None:
    intake = _intake(buffer_max=2)
    intake.delay((RETRY, 0), 100.0, "later")
    intake.delay((RETRY, 1), 50.0, "sooner")
    assert intake.is_delayed((RETRY, 0))
    assert intake.next_due() == 50.0
    assert intake.due(49.0) == []
    assert intake.due(60.0) == [((RETRY, 1), "sooner")]  # the held head comes back with it
    assert not intake.is_delayed((RETRY, 1))
    assert intake.next_due() == 100.0

    intake.add((RETRY, 1), "r1")
    intake.add((RETRY, 1), "r2")
    # Band 0 is full, but its delayed partition stays as it is (paused until due).
    assert intake.backpressure(lambda: [(RETRY, 0), (RETRY, 1)]) == ([(RETRY, 1)], [])


def test_forget_drops_a_revoked_partitions_buffer_pause_and_delay() -> None:
    intake = _intake(max_in_flight=10, buffer_max=3)
    intake.add((LOW, 0), "mine")
    intake.add((LOW, 1), "revoked")
    intake.add((LOW, 1), "revoked too")
    intake.backpressure(lambda: [(LOW, 0), (LOW, 1)])
    intake.delay((RETRY, 1), 10.0, "held")

    intake.forget([(LOW, 1), (RETRY, 1)])

    assert intake.paused() == [(LOW, 0)]
    assert not intake.is_delayed((RETRY, 1))
    assert intake.due(20.0) == []  # its held message went with it
    assert intake.take() == [(2, "mine")]
    assert intake.room() == 3 * 3  # three bands, every buffer empty again


def test_clear_leaves_nothing_to_start() -> None:
    intake = _intake()
    intake.add((HIGH, 0), "x")
    intake.clear()
    assert intake.take() == []


def test_a_sellers_decisions_are_served_ahead_of_the_retries_and_the_bands() -> None:
    """The generator lists the decisions after its priority bands; the runner serves them
    first all the same, in a band of their own, so a cancel is started at once even with every
    slot of the low band busy and a backlog buffered behind them."""

    async def handler(event: Event, ctx: MessageContext) -> list[Output]:
        return []

    runner = StageRunner(stage=GENERATOR, handler=handler, settings=RunnerSettings(max_in_flight=2))
    assert GENERATOR.inputs[-1] == SELLER_DECISIONS
    bands = [runner.intake.band(t) for t in (SELLER_DECISIONS, GENERATOR.retry_topic(1))]
    assert bands == [0, 1]
    assert [runner.intake.band(t) for t in JOBS_BY_PRIORITY] == [2, 3, 4]
    # The same bands with strings for messages.
    topics = [SELLER_DECISIONS, *GENERATOR.retry_topics, *JOBS_BY_PRIORITY]
    intake: Intake[str] = Intake(
        {t: runner.intake.band(t) for t in topics}, max_in_flight=2, buffer_max=512
    )
    low = JOBS_BY_PRIORITY[-1]
    for i in range(100):
        intake.add((low, 0), f"low{i}")
    assert intake.take() == [(4, "low0"), (4, "low1")]
    intake.add((SELLER_DECISIONS, 0), "cancel")
    assert intake.take() == [(0, "cancel")]
