"""What the benchmarks share: a broker to measure against, CPU time per service, tables."""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

from devstack.launch.kafka import LocalKafka


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set, else a throw-away local broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="pod-bench-") as tmp:
        kafka = LocalKafka(Path(tmp), port=29092, controller_port=29093).start()
        try:
            yield kafka.bootstrap
        finally:
            kafka.stop()


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [title, fmt.format(*header), line]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(out)


def service_of(proc: psutil.Process) -> str | None:
    """Which part of the stack a process is, from its command line (None: not ours)."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return None
    line = " ".join(cmd)
    if "kafka.Kafka" in line:
        return "broker"
    if cmd and os.path.basename(cmd[0]).startswith("postgres"):
        return "postgres"
    for flag, value in itertools.pairwise(cmd):
        if flag == "-m" and value.startswith(("services.", "simulators.")):
            kind, name = value.split(".", 1)
            return name if kind == "services" else f"sim-{name}"
    return None


def postgres_processes(data_dir: Path | None) -> list[psutil.Process]:
    """The PostgreSQL server started by pg_ctl (it leaves our process tree) and its backends."""
    if data_dir is None:
        return []
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def cpu_by_service(
    root: psutil.Process | None = None, postgres_dir: Path | None = None
) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process under ``root`` (this one by
    default), summed per service: each stage's instances together, the broker, the simulators,
    and PostgreSQL when its data folder is given."""
    root = root or psutil.Process()
    totals: dict[str, float] = {}
    procs = [(p, service_of(p)) for p in root.children(recursive=True)]
    procs += [(p, "postgres") for p in postgres_processes(postgres_dir)]
    for proc, name in procs:
        if name is None:
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        totals[name] = totals.get(name, 0.0) + t.user + t.system
    return totals


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per service between two readings (a service that restarted counts from 0)."""
    return {k: max(0.0, v - before.get(k, 0.0)) for k, v in after.items()}
