"""The whole stack on one machine: ``make up`` (``python -m shared.stack``).

Starts what is not configured — the local Kafka broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is
set, embedded PostgreSQL unless ``DATABASE_URL`` is set, a vendor simulator for each vendor
without credentials — creates the topics, applies the migrations, then runs every service as its
own process (``WORKER_COUNT`` per stage) until Ctrl+C, and stops everything gracefully in reverse
order. Tests use :class:`Stack` with their own ports and the session's broker and database.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from pydantic import Field, SecretStr

from shared.db import migrate
from shared.errors import ConfigError, InvalidEventError
from shared.events import ControlCommand, parse_event
from shared.launch.kafka import LocalKafka
from shared.launch.ports import free_port
from shared.launch.postgres import LocalPostgres
from shared.logs import setup_logging
from shared.settings import DatabaseSettings, KafkaSettings, StateSettings, load_settings
from shared.topics import CONTROL, STAGES, ensure_topics
from simulators.process import SimulatorProcess

logger = logging.getLogger(__name__)

STAGE_SERVICES = ("monitor", "generator", "printify", "publisher")


class StackSettings(KafkaSettings, DatabaseSettings, StateSettings):
    """What ``make up`` starts and where (env names of DESIGN §3)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=3000, ge=1, le=65535)
    worker_count: int = Field(default=1, ge=1, le=64)
    # Per-stage overrides of WORKER_COUNT (WORKER_COUNT_GENERATOR, ...).
    worker_count_generator: int | None = Field(default=None, ge=0, le=64)
    worker_count_printify: int | None = Field(default=None, ge=0, le=64)
    worker_count_publisher: int | None = Field(default=None, ge=0, le=64)
    worker_count_monitor: int | None = Field(default=None, ge=0, le=64)
    claude_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    comfyui_api_url: str | None = None
    printify_api_key: SecretStr | None = None
    printify_api_url: str | None = None
    sim_anthropic_port: int = 8190
    sim_comfyui_port: int = 8188
    sim_printify_port: int = 8189
    restart_delay_s: float = Field(default=5.0, ge=0)
    max_restarts: int = Field(default=3, ge=0)

    def workers_for(self, stage: str) -> int:
        """Instances of ``stage`` to start: its override, else WORKER_COUNT."""
        override = getattr(self, f"worker_count_{stage}", None)
        return self.worker_count if override is None else int(override)


def isolated_settings(state_dir: Path, **overrides: object) -> StackSettings:
    """A stack on free ports with its own state: tests and benchmarks beside a running one."""
    ports = {
        name: free_port()
        for name in (
            "kafka_port",
            "kafka_controller_port",
            "postgres_port",
            "api_port",
            "sim_anthropic_port",
            "sim_comfyui_port",
            "sim_printify_port",
        )
    }
    return StackSettings(pod_state_dir=state_dir, **{**ports, **overrides})  # type: ignore[arg-type]


@dataclass
class ServiceProcess:
    """One service instance run as a child process, restarted if it dies unexpectedly."""

    name: str
    module: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failed: bool = False
    died_at: float | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl+C reaches the stack, which stops us in order
            )
        self.started_at = time.monotonic()
        logger.info(
            "service started name=%s pid=%d log=%s", self.name, self.proc.pid, self.log_path
        )

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("service did not stop in time, killing name=%s", self.name)
            self.proc.kill()
            return self.proc.wait()


