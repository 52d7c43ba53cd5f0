"""Pipeline events for tests: a job's image and product events, derived like the stages do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from shared.contract.events import (
    ControlCommand,
    ControlCommandPayload,
    Event,
    ImageGenerated,
    ImageGeneratedPayload,
    JobRequested,
    JobRequestedPayload,
    JobRouting,
    PoolScaled,
    PoolScaledPayload,
    PriceSummary,
    PrintifyWebhookPayload,
    PrintifyWebhookReceived,
    ProductApproved,
    ProductApprovedPayload,
    ProductCreated,
    ProductCreatedPayload,
    ProductPublished,
    ProductPublishedPayload,
    ProductPublishing,
    ProductPublishingPayload,
    ProductRepriced,
    ProductRepricedPayload,
    ProductWithdrawn,
    ProductWithdrawnPayload,
    SellerDecision,
    SellerDecisionPayload,
    StageFailed,
    StageFailedPayload,
    WorkerExited,
    WorkerExitedPayload,
    WorkerHeartbeat,
    WorkerHeartbeatPayload,
)


def image(job: JobRequested, i: int = 0, generation: int = 0) -> ImageGenerated:
    """Image ``i`` of ``job`` (its ``generation``), as the generator would emit it."""
    p = job.payload
    return job.derive(
        ImageGenerated,
        ImageGeneratedPayload(
            image_index=i,
            image_count=p.count,
            sha256=f"{i:064x}",
            uri=f"file:///img/{i}.png",
            width=8,
            height=8,
            prompt="p",
            seed=i,
            title=f"T{i}",
            description="d",
            tags=["a"],
            routing=p.routing,
            generation=generation,
        ),
        producer="generator",
        key=f"image:{i}" + (f"@g{generation}" if generation else ""),
    )


def product(job: JobRequested, i: int, t: str, generation: int = 0) -> ProductCreated:
    """The ``t`` product of image ``i`` (its ``generation``), as the printify stage would emit
    it."""
    suffix = f"@g{generation}" if generation else ""
    return job.derive(
        ProductCreated,
        ProductCreatedPayload(
            image_index=i,
            product_type=t,
            product_id=f"prod-{i}-{t}{suffix}",
            shop_id="1",
            blueprint_id=6,
            print_provider_id=99,
            variant_count=4,
            title="x",
            routing=JobRouting(
                product_types=[t],
                auto_publish=job.payload.auto_publish,
                channels=job.payload.channels,
                review=job.payload.review,
            ),
            prices=PriceSummary(price_min_cents=1999),
            generation=generation,
        ),
        producer="printify",
        key=f"product:{i}:{t}{suffix}",
    )


def one_of_each(job_id: str) -> dict[type[Event], Event]:
    """A valid event of every type, each naming ``job_id`` (as a forger would)."""
    job = JobRequested(
        job_id=job_id,
        producer="forger",
        payload=JobRequestedPayload(
            theme="t", style="s", niche="n", product_types=["tshirt"], count=1
        ),
    )
    now = datetime.now(UTC)
    made = [
        job,
        image(job, 0),
        product(job, 0, "tshirt"),
        ProductPublishing(
            job_id=job_id,
            producer="forger",
            payload=ProductPublishingPayload(
                image_index=0,
                product_type="tshirt",
                product_id="p",
                shop_id="1",
                sales_channel="etsy",
                confirm_by=now + timedelta(hours=1),
            ),
        ),
        ProductPublished(
            job_id=job_id,
            producer="forger",
            payload=ProductPublishedPayload(
                image_index=0, product_type="tshirt", product_id="p", shop_id="1"
            ),
        ),
        StageFailed(
            job_id=job_id,
            producer="forger",
            payload=StageFailedPayload(stage="generator", error_class="Forged", message="x"),
        ),
        WorkerHeartbeat(
            job_id=job_id,
            producer="forger",
            payload=WorkerHeartbeatPayload(
                service="generator", instance_id=job_id, host="h", pid=1, started_at=now
            ),
        ),
        WorkerExited(
            job_id=job_id,
            producer="forger",
            payload=WorkerExitedPayload(service="generator", instance_id=job_id, exit="killed"),
        ),
        PoolScaled(
            job_id=job_id,
            producer="forger",
            payload=PoolScaledPayload(service="generator", from_count=1, to_count=0),
        ),
        ControlCommand(
            job_id=job_id,
            producer="forger",
            payload=ControlCommandPayload(action="scale", service="generator", worker_count=0),
        ),
        PrintifyWebhookReceived(
            job_id=job_id,
            producer="forger",
            payload=PrintifyWebhookPayload(
                webhook_event_id="w",
                topic="product:deleted",
                resource_id="r",
                resource_type="product",
            ),
        ),
    ]
    made_product = made[2]
    assert isinstance(made_product, ProductCreated)
    p = made_product.payload
    decision = uuid.uuid4()
    made += [
        SellerDecision(
            job_id=job_id,
            producer="forger",
            payload=SellerDecisionPayload(
                decision_id=decision, action="approve", image_index=0, decided_by="forger"
            ),
        ),
        ProductApproved(
            job_id=job_id,
            producer="forger",
            payload=ProductApprovedPayload(
                **p.model_dump(), decision_id=decision, decided_by="forger"
            ),
        ),
        ProductWithdrawn(
            job_id=job_id,
            producer="forger",
            payload=ProductWithdrawnPayload(
                image_index=0,
                product_type="tshirt",
                product_id=p.product_id,
                shop_id="1",
                outcome="deleted",
                reason="rejected",
                decision_id=decision,
            ),
        ),
        ProductRepriced(
            job_id=job_id,
            producer="forger",
            payload=ProductRepricedPayload(
                image_index=0,
                product_type="tshirt",
                product_id=p.product_id,
                shop_id="1",
                prices=p.prices,
                decision_id=decision,
            ),
        ),
    ]
    return {type(e): e for e in made}
