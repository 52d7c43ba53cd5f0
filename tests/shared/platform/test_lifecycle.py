"""Children die with their parent (PR_SET_PDEATHSIG set before exec), and a successor stops what
a killed starter left running, by its records (pid and start time), never a recycled pid."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from shared.platform.lifecycle import (
    process_start,
    read_records,
    record_of,
    still_running,
    stop_recorded,
    write_records,
)
from tests.support.infra import free_port, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
# Ignores SIGTERM: only SIGKILL ends it.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ready', flush=True); time.sleep(600)",
]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is left is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        with proc:  # on leaving: its stdout pipe closed, the process reaped
            if proc.poll() is None:
                proc.kill()


def spawn(procs: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    procs.append(proc)
    return proc


def test_a_record_finds_its_process_and_never_a_recycled_pid(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    proc = spawn(procs, SLEEPER)
    record = record_of("sleeper", proc.pid)
    assert record is not None and record["start"] == process_start(proc.pid)
    assert still_running(record) is not None
    # The same pid with another start time is another process (the pid was reused).
    assert still_running({**record, "start": "ticks:1"}) is None
    proc.kill()
    proc.wait()
    assert still_running(record) is None
    assert record_of("gone", proc.pid) is None


def test_stop_recorded_stops_live_records_kills_the_stubborn_and_spares_others(
    procs: list[subprocess.Popen[bytes]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    polite = spawn(procs, SLEEPER)
    stubborn = spawn(procs, STUBBORN)
    assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == b"ready"
    bystander = spawn(procs, SLEEPER)
    path = tmp_path / "stack.json"
    write_records(
        path,
        [
            record_of("polite", polite.pid),
            record_of("stubborn", stubborn.pid),
            # The bystander's pid, but not its start: a pid recycled since it was recorded.
            {**(record_of("bystander", bystander.pid) or {}), "start": "ticks:1"},
        ],
    )
    stopped = stop_recorded(read_records(path)["processes"], grace_s=1.0, left_by="a test")
    assert sorted(stopped) == sorted([polite.pid, stubborn.pid])
    # Reaped by the stop already (they are our children here): gone is what can be checked.
    assert not alive(polite.pid) and not alive(stubborn.pid)
    assert f"killing a process that ignored its stop signal pid={stubborn.pid}" in caplog.text
    assert f"killing a process that ignored its stop signal pid={polite.pid}" not in caplog.text
    assert bystander.poll() is None
    assert f"name=polite pid={polite.pid}" in caplog.text


def test_a_child_dies_with_the_process_that_started_it_not_with_the_thread(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """The parent-death signal is set between fork and exec, so it holds for any program (here
    coreutils' sleep). Asked for from a thread that then ends (the kernel signals a child when
    the thread that forked it ends), the child still lives as long as its process, and dies when
    the process is SIGKILLed."""
    parent = spawn(
        procs,
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import threading, time
                from shared.platform.lifecycle import popen
                started = []
                helper = threading.Thread(target=lambda: started.append(popen(["sleep", "600"])))
                helper.start()
                helper.join()
                time.sleep(0.5)  # past the helper thread's end
                print(started[0].pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child), "the child died with the thread that asked for it"
    parent.kill()
    parent.wait()
    wait_for(lambda: not alive(child), 10, "the child to die with its parent")


@pytest.mark.integration  # an embedded PostgreSQL of its own
def test_postgres_dies_with_the_process_that_started_it(
    procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """``pg_ctl start`` daemonized the postmaster, which outlived a killed ``make up`` and kept
    its port: the postmaster is now our child and dies with us."""
    port = free_port()
    starter = spawn(
        procs,
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from devstack.launch.postgres import LocalPostgres
                LocalPostgres(Path({str(tmp_path)!r}), port={port}).start()
                print("ready", flush=True)
                time.sleep(600)
                """
            ),
        ],
    )
    assert starter.stdout is not None and starter.stdout.readline().strip() == b"ready"
    pid_file = tmp_path / "postgres" / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    assert alive(postmaster)
    starter.kill()
    starter.wait()
    wait_for(lambda: not alive(postmaster), 30, "the postmaster to stop with its starter")
    wait_for(lambda: port_free(port), 10, f"port {port} to be free")


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
