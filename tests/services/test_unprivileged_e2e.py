"""The services as the image runs them: as an unprivileged user of their own, who can read the
code and the packages but write only the state folder (POD_STATE_DIR), the images folder
(IMAGE_STORAGE_DIR) and a temporary folder. A job goes through the whole pipeline, and nothing
on the machine is then owned by that user outside those folders.

The image's user is 10001:10001 (Dockerfile); the same ids here, which nothing else on the
machine uses. The broker, PostgreSQL and the simulators run as the test does: they stand in for
other machines.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devstack.stack import ServiceUser, Stack, isolated_settings
from shared.platform.settings import REPO_ROOT
from tests.services.conftest import ETSY_SHOP_ID
from tests.support.infra import TEST_STATE, wait_for
from tests.support.pipeline import api_up, stack_env, submit, wait_done
from tests.support.unprivileged import as_user, owned_by, readable_python

UID = GID = 10001

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="running the services as another user needs root (setuid)"
)


def _own(path: Path) -> Path:
    path.mkdir(parents=True)
    os.chown(path, UID, GID)
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def unprivileged() -> Iterator[tuple[Stack, dict[str, Path]]]:
    root = TEST_STATE / "unprivileged"
    for name in ("state", "images", "tmp", "stack"):
        shutil.rmtree(root / name, ignore_errors=True)
    # What this run writes is told from what earlier runs on this machine left by this stamp.
    (root / "started").parent.mkdir(parents=True, exist_ok=True)
    (root / "started").touch()
    python, python_env = readable_python(TEST_STATE / "unprivileged-python")
    folders = {name: _own(root / name) for name in ("state", "images", "tmp")}
    root.chmod(0o755)
    env = {
        **stack_env(root, 256),
        **python_env,
        "IMAGE_STORAGE_DIR": str(folders["images"]),
        "TMPDIR": str(folders["tmp"]),
        "HOME": "/nonexistent",  # the image's user has none
        "MAX_IN_FLIGHT": "8",
        "SIM_LATENCY_MS": "0",
        "SIM_FAILURE_RATE": "0",
        "SIM_PRINTIFY_SHOPS": "custom_integration,etsy",
        "PRINTIFY_SHOP_ID": str(ETSY_SHOP_ID),
        "SIM_PRINTIFY_PUBLISH_MS": "300",
        "PUBLISH_CHECK_MIN_S": "0.2",
    }
    # Before anything runs: the user reads the code and the packages and may not change them.
    probe = as_user(
        UID,
        GID,
        [
            python,
            "-c",
            "import pathlib, sys, confluent_kafka, services.api\n"
            "for d in sys.argv[1:]:\n"
            "    try:\n"
            "        (pathlib.Path(d) / '.probe').write_text('x')\n"
            "        print('WROTE', d)\n"
            "    except PermissionError:\n"
            "        pass\n",
            str(REPO_ROOT),
            str(REPO_ROOT / "services"),
            str(Path(confluent_kafka_dir())),
            str(folders["state"]),
        ],
        {**python_env, "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        REPO_ROOT,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["WROTE", str(folders["state"])], probe.stdout
    (folders["state"] / ".probe").unlink()

    settings = isolated_settings(root / "stack", kafka_partitions=3, restart_delay_s=1.0)
    stack = Stack(
        settings,
        extra_env=env,
        run_as=ServiceUser(UID, GID, folders["state"], python),
    ).start()
    try:
        wait_for(lambda: api_up(stack), 90, "the API to answer /health", interval=0.2)
        stack.supervise_in_background(0.2)
        yield stack, folders
    finally:
        stack.stop()


def confluent_kafka_dir() -> str:
    import confluent_kafka

    return str(Path(confluent_kafka.__file__).parent)


def test_a_job_completes_with_the_services_writing_only_their_folders(
    unprivileged: tuple[Stack, dict[str, Path]],
) -> None:
    stack, folders = unprivileged
    job = submit(
        stack,
        theme=f"night owls {uuid.uuid4().hex[:6]}",
        productTypes=["tshirt", "mug"],
        count=2,
        autoPublish=True,
    )
    result = wait_done(stack, [job], timeout=180)[job]
    assert result["job"]["detailedStatus"] == "completed", result["job"]
    assert len(result["products"]) == 4
    assert all(p["status"] == "published" for p in result["products"])

    # Every service process (the manager, each stage it started, the API) runs as the user.
    pids = [svc.pid for svc in stack.services]
    pids += [i["pid"] for i in stack.instances() if i["running"]]
    assert len(pids) >= 6, stack.instances()
    for pid in pids:
        assert pid is not None
        uids, gids = psutil.Process(pid).uids(), psutil.Process(pid).gids()
        assert {uids.real, uids.effective, gids.real, gids.effective} == {UID}, pid

    # The generator wrote the images (and the pool manager its records) in the user's folders.
    images = [p for p in folders["images"].rglob("*") if p.is_file()]
    assert len(images) >= 2 and all(p.stat().st_uid == UID for p in images)
    assert (folders["state"] / "pool" / "status.json").stat().st_uid == UID

    # What the services write while they stop counts too (the fixture stops the rest).
    for svc in reversed(stack.services):
        assert svc.stop(60) == 0, svc.name
    allowed = tuple(folders.values())
    stray = [
        p
        for p in owned_by(
            UID,
            [Path("/"), Path("/dev/shm")],
            changed_since=TEST_STATE / "unprivileged" / "started",
        )
        if p not in allowed and not any(p.is_relative_to(f) for f in allowed)
    ]
    assert not stray, stray
