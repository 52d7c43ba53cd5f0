"""A supervised process ends with its supervisor, and a successor stops what a killed one left.

Every process ``make up`` starts (the broker's JVMs, PostgreSQL, the simulators, the pool manager,
the API) and every stage process the pool manager starts must never outlive its starter: a stage
process left behind by a killed stack would otherwise join the next stack's consumer groups and
take its partitions, and a broker or PostgreSQL left running holds the ports the next one wants.

- On Linux each child is started by :func:`popen` with :func:`die_with_parent` as its
  ``preexec_fn``: in the child, between fork and exec, ``prctl(PR_SET_PDEATHSIG)`` asks the kernel
  to signal it the moment its parent dies (whatever the parent dies of: SIGKILL included), then
  exec keeps that for the JVM or ``postgres`` as for Python. The kernel's notion of the parent is
  the *thread* that forked, not the process: a child forked from a thread that ends (an
  executor's worker, a test fixture's helper thread) is signalled when that thread ends, though
  its process lives on. So :func:`popen` forks on one thread of its own that lives as long as the
  process, whichever thread asks.
- Python children started with ``POD_PARENT_PID`` (:func:`supervise`) also check their parent
  once at start (:func:`bind_to_parent`: a parent that died between fork and prctl) and every few
  seconds after (:func:`watch_parent`: the portable fallback where there is no prctl).
- A starter records the processes it started (:func:`record_of`: pid and start time, so that a
  recycled pid is never taken for ours) and a successor on the same state folder stops any of
  them still alive (:func:`stop_recorded`) before it binds anything.

The signal takes the child's ordinary graceful path: SIGTERM for a stage (drain, commit, exit),
the broker (controlled shutdown) and a simulator; SIGINT for PostgreSQL (its fast shutdown:
SIGTERM would wait for every client to leave).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import psutil

logger = logging.getLogger(__name__)

PARENT_ENV = "POD_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    # Resolved once, at import: the preexec function runs between fork and exec, where looking a
    # library up (imports, locks another thread may have held at fork) is not safe.
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True).prctl if name else None


_prctl = _load_prctl()
_PROC_STAT = Path("/proc/self/stat").exists()


def expected_parent() -> int | None:
    """The supervisor's pid this process was started under, if any."""
    raw = os.environ.get(PARENT_ENV, "")
    return int(raw) if raw.isdigit() else None


def parent_gone() -> bool:
    """True once the supervisor this process was started under is gone (never true for a
    process started without one)."""
    parent = expected_parent()
    return parent is not None and os.getppid() != parent


def bind_to_parent() -> None:
    """Exit now if the supervisor is already gone; on Linux, die with it from here on."""
    parent = expected_parent()
    if parent is None:
        return
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    # After prctl: a parent that died before it is caught here, one that dies later by the signal.
    if os.getppid() != parent:
        logger.error("supervisor gone before start parent_pid=%d; exiting", parent)
        sys.exit(3)


def watch_parent(interval_s: float = 2.0) -> None:
    """From a daemon thread: SIGTERM ourselves once the supervisor is gone (the portable
    fallback of the kernel's parent-death signal)."""
    parent = expected_parent()
    if parent is None:
        return

    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        logger.error("supervisor gone parent_pid=%d; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


def supervise(proc_env: dict[str, str]) -> dict[str, str]:
    """``proc_env`` for a child that must end with this process."""
    return {**proc_env, PARENT_ENV: str(os.getpid())}


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn_thread() -> ThreadPoolExecutor:
    # One worker, never retired: the thread every bound child is forked from.
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="child-spawner")
        return _spawner


