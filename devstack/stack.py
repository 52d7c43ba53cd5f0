"""The whole stack on one machine: ``make up`` (``python -m devstack.stack``).

Starts what is not configured — the local Kafka broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is
set, embedded PostgreSQL unless ``DATABASE_URL`` is set, a vendor simulator for each vendor
without credentials — creates the topics, applies the migrations, then runs the worker-pool
manager (``python -m services.pool``, which runs ``WORKER_COUNT`` processes per stage, as it does
under compose) and the API until Ctrl+C, and stops everything gracefully in reverse order. Tests
and benchmarks use :class:`Stack` on their own ports and state folders.

"POD Engine is up" is said once the API answers ``/health/ready?stages=true``: the broker and
the database answer and every stage holds its input partitions, so a job submitted the moment
it is printed is picked up at once.

Nothing it starts outlives it (:mod:`shared.platform.lifecycle`): each child dies with it, even when
it is SIGKILLed or its terminal closes, and ``stack.json`` in the state folder records every process
it started (pid and start time), so that the next ``make up`` on the same folder stops whatever a
killed one left before it binds a port, and refuses to start while that one still runs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from confluent_kafka.admin import AdminClient
from pydantic import Field, SecretStr, create_model

from devstack.channel_sims import channel_simulator, simulator_env
from devstack.launch.kafka import LocalKafka, LocalKafkaCluster, SaslListener
from devstack.launch.ports import free_port
from devstack.launch.postgres import SERVICE_ROLE, STOP_SIGNALS, LocalPostgres
from devstack.launch.private import secret_once, write_private
from services.pool.settings import WorkerCountSettings
from services.pool.supervisor import ServiceProcess, describe_exit
from shared.adapters.credentials import CredentialSettings
from shared.adapters.vendors.channels import ChannelSpec
from shared.adapters.vendors.direct import direct_specs
from shared.contract.topics import JOBS_BY_PRIORITY, STAGES, ChannelSettings, ensure_topics
from shared.pipeline import acls
from shared.platform.db import migrate
from shared.platform.errors import ConfigError
from shared.platform.lifecycle import (
    read_records,
    record_of,
    still_running,
    stop_recorded,
    write_records,
)
from shared.platform.logs import redact_url, setup_logging
from shared.platform.settings import (
    DatabaseSettings,
    KafkaSettings,
    PodSettings,
    StateSettings,
    load_settings,
)
from simulators.process import SimulatorProcess

logger = logging.getLogger(__name__)


def sim_port_setting(simulator: str) -> str:
    """The setting of a simulator's port under ``make up`` (``SIM_<SIMULATOR>_PORT``)."""
    return f"sim_{simulator}_port"


def direct_channel_settings(specs: tuple[ChannelSpec[Any], ...]) -> type[PodSettings]:
    """For each direct sales channel, the settings ``make up`` reads of it: its simulator's port
    and its credential (unset: the simulator is started for it)."""
    fields: dict[str, Any] = {}
    for spec in specs:
        sim = channel_simulator(spec.name)
        fields[sim_port_setting(sim.module)] = (int, sim.port)
        for credential in (spec.credential, *spec.other_credentials):
            fields[credential.lower()] = (SecretStr | None, None)
    return create_model("DirectChannelStackSettings", __base__=PodSettings, **fields)


# Built from the registry (shared.adapters.vendors.direct), so a new channel adds no field here;
# mypy sees the base class only (read them with StackSettings.simulator_port / .credential_of).
if TYPE_CHECKING:
    _DirectChannelStackSettings = PodSettings
else:
    _DirectChannelStackSettings = direct_channel_settings(direct_specs())


