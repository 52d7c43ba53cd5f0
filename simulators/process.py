"""Start a simulator as its own process and wait until it answers (used by tests and `make up`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.channel_sims import CHANNEL_SIMULATORS
from shared.platform.lifecycle import popen

# Default ports: ComfyUI's own default, then the ones the pipeline issue fixed, then each
# direct sales channel's, as the dev stack's table lists it.
DEFAULT_PORTS = {
    "anthropic": 8190,
    "comfyui": 8188,
    "printify": 8189,
    **{sim.module: sim.port for sim in CHANNEL_SIMULATORS.values()},
}


class SimulatorProcess:
    """One simulator (``python -m simulators.<name> --port N``) in a child process."""

    def __init__(
        self,
        name: str,
        port: int | None = None,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port or DEFAULT_PORTS[name]
        self.env = env or {}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> SimulatorProcess:
        """Spawn the process and block until ``/_sim/config`` answers (a deadline, not a wait:
        on a loaded 2-core machine eight Python start-ups in parallel took over 20 s)."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            # Never outlives its starter (shared.platform.lifecycle).
            self.proc = popen(
                [sys.executable, "-m", f"simulators.{self.name}", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if not isinstance(out, int):  # the child has its own copy of the log's descriptor
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator {self.name} exited with {self.proc.returncode}")
            try:
                httpx.get(f"{self.url}/_sim/config", timeout=0.5)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"simulator {self.name} did not answer on {self.url} in {timeout}s")

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
