"""What the running app holds: settings and the clients the lifespan opened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from services.api.producer import JobProducer
from services.api.settings import ApiSettings
from shared.storage import ImageStore


@dataclass
class ApiState:
    """Shared by every request of one app instance (``app.state.api``)."""

    settings: ApiSettings
    producer: JobProducer
    pool: AsyncConnectionPool
    _images: ImageStore | None = field(default=None, repr=False)

    def image_store(self) -> ImageStore:
        """Where the generator stores images (opened on first use: the dashboard's reads)."""
        if self._images is None:
            self._images = self.settings.image_store()
        return self._images


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(_state)]
