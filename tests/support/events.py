"""Pipeline events for tests: a job's image and product events, derived like the stages do."""

from __future__ import annotations

from shared.events import (
    ImageGenerated,
    ImageGeneratedPayload,
    JobRequested,
    ProductCreated,
    ProductCreatedPayload,
)


def image(job: JobRequested, i: int = 0) -> ImageGenerated:
    """Image ``i`` of ``job``, as the generator would emit it."""
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
            product_types=p.product_types,
            auto_publish=p.auto_publish,
            channels=p.channels,
        ),
        producer="generator",
        key=f"image:{i}",
    )


def product(job: JobRequested, i: int, t: str) -> ProductCreated:
    """The ``t`` product of image ``i``, as the printify stage would emit it."""
    return job.derive(
        ProductCreated,
        ProductCreatedPayload(
            image_index=i,
            product_type=t,
            product_id=f"prod-{i}-{t}",
            shop_id="1",
            blueprint_id=6,
            print_provider_id=99,
            variant_count=4,
            price_cents=1999,
            title="x",
            auto_publish=job.payload.auto_publish,
            channels=job.payload.channels,
        ),
        producer="printify",
        key=f"product:{i}:{t}",
    )
