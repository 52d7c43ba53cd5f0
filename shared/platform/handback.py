"""Handing a message back at shutdown when it has sent nothing yet.

A stage told to stop (SIGTERM, Ctrl+C) drains: each message in flight may finish within the
shutdown grace (30 s), because a message that has already made a vendor call should see it
through rather than leave an effect half done. But a message still *waiting for permission* to
make its first call (a rate budget's slot that frees in minutes, Etsy's throttle, Shopify's
bucket, a place in the GPU queue) has done nothing anywhere: waiting out the grace for it only
delays the stop, and then abandons it all the same. Such a message is handed back at once: its
task is cancelled, so it is neither done (its offset is not committed, and the partition's
commits stop before it) nor failed (no retry, no dead letter, no failure counted); the next owner
of its partition reads it again from the uncommitted offset.

How a message is known to have sent nothing: the runner gives each message's task a
:class:`Delivery` (a context variable, so the handler's child tasks share it), every request to a
vendor marks it ``sent`` as it leaves (:func:`mark_sent`, called by :mod:`shared.platform.http`'s
transport, which every vendor client sends through), and every wait for permission to send runs
inside :func:`permission`. When the runner stops, a message whose task is inside such a wait and
that has sent nothing is cancelled; one that enters such a wait later, during the drain, is
cancelled as it enters. A message that has sent something is never handed back, whatever it waits
for next: it finishes within the grace, as before.

Why cancellation, and why marks at those two places: every wait for permission is already safe to
cancel (a shutdown past its grace cancels it: each budget gives back a grant or slot it got as it
was cancelled, a lock or a condition is let go), and a handler's own ``except Exception`` cannot
swallow a cancellation and turn it into a failure. Marking at the transport needs no vendor client
to remember to mark, and errs on the safe side: a request that never reached the vendor (a
refused connection) still counts as sent, so the message is finished rather than handed back.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class Delivery:
    """One message's handling, as far as handing it back is concerned."""

    stopping: Callable[[], bool]
    task: asyncio.Task[Any] | None = None
    sent: bool = False
    handed_back: bool = False
    # Tasks of this message inside a wait for permission right now (its own, or a child's).
    waiting: set[asyncio.Task[Any]] = field(default_factory=set)
    _cancelled: set[asyncio.Task[Any]] = field(default_factory=set)

    def hand_back(self) -> bool:
        """Cancel the message (its task, and each of its tasks waiting for permission) if it
        has sent nothing and waits for permission; True once it is handed back."""
        if self.sent or self.task is None or not self.waiting:
            return self.handed_back
        self.handed_back = True
        for task in {self.task, *self.waiting} - self._cancelled:
            self._cancelled.add(task)
            task.cancel("handed back at shutdown: nothing sent yet")
        return True


_current: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "pod_delivery", default=None
)


def start(
    coro: Coroutine[Any, Any, T], *, stopping: Callable[[], bool], name: str | None = None
) -> tuple[asyncio.Task[T], Delivery]:
    """Run ``coro`` (one message's handling) as a task with a delivery of its own."""
    delivery = Delivery(stopping=stopping)
    context = contextvars.copy_context()
    context.run(_current.set, delivery)
    task = asyncio.create_task(coro, name=name, context=context)
    delivery.task = task
    return task, delivery


def current() -> Delivery | None:
    """The delivery of the message being handled here, if any."""
    return _current.get()


def mark_sent() -> None:
    """A request to a vendor leaves now: the message is never handed back from here on."""
    delivery = _current.get()
    if delivery is not None:
        delivery.sent = True


@asynccontextmanager
async def permission() -> AsyncIterator[None]:
    """Around a wait for permission to send (a budget's slot, a throttle, a queue's turn):
    while the stage stops, a message that has sent nothing is handed back from here."""
    delivery = _current.get()
    task = asyncio.current_task()
    if delivery is None or delivery.sent or task is None:
        yield
        return
    delivery.waiting.add(task)
    try:
        if delivery.stopping():
            delivery.hand_back()
            await asyncio.sleep(0)  # the cancellation lands here, before anything is sent
        yield
    finally:
        delivery.waiting.discard(task)
