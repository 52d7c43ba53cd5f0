"""``/workers`` and ``/scale``: see the instances, restart one, change how many run.

Commands go onto the control topic; the worker-pool manager (``python -m services.pool``, run by
``make up`` and by compose) carries them out. A command is accepted only while a manager is
alive to act on it; where the platform scales the stages (``SCALING=platform``), 409.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Path, status

from services.api.auth import Admin, Principal
from services.api.errors import ApiError, invalid
from services.api.producer import BrokerUnavailable
from services.api.schemas.common import COMMON_ERRORS, error_responses
from services.api.schemas.ops import WorkerView
from services.api.schemas.workers import CommandAccepted, ScaleRequest, WorkerList
from services.api.state import ApiState, State
from shared.adapters.store import workers as worker_store
from shared.contract.events import ControlCommand, ControlCommandPayload
from shared.contract.topics import CONTROL, STAGES

router = APIRouter(tags=["workers"], responses=COMMON_ERRORS)
# What the commands may answer besides: a normal key (403), a platform-scaled deployment (409).
_COMMAND_ERRORS = error_responses(403, 409)


@router.get("/workers", response_model=WorkerList)
async def list_workers(state: State, principal: Principal) -> WorkerList:
    """Every service instance, from its heartbeats."""
    s = state.settings
    rows = await worker_store.list_workers(state.pool, s.worker_stale_s, s.worker_forget_s)
    return WorkerList(workers=[WorkerView(**r) for r in rows])


@router.post(
    "/workers/{instance_id}/restart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandAccepted,
    responses={**_COMMAND_ERRORS, **error_responses(404)},
)
async def restart_worker(
    instance_id: Annotated[str, Path(min_length=1, max_length=200)],
    state: State,
    principal: Admin,
) -> CommandAccepted:
    """Ask the worker-pool manager to restart one instance gracefully (admin key)."""
    await _require_pool_manager(state)
    if not await worker_store.worker_exists(state.pool, instance_id):
        raise ApiError(404, "not_found", f"worker {instance_id} not found")
    payload = ControlCommandPayload(action="restart", instance_id=instance_id)
    return await _send(state, payload)


@router.post(
    "/scale",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandAccepted,
    responses={**_COMMAND_ERRORS, **error_responses(400)},
)
async def scale(body: ScaleRequest, state: State, principal: Admin) -> CommandAccepted:
    """Run ``workerCount`` instances of ``service`` (every stage; admin key)."""
    enabled = state.settings.stages()
    if body.service and body.service not in enabled:
        raise invalid(
            "service",
            f"{body.service} does not run in this deployment (PUBLISH_CHANNELS="
            f"{','.join(state.settings.publish_channels)})",
        )
    await _require_pool_manager(state)
    stages = [body.service] if body.service else enabled
    for stage in stages:
        try:
            ceiling = await asyncio.to_thread(_partitions, state, stage)
        except KafkaException as exc:
            raise ApiError(503, "kafka_unavailable", f"cannot read the topics: {exc}") from None
        if ceiling and body.worker_count > ceiling:
            raise invalid(
                "workerCount",
                f"{stage} has {ceiling} partitions per input topic, so at most {ceiling} "
                "instances can share them; raise KAFKA_PARTITIONS to go further",
            )
    payload = ControlCommandPayload(
        action="scale", service=body.service, worker_count=body.worker_count
    )
    return await _send(state, payload)


async def _require_pool_manager(state: ApiState) -> None:
    if state.settings.scaling == "platform":
        raise ApiError(
            409,
            "scaled_by_platform",
            "this deployment's stages are scaled by the platform (Kubernetes replicas or KEDA),"
            " not by POD Engine: change the replica count there",
        )
    if await worker_store.live_pool_manager(state.pool, state.settings.worker_stale_s) is None:
        raise ApiError(
            503,
            "pool_manager_unavailable",
            "no worker-pool manager is running to carry this out (start `python -m services.pool`"
            " or `make up`)",
        )


def _partitions(state: ApiState, stage: str) -> int | None:
    admin = AdminClient(state.settings.client_config())
    topics = admin.list_topics(timeout=5).topics
    counts = [len(topics[t].partitions) for t in STAGES[stage].inputs if t in topics]
    return min(counts) if counts else None


async def _send(state: ApiState, payload: ControlCommandPayload) -> CommandAccepted:
    command_id = str(uuid.uuid4())
    event = ControlCommand(job_id=command_id, producer="api", payload=payload)
    try:
        await state.producer.send(
            CONTROL, event.to_json(), key=command_id, timeout=state.settings.produce_timeout_s
        )
    except BrokerUnavailable as exc:
        raise ApiError(503, "kafka_unavailable", str(exc)) from None
    return CommandAccepted(command_id=command_id, action=payload.action)
