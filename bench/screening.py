"""Screening: precision and recall of every check on its labelled corpus, and what screening
costs per design (CPU per check, the wall time it adds before the printify stage sees a design).

    python bench/screening.py [--designs 12] [--size 4096] [--misses]

The corpora (tests/corpus/screening/) are built for the tests: the deny list and Claude's review
on the 233 labelled texts, OCR plus the deny list on 60 designs with rendered text, the
near-duplicate hash on 100 labelled pairs, the unsafe-image classifier on 51 safe designs (no
unsafe image is made or kept in the repository: its recall is not measured here). Claude is
played by the Anthropic simulator, whose judge is a word list: its figures say the client and
the wiring work, not how good Claude is.

The cost: ``--designs`` designs rendered by the ComfyUI simulator at ``--size`` px (4096: a
1024 px sample upscaled 4x, the generator's print size for a tee), each screened by the
generator's own :class:`~services.generator.screening.Screener` with every real check, the
hashes kept in memory (their indexed lookup in PostgreSQL is measured by
tests/shared/adapters/store/test_design_hashes.py: milliseconds at 100k designs). CPU per check
is this process's and its children's (Tesseract) CPU time around each check run alone; the
wall time is the screener's, checks side by side, as the generator runs it. The pipeline's own
cost per job beside it: ``bench/pipeline.py --screening on|off``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import table
from devstack.launch.ports import free_port
from services.generator.screening import Screener
from shared.adapters.ocr import TesseractReader
from shared.adapters.storage import LocalImageStorage
from shared.adapters.store.generated_images import GeneratedImage
from shared.adapters.unsafe import NudeNetClassifier
from shared.adapters.vendors.claude import ClaudeClient
from shared.contract.events import JobRequestedPayload, ScreeningCheck
from shared.domain.screening.checks import DesignText
from shared.domain.screening.corpus import CorpusScore, score_text_corpus
from shared.domain.screening.ocr_corpus import score_ocr_corpus
from shared.domain.screening.phash import design_hashes
from shared.domain.screening.risk_corpus import score_risk_corpus
from shared.domain.screening.settings import ScreeningSettings
from shared.domain.screening.terms import DenyList
from simulators.comfyui.render import render_png
from simulators.process import SimulatorProcess
from tests.support.duplicate_corpus import score_duplicate_corpus
from tests.support.hashes import MemoryHashes
from tests.support.ocr_corpus import CORPUS as OCR_CORPUS
from tests.support.ocr_corpus import render_case
from tests.support.unsafe_corpus import score_unsafe_corpus

ROOT = Path(__file__).resolve().parents[1]
TEXT_CORPUS = ROOT / "tests" / "corpus" / "screening" / "text_cases.jsonl"
SIM_KEY = "sk-ant-bench-screening"


def cpu_now() -> float:
    """This process's CPU seconds and its finished children's (Tesseract)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def cpu_of(work: Callable[[], Awaitable[object]]) -> float:
    """CPU milliseconds of ``work`` (run alone: nothing else runs in this process meanwhile)."""
    before = cpu_now()
    await work()
    return (cpu_now() - before) * 1000


def score_row(check: str, s: CorpusScore, note: str = "") -> list[str]:
    return [
        check,
        str(s.total),
        f"{s.tp}/{s.fp}/{s.fn}/{s.tn}",
        f"{s.precision:.3f}",
        f"{s.recall:.3f}" if s.tp + s.fn else "n/a",
        note,
    ]


async def corpora(
    claude: ClaudeClient, settings: ScreeningSettings
) -> list[tuple[str, CorpusScore]]:
    deny = DenyList.load()
    return [
        ("deny_list", score_text_corpus(TEXT_CORPUS, deny)),
        (
            "rendered_text",
            await score_ocr_corpus(OCR_CORPUS, TesseractReader(), deny, render_case),
        ),
        ("risk_review", await score_risk_corpus(TEXT_CORPUS, claude)),
        ("near_duplicate", score_duplicate_corpus()),
        (
            "unsafe_image",
            score_unsafe_corpus(NudeNetClassifier.from_settings(settings)),
        ),
    ]


def made(job: str, index: int, prompt: str, uri: str, sha: str, size: int) -> GeneratedImage:
    request = JobRequestedPayload(
        theme="bench", style="retro", niche="bench", product_types=["tshirt"], count=1
    )
    return GeneratedImage(
        job_id=job,
        image_index=index,
        generation=0,
        seed=index,
        prompt=prompt,
        negative_prompt="",
        title=f"Retro Sunset Vibes Tee {index}",
        description="A warm retro sunset over rolling hills, printed soft on cotton.",
        tags=["retro", "sunset", "vintage", "outdoors", "gift"],
        sha256=sha,
        uri=uri,
        width=size,
        height=size,
        request=request,
        requested_at=datetime.now(UTC),
    )


