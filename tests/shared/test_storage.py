"""Reading an image back from storage is confined: the URI comes from an event anyone with
produce rights can write."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from shared.storage import ImageReadError, LocalImageStorage

LIMIT = 1 << 20


@pytest.fixture
def storage(tmp_path: Path) -> LocalImageStorage:
    return LocalImageStorage(tmp_path / "images")


def test_a_stored_image_reads_back(storage: LocalImageStorage) -> None:
    stored = storage.save(b"png bytes")
    assert storage.read(stored.uri, sha256=stored.sha256, max_bytes=LIMIT) == b"png bytes"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("file:///proc/self/environ", "outside the image storage"),
        ("file:///dev/zero", "outside the image storage"),
        ("file://evil.example/etc/passwd", "not a file URI of this host"),
        ("http://127.0.0.1/x.png", "not a file URI of this host"),
    ],
)
def test_uris_outside_the_storage_are_refused(
    storage: LocalImageStorage, uri: str, reason: str
) -> None:
    with pytest.raises(ImageReadError, match=reason):
        storage.read(uri, sha256="0" * 64, max_bytes=LIMIT)


def test_dot_dot_and_symlinks_out_of_the_root_are_refused(
    storage: LocalImageStorage, tmp_path: Path
) -> None:
    storage.save(b"x")  # creates the root
    secret = tmp_path / "secret.txt"
    secret.write_text("DATABASE_URL=postgresql://u:p@h/db")
    escape = (storage.root / ".." / "secret.txt").as_posix()
    with pytest.raises(ImageReadError, match="outside"):
        storage.read(f"file://{escape}", sha256="0" * 64, max_bytes=LIMIT)
    link = storage.root / "ab" / "link.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageReadError, match="outside"):
        storage.read(link.as_uri(), sha256="0" * 64, max_bytes=LIMIT)


def test_a_fifo_is_refused_without_hanging(storage: LocalImageStorage) -> None:
    storage.save(b"x")
    fifo = storage.root / "fifo.png"
    os.mkfifo(fifo)  # nobody writes: a blocking open would hang for ever
    with pytest.raises(ImageReadError, match="not a regular file"):
        storage.read(fifo.as_uri(), sha256="0" * 64, max_bytes=LIMIT)


def test_oversize_and_wrong_digest_are_refused(storage: LocalImageStorage) -> None:
    big = storage.save(b"y" * (LIMIT + 1))
    with pytest.raises(ImageReadError, match="limit"):
        storage.read(big.uri, sha256=big.sha256, max_bytes=LIMIT)
    small = storage.save(b"z")
    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ImageReadError, match="sha256"):
        storage.read(small.uri, sha256=other, max_bytes=LIMIT)
