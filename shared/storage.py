"""Content-addressed image storage: a file per SHA-256, so identical images are stored once."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse


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


def read_uri(uri: str) -> bytes:
    """Read a ``file://`` image URI (the local storage's form)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"not a file URI: {uri}")
    return Path(unquote(parsed.path)).read_bytes()
