"""make up's PostgreSQL trusts no one: every connection needs a password, and the services'
role can run the migrations and the services' queries but is no superuser."""

from __future__ import annotations

import asyncio
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.launch.postgres import SERVICE_ROLE, SUPERUSER, LocalPostgres
from services.monitor.handler import MonitorHandler
from shared.contract.events import JobRequested, JobRequestedPayload
from shared.pipeline.runner import MessageContext
from shared.platform.db import migrate, open_pool
from tests.services.api.conftest import serve
from tests.support.events import image, product
from tests.support.infra import free_port

pytestmark = pytest.mark.integration  # its own PostgreSQL


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    pg = LocalPostgres(tmp_path_factory.mktemp("pg"), port=free_port()).start()
    try:
        yield pg
    finally:
        pg.stop("immediate")


def connect_without_password(pg: LocalPostgres, user: str, *, socket: bool) -> None:
    """No password, and none from the environment or a ~/.pgpass either."""
    psycopg.connect(
        host=str(pg.home) if socket else "127.0.0.1",
        port=pg.port,
        user=user,
        dbname="postgres",
        passfile="/nonexistent",
        connect_timeout=5,
    ).close()


@pytest.mark.parametrize("socket", [False, True], ids=["loopback", "unix-socket"])
@pytest.mark.parametrize("user", [SUPERUSER, SERVICE_ROLE])
def test_a_connection_without_password_is_refused(
    server: LocalPostgres, user: str, socket: bool
) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        connect_without_password(server, user, socket=socket)


def test_passwords_are_kept_private_and_the_urls_carry_them(server: LocalPostgres) -> None:
    for role in (SUPERUSER, SERVICE_ROLE):
        path = server.password_path(role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_text().strip()) >= 24
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (SERVICE_ROLE,)
    with psycopg.connect(server.superuser_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (SUPERUSER,)


def test_the_services_role_is_no_superuser(server: LocalPostgres) -> None:
    with psycopg.connect(server.url) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == (False, False, False, False, False)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE ROLE intruder LOGIN SUPERUSER",
        "CREATE ROLE intruder",
        "ALTER SYSTEM SET log_statement = 'none'",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "SELECT rolpassword FROM pg_authid",
        "CREATE DATABASE intruder",
        "ALTER ROLE pod SUPERUSER",
        "SELECT pg_read_file('pg_hba.conf')",
    ],
)
def test_the_services_role_cannot_do_what_a_superuser_does(
    server: LocalPostgres, statement: str
) -> None:
    with (
        psycopg.connect(server.url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


async def test_the_services_role_runs_the_migrations_and_the_services_queries(
    server: LocalPostgres, pipeline_topics: str
) -> None:
    applied = await asyncio.to_thread(migrate, server.url)
    assert applied, "no migration applied: they ran before, as another role?"
    with psycopg.connect(server.url) as conn:
        owners = {
            row[0]
            for row in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        }
    assert owners == {SERVICE_ROLE}

    # The monitor folds a whole job as that role...
    pool = await open_pool(server.url, max_size=2, check=False)
    try:
        handler = MonitorHandler(pool)
        job = JobRequested(
            job_id=f"role-{uuid.uuid4().hex[:8]}",
            producer="api",
            payload=JobRequestedPayload(
                theme="t",
                style="s",
                niche="n",
                product_types=["mug"],
                count=1,
                auto_publish=False,
            ),
        )
        for n, event in enumerate((job, image(job, 0), product(job, 0, "mug"))):
            await handler(event, MessageContext("t", 0, n, 0, "test"))
    finally:
        await pool.close()

    # ...and the API answers from it as that role.
    def read_api() -> None:
        with serve(kafka_bootstrap_servers=pipeline_topics, database_url=server.url) as api:
            got = api.get(f"/jobs/{job.job_id}")
            assert got.status_code == 200, got.text
            assert got.json()["job"]["status"] == "completed"
            for path in ("/jobs", "/stats", "/dashboard", "/alerts", "/dlq", "/metrics"):
                assert api.get(path).status_code == 200, path

    await asyncio.to_thread(read_api)


def test_a_trusting_data_folder_is_converted_on_start(tmp_path: Path) -> None:
    """A folder made by the launcher before this change (initdb --auth=trust, no passwords)
    keeps its data and stops trusting."""
    pg = LocalPostgres(tmp_path, port=free_port())
    pg._prepare_dirs()
    pg._run("initdb", "-D", str(pg.data_dir), "--auth=trust", "-U", SUPERUSER)
    pg.start()
    try:
        assert not pg._trusts()
        with pytest.raises(psycopg.OperationalError, match="password"):
            connect_without_password(pg, SUPERUSER, socket=False)
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (SERVICE_ROLE,)
    finally:
        pg.stop("immediate")
