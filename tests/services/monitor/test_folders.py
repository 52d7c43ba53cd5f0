"""The fold's table (services/monitor/folders.py) against the registry: every event type the
monitor reads has exactly one folder, and the table folds nothing the monitor never reads."""

from __future__ import annotations

import pytest

from services.monitor.dlq import DeadLetterFailed
from services.monitor.folders import FOLDERS, folder_of
from shared.contract.events import ControlCommand, ControlCommandPayload, Event, StageFailed
from shared.contract.topics import MONITOR, STAGES, accepted_on
from shared.platform.errors import InvalidEventError


def _read_by_the_monitor() -> set[type[Event]]:
    """What reaches the fold, from the registry: a stage's dead letters and another stage's
    delay topics are read as failures (services/monitor/dlq.py ``parse_record``); every other
    topic the monitor reads (its own delay topics included) as the events it carries."""
    others_delays = {t for s in STAGES.values() if s is not MONITOR for t in s.retry_topics}
    found: set[type[Event]] = {StageFailed, DeadLetterFailed}
    for topic in (*MONITOR.inputs, *MONITOR.retry_topics):
        if topic.endswith(".dlq") or topic in others_delays:
            continue
        carried = accepted_on(topic)
        assert carried is not None, f"the monitor reads {topic}, which the registry lacks"
        found.update(carried)
    return found


def test_every_event_type_the_monitor_reads_has_exactly_one_folder() -> None:
    read = _read_by_the_monitor()
    assert read - set(FOLDERS) == set(), "event types the monitor reads but cannot fold"
    assert set(FOLDERS) - read == set(), "folders of event types the monitor never reads"


def test_a_dead_letter_has_its_own_folder_not_its_parents() -> None:
    assert type(FOLDERS[DeadLetterFailed]) is not type(FOLDERS[StageFailed])


def test_an_event_type_without_a_folder_is_refused_with_its_name() -> None:
    command = ControlCommand(
        job_id="job-1",
        producer="api",
        payload=ControlCommandPayload(action="scale", service="generator", worker_count=2),
    )
    with pytest.raises(InvalidEventError, match=r"does not fold control\.command"):
        folder_of(command)
