"""The tests' S3 server: loopback only, and a server left by a killed session is stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devstack.launch.s3proxy import PID_FILE, LocalS3Proxy, stop_leftovers
from tests.support.infra import wait_for

pytestmark = pytest.mark.unit


def _listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} gives them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_it_listens_on_loopback_only(tmp_path: Path) -> None:
    with LocalS3Proxy(tmp_path / "s3", identity="id", credential="secret") as server:
        # 127.0.0.1 (Java may bind it as the IPv4-mapped ::ffff:127.0.0.1), nothing else.
        loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
        listening = _listening(server.port)
        assert listening and listening <= loopback, listening
        # Unsigned: refused as AWS refuses an anonymous request to a private bucket.
        answer = httpx.get(f"{server.endpoint}/", timeout=10)
        assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text
        assert (tmp_path / "s3" / "s3proxy.conf").stat().st_mode & 0o077 == 0


def test_a_server_whose_starter_died_is_stopped_by_the_next(tmp_path: Path) -> None:
    root = tmp_path / "homes"
    server = LocalS3Proxy(root / "old", identity="id", credential="secret").start()
    assert server.proc is not None
    try:
        # Its starter is gone: a process that has exited since stands in for a killed session.
        dead_parent = subprocess.Popen(["true"])
        dead_parent.wait()
        (root / "old" / PID_FILE).write_text(f"{server.proc.pid} {dead_parent.pid}\n")
        assert stop_leftovers(root) == 1
        wait_for(lambda: server.proc is not None and server.proc.poll() is not None, 10, "exit")
        assert not (root / "old").exists()
    finally:
        server.stop()


def test_a_server_whose_starter_runs_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "homes"
    with LocalS3Proxy(root / "mine", identity="id", credential="secret") as server:
        assert stop_leftovers(root) == 0
        assert server.proc is not None and server.proc.poll() is None
