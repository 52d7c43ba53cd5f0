"""Memory soak: each service's resident memory (RSS) with print-ready art at a steady job rate.

    python bench/soak.py [--minutes 30] [--interval 6] [--sample 30] [--warmup 5] [--burst 20]

Starts the whole stack as ``make up`` does (every service at its default concurrency, the pool
manager's stages, the simulators at zero latency) with the default art: sampled at 1024 px and
upscaled x4 for 300 DPI, i.e. 4096 px PNGs on a tee. Posts one job to the API every
``--interval`` seconds (a t-shirt, every other job a mug too, autoPublish on) for ``--minutes``,
and reads every process's VmRSS (``/proc/<pid>/status``) every ``--sample`` seconds; the stages
are the pool manager's children, told apart by their command line (and a publisher by its
``CHANNEL``). Then it posts ``--burst`` jobs at once and reports each service's peak while they
run, and its RSS once they are done.

Prints the curve (RSS per sample and service, with jobs done and the backlog, so a reader sees
the rate was sustained), then per service its first, last and max, and the slope in MB per 10
minutes after the warm-up, fitted by least squares. A service is flagged over 300 MB, or when
the fitted rise over the measured window is beyond noise (more than 10 MB and three times the
spread of the samples around the line). The broker, PostgreSQL and the simulators are shown for
context and never flagged: they are not the engine's.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
import psutil

from bench.common import postgres_processes, service_of, table
from bench.pipeline import wait_until_ready
from devstack.stack import Stack, isolated_settings
from services.api.schemas.ops import StatsView
from shared.contract.events import JobRequestedPayload, ProductType
from shared.contract.topics import DEFAULT_CHANNEL

LIMIT_MB = 300.0
# A rise smaller than this is allocator noise whatever the fit says (arenas, page cache).
NOISE_FLOOR_MB = 10.0
# Processes that are not the engine's: shown, never flagged.
CONTEXT = ("broker", "postgres")

_MB = 1024 * 1024


def rss_mb(pid: int, path: str = "status", key: str = "VmRSS:") -> float | None:
    """A process's resident set (VmRSS) in MB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/{path}") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024 / _MB
    except (OSError, ValueError, IndexError):
        return None
    return None


def pss_mb(pid: int) -> float | None:
    """A process's proportional set (shared pages divided among the processes sharing them)."""
    return rss_mb(pid, "smaps_rollup", "Pss:")


def label(proc: psutil.Process) -> str | None:
    """Which part of the stack a process is: bench.common's name, a publisher by its channel
    (one package, one process per channel), the pool manager as ``pool``."""
    name = service_of(proc)
    if name != "publisher":
        return name
    try:
        channel = proc.environ().get("CHANNEL", DEFAULT_CHANNEL)
    except psutil.Error:
        return name
    return name if channel == DEFAULT_CHANNEL else f"publisher_{channel}"


def _helper_of(proc: psutil.Process) -> str | None:
    """``generator+tesseract`` for a program a stage runs; None for anything else."""
    try:
        parent = proc.parent()
        program = os.path.basename(proc.cmdline()[0])
    except (psutil.Error, IndexError):
        return None
    stage = label(parent) if parent is not None else None
    if stage is None or stage in CONTEXT or stage.startswith("sim-"):
        return None
    return f"{stage}+{program}"


def rss_by_process(postgres_dir: Path | None) -> dict[str, float]:
    """RSS (MB) of every process of the stack, by name (a second instance ``name#2``);
    PostgreSQL as its server and backends together, by PSS (their RSS summed would count the
    shared buffers once per backend)."""
    out: dict[str, float] = {}
    helpers: dict[str, float] = {}
    for proc in psutil.Process().children(recursive=True):
        name = label(proc)
        if name is None:
            # A stage's own child (the generator's tesseract runs): under "<stage>+<program>",
            # all of them together, apart from the stage's own figure.
            helper = _helper_of(proc)
            mb = rss_mb(proc.pid) if helper else None
            if helper and mb is not None:
                helpers[helper] = helpers.get(helper, 0.0) + mb
            continue
        mb = rss_mb(proc.pid) if name != "postgres" else None
        if mb is None:
            continue
        key = next(k for i in itertools.count(1) if (k := name if i == 1 else f"{name}#{i}")
                   not in out)  # fmt: skip
        out[key] = mb
    out.update(helpers)
    pg = [mb for p in postgres_processes(postgres_dir) if (mb := pss_mb(p.pid)) is not None]
    if pg:
        out["postgres"] = sum(pg)
    return out


