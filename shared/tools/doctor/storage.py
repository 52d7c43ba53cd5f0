"""Image storage: where the generator keeps images, and how Printify gets them.

A bucket (``IMAGE_STORAGE_URL=s3://bucket/prefix``), with the client the stages build
(:meth:`ImageStorageSettings.s3_client`):

- ``storage.bucket``: the bucket exists and answers these credentials; asked for an absent key
  under the prefix, it says NoSuchKey, which is what the generator's lookup needs (a key without
  s3:ListBucket gets 403 there instead, and the generator cannot tell "absent" from "refused").
- ``storage.write``: a small probe object is written under ``<prefix>pod-doctor/`` and deleted
  again. It is the doctor's one write anywhere: the issue asks for a bucket proved writable.
- ``storage.presigned_url``: the probe's presigned GET URL, made as the printify stage makes an
  image's, is signed with Version 4 and is fetched over plain HTTP without credentials, as
  Printify fetches a print file uploaded by URL, returning the probe's bytes.

A folder (the default): images go to Printify as base64 unless ``IMAGE_PUBLIC_BASE_URL`` serves
it, and Printify refuses base64 over 5 MB, which print files usually exceed (said as a skipped
check: a development stack works without a bucket).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
from typing import TypedDict
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.storage import ImageStorageSettings, S3ImageStorage
from shared.platform.errors import ConfigError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check

PROBE_DIR = "pod-doctor/"


# Short: a doctor that waits a minute on a black-holed endpoint says nothing for that minute.
class _Retries(TypedDict):
    mode: str
    total_max_attempts: int


class _ClientConfig(TypedDict):
    """What the doctor adds to botocore's ``Config``."""

    connect_timeout: int
    read_timeout: int
    retries: _Retries


CLIENT_CONFIG: _ClientConfig = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"mode": "standard", "total_max_attempts": 2},
}
FETCH_TIMEOUT_S = 10.0
BASE64_LIMIT = "5 MB"
_S3_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


async def checks() -> list[Check]:
    try:
        settings = load_settings(ImageStorageSettings)
    except ConfigError as exc:
        return [Check.failed("storage.settings", exc.message, "correct the settings named")]
    if settings.image_storage_url is None:
        return _folder(settings)
    return await _bucket(settings)


