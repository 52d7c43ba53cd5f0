"""Reading an image back from storage is confined: the URI comes from an event anyone with
produce rights can write."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.storage import ImageReadError, ImageStorageSettings, LocalImageStorage, S3ImageStorage
from tests.support.s3 import KEY_ID, SECRET, client, s3_server

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


# --- an S3-compatible bucket (moto in server mode, over HTTP) ---------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server("pod-art") as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str) -> S3ImageStorage:
    settings = ImageStorageSettings(
        image_storage_url="s3://pod-art/images/",
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id=KEY_ID,
        s3_secret_access_key=SECRET,
        image_url_ttl_s=600,
    )
    store = settings.image_store()
    assert isinstance(store, S3ImageStorage)
    return store


def test_a_bucket_stores_each_image_once_and_reads_it_back(bucket: S3ImageStorage) -> None:
    data = os.urandom(2048)
    sha = hashlib.sha256(data).hexdigest()
    first, again = bucket.save(data), bucket.save(data)
    assert first == again and first.uri == f"s3://pod-art/images/{sha[:2]}/{sha}.png"
    assert first.path is None and bucket.exists(sha) and not bucket.exists("0" * 64)
    assert bucket.read(first.uri, sha256=sha, max_bytes=LIMIT) == data
    # Printify fetches it by a presigned URL, no credentials of ours needed.
    url = bucket.fetch_url(first.uri)
    assert url is not None and KEY_ID in url and SECRET not in url
    fetched = httpx.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == data


def test_a_bucket_reads_only_what_it_wrote(bucket: S3ImageStorage, s3_endpoint: str) -> None:
    stored = bucket.save(b"art")
    client(s3_endpoint).put_object(Bucket="pod-art", Key="images/secrets.txt", Body=b"k")
    other_sha = hashlib.sha256(b"k").hexdigest()
    for uri, sha in (
        ("s3://pod-art/images/secrets.txt", other_sha),  # not at its digest's key
        (f"s3://other-bucket/images/{other_sha[:2]}/{other_sha}.png", other_sha),
        (stored.uri, other_sha),  # the digest of another image
        ("file:///etc/passwd", stored.sha256),
    ):
        with pytest.raises(ImageReadError):
            bucket.read(uri, sha256=sha, max_bytes=LIMIT)
    with pytest.raises(ImageReadError):
        bucket.fetch_url("s3://pod-art/images/secrets.txt")
    with pytest.raises(ImageReadError, match="limit"):
        bucket.read(stored.uri, sha256=stored.sha256, max_bytes=2)