@dataclass
class Sample:
    at: float  # seconds since the steady phase began
    rss: dict[str, float]
    submitted: int
    done: int
    lag: int | None


@dataclass
class Submitter:
    """Posts one job every ``interval`` seconds on a thread of its own until stopped."""

    url: str
    interval: float
    posted: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Submitter:
        self._thread = threading.Thread(target=self._run, name="soak-submit", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        run = uuid.uuid4().hex[:6]
        next_at = time.monotonic()
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                post_job(client, self.url, run, self.posted, self.errors)
                self.posted += 1
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))


def job_body(run: str, i: int) -> dict[str, object]:
    """A job: a t-shirt (4096 px art), every other one a mug too; themes all different, so
    that screening's near-duplicate check holds none of them."""
    types = [ProductType.TSHIRT] if i % 2 == 0 else [ProductType.TSHIRT, ProductType.MUG]
    return JobRequestedPayload(
        theme=f"soak {run} design {i}",
        style="flat",
        niche="soak",
        product_types=types,
        count=1,
        auto_publish=True,
    ).as_request()


def post_job(client: httpx.Client, url: str, run: str, i: int, errors: list[str]) -> None:
    try:
        resp = client.post(url, json=job_body(run, i))
        if resp.status_code >= 400:
            errors.append(f"{resp.status_code} {resp.text[:200]}")
    except httpx.HTTPError as exc:
        errors.append(repr(exc))


def stats(api: str) -> StatsView | None:
    try:
        resp = httpx.get(f"{api}/stats", timeout=10)
        resp.raise_for_status()
        return StatsView.model_validate(resp.json())
    except (httpx.HTTPError, ValueError):
        return None


def finished(view: StatsView | None) -> int:
    """Jobs that reached an end: completed, partial or failed."""
    if view is None:
        return -1
    return view.jobs.completed + view.jobs.partial + view.jobs.failed


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope (MB per second) and the spread (stdev) of the points around it."""
    if len(points) < 3:
        return 0.0, 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    slope, intercept = statistics.linear_regression(xs, ys)
    residuals = [y - (slope * x + intercept) for x, y in points]
    return slope, statistics.pstdev(residuals)


def engine(name: str) -> bool:
    """One of the engine's own processes (flagged); a stage's helper programs come and go with
    each design and are shown for context."""
    base = name.split("#", 1)[0]
    return base not in CONTEXT and not base.startswith("sim-") and "+" not in base


def verdict(name: str, values: list[float], slope_s: float, spread: float, window: float) -> str:
    if not engine(name):
        return ""
    flags = []
    if max(values) > LIMIT_MB:
        flags.append(f"OVER {LIMIT_MB:.0f} MB")
    rise = slope_s * window
    if rise > max(NOISE_FLOOR_MB, 3 * spread):
        flags.append(f"GROWS {rise:+.1f} MB")
    return ", ".join(flags) or "flat"


def report(samples: list[Sample], warmup_s: float, interval: float, minutes: float) -> None:
    names = sorted({n for s in samples for n in s.rss}, key=lambda n: (not engine(n), n))
    curve = [
        [
            f"{s.at / 60:.1f}",
            str(s.submitted),
            str(s.done),
            str(s.submitted - s.done),
            "?" if s.lag is None else str(s.lag),
            *(f"{s.rss[n]:.0f}" if n in s.rss else "-" for n in names),
        ]
        for s in samples
    ]
    print(
        table(
            f"RSS (MB; postgres: PSS of all its processes) per service, one job every"
            f" {interval:g} s for {minutes:g} min, 4096 px art (in flight = posted - done;"
            " lag = the monitor's latest consumer lag, messages)",
            ["min", "posted", "done", "in flight", "lag", *names],
            curve,
        )
    )
    print()
    measured = [s for s in samples if s.at >= warmup_s]
    window = (measured[-1].at - measured[0].at) if len(measured) > 1 else 0.0
    rows = []
    for n in names:
        values = [s.rss[n] for s in samples if n in s.rss]
        points = [(s.at, s.rss[n]) for s in measured if n in s.rss]
        slope_s, spread = fit(points)
        rows.append(
            [
                n,
                f"{values[0]:.0f}",
                f"{values[-1]:.0f}",
                f"{max(values):.0f}",
                f"{slope_s * 600:+.1f}",
                f"{spread:.1f}",
                verdict(n, values, slope_s, spread, window),
            ]
        )
    print(
        table(
            f"Per service (slope fitted after {warmup_s / 60:g} min of warm-up, over"
            f" {window / 60:.1f} min; flagged over {LIMIT_MB:.0f} MB or rising beyond noise)",
            ["service", "first", "last", "max", "MB/10 min", "spread", "verdict"],
            rows,
        )
    )


def burst(stack: Stack, api: str, jobs: int, pg: Path | None) -> None:
    """Post ``jobs`` at once; each service's peak RSS while they run and its RSS after."""
    before = rss_by_process(pg)
    start_done = finished(stats(api))
    run = uuid.uuid4().hex[:6]
    errors: list[str] = []
    with httpx.Client(timeout=30) as client:
        for i in range(jobs):
            post_job(client, f"{api}/jobs", run, i, errors)
    peak = dict(before)
    deadline = time.monotonic() + max(300.0, jobs * 20.0)
    done = 0
    while time.monotonic() < deadline:
        for n, mb in rss_by_process(pg).items():
            peak[n] = max(peak.get(n, 0.0), mb)
        done = finished(stats(api)) - start_done
        if done >= jobs - len(errors):
            break
        time.sleep(2.0)
    time.sleep(10.0)  # settled: what each process keeps once the burst is over
    after = rss_by_process(pg)
    names = sorted(peak, key=lambda n: (not engine(n), n))
    rows = [
        [
            n,
            f"{before.get(n, 0.0):.0f}",
            f"{peak[n]:.0f}",
            f"{after.get(n, 0.0):.0f}",
            (f"OVER {LIMIT_MB:.0f} MB" if peak[n] > LIMIT_MB else "ok") if engine(n) else "",
        ]
        for n in names
    ]
    print(
        table(
            f"Burst: {jobs} jobs posted at once ({done} done, {len(errors)} refused), 4096 px art",
            ["service", "before", "peak", "after", "verdict"],
            rows,
        )
    )
    for e in errors[:5]:
        print(f"  refused: {e}")


