"""Running the services as another, unprivileged user from a test that runs as root.

The project's interpreter may live where no other user can reach it (pyenv under ``/root``, a
0700 folder), although the virtual environment's packages (in the worktree) are readable by all.
:func:`readable_python` makes, under a folder everyone may read, an interpreter that user can
run: the base installation's files hard-linked (copied across file systems) without its own
site-packages, and a virtual environment whose one ``.pth`` file adds the project's
site-packages, so that exactly the locked packages and the editable install are imported. The
machine is left as it is: nothing outside that folder changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The base installation's folders the services never import: tests, GUI, packaging, building.
_UNUSED = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links refused
        shutil.copy2(src, dst)


def readable_python(root: Path) -> tuple[str, dict[str, str]]:
    """An interpreter under ``root`` (made readable by all) with this process's packages; returns
    its path and the environment it needs (its shared library's folder)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix)
    runtime = root / "python"
    venv = root / "venv"
    project = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    made_from = f"{base} {sys.version} {project}\n"
    marker = root / "made-from"
    if not marker.exists() or marker.read_text() != made_from:
        shutil.rmtree(root, ignore_errors=True)
        (runtime / "bin").mkdir(parents=True)
        _link_or_copy(str(base / "bin" / version), str(runtime / "bin" / version))
        shutil.copytree(
            base / "lib" / version,
            runtime / "lib" / version,
            ignore=lambda folder, names: [
                n for n in names if n in _UNUSED or n.startswith("config-")
            ],
            copy_function=_link_or_copy,
            symlinks=True,
        )
        for lib in (base / "lib").glob("libpython*.so*"):
            _link_or_copy(str(lib), str(runtime / "lib" / lib.name))
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(runtime / "bin" / version)
        (venv / "pyvenv.cfg").write_text(
            f"home = {runtime / 'bin'}\ninclude-system-site-packages = false\n"
            f"version = {'.'.join(map(str, sys.version_info[:3]))}\n"
        )
        packages = venv / "lib" / version / "site-packages"
        packages.mkdir(parents=True)
        # addsitedir also runs that folder's own .pth files (the editable install's finder).
        (packages / "_pod_engine_project.pth").write_text(
            f"import site; site.addsitedir({str(project)!r})\n"
        )
        for folder in (root, *root.rglob("*")):
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o755)
        marker.write_text(made_from)
    # Its RUNPATH names the base installation's folder, which the user cannot reach.
    return str(venv / "bin" / "python"), {"LD_LIBRARY_PATH": str(runtime / "lib")}


def as_user(
    uid: int, gid: int, argv: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``uid``/``gid`` (no supplementary groups) and wait for it."""
    return subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
    )


def owned_by(uid: int, roots: list[Path], *, changed_since: Path | None = None) -> list[Path]:
    """Every file and folder ``uid`` owns under ``roots`` (each root's own file system only);
    with ``changed_since``, only those created or changed after that file was (what one run
    wrote, not what an earlier run on this machine left)."""
    since = ["(", "-newer", str(changed_since), "-o", "-cnewer", str(changed_since), ")"]
    found = subprocess.run(
        [
            "find",
            *map(str, roots),
            "-xdev",
            "(",
            "-path",
            "/proc",
            "-o",
            "-path",
            "/sys",
            ")",
            "-prune",
            "-o",
            "-uid",
            str(uid),
            *(since if changed_since is not None else []),
            "-print",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return [Path(line) for line in found.stdout.splitlines() if line]
