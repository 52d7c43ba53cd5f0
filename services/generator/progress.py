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

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from shared.contract.events import JobRequestedPayload

# A brief as noted: CreativeBrief's JSON (the handler validates it again when it reads it).
BriefNote = dict[str, object]


class ImageNote(TypedDict):
    """A stored image as noted: enough to hand it on without rendering it again."""

    sha256: str
    uri: str
    width: int
    height: int


_IMAGE = TypeAdapter(ImageNote)


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

    def save(self, briefs: list[BriefNote], images: dict[int, ImageNote]) -> None:
        """Note what this attempt got before it failed."""
        self.save_briefs(briefs)
        for index, image in images.items():
            self.save_image(index, image)

    def _read(self, name: str) -> object:
        try:
            note = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return None  # absent or half-written by a crash: redo that part
        if not isinstance(note, dict) or note.get("fingerprint") != self.print:
            return None
        return note.get("value")

    def _write(self, name: str, value: object) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({"fingerprint": self.print, "value": value}, fh)
        os.replace(tmp, self.dir / name)

    def briefs(self) -> list[BriefNote] | None:
        """The briefs written by an earlier attempt, if any."""
        value = self._read("briefs.json")
        if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
            return None
        return value

    def save_briefs(self, briefs: list[BriefNote]) -> None:
        self._write("briefs.json", briefs)

    def image(self, index: int) -> ImageNote | None:
        """The stored image of ``index`` from an earlier attempt, if any (a note of another
        shape is none: that image is rendered again)."""
        try:
            return _IMAGE.validate_python(self._read(f"image-{index}.json"))
        except ValidationError:
            return None

    def save_image(self, index: int, image: ImageNote) -> None:
        self._write(f"image-{index}.json", image)

    def clear(self) -> None:
        """The job's images are on their way: nothing to keep."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