class Stack:
    """Infrastructure, simulators and services, started and stopped together."""

    def __init__(self, settings: StackSettings, *, extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.state_dir = settings.pod_state_dir
        self.log_dir = self.state_dir / "logs"
        self.kafka: LocalKafka | None = None
        self.postgres: LocalPostgres | None = None
        self.simulators: list[SimulatorProcess] = []
        self.services: list[ServiceProcess] = []
        self.bootstrap = settings.bootstrap
        self.database_url = settings.url
        self._stopping = threading.Event()
        self._control_lock = threading.Lock()
        self._env: dict[str, str] = {}

    # ------------------------------------------------------------------ start

    def start_infra(self) -> None:
        """Broker and database (local ones unless configured), topics, migrations."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        if s.kafka_bootstrap_servers is None:
            self.kafka = LocalKafka(
                self.state_dir,
                port=s.kafka_port,
                controller_port=s.kafka_controller_port,
                partitions=s.kafka_partitions,
            ).start()
            self.bootstrap = self.kafka.bootstrap
        if s.database_url is None:
            self.postgres = LocalPostgres(self.state_dir, port=s.postgres_port).start()
            self.database_url = self.postgres.url
        admin = AdminClient({**s.client_config(), "bootstrap.servers": self.bootstrap})
        outcome = ensure_topics(
            admin,
            default_partitions=s.kafka_partitions,
            replication_factor=s.kafka_replication_factor,
        )
        logger.info(
            "topics ready created=%d total=%d",
            sum(1 for v in outcome.values() if v == "created"),
            len(outcome),
        )
        applied = migrate(self.database_url)
        logger.info("migrations applied count=%d", len(applied))

    def vendor_env(self) -> dict[str, str]:
        """Vendor settings for the services: real ones when configured, else a simulator's."""
        s = self.settings
        env: dict[str, str] = {}
        if s.claude_api_key is None:
            sim = self._simulator("anthropic", s.sim_anthropic_port)
            env["CLAUDE_API_KEY"] = "sim-anthropic-key"
            env["ANTHROPIC_BASE_URL"] = sim.url
        elif s.anthropic_base_url:
            env["ANTHROPIC_BASE_URL"] = s.anthropic_base_url
        if s.comfyui_api_url is None:
            env["COMFYUI_API_URL"] = self._simulator("comfyui", s.sim_comfyui_port).url
        if s.printify_api_key is None:
            sim = self._simulator("printify", s.sim_printify_port)
            env["PRINTIFY_API_KEY"] = "sim-printify-token"
            env["PRINTIFY_API_URL"] = sim.url
        elif s.printify_api_url:
            env["PRINTIFY_API_URL"] = s.printify_api_url
        return env

    def _simulator(self, name: str, port: int) -> SimulatorProcess:
        sim = SimulatorProcess(
            name, port, env=self.extra_env, log_path=self.log_dir / f"sim-{name}.log"
        ).start()
        self.simulators.append(sim)
        logger.info("simulator started name=%s url=%s", name, sim.url)
        return sim

    def start_services(self) -> None:
        """Every stage service (WORKER_COUNT each, or its per-stage override), then the API."""
        self._env = {
            **os.environ,
            **self.extra_env,
            **self.vendor_env(),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "API_HOST": self.settings.api_host,
            "API_PORT": str(self.settings.api_port),
            "PYTHONUNBUFFERED": "1",
        }
        for name in STAGE_SERVICES:
            self.scale(name, self.settings.workers_for(name))
        self._add_service("api", "services.api")

    def _add_service(self, name: str, module: str) -> ServiceProcess:
        # The instance id is the slot's name: heartbeats, /workers and restarts all use it.
        env = {**self._env, "INSTANCE_ID": name}
        svc = ServiceProcess(name, module, env, self.log_dir / f"{name}.log")
        svc.start()
        self.services.append(svc)
        return svc

    # ------------------------------------------------------------ worker pool

    def pool(self, stage: str) -> list[ServiceProcess]:
        """The running instances of one stage, in slot order."""
        prefix = f"{stage}-"
        return [s for s in self.services if s.name.startswith(prefix)]

    def partitions_of(self, stage: str) -> int:
        """The ceiling of useful instances: the fewest partitions among the stage's inputs."""
        admin = AdminClient({**self.settings.client_config(), "bootstrap.servers": self.bootstrap})
        topics = admin.list_topics(timeout=10).topics
        counts = [len(topics[t].partitions) for t in STAGES[stage].inputs if t in topics]
        return min(counts) if counts else self.settings.kafka_partitions

    def scale(self, stage: str, count: int) -> str:
        """Run ``count`` instances of ``stage``; refuse more than its partitions can feed."""
        if stage not in STAGE_SERVICES:
            return f"refused: unknown service {stage!r}"
        ceiling = self.partitions_of(stage)
        if count > ceiling:
            msg = (
                f"refused: {stage} has {ceiling} partitions per input topic, so at most "
                f"{ceiling} instances can share them (asked for {count}); "
                "raise KAFKA_PARTITIONS to go further"
            )
            logger.error("scale %s", msg)
            return msg
        running = self.pool(stage)
        for i in range(len(running), count):
            self._add_service(f"{stage}-{i}", f"services.{stage}")
        for svc in reversed(running[count:]):
            self.services.remove(svc)
            code = svc.stop()
            logger.info("instance retired name=%s exit_code=%s", svc.name, code)
        logger.info("scaled service=%s from=%d to=%d", stage, len(running), count)
        return f"scaled {stage} from {len(running)} to {count}"

    def restart(self, instance_id: str) -> str:
        """Restart one instance gracefully (SIGTERM, wait, start again)."""
        svc = next((s for s in self.services if s.name == instance_id), None)
        if svc is None:
            return f"refused: no instance {instance_id!r}"
        svc.stop()
        svc.start()
        return f"restarted {instance_id}"

    def apply(self, command: ControlCommand) -> str:
        """Carry out one control command; returns what happened (also logged)."""
        c = command.payload
        if c.action == "restart" and c.instance_id:
            outcome = self.restart(c.instance_id)
        elif c.action == "scale" and c.worker_count is not None:
            stages = [c.service] if c.service else list(STAGE_SERVICES)
            outcome = "; ".join(self.scale(st, c.worker_count) for st in stages)
        else:
            outcome = f"refused: incomplete command {c.model_dump_json()}"
        logger.info("control command applied action=%s outcome=%s", c.action, outcome)
        return outcome

    def listen_for_commands(self) -> threading.Thread:
        """Apply scale/restart commands from the control topic (as the API sends them)."""
        consumer = Consumer(
            {
                **self.settings.client_config(),
                "bootstrap.servers": self.bootstrap,
                # Only commands sent while this stack runs: a fresh group starting at the end.
                "group.id": f"pod.stack.{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([CONTROL])

        def loop() -> None:
            try:
                while not self._stopping.is_set():
                    msg = consumer.poll(0.5)
                    if msg is None or msg.error() is not None:
                        continue
                    try:
                        command = parse_event(msg.value(), (ControlCommand,))
                    except InvalidEventError as exc:
                        logger.warning("control message ignored error=%s", exc)
                        continue
                    with self._control_lock:
                        if not self._stopping.is_set():
                            self.apply(command)  # type: ignore[arg-type]
            finally:
                consumer.close()

        thread = threading.Thread(target=loop, name="stack-control", daemon=True)
        thread.start()
        return thread

    def start(self) -> Stack:
        """Everything, in order."""
        try:
            self.start_infra()
            self.start_services()
        except BaseException:
            self.stop()
            raise
        return self

    # --------------------------------------------------------------- supervise

    def supervise_once(self) -> None:
        """Restart services that died unexpectedly (after a delay, a bounded number of times)."""
        for svc in list(self.services):
            if svc.failed or svc.proc is None or svc.proc.poll() is None:
                continue
            if self._stopping.is_set():
                return
            code = svc.proc.returncode
            if svc.restarts >= self.settings.max_restarts:
                svc.failed = True
                logger.error(
                    "service failed for good name=%s exit_code=%s restarts=%d log=%s",
                    svc.name,
                    code,
                    svc.restarts,
                    svc.log_path,
                )
                continue
            if svc.died_at is None:
                svc.died_at = time.monotonic()
            if time.monotonic() - svc.died_at < self.settings.restart_delay_s:
                continue
            svc.restarts += 1
            logger.warning(
                "service died, restarting name=%s exit_code=%s restart=%d",
                svc.name,
                code,
                svc.restarts,
            )
            svc.start()

    def supervise_in_background(self, interval: float = 0.5) -> threading.Thread:
        """Supervise from a thread until :meth:`stop` (used by tests)."""

        def loop() -> None:
            while not self._stopping.wait(interval):
                with self._control_lock:
                    self.supervise_once()

        thread = threading.Thread(target=loop, name="stack-supervisor", daemon=True)
        thread.start()
        return thread

    def service(self, name: str) -> ServiceProcess:
        """The service process called ``name`` (e.g. ``generator-0``)."""
        return next(s for s in self.services if s.name == name)

    def run_forever(self) -> None:
        """Supervise and take control commands until SIGINT/SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self._stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self._stopping.set())
        self.listen_for_commands()
        while not self._stopping.wait(0.5):
            with self._control_lock:
                self.supervise_once()

    # -------------------------------------------------------------------- stop

    def stop(self) -> None:
        """API first (no new work), then the stages, simulators, database, broker."""
        self._stopping.set()
        for svc in reversed(self.services):
            code = svc.stop()
            logger.info("service stopped name=%s exit_code=%s", svc.name, code)
        for sim in self.simulators:
            sim.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.kafka is not None:
            self.kafka.stop()


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for a banner or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def main() -> None:
    """``make up``."""
    setup_logging("stack")
    try:
        settings = load_settings(StackSettings)
    except ConfigError as exc:
        logger.error("cannot start: %s", exc)
        sys.exit(2)
    stack = Stack(settings)
    stack.start()
    api = f"http://{settings.api_host}:{settings.api_port}"
    banner = [
        "",
        "POD Engine is up.",
        f"  API        {api}   (OpenAPI docs: {api}/docs)",
        f"  Kafka      {stack.bootstrap}",
        f"  PostgreSQL {redact_url(stack.database_url)}",
        *(f"  simulator  {sim.name:<10} {sim.url}" for sim in stack.simulators),
        f"  logs       {stack.log_dir}",
        "Press Ctrl+C to stop.",
        "",
    ]
    sys.stderr.write("\n".join(banner) + "\n")
    try:
        stack.run_forever()
    finally:
        logger.info("shutting down")
        stack.stop()
        logger.info("stopped")


if __name__ == "__main__":
    main()