def run(minutes: float, interval: float, every: float, warmup_min: float, burst_jobs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pod-soak-") as tmp:
        state = Path(tmp)
        env = {
            "SIM_LATENCY_MS": "0",
            "SIM_FAILURE_RATE": "0",
            # A soak publishes more than Printify's 200 per 30 minutes; memory, not the
            # publish budget, is what this measures.
            "SIM_PRINTIFY_PUBLISH_LIMIT": "100000000",
            "PRINTIFY_PUBLISHES_PER_WINDOW": "100000000",
            "IMAGE_STORAGE_DIR": str(state / "images"),
            "LOG_LEVEL": "WARNING",
        }
        stack = Stack(isolated_settings(state), extra_env=env).start()
        try:
            wait_until_ready(stack)
            api = f"http://127.0.0.1:{stack.settings.api_port}"
            pg = stack.postgres.data_dir if stack.postgres else None
            base = finished(stats(api))
            submitter = Submitter(f"{api}/jobs", interval).start()
            samples: list[Sample] = []
            start = time.monotonic()
            end = start + minutes * 60
            try:
                while True:
                    view = stats(api)
                    samples.append(
                        Sample(
                            at=time.monotonic() - start,
                            rss=rss_by_process(pg),
                            submitted=submitter.posted,
                            done=max(0, finished(view) - base),
                            lag=view.queue.lag if view else None,
                        )
                    )
                    last = samples[-1]
                    print(
                        f"soak t={last.at / 60:.1f}min posted={last.submitted} done={last.done}"
                        f" lag={last.lag} "
                        + " ".join(f"{k}={v:.0f}" for k, v in sorted(last.rss.items())),
                        file=sys.stderr,
                        flush=True,
                    )
                    # Ctrl+C sets the stack's stop flag (devstack.stack): the curve so far.
                    if time.monotonic() >= end or stack.stopping:
                        break
                    time.sleep(max(0.0, min(every, end - time.monotonic())))
            finally:
                submitter.stop()
            print()
            report(samples, warmup_min * 60, interval, minutes)
            for e in submitter.errors[:5]:
                print(f"  refused: {e}")
            if burst_jobs and not stack.stopping:
                print()
                burst(stack, api, burst_jobs, pg)
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=6.0, help="Seconds between jobs")
    parser.add_argument("--sample", type=float, default=30.0, help="Seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="Minutes before the fit")
    parser.add_argument("--burst", type=int, default=20, help="Jobs posted at once at the end")
    args = parser.parse_args()
    if args.minutes <= 0 or args.interval <= 0 or args.sample <= 0:
        parser.error("--minutes, --interval and --sample must be positive")
    run(args.minutes, args.interval, args.sample, min(args.warmup, args.minutes / 4), args.burst)


if __name__ == "__main__":
    main()
