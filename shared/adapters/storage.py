"""Content-addressed image storage: an object per SHA-256, so identical images are stored once.

Two stores, one interface (:class:`ImageStore`): a local folder (the default), or an
S3-compatible bucket (``IMAGE_STORAGE_URL=s3://bucket/prefix``: AWS, R2, MinIO, ...), from
which Printify fetches each image by a presigned URL; large print files cannot go as base64.

An image's URI travels in events that anyone able to produce to the topic can write, so reading
one back is confined: only what this store wrote under its own root or prefix, no larger than a
cap, whose content has the digest the event names (see :meth:`LocalImageStorage.read`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, NotRequired, Protocol, TypedDict
from urllib.parse import unquote, urlparse

from pydantic import Field, SecretStr

from shared.platform.settings import REPO_ROOT, PodSettings


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
    image_storage_url: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="s3://bucket/prefix: store images there (unset = IMAGE_STORAGE_DIR)",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint (MinIO, R2, ...); unset = AWS"
    )
    s3_region: str = Field(
        default="us-east-1",
        min_length=1,
        description="The bucket's region, in every signature (R2: auto)",
    )
    s3_addressing_style: Literal["path", "virtual"] | None = Field(
        default=None,
        description=(
            "path: endpoint/bucket/key; virtual: bucket.endpoint/key. "
            "Unset = path with S3_ENDPOINT_URL (MinIO, R2), virtual on AWS"
        ),
    )
    s3_access_key_id: SecretStr | None = Field(
        default=None, description="Unset = boto3's own chain (AWS_* variables, instance role)"
    )
    s3_secret_access_key: SecretStr | None = None
    image_url_ttl_s: int = Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="Life of a presigned image URL"
    )

    def image_store(self) -> ImageStore:
        """The store these settings name: the bucket when IMAGE_STORAGE_URL is set."""
        if self.image_storage_url is None:
            return LocalImageStorage(self.image_storage_dir, self.image_public_base_url)
        return self.s3_store()

    def s3_store(self, **config: Any) -> S3ImageStorage:
        """The bucket IMAGE_STORAGE_URL names, through :meth:`s3_client` (``config``)."""
        if self.image_storage_url is None:
            raise ValueError("IMAGE_STORAGE_URL is unset: images are stored in a folder")
        bucket, _, prefix = self.image_storage_url.removeprefix("s3://").partition("/")
        return S3ImageStorage(
            bucket, prefix, client=self.s3_client(**config), url_ttl_s=self.image_url_ttl_s
        )

    def s3_client(self, **config: Any) -> Any:  # boto3 builds its clients' types at run time
        """A boto3 S3 client of these settings; ``config`` adds to botocore's ``Config``
        (timeouts, retries).

        Signature Version 4 always: botocore's default for S3 presigns with Version 2
        (``?AWSAccessKeyId=&Signature=``), which AWS refuses on buckets created since
        2020-06-24 and in regions opened since 2014, and R2 refuses outright, so Printify could
        fetch no image. Path-style addressing with an endpoint of our own (MinIO serves buckets
        under the path unless given a domain; boto3 addresses R2 so by default), virtual-hosted
        on AWS: a presigned URL then names the bucket's regional host, and its signature, which
        covers the host, cannot meet a redirect to another.

        Checksums only where an operation requires one: since botocore 1.36 every PutObject
        carries ``x-amz-checksum-crc32`` and every GetObject ``x-amz-checksum-mode``, which
        S3-compatible stores that lack the feature refuse (s3proxy 2.6.0 answers 501
        NotImplemented to both). Integrity does not rest on them: an image is read back only
        when its bytes have the sha256 its key names (:meth:`S3ImageStorage.read`).
        """
        import boto3  # only deployments that use a bucket pay for the import
        from botocore.config import Config

        style = self.s3_addressing_style or ("path" if self.s3_endpoint_url else "virtual")
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint_url,
            region_name=self.s3_region,
            aws_access_key_id=_secret(self.s3_access_key_id),
            aws_secret_access_key=_secret(self.s3_secret_access_key),
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": style},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class ImageReadError(ValueError):
    """An image URI that may not or cannot be read (the reason is in the message)."""


@dataclass(frozen=True)
class StoredImage:
    """Where an image was stored and how others can reach it (``path``: None in a bucket)."""

    sha256: str
    path: Path | None
    uri: str


class ImageStore(Protocol):
    """What the generator (save, exists) and the printify stage (read, fetch_url) need."""

    def save(self, data: bytes) -> StoredImage: ...

    def exists(self, sha: str) -> bool: ...

    def read(self, uri: str, *, sha256: str, max_bytes: int) -> bytes: ...

    def open(self, uri: str, *, sha256: str, max_bytes: int) -> BinaryIO:
        """As :meth:`read`, as a file at its start, never held whole in memory (the caller
        closes it)."""
        ...

    def fetch_url(self, uri: str) -> str | None:
        """A URL Printify can fetch this store's image from, or None (then it is sent as
        base64). A URI that is an http(s) URL already is passed on by the caller as it is."""
        ...


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

    def fetch_url(self, uri: str) -> str | None:
        """None: a folder has no URL of its own to give (when it is served, its images' URIs
        are already URLs, see :meth:`uri_for`)."""
        return None

    def read(self, uri: str, *, sha256: str, max_bytes: int) -> bytes:
        """The bytes of a stored image named by its ``file://`` URI, checked against ``sha256``.

        Refuses (ImageReadError) anything outside the storage root (``..``, symlinks out,
        ``/proc/self/environ``), anything not a regular file (``/dev/zero``, a FIFO - opened
        non-blocking so it cannot hang us), files over ``max_bytes`` and content whose digest
        differs. Blocking: call it off the event loop.
        """
        fd = self._open_confined(uri, max_bytes)
        try:
            # One buffer the file's size, not blocks joined (twice a print file's 20-40 MB at
            # once); one more byte tells a file that grew since. More reads only then, up to
            # the limit.
            data = os.read(fd, os.fstat(fd).st_size + 1)
            while len(data) <= max_bytes and (more := os.read(fd, max_bytes + 1 - len(data))):
                data += more
        finally:
            os.close(fd)
        if len(data) > max_bytes:  # grew while we read
            raise ImageReadError(f"over the {max_bytes}-byte limit")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ImageReadError("content does not match the event's sha256")
        return data

    def open(self, uri: str, *, sha256: str, max_bytes: int) -> BinaryIO:
        """As :meth:`read` (the same confinement and checks), as an open file at its start:
        its digest is checked by reading it through in blocks, never whole into memory."""
        file = os.fdopen(self._open_confined(uri, max_bytes), "rb")
        try:
            _check_stream(file, sha256, max_bytes)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        return file

    def _open_confined(self, uri: str, max_bytes: int) -> int:
        """A descriptor of the regular file ``uri`` names under the root, within ``max_bytes``."""
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
        except BaseException:
            os.close(fd)
            raise
        return fd


_BLOCK = 1 << 20


class _StoredObject(TypedDict):
    """The fields of S3's GetObject answer read here (boto3 gives the answer untyped)."""

    Body: BinaryIO  # botocore's StreamingBody: read(n), as a file
    ContentLength: NotRequired[int]


