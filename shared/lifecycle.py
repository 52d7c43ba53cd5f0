"""A supervised process ends with its supervisor.

The worker-pool manager starts each stage process with ``POD_PARENT_PID`` set to its own pid
(``make up`` does the same for the pool manager and the API). Such a process must never outlive
its supervisor: a stage process left behind by a killed stack would otherwise join the next
stack's consumer groups and take its partitions. On Linux the kernel sends SIGTERM the moment the
parent dies (``PR_SET_PDEATHSIG``); everywhere, the parent is also checked every few seconds.
SIGTERM then takes the process's ordinary graceful path (drain, commit, exit).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

PARENT_ENV = "POD_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def expected_parent() -> int | None:
    """The supervisor's pid this process was started under, if any."""
    raw = os.environ.get(PARENT_ENV, "")
    return int(raw) if raw.isdigit() else None


def bind_to_parent() -> None:
    """Exit now if the supervisor is already gone; on Linux, die with it from here on."""
    parent = expected_parent()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        if libc_name:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
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
