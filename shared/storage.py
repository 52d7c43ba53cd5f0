"""Content-addressed image storage: a file per SHA-256, so identical images are stored once.

An image's ``file://`` URI travels in events that anyone able to produce to the topic can write,
so reading one back is confined: only a regular file under the storage root, no larger than a
cap, whose content has the digest the event names (see :meth:`LocalImageStorage.read`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import Field

from shared.settings import REPO_ROOT, PodSettings


class ImageStorageSettings(PodSettings):
    """Where images are stored (shared by the generator, which writes, and the printify stage,
    which reads), and how large one may be."""

    image_storage_dir: Path = REPO_ROOT / ".state" / "images"
    image_public_base_url: str | None = Field(
        default=None,
        description="Where image_storage_dir is served publicly; lets Printify fetch by URL",
    )
    image_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest image file read for upload"
    )


class ImageReadError(ValueError):
    """An image URI that may not or cannot be read (the reason is in the message)."""


@dataclass(frozen=True)
class StoredImage:
    """Where an image was stored and how others can reach it."""

    sha256: str
    path: Path
    uri: str


class LocalImageStorage:
    """Stores images under ``root/<aa>/<sha256>.png``; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path, public_base_url: str | None = None) -> None:
        self.root = root
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def _path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.png"

    def save(self, data: bytes) -> StoredImage:
        """Store ``data`` unless an identical image is already there."""
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return StoredImage(sha, path, self.uri_for(sha))

    def exists(self, sha: str) -> bool:
        """Whether the image with this digest is stored."""
        return self._path(sha).is_file()

    def uri_for(self, sha: str) -> str:
        """The public URL when storage is served, else a file URI."""
        if self.public_base_url:
            return f"{self.public_base_url}/{sha[:2]}/{sha}.png"
        return self._path(sha).resolve().as_uri()

    def read(self, uri: str, *, sha256: str, max_bytes: int) -> bytes:
        """The bytes of a stored image named by its ``file://`` URI, checked against ``sha256``.

        Refuses (ImageReadError) anything outside the storage root (``..``, symlinks out,
        ``/proc/self/environ``), anything not a regular file (``/dev/zero``, a FIFO - opened
        non-blocking so it cannot hang us), files over ``max_bytes`` and content whose digest
        differs. Blocking: call it off the event loop.
        """
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ImageReadError("not a file URI of this host")
        root = os.path.realpath(self.root)
        path = os.path.realpath(unquote(parsed.path))
        if os.path.commonpath([root, path]) != root:
            raise ImageReadError("outside the image storage")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise ImageReadError(f"cannot open: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ImageReadError("not a regular file")
            if info.st_size > max_bytes:
                raise ImageReadError(f"{info.st_size} bytes, over the {max_bytes}-byte limit")
            chunks, size = [], 0
            while chunk := os.read(fd, 1 << 20):
                size += len(chunk)
                if size > max_bytes:  # grew while we read
                    raise ImageReadError(f"over the {max_bytes}-byte limit")
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ImageReadError("content does not match the event's sha256")
        return data
