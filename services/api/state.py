"""What the running app holds: settings and the clients the lifespan opened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from services.api.feed import EventFeed, StreamLimits
from services.api.producer import JobProducer
from services.api.settings import ApiSettings
from shared.adapters.storage import ImageStore
from shared.pipeline.groups import GroupProbe
from shared.platform.http import async_client


@dataclass
class ApiState:
    """Shared by every request of one app instance (``app.state.api``)."""

    settings: ApiSettings
    producer: JobProducer
    pool: AsyncConnectionPool
    feed: EventFeed
    streams: StreamLimits
    # Reads by live streams at once: at most half the pool, the rest stays for the routes.
    stream_reads: asyncio.Semaphore
    _images: ImageStore | None = field(default=None, repr=False)
    _groups: GroupProbe | None = field(default=None, repr=False)
    _probes: httpx.AsyncClient | None = field(default=None, repr=False)

    def image_store(self) -> ImageStore:
        """Where the generator stores images (opened on first use: the dashboard's reads)."""
        if self._images is None:
            self._images = self.settings.image_store()
        return self._images

    def group_probe(self) -> GroupProbe:
        """The stages' consumer groups as the broker sees them (opened on first use:
        ``/health/ready?stages=true``)."""
        if self._groups is None:
            self._groups = GroupProbe(
                self.settings.client_config(),
                group_prefix=self.settings.group_id_prefix,
                settle_s=self.settings.fetch_wait_max_ms / 1000,
            )
        return self._groups

    def probes(self) -> httpx.AsyncClient:
        """One HTTP client for /health's probes of other services (made on first use: making
        one per probe cost 10-200 ms, its TLS context, on every /health)."""
        if self._probes is None:
            self._probes = async_client(timeout=self.settings.health_timeout_s)
        return self._probes

    async def aclose(self) -> None:
        """Close the HTTP client of the probes."""
        if self._probes is not None:
            await self._probes.aclose()
            self._probes = None

    def close(self) -> None:
        """Close what was opened on first use."""
        if self._groups is not None:
            self._groups.close()
            self._groups = None


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(_state)]
