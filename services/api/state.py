"""What the running app holds: settings and the clients the lifespan opened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from services.api.producer import JobProducer
from services.api.settings import ApiSettings


@dataclass
class ApiState:
    """Shared by every request of one app instance (``app.state.api``)."""

    settings: ApiSettings
    producer: JobProducer
    pool: AsyncConnectionPool


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(_state)]
