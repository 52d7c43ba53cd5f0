"""Every design's perceptual hash in a list: the hash store's behaviour without PostgreSQL, for
tests and benches that measure the checks, not the indexed table (shared/adapters/store/
design_hashes.py is the real one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.contract.events import DesignRef
from shared.domain.screening.phash import hamming


@dataclass
class MemoryHashes:
    seen: list[tuple[str, int, int, int]] = field(default_factory=list)

    async def record_and_match(
        self,
        *,
        job_id: str,
        image_index: int,
        generation: int,
        phash: int,
        max_distance: int,
        mirrored: int | None = None,
    ) -> list[DesignRef]:
        """Earlier designs within ``max_distance`` of ``phash`` (or of its mirror image's hash),
        nearest first, then records this one."""
        near = []
        for j, i, g, h in self.seen:
            d = min(hamming(h, phash), hamming(h, mirrored) if mirrored is not None else 64)
            if (j, i) != (job_id, image_index) and d <= max_distance:
                near.append(DesignRef(job_id=j, image_index=i, generation=g, distance=d))
        self.seen.append((job_id, image_index, generation, phash))
        return sorted(near, key=lambda r: r.distance)
