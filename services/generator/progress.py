"""What a job has already got, kept across attempts: its briefs and its finished images.

A job that fails part-way (one render out of ten) goes to a delay topic and is tried again. The
new attempt must not pay Claude again for the briefs nor a GPU again for the images that were
done, so a failing attempt notes them, in a small JSON file beside the image storage (shared by
every generator instance, as the images are). A note carries the fingerprint of the request it
belongs to, so a job replayed with a changed request starts afresh. Notes are removed once the
job's images are handed on. An attempt that succeeds writes nothing: the common case costs one
failed ``stat``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from shared.events import JobRequestedPayload


def fingerprint(payload: JobRequestedPayload) -> str:
    """What the briefs and renders depend on; priority and publishing do not count."""
    basis = payload.model_dump(include={"theme", "style", "niche", "prompt", "count"})
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:32]


class JobProgress:
    """The notes of one job attempt series, under ``root/<hash of job id>/``."""

    def __init__(self, root: Path, job_id: str, print_: str) -> None:
        self.dir = root / hashlib.sha256(job_id.encode()).hexdigest()[:32]
        self.print = print_

    def exists(self) -> bool:
        """Whether an earlier attempt left notes."""
        return self.dir.is_dir()

    def save(self, briefs: list[dict[str, Any]], images: dict[int, dict[str, Any]]) -> None:
        """Note what this attempt got before it failed."""
        self.save_briefs(briefs)
        for index, image in images.items():
            self.save_image(index, image)

    def _read(self, name: str) -> Any | None:
        try:
            note = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return None  # absent or half-written by a crash: redo that part
        if not isinstance(note, dict) or note.get("fingerprint") != self.print:
            return None
        return note.get("value")

    def _write(self, name: str, value: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({"fingerprint": self.print, "value": value}, fh)
        os.replace(tmp, self.dir / name)

    def briefs(self) -> list[dict[str, Any]] | None:
        """The briefs written by an earlier attempt, if any."""
        value = self._read("briefs.json")
        return value if isinstance(value, list) else None

    def save_briefs(self, briefs: list[dict[str, Any]]) -> None:
        self._write("briefs.json", briefs)

    def image(self, index: int) -> dict[str, Any] | None:
        """The stored image of ``index`` from an earlier attempt, if any."""
        value = self._read(f"image-{index}.json")
        return value if isinstance(value, dict) else None

    def save_image(self, index: int, image: dict[str, Any]) -> None:
        self._write(f"image-{index}.json", image)

    def clear(self) -> None:
        """The job's images are on their way: nothing to keep."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
