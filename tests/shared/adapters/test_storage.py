"""Reading an image back from storage is confined: the URI comes from an event anyone with
produce rights can write."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from shared.adapters.storage import (
    ImageReadError,
    ImageStorageSettings,
    LocalImageStorage,
    S3ImageStorage,
)
from tests.support.infra import wait_for
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


# --- an S3-compatible bucket (s3proxy over HTTP, SigV4 only) ---------------------------------


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


def _put_image(endpoint: str, data: bytes) -> str:
    """Store ``data`` where the bucket fixture's store keeps it, written by another client (so
    a test of presigning does not depend on the store's own PutObject); returns its URI."""
    sha = hashlib.sha256(data).hexdigest()
    key = f"images/{sha[:2]}/{sha}.png"
    client(endpoint).put_object(Bucket="pod-art", Key=key, Body=data, ContentType="image/png")
    return f"s3://pod-art/{key}"


def test_a_presigned_url_is_sigv4_and_fetchable_without_credentials(
    bucket: S3ImageStorage, s3_endpoint: str
) -> None:
    # What Printify does with an image uploaded by URL: a plain GET, no credentials of ours.
    data = os.urandom(4096)
    url = bucket.fetch_url(_put_image(s3_endpoint, data))
    assert url is not None
    fetched = httpx.get(url, timeout=10)
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == data
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], url
    assert query["X-Amz-Expires"] == ["600"]
    assert "Signature" not in query and "AWSAccessKeyId" not in query


def test_the_server_refuses_a_sigv2_presigned_url(bucket: S3ImageStorage, s3_endpoint: str) -> None:
    # The store is as strict as AWS (new buckets), R2 and MinIO: were it not, the test above
    # could not fail on a client that presigns with Version 2.
    data = os.urandom(1024)
    uri = _put_image(s3_endpoint, data)
    key = uri.removeprefix("s3://pod-art/")
    sigv2 = client(s3_endpoint, signature_version="s3").generate_presigned_url(
        "get_object", Params={"Bucket": "pod-art", "Key": key}, ExpiresIn=600
    )
    assert "AWSAccessKeyId=" in sigv2 and "X-Amz-Algorithm" not in sigv2
    refused = httpx.get(sigv2, timeout=10)
    assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text
    sigv4 = bucket.fetch_url(uri)
    assert sigv4 is not None and httpx.get(sigv4, timeout=10).content == data


def test_a_presigned_url_is_refused_once_expired(bucket: S3ImageStorage, s3_endpoint: str) -> None:
    uri = _put_image(s3_endpoint, b"short-lived")
    # IMAGE_URL_TTL_S is 60 s at least; the store presigns any TTL it is given the same way.
    url = bucket.presign(uri.removeprefix("s3://pod-art/"), ttl_s=3)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["3"]
    assert httpx.get(url, timeout=10).status_code == 200
    expired = wait_for(
        lambda: (r := httpx.get(url, timeout=10)).status_code == 403 and r,
        timeout=15,
        what="the presigned URL to expire",
        interval=0.25,
    )
    assert "Request has expired" in expired.text


def test_a_wrong_secret_is_refused(s3_endpoint: str) -> None:
    # Signatures are checked, not merely parsed: a client that signs with another secret gets
    # nothing, as against AWS.
    uri = _put_image(s3_endpoint, b"private")
    store = ImageStorageSettings(
        image_storage_url="s3://pod-art/images/",
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id=KEY_ID,
        s3_secret_access_key="not-the-secret",
    ).image_store()
    with pytest.raises(ImageReadError, match="SignatureDoesNotMatch"):
        store.read(uri, sha256=hashlib.sha256(b"private").hexdigest(), max_bytes=LIMIT)


@pytest.mark.parametrize(
    ("settings", "host", "path"),
    [
        # AWS: the bucket's regional host, never the global one a new bucket redirects from
        # (the signature covers the host, so a redirected presigned URL is refused).
        ({"s3_region": "eu-west-1"}, "pod-art.s3.eu-west-1.amazonaws.com", "/images/"),
        ({"s3_region": "us-east-1"}, "pod-art.s3.amazonaws.com", "/images/"),
        # An endpoint of our own (MinIO, R2): the bucket in the path.
        (
            {"s3_endpoint_url": "https://acct.r2.cloudflarestorage.com", "s3_region": "auto"},
            "acct.r2.cloudflarestorage.com",
            "/pod-art/images/",
        ),
        (
            {
                "s3_endpoint_url": "https://minio.example.com",
                "s3_addressing_style": "virtual",
            },
            "pod-art.minio.example.com",
            "/images/",
        ),
    ],
)
def test_presigned_urls_are_sigv4_at_the_right_host(
    settings: dict[str, str], host: str, path: str
) -> None:
    store = ImageStorageSettings.model_validate(
        {
            "image_storage_url": "s3://pod-art/images",
            "s3_access_key_id": KEY_ID,
            "s3_secret_access_key": SECRET,
            **settings,
        }
    ).image_store()
    sha = "ab" * 32
    url = store.fetch_url(f"s3://pod-art/images/{sha[:2]}/{sha}.png")
    assert url is not None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.hostname) == ("https", host)
    assert parts.path == f"{path}{sha[:2]}/{sha}.png"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    region = settings.get("s3_region", "us-east-1")
    assert query["X-Amz-Credential"][0].split("/")[2:] == [region, "s3", "aws4_request"]
    assert SECRET not in url


# --- open(): what read() checks, without the image held whole (the API's previews, downloads) -


def test_open_checks_as_read_does_and_gives_the_file_from_its_start(
    storage: LocalImageStorage, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)  # more than one block
    stored = storage.save(data)
    with storage.open(stored.uri, sha256=stored.sha256, max_bytes=len(data)) as file:
        assert file.read() == data
    with pytest.raises(ImageReadError, match="limit"):
        storage.open(stored.uri, sha256=stored.sha256, max_bytes=len(data) - 1)
    with pytest.raises(ImageReadError, match="sha256"):
        storage.open(stored.uri, sha256="0" * 64, max_bytes=len(data))
    with pytest.raises(ImageReadError, match="outside"):
        storage.open("file:///proc/self/environ", sha256="0" * 64, max_bytes=LIMIT)
    fifo = storage.root / "fifo-open.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        storage.open(fifo.as_uri(), sha256="0" * 64, max_bytes=LIMIT)


def test_a_bucket_opens_only_what_it_wrote_spooled(bucket: S3ImageStorage) -> None:
    data = os.urandom(2 * 1024 * 1024 + 7)
    stored = bucket.save(data)
    with bucket.open(stored.uri, sha256=stored.sha256, max_bytes=len(data)) as file:
        assert file.read() == data
    with pytest.raises(ImageReadError, match="limit"):
        bucket.open(stored.uri, sha256=stored.sha256, max_bytes=len(data) - 1)
    with pytest.raises(ImageReadError):
        bucket.open("s3://pod-art/images/secrets.txt", sha256=stored.sha256, max_bytes=LIMIT)
