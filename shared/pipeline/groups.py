"""Whether each stage holds its partitions, as the broker sees its consumer group.

A stage can pick up a new job only once one of its instances holds the partition the job lands
on. Until then a submitted job waits, however healthy the API is: right after a start, while the
instances join their groups, and after a hard kill, while the dead members of the old groups
still hold their partitions until their session times out.

The broker is asked (``DescribeConsumerGroups``) rather than the instances' heartbeats, because
the broker decides the assignment: under KIP-848 each member's current assignment (what it has
taken) and target assignment (what the broker wants it to have) are reported per member, so a
group still reconciling is seen as such, at once, and a dead member that still holds partitions
is told apart from a live one by the partitions it does not give up. A heartbeat says what an
instance held up to a heartbeat interval ago, and reaches the API only through the monitor's
fold, which is itself one of the stages waited for.

Holding a partition is not yet fetching it: a partition taken while the consumer has a fetch out
(a long poll of up to ``FETCH_WAIT_MAX_MS``, 500 ms) is first fetched when that fetch returns,
so a job landing on it meanwhile waits for it (measured with 5 s polls: up to 5.1 s right after
the assignment, none once it was 5 s old). :class:`GroupProbe` therefore calls a group ready once it
has seen the same assignment for that long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from shared.contract.topics import Stage


@dataclass(frozen=True)
class GroupView:
    """One stage's group: ``ok`` when every input partition is held by a member that has all
    the broker assigned it; else ``detail`` says what is missing."""

    stage: str
    ok: bool
    detail: str
    # Who holds what: (member id, topic, partition) for every partition held.
    assignment: frozenset[tuple[str, str, int]] = field(default=frozenset())


def _partitions(members: Iterable[object], attr: str) -> set[tuple[str, int]]:
    held: set[tuple[str, int]] = set()
    for member in members:
        assignment = getattr(member, attr, None)
        for tp in getattr(assignment, "topic_partitions", None) or ():
            held.add((tp.topic, tp.partition))
    return held


def stage_groups(
    admin: AdminClient,
    stages: Iterable[Stage],
    *,
    group_prefix: str = "pod",
    timeout_s: float = 5.0,
) -> list[GroupView]:
    """Each stage's group, in the order given (blocking: the broker is asked twice, once for
    the topics' partitions and once for every group). Raises KafkaException when the broker
    cannot answer at all."""
    stages = list(stages)
    if not stages:
        return []
    topics = admin.list_topics(timeout=timeout_s).topics
    groups = {f"{group_prefix}.{stage.name}": stage for stage in stages}
    futures = admin.describe_consumer_groups(list(groups), request_timeout=timeout_s)
    views = []
    for group_id, stage in groups.items():
        wanted = {
            (topic, p)
            for topic in stage.inputs
            if topic in topics and topics[topic].error is None
            for p in topics[topic].partitions
        }
        try:
            description = futures[group_id].result(timeout=timeout_s + 1)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            reason = error.name() if isinstance(error, KafkaError) else str(exc)
            # NOT_COORDINATOR and the like: the broker is still loading its groups after a
            # start, or moving them.
            views.append(GroupView(stage.name, False, f"group {group_id} not described: {reason}"))
            continue
        members = list(description.members)
        if not members:
            views.append(GroupView(stage.name, False, f"no instance in group {group_id}"))
            continue
        held = _partitions(members, "assignment")
        targets = [m.target_assignment for m in members]
        if any(t is not None for t in targets):
            # KIP-848: a member whose target differs from what it holds is still taking or
            # giving up partitions (a new member waits for a dead one's until its session ends).
            moving = sum(
                1
                for m in members
                if _partitions([m], "target_assignment") != _partitions([m], "assignment")
            )
            if moving:
                views.append(
                    GroupView(
                        stage.name, False, f"{moving} of {len(members)} members still rebalancing"
                    )
                )
                continue
        elif description.state != ConsumerGroupState.STABLE:
            # The classic protocol reports no target: its state says whether it rebalances.
            state = getattr(description.state, "name", str(description.state)).lower()
            views.append(GroupView(stage.name, False, f"group {group_id} is {state}"))
            continue
        missing = wanted - held
        if missing or not wanted:
            views.append(
                GroupView(
                    stage.name,
                    False,
                    f"{len(wanted) - len(missing)} of {len(wanted)} input partitions held",
                )
            )
            continue
        views.append(
            GroupView(
                stage.name,
                True,
                f"{len(wanted)} input partitions held by {len(members)} instance(s)",
                frozenset(
                    (m.member_id, topic, partition)
                    for m in members
                    for topic, partition in _partitions([m], "assignment")
                ),
            )
        )
    return views


class GroupProbe:
    """One admin client, made and used on one thread of its own (no librdkafka handle crosses
    threads), for a caller on an event loop: the API's readiness route."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        *,
        group_prefix: str = "pod",
        settle_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_config = dict(client_config)
        self.group_prefix = group_prefix
        self.settle_s = settle_s
        self._clock = clock
        self._admin: AdminClient | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-probe")
        # Per stage: the assignment last seen, and since when (this probe's clock).
        self._seen: dict[str, tuple[frozenset[tuple[str, str, int]], float]] = {}

    def _views(self, stages: list[Stage], timeout_s: float) -> list[GroupView]:
        if self._admin is None:
            self._admin = AdminClient(self.client_config)
        views = stage_groups(
            self._admin, stages, group_prefix=self.group_prefix, timeout_s=timeout_s
        )
        return [self.settled(view) for view in views]

    def settled(self, view: GroupView) -> GroupView:
        """``view``, ready only once its assignment has not changed for ``settle_s``: until
        then a partition it just took may not be in the consumer's fetches yet."""
        if not view.ok:
            self._seen.pop(view.stage, None)
            return view
        now = self._clock()
        seen = self._seen.get(view.stage)
        if seen is None or seen[0] != view.assignment:
            seen = self._seen[view.stage] = (view.assignment, now)
        held_s = now - seen[1]
        if held_s >= self.settle_s:
            return view
        return replace(
            view,
            ok=False,
            detail=f"{view.detail}, taken {held_s:.1f}s ago (a fetch already out may hold "
            f"them up to {self.settle_s:g}s)",
        )

    async def views(self, stages: Iterable[Stage], timeout_s: float = 5.0) -> list[GroupView]:
        """:func:`stage_groups` on the probe's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._views, list(stages), timeout_s)

    def close(self) -> None:
        """Drop the client and stop the thread."""
        self._thread.submit(lambda: setattr(self, "_admin", None)).result(30)
        self._thread.shutdown(wait=True)
