"""A local S3 server that checks signatures: s3proxy (github.com/gaul/s3proxy, Apache jclouds'
``filesystem-nio2`` store under its home folder) run from the jars ``infra/s3proxy/jars.lock``
names (fetched and verified by ``devstack.jars``) on the Java ``devstack.launch.java`` picks.

It listens on 127.0.0.1 only and accepts only requests signed with Signature Version 4 by its
one key pair (``s3proxy.authorization=aws-v4``): a request or presigned URL signed with Version 2
is refused with 403 AccessDenied, as AWS (buckets created since June 2020, regions since 2014),
Cloudflare R2 and MinIO refuse them. A presigned URL is refused once ``X-Amz-Date`` plus
``X-Amz-Expires`` has passed. The tests' bucket (``tests/support/s3.py``) is one of these.

Each server has a home of its own (its configuration, objects, log and pid file); a server left
behind by a killed test session is stopped by the next one (:func:`stop_leftovers`).
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from devstack.launch.java import java_executable
from devstack.launch.ports import free_port
from devstack.launch.private import write_private
from shared.platform.lifecycle import popen
from shared.platform.settings import REPO_ROOT

logger = logging.getLogger(__name__)

S3PROXY_DIR = REPO_ROOT / "infra" / "s3proxy"
S3PROXY_LIB = S3PROXY_DIR / "lib"
LOGBACK_CONFIG = S3PROXY_DIR / "logback.xml"
MAIN_CLASS = "org.gaul.s3proxy.Main"
PID_FILE = "s3proxy.pid"


class LocalS3Proxy:
    """One s3proxy on ``127.0.0.1:port`` (a free one unless given) storing under ``home``.

    ``identity`` and ``credential`` are the access key id and secret key it accepts; any other
    pair, or a signature of another version, is refused.
    """

    def __init__(
        self,
        home: Path,
        *,
        identity: str,
        credential: str,
        port: int | None = None,
        heap: str = "256m",
    ) -> None:
        self.home = home
        self.identity = identity
        self.credential = credential
        self.port = port or free_port()
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "s3proxy.log"

    def _properties(self) -> str:
        # Property names and defaults as s3proxy 2.6.0 reads them (S3ProxyConstants.java,
        # S3Proxy.Builder.fromProperties, Main.createBlobStore).
        return "\n".join(
            [
                # The listener's host is the endpoint's: loopback only.
                f"s3proxy.endpoint={self.endpoint}",
                "s3proxy.authorization=aws-v4",
                f"s3proxy.identity={self.identity}",
                f"s3proxy.credential={self.credential}",
                "jclouds.provider=filesystem-nio2",
                # The store behind s3proxy is a folder: jclouds wants a key pair all the same.
                "jclouds.identity=local",
                "jclouds.credential=local",
                f"jclouds.filesystem.basedir={self.home / 'data'}",
                "",
            ]
        )

    def _command(self, properties: Path) -> list[str]:
        if not S3PROXY_LIB.is_dir():
            raise RuntimeError(
                f"s3proxy jars missing in {S3PROXY_LIB}: "
                "run `make bootstrap` (fetches them from infra/s3proxy/jars.lock)"
            )
        return [
            java_executable(),
            f"-Xmx{self.heap}",
            # The broker's choices for a small short-lived JVM (devstack/launch/kafka.py).
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            f"-Dlogback.configurationFile={LOGBACK_CONFIG}",
            "-cp",
            f"{S3PROXY_LIB}/*",
            MAIN_CLASS,
            "--properties",
            str(properties),
        ]

    def start(self, timeout: float = 90.0) -> LocalS3Proxy:
        """Start the server and wait until it answers an S3 request."""
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        properties = self.home / "s3proxy.conf"
        # It holds the credential: readable by us only.
        write_private(properties, self._properties())
        command = self._command(properties)
        with self.log_path.open("ab") as log:
            # Dies with us (shared.platform.lifecycle), as the broker and PostgreSQL do; the pid
            # file below still lets a later session stop one where there is no parent-death signal.
            self.proc = popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # Which process, and whose: a later session stops it if this one was killed.
        (self.home / PID_FILE).write_text(f"{self.proc.pid} {os.getpid()}\n")
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("s3proxy ready endpoint=%s pid=%d", self.endpoint, self.proc.pid)
        return self

    def _answers(self) -> bool:
        # Unsigned, so s3proxy answers 403 with an S3 error document: that is s3proxy, up.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return b"<Error>" in response.read()
        except OSError:
            return False
        finally:
            conn.close()

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"s3proxy exited with {self.proc.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"s3proxy did not answer within {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        (self.home / PID_FILE).unlink(missing_ok=True)
        logger.info("s3proxy stopped endpoint=%s", self.endpoint)

    def __enter__(self) -> LocalS3Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_leftovers(root: Path, *, unclaimed_after_s: float = 600.0) -> int:
    """Stop each s3proxy under ``root`` whose starting process is gone, and remove its home;
    returns how many were stopped. A server whose starter still runs (another test session)
    is left alone, and so is a home without a pid file younger than ``unclaimed_after_s`` (one
    being set up)."""
    stopped = 0
    if not root.is_dir():
        return 0
    for home in root.iterdir():
        try:
            pid, parent = (int(x) for x in (home / PID_FILE).read_text().split())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            pid = parent = 0
        if parent and _alive(parent):
            continue
        if not parent and time.time() - home.stat().st_mtime < unclaimed_after_s:
            continue
        if pid:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                cmdline = b""
            if MAIN_CLASS.encode() in cmdline and str(home).encode() in cmdline:
                logger.warning("stopping leftover s3proxy pid=%d home=%s", pid, home)
                os.kill(pid, signal.SIGKILL)
                stopped += 1
        if home.is_dir():
            shutil.rmtree(home, ignore_errors=True)
    return stopped