class StackSettings(
    KafkaSettings,
    DatabaseSettings,
    StateSettings,
    WorkerCountSettings,
    ChannelSettings,
    _DirectChannelStackSettings,
):
    """What ``make up`` starts and where (the README's Configuration table); each direct sales
    channel adds its simulator's port and its credential (``SIM_SHOPIFY_PORT``,
    ``SHOPIFY_ACCESS_TOKEN``)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=3000, ge=1, le=65535)
    claude_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    comfyui_api_url: str | None = None
    printify_api_key: SecretStr | None = None
    printify_api_url: str | None = None
    sim_anthropic_port: int = 8190
    sim_comfyui_port: int = 8188
    sim_printify_port: int = 8189
    # 3 = a local three-node KRaft cluster (replication factor 3, min.insync.replicas 2).
    kafka_nodes: int = Field(default=1, ge=1, le=5)
    # How often each consumer group member beats (KIP-848); a member is fenced after three
    # missed beats. Every beat is a request: shorter moves partitions sooner, costs more at rest.
    kafka_group_heartbeat_ms: int = Field(default=5000, ge=500, le=30_000)
    restart_delay_s: float = Field(default=5.0, ge=0)
    max_restarts: int = Field(default=3, ge=0)
    # How long "up" may take: the API answering and every stage holding its partitions.
    ready_timeout_s: float = Field(default=180.0, gt=0)
    # A process left by a killed stack gets its stop signal, then SIGKILL after this.
    stale_grace_s: float = Field(default=20.0, gt=0)
    # The local broker's clients log in with SASL/SCRAM, one principal per service; this adds
    # a loopback PLAINTEXT listener whose anonymous user may do anything: for test harnesses
    # (isolated_settings) only, never `make up`.
    kafka_test_listener_port: int | None = Field(default=None, ge=1, le=65535)
    # PostgreSQL's own default (128 MB) keeps little of a big shop's indexes in its cache: at
    # a million jobs the monitor folded at 0.79 of an empty database's rate with it, 0.90 with
    # 2 GB (bench/scale.py). Memory is taken as pages are used, not at start.
    postgres_shared_buffers: str = Field(default="1GB", pattern=r"^[0-9]+(kB|MB|GB)$")

    def simulator_port(self, simulator: str) -> int:
        """The port a simulator is started on (``SIM_<SIMULATOR>_PORT``)."""
        return int(getattr(self, sim_port_setting(simulator)))

    def credential_of(self, spec: ChannelSpec[Any]) -> SecretStr | None:
        """A direct channel's credential (or one of its others), None when none is set (the
        simulator stands in)."""
        for credential in (spec.credential, *spec.other_credentials):
            value = getattr(self, credential.lower())
            if isinstance(value, SecretStr) and value.get_secret_value():
                return value
        return None


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
            "kafka_test_listener_port",
            *(sim_port_setting(channel_simulator(s.name).module) for s in direct_specs()),
        )
    }
    return StackSettings(pod_state_dir=state_dir, **{**ports, **overrides})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServiceUser:
    """Run the services (the pool manager, hence every stage, and the API) as another user, as
    the image does: ``state_dir`` is their POD_STATE_DIR (the infrastructure keeps the stack's),
    ``python`` an interpreter that user may run. Needs a stack started by root."""

    uid: int
    gid: int
    state_dir: Path
    python: str


class StackBusy(RuntimeError):
    """Another stack runs on the same state folder (its ports and its data)."""


class Stack:
    """Infrastructure, simulators and services, started and stopped together."""

    def __init__(
        self,
        settings: StackSettings,
        *,
        extra_env: dict[str, str] | None = None,
        run_as: ServiceUser | None = None,
    ) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.run_as = run_as
        self.state_dir = settings.pod_state_dir
        # The services' own state (the pool manager's records): the stack's, or their user's.
        self.services_state_dir = run_as.state_dir if run_as else self.state_dir
        self.log_dir = self.state_dir / "logs"
        self.kafka: LocalKafka | LocalKafkaCluster | None = None
        self.postgres: LocalPostgres | None = None
        self.simulators: list[SimulatorProcess] = []
        self.services: list[ServiceProcess] = []
        # Where the services connect (the SASL listener of a local broker) ...
        self.client_bootstrap = settings.bootstrap
        # ... and the test harness (the local broker's anonymous listener, if it has one).
        self.bootstrap = settings.bootstrap
        # Each principal's password (shared.pipeline.acls), when the stack runs the broker.
        self.kafka_users: dict[str, str] = {}
        self.database_url = settings.url
        self._stopping = threading.Event()
        self._env: dict[str, str] = {}
        self._vendor_env: dict[str, str] | None = None
        self._claimed = False

    # ------------------------------------------------------------ what it started

    @property
    def records_path(self) -> Path:
        """Every process this stack started, with its start time (``shared.platform.lifecycle``)."""
        return self.state_dir / "stack.json"

    def claim(self) -> None:
        """Make the state folder ours: refuse while another stack runs on it (StackBusy), and
        stop whatever a killed one left running (its broker, PostgreSQL, simulators, pool
        manager and API, and the stage processes its pool manager recorded), before anything
        of ours binds a port."""
        if self._claimed:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        recorded = read_records(self.records_path)
        owner = recorded.get("stack")
        if owner is not None and still_running(owner) is not None:
            raise StackBusy(
                f"another stack runs on {self.state_dir} (pid {owner['pid']}): stop it first "
                "(Ctrl+C in its terminal)"
            )
        pool_records = read_records(self.state_dir / "pool" / "children.json")
        stop_recorded(
            [*recorded.get("processes", []), *pool_records.get("processes", [])],
            grace_s=self.settings.stale_grace_s,
            left_by="a stack that was killed",
        )
        self._claimed = True
        self._record()

    def _started(self) -> list[tuple[str, int | None, int]]:
        """(name, pid, stop signal) of every process started and maybe still running."""
        out: list[tuple[str, int | None, int]] = []
        nodes = self.kafka.nodes if isinstance(self.kafka, LocalKafkaCluster) else [self.kafka]
        for node in nodes:
            if node is not None and node.proc is not None:
                out.append((f"kafka-{node.node_id}", node.proc.pid, signal.SIGTERM))
        if self.postgres is not None and self.postgres.proc is not None:
            out.append(("postgres", self.postgres.proc.pid, STOP_SIGNALS["fast"]))
        for sim in self.simulators:
            if sim.proc is not None:
                out.append((f"sim-{sim.name}", sim.proc.pid, signal.SIGTERM))
        for svc in self.services:
            out.append((svc.name, svc.pid, signal.SIGTERM))
        return out

    def _record(self) -> None:
        if not self._claimed:
            return
        write_records(
            self.records_path,
            (
                record_of(name, pid, stop_signal=sig)
                for name, pid, sig in self._started()
                if pid is not None
            ),
            stack=record_of("stack", os.getpid()),
        )

    # ------------------------------------------------------------------ start

    def start_infra(self) -> None:
        """Broker and database (local ones unless configured), topics, migrations."""
        self.claim()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        replicas = s.kafka_replication_factor
        admin_config = s.client_config()
        if s.kafka_bootstrap_servers is None:
            sasl = SaslListener(port=s.kafka_port, users=self._kafka_users(), admin=acls.ADMIN)
            # Without the test listener, nothing but SASL: `make up`'s broker has no listener
            # where an anonymous client may read or write.
            test_port = s.kafka_test_listener_port
            plaintext = test_port is not None
            if s.kafka_nodes >= 3:
                self.kafka = LocalKafkaCluster(
                    self.state_dir,
                    nodes=s.kafka_nodes,
                    port=test_port or s.kafka_port,
                    controller_port=s.kafka_controller_port,
                    partitions=s.kafka_partitions,
                    group_heartbeat_ms=s.kafka_group_heartbeat_ms,
                    sasl=sasl,
                    plaintext=plaintext,
                )
                replicas = max(replicas, self.kafka.replicas)
                self.client_bootstrap = ",".join(
                    n.sasl.bootstrap for n in self.kafka.nodes if n.sasl is not None
                )
            else:
                self.kafka = LocalKafka(
                    self.state_dir,
                    port=test_port or s.kafka_port,
                    controller_port=s.kafka_controller_port,
                    partitions=s.kafka_partitions,
                    group_heartbeat_ms=s.kafka_group_heartbeat_ms,
                    sasl=sasl,
                    plaintext=plaintext,
                )
                self.client_bootstrap = sasl.bootstrap
            self.kafka.start()
            self.bootstrap = self.kafka.bootstrap
            admin_config = {
                **self.kafka.admin_config(),
                "bootstrap.servers": self.bootstrap,
            }
            self._record()
        if s.database_url is None:
            self.postgres = LocalPostgres(
                self.state_dir, port=s.postgres_port, shared_buffers=s.postgres_shared_buffers
            ).start()
            self.database_url = self.postgres.url
            self._record()
        admin = AdminClient({**admin_config, "bootstrap.servers": self.bootstrap})
        outcome = ensure_topics(
            admin,
            default_partitions=s.kafka_partitions,
            replication_factor=replicas,
            min_insync_replicas=s.kafka_min_insync_replicas,
        )
        logger.info(
            "topics ready created=%d total=%d",
            sum(1 for v in outcome.values() if v == "created"),
            len(outcome),
        )
        if self.kafka is not None:
            # Principals added since the broker's storage was formatted (a new stage), and
            # the ACL table as the registry has it now.
            acls.ensure_users(admin, self.kafka_users)
            acls.apply_acls(admin)
            self._wait_acls_in_effect()
            self.write_submitter_properties()
        applied = migrate(self.database_url)
        logger.info("migrations applied count=%d", len(applied))

    def _wait_acls_in_effect(self, timeout: float = 60.0) -> None:
        """Wait until every node enforces the ACL table: a node applies new ACLs when its copy
        of the cluster's metadata catches up, a moment after the controller took them (seconds
        on a three-node cluster, measured), and a service started before would be refused."""
        nodes = self.kafka.nodes if isinstance(self.kafka, LocalKafkaCluster) else [self.kafka]
        wanted = set(JOBS_BY_PRIORITY)
        deadline = time.monotonic() + timeout
        for node in nodes:
            if node is None or node.sasl is None:
                continue
            # The submitter's view, asked of this node alone (a new client's first metadata
            # request goes to its bootstrap server): its job topics, once the node has its ACLs.
            config = {
                **node.sasl.admin_config(),
                "sasl.username": acls.SUBMITTER,
                "sasl.password": self.kafka_users[acls.SUBMITTER],
            }
            while True:
                md = AdminClient(config).list_topics(timeout=10)
                seen = {name for name, t in md.topics.items() if t.error is None}
                if wanted <= seen:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"kafka node {node.node_id} never applied the ACLs")
                time.sleep(0.2)

    @property
    def users_path(self) -> Path:
        """The local broker's principals and their passwords (made at the first start, mode
        0600), beside its data: the two are only valid together."""
        return self.state_dir / "kafka" / "users.json"

    @property
    def submitter_properties_path(self) -> Path:
        """The submitter's client settings, for another system to submit jobs with."""
        return self.state_dir / "submitter.properties"

    def _kafka_users(self) -> dict[str, str]:
        """Every principal's password: kept from an earlier start, made for new principals."""
        path = self.users_path
        users: dict[str, str] = {}
        if path.exists():
            users = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
        elif (path.parent / "data" / "meta.properties").exists() or any(
            path.parent.glob("node-*/data/meta.properties")
        ):
            raise ConfigError(
                f"the broker's data in {path.parent} was made before it required SASL logins "
                f"(no {path.name} beside it): remove {path.parent} to start from an empty broker"
            )
        wanted = [acls.ADMIN, *acls.principals()]
        if all(name in users for name in wanted):
            self.kafka_users = users
            return users
        users.update({n: secrets.token_urlsafe(24) for n in wanted if n not in users})
        write_private(path, json.dumps(users, indent=2) + "\n")
        logger.info("kafka principals made path=%s count=%d", path, len(users))
        self.kafka_users = users
        return users

    def write_submitter_properties(self) -> None:
        """``.state/submitter.properties``: what another system needs to submit jobs."""
        write_private(
            self.submitter_properties_path,
            acls.submitter_properties(self.client_bootstrap, self.kafka_users[acls.SUBMITTER]),
        )

    def kafka_env(self, principal: str) -> dict[str, str]:
        """A service's Kafka settings: the client listener and, on the stack's own broker, its
        principal's login."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.client_bootstrap}
        if self.kafka is not None:
            env |= {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": acls.MECHANISM,
                "KAFKA_SASL_USERNAME": principal,
                "KAFKA_SASL_PASSWORD": self.kafka_users[principal],
            }
        return env

    def pool_kafka_env(self) -> dict[str, str]:
        """The pool manager's own login, and each stage's, which it hands to that stage alone."""
        env = self.kafka_env(acls.POOL)
        if self.kafka is not None:
            for stage in STAGES:
                env[acls.stage_credential_env(stage)] = self.kafka_users[stage]
        return env

    def vendor_env(self) -> dict[str, str]:
        """Vendor settings for the services: real ones when configured, else a simulator's
        (started on the first call)."""
        if self._vendor_env is not None:
            return self._vendor_env
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
        # A direct sales channel that is sold on without an account of its own: its simulator.
        for spec in direct_specs():
            if spec.name in s.publish_channels and s.credential_of(spec) is None:
                module = channel_simulator(spec.name).module
                sim = self._simulator(module, s.simulator_port(module))
                env.update(simulator_env(spec, sim.url))
        self._vendor_env = env
        return env

    def credentials_key_env(self) -> dict[str, str]:
        """CREDENTIALS_KEY for the services when none is set: one made once in the state
        folder and reused, so the OAuth tokens sealed with it (Etsy's rotating refresh token)
        stay readable across restarts."""
        if (
            self.extra_env.get("CREDENTIALS_KEY")
            or load_settings(CredentialSettings).credentials_key
        ):
            return {}  # the deployment's own (the environment or CONFIG_PATH)
        path = self.state_dir / "credentials.key"
        key, made = secret_once(
            path, lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        )
        if made:
            logger.info("credentials key made path=%s", path)
        return {"CREDENTIALS_KEY": key}

    def _simulator(self, name: str, port: int) -> SimulatorProcess:
        sim = SimulatorProcess(
            name, port, env=self.extra_env, log_path=self.log_dir / f"sim-{name}.log"
        ).start()
        self.simulators.append(sim)
        self._record()
        logger.info("simulator started name=%s url=%s", name, sim.url)
        return sim

    def start_services(self) -> None:
        """The worker-pool manager (which starts every stage), then the API."""
        s = self.settings
        self._env = {
            **os.environ,
            **self.extra_env,
            **self.credentials_key_env(),
            **self.vendor_env(),
            # The layout the topics were made with: what `pod doctor` checks them against.
            "KAFKA_PARTITIONS": str(s.kafka_partitions),
            "DATABASE_URL": self.database_url,
            "API_HOST": s.api_host,
            "API_PORT": str(s.api_port),
            "POD_STATE_DIR": str(self.services_state_dir),
            "POOL_LOG_DIR": str(self.log_dir),
            "WORKER_COUNT": str(s.worker_count),
            "RESTART_DELAY_S": str(s.restart_delay_s),
            "MAX_RESTARTS": str(s.max_restarts),
            "PYTHONUNBUFFERED": "1",
            "PUBLISH_CHANNELS": ",".join(s.publish_channels),
            **{f"WORKER_COUNT_{stage.upper()}": str(s.workers_for(stage)) for stage in STAGES},
        }
        if self.run_as is not None:
            # As in a container: each stage's output goes to the manager's, not to a file in a
            # folder the user may not write.
            del self._env["POOL_LOG_DIR"]
        self._add_service("pool", "services.pool", self.pool_kafka_env())
        self._add_service("api", "services.api", self.kafka_env(acls.API))

    def _add_service(self, name: str, module: str, kafka_env: dict[str, str]) -> ServiceProcess:
        base = _without_kafka_logins(self._env) if self.kafka is not None else self._env
        env = {**base, **kafka_env, "INSTANCE_ID": name}
        svc = ServiceProcess(name, module, env, self.log_dir / f"{name}.log")
        if self.run_as is not None:
            svc.user = (self.run_as.uid, self.run_as.gid)
            svc.python = self.run_as.python
        svc.start()
        self.services.append(svc)
        self._record()
        return svc

    # ------------------------------------------------------------ the pool, as seen from here

    def instances(self) -> list[dict[str, Any]]:
        """The pool manager's instances (name, service, pid, running, restarts, failed)."""
        try:
            status = json.loads((self.services_state_dir / "pool" / "status.json").read_text())
        except (OSError, ValueError):
            return []
        return list(status.get("instances", []))

    def instance(self, name: str) -> dict[str, Any] | None:
        """One instance of the pool by name (e.g. ``generator-0``), if it is there."""
        return next((i for i in self.instances() if i["name"] == name), None)

    def kill_instance(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal one stage process (chaos tests); returns its pid."""
        found = self.instance(name)
        if found is None or not found["running"] or found["pid"] is None:
            raise LookupError(f"no running instance {name!r}")
        os.kill(int(found["pid"]), sig)
        return int(found["pid"])

    def service(self, name: str) -> ServiceProcess:
        """A process this stack started itself: ``pool`` or ``api``."""
        return next(s for s in self.services if s.name == name)

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
        """Restart the pool manager or the API if one died (after a delay, boundedly)."""
        for svc in self.services:
            if self._stopping.is_set() or svc.failed or svc.running() or svc.proc is None:
                continue
            if svc.died_at is None:
                svc.died_at = time.monotonic()
                logger.error(
                    "service died name=%s exit=%s", svc.name, describe_exit(svc.proc.returncode)
                )
            if svc.restarts >= self.settings.max_restarts:
                svc.failed = True
                logger.error("service failed for good name=%s log=%s", svc.name, svc.log_path)
            elif time.monotonic() - svc.died_at >= self.settings.restart_delay_s:
                svc.restarts += 1
                svc.start()
                self._record()

    def supervise_in_background(self, interval: float = 0.5) -> threading.Thread:
        """Supervise from a thread until :meth:`stop` (used by tests)."""

        def loop() -> None:
            while not self._stopping.wait(interval):
                self.supervise_once()

        thread = threading.Thread(target=loop, name="stack-supervisor", daemon=True)
        thread.start()
        return thread

    @property
    def stopping(self) -> bool:
        """Asked to stop (a signal, or :meth:`stop`)."""
        return self._stopping.is_set()

    def stop_on_signals(self) -> None:
        """SIGINT (Ctrl+C), SIGTERM and SIGHUP (its terminal closed) stop the stack gracefully."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self._stopping.set())

    def run_forever(self) -> None:
        """Supervise until SIGINT/SIGTERM/SIGHUP."""
        self.stop_on_signals()
        while not self._stopping.wait(0.5):
            self.supervise_once()

    def readiness(self) -> dict[str, Any] | None:
        """The API's ``/health/ready?stages=true`` answer (None while the API does not answer)."""
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/health/ready"
        try:
            resp = httpx.get(url, params={"stages": "true"}, timeout=10)
        except httpx.HTTPError:
            return None
        try:
            body = resp.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def wait_ready(self, timeout: float | None = None, interval: float = 0.2) -> bool:
        """Supervise until the API answers and every stage holds its input partitions (True);
        False after ``timeout`` (``ready_timeout_s``) or once stopping. Logs what it waits for
        every few seconds."""
        timeout = timeout or self.settings.ready_timeout_s
        started = time.monotonic()
        deadline = started + timeout
        next_log = time.monotonic() + 5
        waiting_for = "the API to answer"
        while not self._stopping.is_set():
            view = self.readiness()
            if view is not None:
                if view.get("status") == "ok":
                    logger.info("ready waited_s=%.1f", time.monotonic() - started)
                    return True
                checks = view.get("checks") or {}
                waiting_for = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
            now = time.monotonic()
            if now > deadline:
                logger.error("not ready after %.0fs waiting_for=%s", timeout, waiting_for)
                return False
            if now >= next_log:
                logger.info("waiting until ready waiting_for=%s", waiting_for)
                next_log = now + 5
            self.supervise_once()
            self._stopping.wait(interval)
        return False

    # -------------------------------------------------------------------- stop

    def stop(self) -> None:
        """API first (no new work), then the pool (it stops the stages), the simulators, the
        database and the broker."""
        self._stopping.set()
        for svc in reversed(self.services):
            code = svc.stop(60.0)
            logger.info("service stopped name=%s exit=%s", svc.name, describe_exit(code))
        for sim in self.simulators:
            sim.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if self._claimed:
            self.records_path.unlink(missing_ok=True)


def _without_kafka_logins(env: dict[str, str]) -> dict[str, str]:
    """The environment without any Kafka login (the stack gives each service its own)."""
    return {k: v for k, v in env.items() if not k.startswith("KAFKA_SASL_")}


def main() -> None:
    """``make up``."""
    setup_logging("stack")
    try:
        settings = load_settings(StackSettings)
    except ConfigError as exc:
        logger.error("cannot start: %s", exc)
        sys.exit(2)
    stack = Stack(settings)
    try:
        stack.start()
    except (StackBusy, ConfigError) as exc:
        logger.error("cannot start: %s", exc)
        sys.exit(2)
    try:
        stack.stop_on_signals()
        # "Up" only once a job submitted now is picked up at once: the API answers and every
        # stage holds its partitions (a newcomer's script submits the moment it reads this).
        ready = stack.wait_ready()
        if not stack.stopping:
            sys.stderr.write("\n".join(banner(stack, ready)) + "\n")
            stack.run_forever()
    finally:
        logger.info("shutting down")
        stack.stop()
        logger.info("stopped")


def banner(stack: Stack, ready: bool) -> list[str]:
    """What ``make up`` prints once it is up (or has waited ``READY_TIMEOUT_S`` in vain)."""
    settings = stack.settings
    api = f"http://{settings.api_host}:{settings.api_port}"
    if ready:
        headline = "POD Engine is up."
    else:
        headline = (
            "POD Engine started, but is NOT ready: a stage does not hold its partitions "
            f"(see {api}/health/ready?stages=true and the logs)."
        )
    return [
        "",
        headline,
        f"  API        {api}   (OpenAPI docs: {api}/docs)",
        f"  Kafka      {stack.client_bootstrap}"
        + ("   (SASL/SCRAM, one principal per service)" if stack.kafka is not None else ""),
        *(
            [
                f"  submit     {stack.submitter_properties_path}   (Kafka client settings of "
                "the `submitter` principal: it may write jobs.requested.* only)"
            ]
            if stack.kafka is not None
            else []
        ),
        f"  PostgreSQL {redact_url(stack.database_url)}"
        + (
            f"   (password: {stack.postgres.password_path(SERVICE_ROLE)})"
            if stack.postgres is not None
            else ""
        ),
        *(f"  simulator  {sim.name:<10} {sim.url}" for sim in stack.simulators),
        "  workers    pool manager: "
        + ", ".join(f"{st} x{settings.workers_for(st)}" for st in settings.stages()),
        f"  logs       {stack.log_dir}",
        "Press Ctrl+C to stop.",
        "",
    ]


if __name__ == "__main__":
    main()