def popen(
    args: list[str], *, death_signal: int = signal.SIGTERM, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **kwargs)`` whose child gets ``death_signal`` when this process
    dies (Linux; elsewhere a plain Popen). Forked on the spawner thread, which lives as long as
    the process: the parent-death signal follows the forking thread, not the caller's."""
    preexec = die_with_parent(death_signal)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, preexec_fn=preexec, **kwargs)

    if preexec is None:
        return start()
    return _spawn_thread().submit(start).result()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when the forking thread
    (see the module's note: the thread, not the process) ends; None where there is no prctl.
    :func:`popen` uses it from a thread that lives as long as the process.

    A parent that died between the fork and the prctl is not seen by the kernel: the child then
    exits at once instead of running as an orphan."""
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl
    signum = int(sig)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(3)

    return preexec


# ------------------------------------------------------------------ records of started processes


def process_start(pid: int) -> str | None:
    """An identity of the process ``pid`` that a recycled pid does not share: its start time
    (on Linux field 22 of ``/proc/<pid>/stat``, clock ticks since boot, exact), or None when no
    such process runs."""
    if _PROC_STAT:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # The command name (field 2) is in parentheses and may hold spaces or parentheses.
        return f"ticks:{stat[stat.rindex(')') + 2 :].split()[19]}"
    try:
        return f"time:{psutil.Process(pid).create_time()!r}"
    except psutil.Error:
        return None


class ProcessRecord(TypedDict):
    """A process we started, as the records file keeps it: enough for a successor to find it
    again, and to know it is the same process, not a recycled pid."""

    pid: int
    start: str  # process_start() at the time: a recycled pid has another
    name: NotRequired[str]
    signal: NotRequired[str]  # the stop signal's name; SIGTERM when missing


class RecordsFile(TypedDict):
    processes: list[ProcessRecord]
    stack: NotRequired[ProcessRecord]  # the local stack's own process (written as an extra)


def record_of(name: str, pid: int, *, stop_signal: int = signal.SIGTERM) -> ProcessRecord | None:
    """A record of a process we started (None if it is already gone)."""
    start = process_start(pid)
    if start is None:
        return None
    return {
        "name": name,
        "pid": pid,
        "start": start,
        "signal": signal.Signals(stop_signal).name,
    }


def write_records(
    path: Path, records: Iterable[Mapping[str, object] | None], **extra: object
) -> None:
    """Replace the records file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**extra, "processes": [r for r in records if r is not None]}))
    os.replace(tmp, path)


def _parsed_record(raw: object) -> ProcessRecord | None:
    """A record read back from the file, or None when it lacks a pid and start (written by
    something else, or damaged): such a record names no process we could safely stop."""
    if not isinstance(raw, dict):
        return None
    try:
        record = ProcessRecord(pid=int(raw["pid"]), start=str(raw["start"]))
    except (KeyError, TypeError, ValueError):
        return None
    if isinstance(name := raw.get("name"), str):
        record["name"] = name
    if isinstance(stop := raw.get("signal"), str):
        record["signal"] = stop
    return record


def read_records(path: Path) -> RecordsFile:
    """The records file's well-formed records, or none when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"processes": []}
    if not isinstance(data, dict):
        return {"processes": []}
    raw = data.get("processes")
    parsed = (_parsed_record(r) for r in (raw if isinstance(raw, list) else []))
    records: RecordsFile = {"processes": [r for r in parsed if r is not None]}
    if (stack := _parsed_record(data.get("stack"))) is not None:
        records["stack"] = stack
    return records


def still_running(record: ProcessRecord) -> psutil.Process | None:
    """The recorded process if it still runs as recorded (same pid, same start), else None.
    A pid that now belongs to another process is never returned."""
    pid, start = record["pid"], record["start"]
    if pid == os.getpid() or process_start(pid) != start:
        return None
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except psutil.Error:
        return None


def stop_recorded(
    records: Iterable[ProcessRecord], *, grace_s: float = 15.0, left_by: str = "an earlier run"
) -> list[int]:
    """Stop every recorded process still running as recorded: its stop signal (SIGTERM unless
    recorded otherwise) to all at once, SIGKILL to those still there after ``grace_s``. Returns
    the pids stopped; each is logged."""
    found: list[tuple[ProcessRecord, psutil.Process]] = []
    for record in records:
        proc = still_running(record)
        if proc is None:
            continue
        sig = signal.Signals.__members__.get(str(record.get("signal")), signal.SIGTERM)
        logger.warning(
            "stopping a process left behind by %s name=%s pid=%d signal=%s",
            left_by,
            record.get("name"),
            proc.pid,
            sig.name,
        )
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
            found.append((record, proc))
    if not found:
        return []
    _gone, alive = psutil.wait_procs([p for _, p in found], timeout=grace_s)
    for proc in alive:
        logger.warning("killing a process that ignored its stop signal pid=%d", proc.pid)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for _, p in found]
