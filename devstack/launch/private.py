"""Files that hold a secret (a password, a key, a config with a credential): readable by their
owner only, from the moment they exist."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (replacing it), mode 0600 whatever the file was before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(text)


def secret_once(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret kept in ``path``, made by ``make`` (mode 0600) if there is none yet; and
    whether this call made it. Two processes racing to make it read the one that won."""
    made = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made meanwhile: read below
        else:
            with os.fdopen(fd, "w") as out:
                out.write(make() + "\n")
            made = True
    return path.read_text().strip(), made
