"""A local single-node Apache Kafka broker (KRaft, combined broker+controller) run from the jars
that ``infra/kafka/pom.xml`` fetches, with its data and log in the state folder.

Used by ``make up`` and the test fixtures whenever ``KAFKA_BOOTSTRAP_SERVERS`` is unset.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from shared.settings import REPO_ROOT

logger = logging.getLogger(__name__)

KAFKA_LIB = REPO_ROOT / "infra" / "kafka" / "lib"
LOG4J_CONFIG = REPO_ROOT / "infra" / "kafka" / "log4j2.yaml"


def _server_properties(data_dir: Path, port: int, controller_port: int, partitions: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
            f"log.dirs={data_dir}",
            f"num.partitions={partitions}",
            # A single node can hold only one replica of the internal topics.
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Fast joins and fast take-over of a killed consumer's partitions (KIP-848 groups).
            "group.initial.rebalance.delay.ms=0",
            "group.consumer.session.timeout.ms=6000",
            "group.consumer.min.session.timeout.ms=5000",
            "group.consumer.heartbeat.interval.ms=2000",
            "group.consumer.min.heartbeat.interval.ms=500",
            # Topics come from the registry only, never from a typo in a producer.
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            # No no-op record in the metadata log every 500 ms: a third of the idle broker's CPU.
            "metadata.max.idle.interval.ms=0",
            "",
        ]
    )


def wait_for_broker(bootstrap: str, timeout: float = 60.0) -> None:
    """Block until an AdminClient sees a broker at ``bootstrap``, or raise TimeoutError."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=2)
            if md.brokers:
                return
        except Exception as exc:  # the admin raises KafkaException until the broker answers
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout}s: {last}")


class LocalKafka:
    """One local broker process whose data survives restarts (the state folder keeps it)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 9092,
        controller_port: int = 9093,
        partitions: int = 6,
        heap: str = "768m",
    ) -> None:
        self.home = state_dir / "kafka"
        self.data_dir = self.home / "data"
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    def _java(self, *args: str) -> list[str]:
        if not KAFKA_LIB.is_dir():
            raise RuntimeError(
                f"Kafka jars missing in {KAFKA_LIB}: "
                "run `make bootstrap` (needs Java 17+ and Maven)"
            )
        return [
            "java",
            f"-Xmx{self.heap}",
            # A small heap on a small machine: the serial collector idles cheapest (measured).
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{KAFKA_LIB}/*",
            *args,
        ]

    def _format_if_needed(self, props: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(props),
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
        """Format storage on first use, start the broker and wait until it answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._kill_leftover()
        props = self.home / "server.properties"
        props.write_text(
            _server_properties(self.data_dir, self.port, self.controller_port, self.partitions)
        )
        self._format_if_needed(props)
        log = open(self.home / "broker.log", "ab")  # noqa: SIM115 — the child keeps it open
        self.proc = subprocess.Popen(
            self._java("kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._pid_file.write_text(str(self.proc.pid))
        try:
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"kafka broker exited with {self.proc.returncode}; "
                        f"see {self.home / 'broker.log'}"
                    )
                try:
                    wait_for_broker(self.bootstrap, timeout=2)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            self.stop()
            raise
        logger.info("kafka broker ready bootstrap=%s pid=%d", self.bootstrap, self.proc.pid)
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
