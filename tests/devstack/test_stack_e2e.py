"""``make up`` as a newcomer runs it (``python -m devstack.stack``, its own ports and state):

- it says "POD Engine is up" only once a job submitted that instant is accepted and picked up by
  its first stage at once (it used to say so before the API listened, and before the stages held
  their partitions);
- it first stops what a killed stack of its own left running (by the records in its state
  folder), and never a process that merely got a recorded pid;
- SIGKILLed, it leaves nothing behind: every process it started (the broker's JVM, PostgreSQL and
  its backends, the simulators, the pool manager and its stage processes, the API) is gone within
  a deadline, and every port it held is free for the next one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from confluent_kafka import KafkaError, Producer

from devstack.channel_sims import channel_simulator
from devstack.stack import isolated_settings, sim_port_setting
from shared.adapters.vendors.direct import direct_specs
from shared.contract.topics import wait_for_broker
from shared.platform.lifecycle import popen, record_of, write_records
from tests.support.infra import TEST_STATE, wait_for
from tests.support.pipeline import stack_env

logger = logging.getLogger(__name__)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
PORT_SETTINGS = (
    "api_port",
    "kafka_port",
    "kafka_controller_port",
    "postgres_port",
    "sim_anthropic_port",
    "sim_comfyui_port",
    "sim_printify_port",
    *(sim_port_setting(channel_simulator(spec.name).module) for spec in direct_specs()),
)


class Output:
    """The stack's merged stdout and stderr, line by line, as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30) -> None:
        """Read to the end (every writer gone), then close the pipe."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "a process still holds the stack's output open"
        assert self._proc.stdout is not None
        self._proc.stdout.close()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def text(self) -> str:
        return "\n".join(self.lines)


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def port_free(port: int) -> bool:
    """Free for the next stack's servers (which set SO_REUSEADDR, as this does: a connection
    in TIME_WAIT does not hold a listening port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def bystanders() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_means_picked_at_once_and_a_killed_stack_leaves_nothing(
    bystanders: list[subprocess.Popen[bytes]],
) -> None:
    state = TEST_STATE / "stack-lifecycle"
    shutil.rmtree(state, ignore_errors=True)
    settings = isolated_settings(state)
    ports = {name: int(getattr(settings, name)) for name in PORT_SETTINGS}

    # A killed stack's leftover (still running, as recorded) and a process that only got a pid
    # the killed stack had recorded (another start time): the first is stopped, the second not.
    leftover = subprocess.Popen(SLEEPER)
    recycled = subprocess.Popen(SLEEPER)
    bystanders.extend([leftover, recycled])
    recycled_record = record_of("api", recycled.pid)
    assert recycled_record is not None
    write_records(
        state / "stack.json",
        [record_of("kafka-1", leftover.pid), {**recycled_record, "start": "ticks:1"}],
        # The killed stack itself: its pid is someone else's now.
        stack={**recycled_record, "name": "stack", "start": "ticks:1"},
    )

    # Started as make up's own children are: it dies with this test process, should that die.
    proc = popen(
        [sys.executable, "-m", "devstack.stack"],
        env=up_env(state, ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = Output(proc)
    try:
        wait_for(
            lambda: out.has("POD Engine is up.") or proc.poll() is not None,
            300,
            "the banner",
            interval=0.02,
        )
        assert proc.poll() is None, out.text()
        api = f"http://127.0.0.1:{ports['api_port']}"
        anthropic = f"http://127.0.0.1:{ports['sim_anthropic_port']}"
        claude_calls = httpx.get(f"{anthropic}/_sim/books", timeout=5).json()["requests"]
        # The instant it says so: the API takes the job ...
        submitted = httpx.post(
            f"{api}/jobs",
            json={
                "theme": "space cats",
                "style": "retro",
                "niche": "astronomy",
                "productTypes": ["tshirt"],
                "count": 1,
            },
            timeout=10,
        )
        assert submitted.status_code == 202, submitted.text
        picked_at = time.monotonic()
        # ... and the generator starts on it at once (its first call is to Claude).
        wait_for_pickup(anthropic, claude_calls, api, state)
        picked_s = time.monotonic() - picked_at

        # The broker has no anonymous listener, and another system gets the submitter's
        # settings, which may write job requests and nothing else.
        check_submitter_settings(state, ports["kafka_port"], out)
        check_each_stage_logs_in_as_itself(state)

        # The start stopped the leftover, said so, and spared the recycled pid.
        assert leftover.wait(1) is not None
        assert out.has(f"stopping a process left behind by a stack that was killed name=kafka-1 "
                       f"pid={leftover.pid}"), out.text()  # fmt: skip
        assert recycled.poll() is None

        top = psutil.Process(proc.pid)
        started = top.children(recursive=True)
        names = {p.name() for p in started}
        assert {"java", "postgres", "python"} <= names, names
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = time.monotonic()
        wait_for(
            lambda: not any(alive(p) for p in started),
            60,
            "every process of the killed stack to exit: "
            + ", ".join(f"{p.pid}" for p in started if alive(p)),
            interval=0.2,
        )
        gone_s = time.monotonic() - killed_at
        wait_for(lambda: all(port_free(p) for p in ports.values()), 10, "its ports to be free")
        logger.info(
            "picked up %.2fs after the banner; all gone %.1fs after SIGKILL", picked_s, gone_s
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.close()


def wait_for_pickup(anthropic: str, claude_calls: int, api: str, state: Path) -> None:
    """Wait (2 s) for the generator's first call to Claude; on a timeout, say what the
    broker's view and the generator's log said: the wait is either the fetch of its partition
    (its "first message since assignment" line) or the handler."""
    try:
        wait_for(
            lambda: (
                httpx.get(f"{anthropic}/_sim/books", timeout=5).json()["requests"] > claude_calls
            ),
            2,
            "the generator to pick the job up",
        )
    except AssertionError as exc:
        ready = httpx.get(f"{api}/health/ready?stages=true", timeout=10).text
        log = (state / "logs" / "generator-0.log").read_text(errors="replace")
        tail = "\n".join(line[:300] for line in log.splitlines()[-40:])
        raise AssertionError(f"{exc}\nready: {ready}\ngenerator log (tail):\n{tail}") from exc


def up_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """``make up``'s environment for a stack in ``state`` on ``ports``: this process's, without
    the test session's broker, database and vendor keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL") and not k.endswith("_API_KEY")
    }
    env.update({name.upper(): str(port) for name, port in ports.items()})
    env.update(
        {
            **stack_env(state, 256),
            "POD_STATE_DIR": str(state),
            "KAFKA_PARTITIONS": "3",
            "SIM_LATENCY_MS": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def check_each_stage_logs_in_as_itself(state: Path) -> None:
    """Every stage process the pool manager runs has its own principal's login, and no other's
    password."""
    status = json.loads((state / "pool" / "status.json").read_text())
    seen = set()
    for instance in status["instances"]:
        raw = Path(f"/proc/{instance['pid']}/environ").read_bytes().split(b"\0")
        env = dict(e.decode().split("=", 1) for e in raw if b"=" in e)
        assert env["KAFKA_SASL_USERNAME"] == instance["service"], instance
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert not [k for k in env if k.startswith("KAFKA_SASL_PASSWORD_")], instance
        seen.add(instance["service"])
    assert {"generator", "printify", "publisher", "monitor"} <= seen, seen


def check_submitter_settings(state: Path, kafka_port: int, out: Output) -> None:
    path = state / "submitter.properties"
    assert out.has(str(path)), out.text()
    assert path.stat().st_mode & 0o777 == 0o600
    lines = [ln for ln in path.read_text().splitlines() if "=" in ln and not ln.startswith("#")]
    config: dict[str, str | int | float | bool] = {
        k: v for k, v in (ln.split("=", 1) for ln in lines)
    }
    assert set(config) == {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
    }
    assert config["bootstrap.servers"] == f"127.0.0.1:{kafka_port}"
    with pytest.raises(TimeoutError):
        wait_for_broker({"bootstrap.servers": f"127.0.0.1:{kafka_port}"}, timeout=3)
    outcome: dict[str, KafkaError | None] = {}
    producer = Producer({**config, "message.timeout.ms": 20_000})
    for topic in ("jobs.requested.low", "images.generated", "pod.control"):
        producer.produce(
            topic, b"{}", on_delivery=lambda e, m: outcome.__setitem__(str(m.topic()), e)
        )
    assert producer.flush(30) == 0
    assert outcome["jobs.requested.low"] is None
    for topic in ("images.generated", "pod.control"):
        err = outcome[topic]
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err


def test_a_second_stack_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    """While a stack runs, another on its state folder would take its data and kill nothing of
    it: it refuses, exit 2, and the first one's record is left as it was."""
    record = record_of("stack", os.getpid())
    assert record is not None
    write_records(tmp_path / "stack.json", [], stack=record)
    done = subprocess.run(
        [sys.executable, "-m", "devstack.stack"],
        env={**os.environ, "POD_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"another stack runs on {tmp_path} (pid {os.getpid()})" in done.stderr
    assert f'"pid": {os.getpid()}' in (tmp_path / "stack.json").read_text()