async def costs(
    claude: ClaudeClient, settings: ScreeningSettings, designs: int, size: int
) -> tuple[list[list[str]], list[float]]:
    with tempfile.TemporaryDirectory(prefix="pod-bench-screening-") as tmp:
        storage = LocalImageStorage(Path(tmp))
        deny = DenyList.load()
        reader = TesseractReader.from_settings(settings)
        unsafe = NudeNetClassifier.from_settings(settings)
        screener = Screener(
            storage=storage,
            policy=settings.policy(),
            terms=deny,
            reviewer=claude,
            reader=reader,
            unsafe=unsafe,
            hash_image=design_hashes,
            hashes=MemoryHashes(),
            duplicate_distance=settings.screening_duplicate_distance,
        )
        per_check: dict[str, list[float]] = {c.value: [] for c in ScreeningCheck}
        per_check["read from storage"] = []
        walls: list[float] = []
        for i in range(designs):
            # Half the designs carry a slogan (what OCR reads), as many POD designs do.
            prompt = f"a retro sunset over rolling hills, design {i}"
            if i % 2:
                prompt += ' with the text "STAY WILD" in bold letters'
            data = render_png(prompt, i, 1024, 1024, out_width=size, out_height=size)
            stored = storage.save(data)
            image = made("bench-job", i, prompt, stored.uri, stored.sha256, size)
            text = DesignText(
                title=image.title,
                description=image.description,
                tags=tuple(image.tags),
                prompt=prompt,
            )

            async def deny_all(text: DesignText = text) -> None:
                for field, value in text.fields():
                    deny.find(value, field)

            async def decode(image: GeneratedImage = image) -> None:
                storage.read(image.uri, sha256=image.sha256, max_bytes=1 << 30)

            async def ocr(data: bytes = data) -> None:
                await reader.read_text(data)

            async def review(text: DesignText = text) -> None:
                await claude.review_risk(text, job_id="bench")

            async def hashing(data: bytes = data) -> None:
                design_hashes(data)

            async def classify(data: bytes = data) -> None:
                unsafe.classify(data)

            per_check["read from storage"].append(await cpu_of(decode))
            per_check["deny_list"].append(await cpu_of(deny_all))
            per_check["rendered_text"].append(await cpu_of(ocr))
            per_check["risk_review"].append(await cpu_of(review))
            per_check["near_duplicate"].append(await cpu_of(hashing))
            per_check["unsafe_image"].append(await cpu_of(classify))
            started = time.perf_counter()
            await screener.screen(image)
            walls.append(time.perf_counter() - started)
    rows = [
        [name, f"{statistics.median(v):,.1f}", f"{max(v):,.1f}"] for name, v in per_check.items()
    ]
    total = [sum(v[i] for v in per_check.values()) for i in range(designs)]
    rows.append(["sum (one design)", f"{statistics.median(total):,.1f}", f"{max(total):,.1f}"])
    return rows, walls


async def run(designs: int, size: int, misses: bool) -> None:
    settings = ScreeningSettings()
    sim = SimulatorProcess(
        "anthropic", free_port(), env={"SIM_LATENCY_MS": "0", "SIM_FAILURE_RATE": "0"}
    ).start()
    claude = ClaudeClient(api_key=SIM_KEY, base_url=sim.url, timeout_s=30)
    try:
        scores = await corpora(claude, settings)
        cost_rows, walls = await costs(claude, settings, designs, size)
    finally:
        await claude.aclose()
        sim.stop()
    notes = {
        "risk_review": "the simulator's word list, not Claude",
        "unsafe_image": "safe designs only: recall not measured",
    }
    print(
        table(
            "Precision and recall per check (tests/corpus/screening/)",
            ["check", "cases", "tp/fp/fn/tn", "precision", "recall", ""],
            [score_row(name, s, notes.get(name, "")) for name, s in scores],
        )
    )
    if misses:
        for name, s in scores:
            print(f"\n{name} misses:")
            for m in s.misses:
                print(f"  {m}")
    print()
    print(
        table(
            f"CPU per design, ms ({designs} designs of {size}x{size} px, each check alone)",
            ["check", "p50", "max"],
            cost_rows,
        )
    )
    print()
    print(
        table(
            "Wall time screening adds per design (checks side by side, as the generator runs "
            "them; a job's images are screened side by side too)",
            ["measure", "value"],
            [
                ["p50 (ms)", f"{statistics.median(walls) * 1000:,.0f}"],
                ["max (ms)", f"{max(walls) * 1000:,.0f}"],
                ["CPUs on this machine", str(os.cpu_count())],
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=12)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--misses", action="store_true", help="print every case a check got wrong")
    args = parser.parse_args()
    asyncio.run(run(args.designs, args.size, args.misses))


if __name__ == "__main__":
    main()