def _check_stream(
    source: BinaryIO, sha256: str, max_bytes: int, copy: BinaryIO | None = None
) -> None:
    """Read ``source`` through in blocks (copying them to ``copy``): ImageReadError when it is
    over ``max_bytes`` or its digest is not ``sha256``."""
    digest, size = hashlib.sha256(), 0
    while block := source.read(_BLOCK):
        size += len(block)
        if size > max_bytes:
            raise ImageReadError(f"over the {max_bytes}-byte limit")
        digest.update(block)
        if copy is not None:
            copy.write(block)
    if digest.hexdigest() != sha256:
        raise ImageReadError("content does not match the event's sha256")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class S3ImageStorage:
    """Stores images in ``bucket`` under ``prefix<aa>/<sha256>.png``; Printify fetches them by
    presigned URL. Blocking (boto3): call it off the event loop, as the stages do."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any, url_ttl_s: int = 3600):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.url_ttl_s = url_ttl_s

    def _key(self, sha: str) -> str:
        return f"{self.prefix}{sha[:2]}/{sha}.png"

    def _uri(self, sha: str) -> str:
        return f"s3://{self.bucket}/{self._key(sha)}"

    def save(self, data: bytes) -> StoredImage:
        """Store ``data`` unless an identical image is already there."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.exists(sha):
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(sha), Body=data, ContentType="image/png"
            )
        return StoredImage(sha, None, self._uri(sha))

    def exists(self, sha: str) -> bool:
        """Whether the image with this digest is stored."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _own(self, uri: str, sha256: str) -> str:
        """The key of ``uri`` when it is the object this store wrote for ``sha256``: the key
        follows from the digest, so no other object of the bucket can be named."""
        if not _SHA256.match(sha256) or uri != self._uri(sha256):
            raise ImageReadError("not an image of this store")
        return self._key(sha256)

    def fetch_url(self, uri: str) -> str | None:
        """A presigned GET URL of the image, valid for ``url_ttl_s``."""
        if not uri.startswith("s3://"):
            return None
        sha = uri.rsplit("/", 1)[-1].removesuffix(".png")
        return self.presign(self._own(uri, sha))

    def presign(self, key: str, ttl_s: int | None = None) -> str:
        """A GET URL of ``key`` that anyone holding it may fetch without credentials until it
        expires (``ttl_s``, else ``url_ttl_s``): SigV4 query parameters (``X-Amz-Algorithm``,
        ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-Signature``)."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.url_ttl_s if ttl_s is None else ttl_s,
        )
        return url

    def read(self, uri: str, *, sha256: str, max_bytes: int) -> bytes:
        """The bytes of a stored image, checked against ``sha256`` and ``max_bytes``."""
        obj = self._get(uri, sha256, max_bytes)
        data: bytes = obj["Body"].read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ImageReadError(f"over the {max_bytes}-byte limit")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ImageReadError("content does not match the event's sha256")
        return data

    def _get(self, uri: str, sha256: str, max_bytes: int) -> _StoredObject:
        """The GetObject answer for one of our own objects, refused when it says it is over
        ``max_bytes`` (its body is checked as it is read: the header is the object's word)."""
        from botocore.exceptions import ClientError

        try:
            obj: _StoredObject = self.client.get_object(
                Bucket=self.bucket, Key=self._own(uri, sha256)
            )
        except ClientError as exc:
            raise ImageReadError(
                f"cannot read: {exc.response.get('Error', {}).get('Code')}"
            ) from None
        if int(obj.get("ContentLength") or 0) > max_bytes:
            raise ImageReadError(f"{obj['ContentLength']} bytes, over the {max_bytes}-byte limit")
        return obj

    def open(self, uri: str, *, sha256: str, max_bytes: int) -> BinaryIO:
        """As :meth:`read`, spooled to a temporary file in blocks while its digest is checked:
        the object is never held whole in memory."""
        obj = self._get(uri, sha256, max_bytes)
        spool = tempfile.TemporaryFile()  # noqa: SIM115  # returned open: the caller closes it
        try:
            _check_stream(obj["Body"], sha256, max_bytes, copy=spool)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        finally:
            obj["Body"].close()
        return spool
