"""The ``/_sim`` test hooks every simulator has in the same shape: ``GET /_sim/books`` (what
the simulator saw), ``POST /_sim/reset`` (forget it), ``GET/POST /_sim/limits`` (read or change
the rate limits) and ``GET /_sim/request_times`` (when the requests it let through came).

A simulator hands :func:`sim_router` the callables it has; a hook it lacks is not mounted. The
vendor's own hooks (Printify's behaviour, Etsy's OAuth, ...) stay in its package."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request

Json = Mapping[str, object]


@dataclass(frozen=True)
class SimControl:
    """The test hooks of one simulator."""

    books: Callable[[], Json]
    reset: Callable[[], None] | None = None
    limits: Callable[[], Json] | None = None
    # Applies a partial update of the limits (the keys the simulator knows; others ignored).
    set_limits: Callable[[Json], None] | None = None
    request_times: Callable[[], Mapping[str, list[float]]] | None = None


async def json_object(request: Request) -> dict[str, object]:
    """A test hook's JSON body; an empty body is ``{}``, anything but an object an error."""
    raw = await request.body()
    body = json.loads(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def sim_router(control: SimControl) -> APIRouter:
    """The ``/_sim`` routes ``control`` supports."""
    router = APIRouter(prefix="/_sim")

    @router.get("/books", response_model=None)
    async def books() -> Json:
        return control.books()

    if control.reset is not None:
        reset = control.reset

        @router.post("/reset", response_model=None)
        async def do_reset() -> dict[str, bool]:
            reset()
            return {"reset": True}

    if control.limits is not None:
        _limits_routes(router, control.limits, control.set_limits)

    if control.request_times is not None:
        times = control.request_times

        @router.get("/request_times", response_model=None)
        async def request_times() -> Mapping[str, list[float]]:
            return times()

    return router


def _limits_routes(
    router: APIRouter, limits: Callable[[], Json], set_limits: Callable[[Json], None] | None
) -> None:
    @router.get("/limits", response_model=None)
    async def get_limits() -> Json:
        return limits()

    if set_limits is None:
        return

    @router.post("/limits", response_model=None)
    async def post_limits(request: Request) -> Json:
        set_limits(await json_object(request))
        return limits()


def as_float(value: object) -> float:
    """A number from a test hook's body (a JSON number or a numeric string)."""
    if isinstance(value, int | float | str):
        return float(value)
    raise ValueError(f"expected a number, got {value!r}")


def as_int(value: object) -> int:
    """An integer from a test hook's body (a JSON number or a numeric string)."""
    if isinstance(value, int | float | str):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")
