"""The pool itself: stage processes started, restarted, scaled and stopped.

Each instance is a child process (``python -m services.<stage>``) named by its slot,
``<stage>-<n>``, which is also its ``INSTANCE_ID`` (heartbeats, ``/workers`` and restarts use it).
A child that dies unexpectedly is restarted after ``restart_delay_s``, at most ``max_restarts``
times; then it is left failed (the monitor's missing-heartbeat alert names it). Children are bound
to the manager (:mod:`shared.platform.lifecycle`), and the manager records their pids so that a new
manager on the same state folder stops any left behind by one that was killed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypedDict

from confluent_kafka.admin import AdminClient

from services.pool.settings import PoolSettings
from shared.contract.events import ControlCommand, PoolScaledPayload, WorkerExitedPayload
from shared.contract.topics import STAGES, Stage
from shared.pipeline.acls import STAGE_PASSWORD_PREFIX, stage_credential_env
from shared.platform.lifecycle import (
    popen,
    read_records,
    record_of,
    stop_recorded,
    supervise,
    write_records,
)

logger = logging.getLogger(__name__)


def stage_env(env: Mapping[str, str], stage: str) -> dict[str, str]:
    """A stage process's environment: the manager's, with the stage's own Kafka login
    (``KAFKA_SASL_PASSWORD_<STAGE>``, principal = the stage's name) in place of the manager's
    when one is given, and no stage's login but its own."""
    password_var = stage_credential_env(stage)
    out = {k: v for k, v in env.items() if not k.startswith(STAGE_PASSWORD_PREFIX)}
    if env.get(password_var):
        out["KAFKA_SASL_USERNAME"] = stage
        out["KAFKA_SASL_PASSWORD"] = env[password_var]
    return out


@dataclass
class ServiceProcess:
    """One service instance run as a child process."""

    name: str
    module: str
    env: dict[str, str]
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failed: bool = False
    died_at: float | None = None
    started_at: float = field(default=0.0)
    # Run as this (uid, gid) with no supplementary groups (a parent that is root only), and with
    # this interpreter (one that user may run); unset: as this process, with its interpreter.
    user: tuple[int, int] | None = None
    python: str = sys.executable

    @property
    def service(self) -> str:
        return self.name.rsplit("-", 1)[0]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start (or start again) the process, bound to this one."""
        log: IO[bytes] | None = None
        if self.log_path is not None:
            log = open(self.log_path, "ab")  # noqa: SIM115 — the child keeps it open
        try:
            # Dies with this process (shared.platform.lifecycle); Ctrl+C reaches the supervisor,
            # which stops us in order.
            self.proc = popen(
                [self.python, "-m", self.module],
                env=supervise(self.env),
                stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,
                user=None if self.user is None else self.user[0],
                group=None if self.user is None else self.user[1],
                extra_groups=None if self.user is None else [],
            )
        finally:
            if log is not None:
                log.close()
        self.started_at = time.time()
        self.died_at = None
        logger.info("service started name=%s pid=%d", self.name, self.proc.pid)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("service did not stop in time, killing name=%s", self.name)
            self.proc.kill()
            return self.proc.wait()


def describe_exit(code: int | None) -> str:
    """``exit 1`` or ``signal SIGKILL``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


class WorkerPool:
    """Every stage's instances under one manager."""

    def __init__(self, settings: PoolSettings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.instances: list[ServiceProcess] = []
        self.dir = settings.pool_dir
        self.stopping = False
        # Scales carried out since the caller last took them (for reports and alerts).
        self.scaled: list[PoolScaledPayload] = []

    # ------------------------------------------------------------------ start / stop

    def start(self) -> None:
        """Stop leftovers of an earlier manager, then start WORKER_COUNT of every stage."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.settings.pool_log_dir is not None:
            self.settings.pool_log_dir.mkdir(parents=True, exist_ok=True)
        self.stop_leftovers()
        self._record()
        for stage in self.settings.stages():
            outcome = self.scale(stage, self.settings.workers_for(stage))
            if outcome.startswith("refused"):
                logger.error("initial scale %s", outcome)
        self.scaled.clear()  # starting is not scaling: nothing to report

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop every instance gracefully, in parallel (SIGKILL after ``timeout_s``, by default
        ``stop_timeout_s``), and forget them."""
        self.stopping = True
        for svc in self.instances:
            if svc.running():
                assert svc.proc is not None
                svc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + (timeout_s or self.settings.stop_timeout_s)
        for svc in self.instances:
            code = svc.stop(max(0.1, deadline - time.monotonic()))
            logger.info("service stopped name=%s exit=%s", svc.name, describe_exit(code))
        self.instances.clear()
        self._record()

    def stop_leftovers(self) -> list[int]:
        """Stop processes recorded by an earlier manager of this state folder that outlived
        it; returns their pids. A pid is only touched if it is still the recorded process."""
        return stop_recorded(
            read_records(self.records_path)["processes"],
            grace_s=self.settings.stop_timeout_s,
            left_by="a pool manager that was killed",
        )

    @property
    def records_path(self) -> Path:
        """The stage processes this manager runs (pid and start time): what a successor on the
        same state folder stops if this manager was killed (``make up`` reads it too)."""
        return self.dir / "children.json"

    # ------------------------------------------------------------------ scale / restart

    def of(self, stage: str) -> list[ServiceProcess]:
        """The instances of one stage, in slot order."""
        return [s for s in self.instances if s.service == stage]

    def partitions_of(self, stage: str) -> int:
        """The ceiling of useful instances: the fewest partitions among the stage's inputs."""
        admin = AdminClient(self.settings.client_config())
        topics = admin.list_topics(timeout=10).topics
        counts = [len(topics[t].partitions) for t in STAGES[stage].inputs if t in topics]
        return min(counts) if counts else self.settings.kafka_partitions

    def scale(self, stage: str, count: int) -> str:
        """Run ``count`` instances of ``stage``; refuse more than its partitions can feed."""
        if stage not in STAGES:
            return f"refused: unknown service {stage!r}"
        if stage not in self.settings.stages():
            return (
                f"refused: {stage} publishes to a channel this deployment does not sell on "
                f"(PUBLISH_CHANNELS={','.join(self.settings.publish_channels)})"
            )
        if count > 0:
            ceiling = self.partitions_of(stage)
            if count > ceiling:
                return (
                    f"refused: {stage} has {ceiling} partitions per input topic, so at most "
                    f"{ceiling} instances can share them (asked for {count}); "
                    "raise KAFKA_PARTITIONS to go further"
                )
        running = self.of(stage)
        for i in range(len(running), count):
            self._add(f"{stage}-{i}", STAGES[stage])
        for svc in reversed(running[count:]):
            self.instances.remove(svc)
            code = svc.stop(self.settings.stop_timeout_s)
            logger.info("instance retired name=%s exit=%s", svc.name, describe_exit(code))
        self._record()
        logger.info("scaled service=%s from=%d to=%d", stage, len(running), count)
        if count != len(running):
            self.scaled.append(
                PoolScaledPayload(service=stage, from_count=len(running), to_count=count)
            )
        return f"scaled {stage} from {len(running)} to {count}"

    def restart(self, instance_id: str) -> str:
        """Restart one instance gracefully (SIGTERM, wait, start again)."""
        svc = next((s for s in self.instances if s.name == instance_id), None)
        if svc is None:
            return f"refused: no instance {instance_id!r}"
        svc.stop(self.settings.stop_timeout_s)
        svc.failed = False
        svc.start()
        self._record()
        return f"restarted {instance_id}"

    def apply(self, command: ControlCommand) -> str:
        """Carry out one control command; returns what happened (also logged)."""
        c = command.payload
        if c.action == "restart" and c.instance_id:
            outcome = self.restart(c.instance_id)
        elif c.action == "scale" and c.worker_count is not None:
            stages = [c.service] if c.service else self.settings.stages()
            outcome = "; ".join(self.scale(st, c.worker_count) for st in stages)
        else:
            outcome = f"refused: incomplete command {c.model_dump_json()}"
        logger.info("control command applied action=%s outcome=%s", c.action, outcome)
        return outcome

    def _add(self, name: str, stage: Stage) -> ServiceProcess:
        log = None
        if self.settings.pool_log_dir is not None:
            log = self.settings.pool_log_dir / f"{name}.log"
        env = {**stage_env(self.env, stage.name), "INSTANCE_ID": name}
        if stage.channel is not None:
            env["CHANNEL"] = stage.channel  # one publisher package, one process per channel
        svc = ServiceProcess(name, stage.module, env, log)
        svc.start()
        self.instances.append(svc)
        return svc

    # ------------------------------------------------------------------ supervise

    def supervise_once(self) -> list[WorkerExitedPayload]:
        """Restart instances that died unexpectedly (after a delay, a bounded number of
        times); returns each death seen, for reports and alerts."""
        events: list[WorkerExitedPayload] = []
        for svc in list(self.instances):
            if self.stopping or svc.failed or svc.running() or svc.proc is None:
                continue
            code = svc.proc.returncode
            if svc.died_at is None:
                svc.died_at = time.monotonic()
                events.append(self._death(svc, code))
            if svc.restarts >= self.settings.max_restarts:
                svc.failed = True
                logger.error(
                    "service failed for good name=%s exit=%s restarts=%d",
                    svc.name,
                    describe_exit(code),
                    svc.restarts,
                )
                continue
            if time.monotonic() - svc.died_at < self.settings.restart_delay_s:
                continue
            svc.restarts += 1
            logger.warning(
                "service died, restarting name=%s exit=%s restart=%d",
                svc.name,
                describe_exit(code),
                svc.restarts,
            )
            svc.start()
            self._record()
        return events

    def _death(self, svc: ServiceProcess, code: int | None) -> WorkerExitedPayload:
        return WorkerExitedPayload(
            service=svc.service,
            instance_id=svc.name,
            exit=describe_exit(code),
            exit_code=code,
            restarts=svc.restarts,
            restarting=svc.restarts < self.settings.max_restarts,
            max_restarts=self.settings.max_restarts,
        )

    def status(self) -> PoolStatus:
        """Every instance: name, pid, running, restarts, failed (also the status file)."""
        return {
            "manager_pid": os.getpid(),
            "instances": [
                {
                    "name": s.name,
                    "service": s.service,
                    "pid": s.pid,
                    "running": s.running(),
                    "restarts": s.restarts,
                    "failed": s.failed,
                }
                for s in self.instances
            ],
        }

    def _record(self) -> None:
        # The pids of what runs now, with their start times: what a successor must stop if
        # this manager is killed; and a status file for operators and tests.
        write_records(
            self.records_path,
            (record_of(s.name, s.pid) for s in self.instances if s.running() and s.pid),
        )
        _write_json(self.dir / "status.json", self.status())

    def record(self) -> None:
        """Write the pid records and status file now."""
        self._record()


class InstanceStatus(TypedDict):
    """One instance as the pool's status file shows it."""

    name: str
    service: str
    pid: int | None
    running: bool
    restarts: int
    failed: bool


class PoolStatus(TypedDict):
    """The pool's status file (``status.json``): for operators and tests."""

    manager_pid: int
    instances: list[InstanceStatus]


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
