"""Local Apache Kafka (KRaft, each node a combined broker+controller) run from the jars that
``infra/kafka/jars.lock`` names (fetched and verified by ``devstack.jars``) on the Java that
``devstack.launch.java`` picks, with data and logs in the state folder: one node
(:class:`LocalKafka`), or a three-node cluster (:class:`LocalKafkaCluster`, ``KAFKA_NODES=3``)
whose topics are replicated three times with ``min.insync.replicas=2``, so that any one node
may die without losing an acknowledged write.

Used by ``make up`` and the test fixtures whenever ``KAFKA_BOOTSTRAP_SERVERS`` is unset.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from devstack.launch.java import java_executable
from devstack.launch.private import write_private
from shared.contract.topics import wait_for_broker
from shared.platform.lifecycle import popen
from shared.platform.settings import REPO_ROOT

logger = logging.getLogger(__name__)

KAFKA_LIB = REPO_ROOT / "infra" / "kafka" / "lib"
LOG4J_CONFIG = REPO_ROOT / "infra" / "kafka" / "log4j2.yaml"


@dataclass(frozen=True)
class SaslListener:
    """A client listener that authenticates with SASL/SCRAM (``SASL_PLAINTEXT``), as a managed
    cluster's does: ``users`` (name -> password) are created in the cluster's metadata when the
    storage is formatted (KRaft keeps SCRAM credentials there), so they exist before the node
    first answers.

    With ``admin`` (one of ``users``) the node also enforces ACLs (Kafka's
    ``StandardAuthorizer``, nothing allowed that no ACL grants) and nobody reaches it
    unauthenticated but through the loopback PLAINTEXT listener, if the node keeps one (the
    test harness's, whose ``User:ANONYMOUS`` is then a super user): brokers talk to each other
    over this listener as ``admin``, and to the controllers over SASL/PLAIN as ``admin`` (SCRAM
    credentials live in the metadata the controllers serve, so the controller listener cannot
    use them), and ``admin`` is the only super user besides."""

    port: int
    users: Mapping[str, str]
    mechanism: str = "SCRAM-SHA-512"
    admin: str | None = None

    def __post_init__(self) -> None:
        if self.admin is not None:
            password = self.users.get(self.admin)
            # It goes into a JAAS line between double quotes.
            if not password or not re.fullmatch(r"[A-Za-z0-9_.~-]+", password):
                raise ValueError(
                    "the admin's password must be set and of letters, digits and -_.~ only"
                )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def enforces_acls(self) -> bool:
        return self.admin is not None

    def admin_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka settings of a client logged in as the super user ``admin``."""
        if self.admin is None:
            raise ValueError("this listener has no admin")
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.admin,
            "sasl.password": self.users[self.admin],
        }

    def properties(self, *, anonymous_super_user: bool = False) -> list[str]:
        """The listener's lines of server.properties (and the authorizer's, with an admin)."""
        login = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        if self.admin is None:
            return [
                f"sasl.enabled.mechanisms={self.mechanism}",
                f"listener.name.sasl_plaintext.{self.mechanism.lower()}.sasl.jaas.config={login};",
            ]
        password = self.users[self.admin]
        me = f'username="{self.admin}" password="{password}"'
        supers = [f"User:{self.admin}", *(["User:ANONYMOUS"] if anonymous_super_user else [])]
        return [
            f"sasl.enabled.mechanisms={self.mechanism}",
            f"listener.name.sasl_plaintext.{self.mechanism.lower()}.sasl.jaas.config={login} {me};",
            f"sasl.mechanism.inter.broker.protocol={self.mechanism}",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'{me} user_{self.admin}="{password}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users={';'.join(supers)}",
        ]

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments that create the users."""
        args = []
        for name, password in self.users.items():
            args += ["--add-scram", f"{self.mechanism}=[name={name},password={password}]"]
        return args


def _server_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    partitions: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replicas: int = 1,
    group_heartbeat_ms: int = 5000,
    sasl: SaslListener | None = None,
    plaintext: bool = True,
) -> str:
    """One node's configuration; ``voters`` (``1@host:port,...``) makes it one of a cluster.
    ``plaintext=False``: no unauthenticated client listener (``sasl`` is the only one)."""
    min_isr = min(2, replicas)
    quorum = (
        f"controller.quorum.voters={voters}"
        if voters
        else f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}"
    )
    secured = sasl is not None and sasl.enforces_acls
    if not plaintext and not secured:
        raise ValueError("a node without a plaintext listener needs a SASL listener with an admin")
    controller_protocol = "SASL_PLAINTEXT" if secured else "PLAINTEXT"
    listeners = f"CONTROLLER://127.0.0.1:{controller_port}"
    protocols = f"CONTROLLER:{controller_protocol}"
    if plaintext:
        listeners = f"PLAINTEXT://127.0.0.1:{port},{listeners}"
        protocols = f"PLAINTEXT:PLAINTEXT,{protocols}"
    if sasl is not None:
        listeners += f",SASL_PLAINTEXT://127.0.0.1:{sasl.port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"listeners={listeners}",
            f"advertised.listeners={listeners}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={protocols}",
            # Brokers talk plaintext among themselves (loopback only), or as admin over SASL
            # where the node enforces ACLs.
            f"inter.broker.listener.name={'SASL_PLAINTEXT' if secured else 'PLAINTEXT'}",
            *(sasl.properties(anonymous_super_user=plaintext) if sasl is not None else []),
            quorum,
            f"log.dirs={data_dir}",
            f"num.partitions={partitions}",
            # As many replicas of the internal topics as there are nodes (one on a single
            # node); with three, an acknowledged write is on two at least.
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=10",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            # A replica that was down may not become leader and lose acknowledged writes.
            "unclean.leader.election.enable=false",
            # Fast joins and fast take-over of a killed consumer's partitions (KIP-848 groups).
            "group.initial.rebalance.delay.ms=0",
            # Three beats missed and a member's partitions move on (6 s at least).
            f"group.consumer.session.timeout.ms={max(6000, 3 * group_heartbeat_ms)}",
            "group.consumer.min.session.timeout.ms=5000",
            # Kafka's default beat (a member learns of a rebalance at its next one); each is a
            # request: at 2 s, the idle stack's four groups were a sixth of the broker's load.
            f"group.consumer.heartbeat.interval.ms={group_heartbeat_ms}",
            "group.consumer.min.heartbeat.interval.ms=500",
            # Topics come from the registry only, never from a typo in a producer.
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            # No no-op record in the metadata log every 500 ms: a third of the idle broker's CPU.
            "metadata.max.idle.interval.ms=0",
            # Thread pools sized for a development machine, not a server: each idle pool thread
            # wakes on its own timer, and every request woke a pool of eight handlers. Measured
            # (five idle consumers of 36 partitions): the broker took 3.7 % of a core with the
            # defaults (8 I/O, 3 network per listener, 10 background, 4 group coordinator
            # threads) and 2.3 % with these.
            "num.io.threads=2",
            "num.network.threads=1",
            "background.threads=2",
            "group.coordinator.threads=1",
            "share.coordinator.threads=1",
            "",
        ]
    )


class LocalKafka:
    """One local node whose data survives restarts (the state folder keeps it).

    Alone it is a single-node cluster; :class:`LocalKafkaCluster` makes three of them, each
    given its ``node_id``, the cluster's ``voters``, ``replicas`` and ``cluster_id``.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 9092,
        controller_port: int = 9093,
        partitions: int = 6,
        heap: str = "768m",
        node_id: int = 1,
        voters: str | None = None,
        replicas: int = 1,
        cluster_id: str | None = None,
        home: Path | None = None,
        group_heartbeat_ms: int = 5000,
        sasl: SaslListener | None = None,
        plaintext: bool = True,
    ) -> None:
        self.home = home or state_dir / "kafka"
        self.sasl = sasl
        self.plaintext = plaintext
        self.data_dir = self.home / "data"
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self.heap = heap
        self.node_id = node_id
        self.voters = voters
        self.replicas = replicas
        self.cluster_id = cluster_id
        self.group_heartbeat_ms = group_heartbeat_ms
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The plaintext listener, or the SASL one where there is no plaintext listener."""
        if not self.plaintext and self.sasl is not None:
            return self.sasl.bootstrap
        return f"127.0.0.1:{self.port}"

    def admin_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka settings of a client with every right: the plaintext listener's anonymous
        user, or the SASL listener's admin where there is no plaintext listener."""
        if not self.plaintext and self.sasl is not None:
            return self.sasl.admin_config()
        return {"bootstrap.servers": self.bootstrap}

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    def _java(self, *args: str) -> list[str]:
        if not KAFKA_LIB.is_dir():
            raise RuntimeError(
                f"Kafka jars missing in {KAFKA_LIB}: "
                "run `make bootstrap` (fetches them from infra/kafka/jars.lock)"
            )
        return [
            java_executable(),
            f"-Xmx{self.heap}",
            # A small heap on a small machine: the serial collector idles cheapest (measured).
            "-XX:+UseSerialGC",
            # C1 only: C2 kept compiling for minutes at rest (0.4 % of a core), and on runs as
            # short as ours its code is no faster (bench/broker.py: 118k produced msg/s, 107k
            # with C2).
            "-XX:TieredStopAtLevel=1",
            # No hsperfdata counters sampled every 50 ms (jstat/jps go; jcmd still attaches):
            # a tenth of the idle broker's CPU (measured 1.25 % -> 1.13 % of a core, no client).
            "-XX:-UsePerfData",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{KAFKA_LIB}/*",
            *args,
        ]

    def random_cluster_id(self) -> str:
        """A new cluster id from Kafka's own tool."""
        return (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

    def _format_if_needed(self, props: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = self.cluster_id or self.random_cluster_id()
        # A cluster's voters are in the configuration; a single node bootstraps alone.
        mode = [] if self.voters else ["--standalone"]
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                *mode,
                "-t",
                cluster_id,
                "-c",
                str(props),
                *(self.sasl.format_args() if self.sasl is not None else []),
            ),
            check=True,
            capture_output=True,
        )
        logger.info("kafka storage formatted cluster_id=%s dir=%s", cluster_id, self.data_dir)

    def _kill_leftover(self) -> None:
        # A broker left behind by a killed session still holds the ports and the data lock.
        try:
            pid = int(self._pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return
        if b"kafka.Kafka" in cmdline and str(self.home).encode() in cmdline:
            logger.warning("stopping leftover kafka broker pid=%d", pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)

    def start(self, timeout: float = 90.0) -> LocalKafka:
        """Format storage on first use, start the node and wait until it answers."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Format storage on first use and start the process (without waiting: the nodes of a
        cluster only answer once a majority of them runs)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._kill_leftover()
        props = self.home / "server.properties"
        # It may hold the admin's password.
        write_private(
            props,
            _server_properties(
                self.data_dir,
                self.port,
                self.controller_port,
                self.partitions,
                node_id=self.node_id,
                voters=self.voters,
                replicas=self.replicas,
                group_heartbeat_ms=self.group_heartbeat_ms,
                sasl=self.sasl,
                plaintext=self.plaintext,
            ),
        )
        self._format_if_needed(props)
        log = open(self.home / "broker.log", "ab")  # noqa: SIM115 — the child keeps it open
        # Its own session (Ctrl+C reaches make up, which stops the broker last), and it dies
        # with us (shared.platform.lifecycle): a broker left running holds the next one's ports.
        self.proc = popen(
            self._java("kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._pid_file.write_text(str(self.proc.pid))

    def wait_ready(self, timeout: float = 90.0) -> LocalKafka:
        """Wait until the launched node answers; stop it and raise if it does not."""
        assert self.proc is not None
        try:
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"kafka broker exited with {self.proc.returncode}; "
                        f"see {self.home / 'broker.log'}"
                    )
                try:
                    wait_for_broker(self.admin_config(), timeout=2)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            self.stop()
            raise
        logger.info(
            "kafka broker ready bootstrap=%s node=%d pid=%d",
            self.bootstrap,
            self.node_id,
            self.proc.pid,
        )
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker gracefully (SIGTERM), killing it if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._pid_file.unlink(missing_ok=True)
        logger.info("kafka broker stopped")

    def kill(self) -> None:
        """SIGKILL the broker (chaos tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class LocalKafkaCluster:
    """Three (or more) local nodes, each broker and controller, in one KRaft quorum.

    Node ``i`` (0-based) listens on ``port + 2i`` and its controller on ``controller_port + 2i``.
    Every topic the engine creates gets one replica per node (at most 3) and
    ``min.insync.replicas=2``: with ``acks=all`` a write survives the loss of any one node.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        nodes: int = 3,
        port: int = 9092,
        controller_port: int = 9093,
        partitions: int = 6,
        heap: str = "512m",
        group_heartbeat_ms: int = 5000,
        sasl: SaslListener | None = None,
        plaintext: bool = True,
    ) -> None:
        """``sasl``: each node's SASL listener, node ``i`` on ``sasl.port + 2i``."""
        if nodes < 3:
            raise ValueError("a replicated cluster needs at least 3 nodes")
        self.home = state_dir / "kafka"
        voters = ",".join(f"{i + 1}@127.0.0.1:{controller_port + 2 * i}" for i in range(nodes))
        self.replicas = min(3, nodes)
        self.nodes = [
            LocalKafka(
                state_dir,
                port=port + 2 * i,
                controller_port=controller_port + 2 * i,
                partitions=partitions,
                heap=heap,
                node_id=i + 1,
                voters=voters,
                replicas=self.replicas,
                home=self.home / f"node-{i + 1}",
                group_heartbeat_ms=group_heartbeat_ms,
                sasl=None if sasl is None else replace(sasl, port=sasl.port + 2 * i),
                plaintext=plaintext,
            )
            for i in range(nodes)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def admin_config(self) -> dict[str, str | int | float | bool]:
        """A client with every right on any node (:meth:`LocalKafka.admin_config`)."""
        return {**self.nodes[0].admin_config(), "bootstrap.servers": self.bootstrap}

    def _cluster_id(self) -> str:
        # Every node is formatted with the same id, kept for restarts of the whole cluster.
        path = self.home / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        cluster_id = self.nodes[0].random_cluster_id()
        path.write_text(cluster_id)
        return cluster_id

    def start(self, timeout: float = 120.0) -> LocalKafkaCluster:
        """Start every node, then wait for each (a quorum forms once a majority runs)."""
        cluster_id = self._cluster_id()
        for node in self.nodes:
            node.cluster_id = cluster_id
            node.launch()
        try:
            for node in self.nodes:
                node.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("kafka cluster ready nodes=%d bootstrap=%s", len(self.nodes), self.bootstrap)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node: SIGTERM to all, then SIGKILL to what still runs after ``timeout``.

        Stopped together, the last nodes cannot reach a quorum for their controlled shutdown and
        would wait out its retries (about 30 s); their logs are flushed by then, and a killed
        node recovers its log on the next start.
        """
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.stop(max(0.1, deadline - time.monotonic()))

    def node(self, node_id: int) -> LocalKafka:
        """The node with this id (1-based, as in ``node.id``)."""
        return self.nodes[node_id - 1]