def _folder(settings: ImageStorageSettings) -> list[Check]:
    where = f"a folder ({settings.image_storage_dir}, IMAGE_STORAGE_DIR)"
    if settings.image_public_base_url:
        return [
            Check.passed(
                "storage.images",
                f"{where}; Printify fetches each image by URL under IMAGE_PUBLIC_BASE_URL "
                f"({_origin(settings.image_public_base_url)}): that it is served there is not "
                "checked",
            )
        ]
    return [
        Check.passed(
            "storage.images",
            f"{where}; IMAGE_PUBLIC_BASE_URL unset, so each image goes to Printify as base64",
        ),
        Check.skipped(
            "storage.large_files",
            f"Printify refuses base64 uploads over {BASE64_LIMIT} and a print file is usually "
            "larger: the printify stage fails such an image. For production set "
            "IMAGE_STORAGE_URL=s3://bucket/prefix (or serve the folder at IMAGE_PUBLIC_BASE_URL)",
        ),
    ]


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: never a path, query or user part (credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _where(settings: ImageStorageSettings) -> str:
    if settings.s3_endpoint_url:
        return _origin(settings.s3_endpoint_url)
    return f"AWS S3 ({settings.s3_region})"


async def _bucket(settings: ImageStorageSettings) -> list[Check]:
    from botocore.exceptions import BotoCoreError

    try:
        store = settings.s3_store(**CLIENT_CONFIG)
    except (BotoCoreError, ValueError) as exc:
        return [
            Check.failed(
                "storage.settings",
                f"cannot make an S3 client ({type(exc).__name__})",
                "set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (boto3's "
                "chain), and S3_ENDPOINT_URL to an http(s) URL",
            )
        ]
    where = _where(settings)
    name = f"s3://{store.bucket}/{store.prefix}"

    found = await asyncio.to_thread(_reachable, store, settings, where, name)
    if not found.ok:
        return [found]
    probe_key = f"{store.prefix}{PROBE_DIR}probe-{secrets.token_hex(8)}.txt"
    body = f"pod doctor probe {secrets.token_hex(8)}\n".encode()
    refused = await asyncio.to_thread(_write, store, where, probe_key, body, name)
    if refused is not None:
        return [found, refused]
    try:
        fetched = await _fetch(store, settings, probe_key, body)
    finally:
        not_deleted = await asyncio.to_thread(_delete, store, probe_key)
    detail = f"wrote a probe, {probe_key} ({len(body)} bytes: the doctor's one write), and " + (
        "deleted it again"
        if not_deleted is None
        else f"could not delete it ({not_deleted}): delete it by hand"
    )
    return [found, Check.passed("storage.write", detail), fetched]


def _code(exc: Exception) -> tuple[str, int]:
    """The S3 error code and HTTP status of a botocore ClientError."""
    try:
        response = _S3Failure.model_validate(getattr(exc, "response", {}))
    except ValidationError:
        return "?", 0
    code = response.error.code if response.error is not None else None
    meta = response.metadata
    return code or "?", (meta.status if meta is not None else None) or 0


class _S3Error(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    code: str | None = Field(None, alias="Code")


class _S3Metadata(BaseModel):
    status: int | None = Field(None, alias="HTTPStatusCode")


class _S3Failure(BaseModel):
    """The parts of a botocore ClientError's ``response`` the doctor reads."""

    error: _S3Error | None = Field(None, alias="Error")
    metadata: _S3Metadata | None = Field(None, alias="ResponseMetadata")


def _credential_failure(name: str, code: str, where: str) -> Check | None:
    """The failed check for an error code that is about the credentials, else None."""
    if code == "InvalidAccessKeyId":
        return Check.failed(
            name,
            f"{where} does not know the access key id (S3_ACCESS_KEY_ID): {code}",
            "set S3_ACCESS_KEY_ID to an access key of this store (R2: an R2 API token's "
            "Access Key ID), or unset both keys to use boto3's chain (AWS_* variables, role)",
        )
    if code == "SignatureDoesNotMatch":
        return Check.failed(
            name,
            f"{where} refused the signature ({code}): the secret key is not the access key's",
            "set S3_SECRET_ACCESS_KEY to the secret of the access key in S3_ACCESS_KEY_ID",
        )
    if code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "301"):
        return Check.failed(
            name,
            f"{where} answered {code}: the bucket is in another region than S3_REGION",
            "set S3_REGION to the bucket's region (R2: auto)",
        )
    return None


def _reachable(
    store: S3ImageStorage, settings: ImageStorageSettings, where: str, name: str
) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    absent = f"{store.prefix}{PROBE_DIR}absent-{secrets.token_hex(8)}"
    try:
        store.client.get_object(Bucket=store.bucket, Key=absent)
    except ClientError as exc:
        code, status = _code(exc)
        if code in ("NoSuchKey", "404"):
            return Check.passed(
                "storage.bucket",
                f"{name} at {where} answers these credentials (an absent key: {code})",
            )
        if code == "NoSuchBucket":
            return Check.failed(
                "storage.bucket",
                f"no bucket {store.bucket!r} at {where} ({code})",
                "create the bucket, or correct the bucket name in IMAGE_STORAGE_URL"
                + ("" if settings.s3_endpoint_url else " (and S3_ENDPOINT_URL for MinIO, R2)"),
            )
        if known := _credential_failure("storage.bucket", code, where):
            return known
        if code == "AccessDenied":
            return Check.failed(
                "storage.bucket",
                f"{where} refused to say whether {name} holds a key (AccessDenied): the "
                "generator looks images up by key and must be told 'absent', not 'refused'",
                "grant this key s3:ListBucket on the bucket, and s3:GetObject and s3:PutObject "
                "on the prefix",
            )
        return Check.failed(
            "storage.bucket",
            f"{where} answered {code} ({status}) for {name}",
            "check IMAGE_STORAGE_URL, S3_ENDPOINT_URL and S3_REGION, and the store's status",
        )
    except NoCredentialsError:
        return Check.failed(
            "storage.bucket",
            "no S3 credentials: S3_ACCESS_KEY_ID is unset and boto3's chain found none",
            "set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or an instance role)",
        )
    except BotoCoreError as exc:
        return Check.failed(
            "storage.bucket",
            f"cannot reach {where} ({type(exc).__name__})",
            "check S3_ENDPOINT_URL (unset for AWS) and that this host can reach it",
        )
    return Check.failed(
        "storage.bucket",
        f"{where} returned an object for a key that does not exist ({absent})",
        "check that S3_ENDPOINT_URL is an S3-compatible store",
    )


def _write(store: S3ImageStorage, where: str, key: str, body: bytes, name: str) -> Check | None:
    """Write the probe; returns the failed check, or None when it was written."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        store.client.put_object(Bucket=store.bucket, Key=key, Body=body, ContentType="text/plain")
    except ClientError as exc:
        code = _code(exc)[0]
        if known := _credential_failure("storage.write", code, where):
            return known
        fix = (
            "grant this key s3:PutObject on the prefix"
            if code == "AccessDenied"
            else "check the store's status and that it implements PutObject"
        )
        return Check.failed("storage.write", f"{where} refused a write to {name} ({code})", fix)
    except BotoCoreError as exc:
        return Check.failed(
            "storage.write",
            f"the write to {name} failed ({type(exc).__name__})",
            "check that this host can reach S3_ENDPOINT_URL",
        )
    return None


def _delete(store: S3ImageStorage, key: str) -> str | None:
    """Delete the probe; returns why it could not be, or None."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        store.client.delete_object(Bucket=store.bucket, Key=key)
    except ClientError as exc:
        return _code(exc)[0]
    except BotoCoreError as exc:
        return type(exc).__name__
    return None


def _internal(host: str) -> bool:
    """Whether ``host`` is one Printify, on the internet, cannot reach."""
    if host == "localhost" or host.endswith((".local", ".internal", ".svc")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


async def _fetch(
    store: S3ImageStorage, settings: ImageStorageSettings, key: str, body: bytes
) -> Check:
    name = "storage.presigned_url"
    url = await asyncio.to_thread(store.presign, key)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    origin = _origin(url)
    if query.get("X-Amz-Algorithm") != ["AWS4-HMAC-SHA256"]:
        return Check.failed(
            name,
            f"the presigned URL (at {origin}) is not signed with Signature Version 4: AWS "
            "buckets made since 2020-06-24, newer regions and R2 refuse it",
            "upgrade pod-engine: shared/adapters/storage.py signs with s3v4",
        )
    try:
        # Plainly, as Printify does: no credentials, no proxy settings of ours, no redirects
        # (a SigV4 signature covers the host, so a redirected URL cannot be valid).
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, trust_env=False) as http:
            response = await http.get(url)
    except httpx.HTTPError as exc:
        return Check.failed(
            name,
            f"could not fetch the presigned URL from {origin} ({type(exc).__name__})",
            "check that S3_ENDPOINT_URL is reachable from here and from Printify",
        )
    if response.is_redirect:
        return Check.failed(
            name,
            f"{origin} redirected the presigned URL to "
            f"{_origin(response.headers.get('location', ''))}: Printify's fetch would fail",
            "set S3_REGION to the bucket's region (R2: auto)",
        )
    if response.status_code != 200 or response.content != body:
        found = _S3_CODE.search(response.text[:2000])
        code = found.group(1) if found else "no S3 error code"
        return Check.failed(
            name,
            f"{origin} answered {response.status_code} ({code}) to the presigned URL, without "
            "credentials, as Printify would fetch it"
            + (" (other bytes than the probe's)" if response.status_code == 200 else ""),
            "let presigned GETs through: no bucket policy denying them, S3_REGION the "
            "bucket's region, and S3_ADDRESSING_STYLE=path if the store serves no "
            "bucket.host names",
        )
    detail = (
        f"fetched the probe without credentials from {origin} by a Signature Version 4 URL "
        f"(X-Amz-Algorithm=AWS4-HMAC-SHA256, valid {settings.image_url_ttl_s} s), as Printify "
        "will fetch each print file"
    )
    if _internal(parts.hostname or ""):
        detail += (
            f"; note: {parts.hostname} is not reachable from the internet, where Printify "
            "fetches from (fine with the simulators)"
        )
    return Check.passed(name, detail)
