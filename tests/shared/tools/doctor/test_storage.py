"""Image storage's preflight against s3proxy (SigV4 only), misconfigured in turn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.launch.ports import free_port
from shared.adapters.storage import S3ImageStorage
from shared.tools.doctor import Check
from shared.tools.doctor.storage import checks
from tests.support.s3 import KEY_ID, SECRET, client, s3_server

WRONG_SECRET = "wrong-secret-7c1d9e"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server("pod-art") as url:
        yield url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("IMAGE_STORAGE_URL", "s3://pod-art/images")
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("S3_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", SECRET)
    for name in ("S3_REGION", "S3_ADDRESSING_STYLE", "IMAGE_PUBLIC_BASE_URL", "CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    # boto3's own chain finds nothing here: no AWS_* keys, files or instance metadata.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def by_name(found: list[Check]) -> dict[str, Check]:
    assert len({c.name for c in found}) == len(found)
    return {c.name: c for c in found}


def no_secret(found: list[Check], *secrets: str) -> None:
    text = repr(found)
    for secret in (SECRET, *secrets):
        assert secret not in text
    assert "X-Amz-Signature" not in text and "X-Amz-Credential" not in text


def probes(endpoint: str) -> list[str]:
    listed = client(endpoint).list_objects_v2(Bucket="pod-art", Prefix="images/pod-doctor/")
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_a_reachable_writable_bucket_with_fetchable_sigv4_urls_passes(
    env: pytest.MonkeyPatch, endpoint: str
) -> None:
    found = await checks()
    assert [(c.name, c.status) for c in found] == [
        ("storage.bucket", "pass"),
        ("storage.write", "pass"),
        ("storage.presigned_url", "pass"),
    ]
    named = by_name(found)
    assert "s3://pod-art/images/" in named["storage.bucket"].detail
    assert "NoSuchKey" in named["storage.bucket"].detail
    write = named["storage.write"].detail
    assert "the doctor's one write" in write and "deleted it again" in write
    url = named["storage.presigned_url"].detail
    assert "without credentials" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "valid 3600 s" in url and "127.0.0.1 is not reachable from the internet" in url
    assert probes(endpoint) == []  # the probe is gone again
    no_secret(found)


async def test_a_wrong_secret_key_fails_naming_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("S3_SECRET_ACCESS_KEY", WRONG_SECRET)
    found = await checks()
    bucket = by_name(found)["storage.bucket"]
    assert bucket.status == "fail" and [c.name for c in found] == ["storage.bucket"]
    assert "SignatureDoesNotMatch" in bucket.detail
    assert "S3_SECRET_ACCESS_KEY" in (bucket.fix or "")
    no_secret(found, WRONG_SECRET)


async def test_an_unknown_access_key_fails_naming_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("S3_ACCESS_KEY_ID", "AKIAUNKNOWN0000")
    found = await checks()
    bucket = by_name(found)["storage.bucket"]
    assert bucket.status == "fail" and "InvalidAccessKeyId" in bucket.detail
    assert "S3_ACCESS_KEY_ID" in (bucket.fix or "")
    no_secret(found)


async def test_a_missing_bucket_fails_naming_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("IMAGE_STORAGE_URL", "s3://no-such-bucket/images")
    found = await checks()
    bucket = by_name(found)["storage.bucket"]
    assert bucket.status == "fail"
    assert "no bucket 'no-such-bucket'" in bucket.detail and "NoSuchBucket" in bucket.detail
    assert "IMAGE_STORAGE_URL" in (bucket.fix or "")
    no_secret(found)


async def test_an_unreachable_endpoint_fails(env: pytest.MonkeyPatch) -> None:
    port = free_port()
    env.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    found = await checks()
    bucket = by_name(found)["storage.bucket"]
    assert bucket.status == "fail"
    assert f"cannot reach http://127.0.0.1:{port}" in bucket.detail
    assert "S3_ENDPOINT_URL" in (bucket.fix or "")
    no_secret(found)


async def test_no_credentials_at_all_fails(env: pytest.MonkeyPatch) -> None:
    env.delenv("S3_ACCESS_KEY_ID")
    env.delenv("S3_SECRET_ACCESS_KEY")
    bucket = by_name(await checks())["storage.bucket"]
    assert bucket.status == "fail" and "no S3 credentials" in bucket.detail
    assert "S3_ACCESS_KEY_ID" in (bucket.fix or "")


async def test_half_the_key_pair_fails_as_settings(env: pytest.MonkeyPatch) -> None:
    env.delenv("S3_SECRET_ACCESS_KEY")
    found = by_name(await checks())
    assert found["storage.settings"].status == "fail"
    assert "S3_SECRET_ACCESS_KEY" in (found["storage.settings"].fix or "")


async def test_a_sigv2_presigned_url_fails_though_written(
    env: pytest.MonkeyPatch, endpoint: str
) -> None:
    # What the stages did before: the bucket is fine, the URL Printify is given is not.
    sigv2 = client(endpoint, signature_version="s3")

    def presign(self: S3ImageStorage, key: str, ttl_s: int | None = None) -> str:
        url: str = sigv2.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=600
        )
        return url

    env.setattr(S3ImageStorage, "presign", presign)
    found = by_name(await checks())
    assert found["storage.bucket"].status == "pass" and found["storage.write"].status == "pass"
    url = found["storage.presigned_url"]
    assert url.status == "fail" and "not signed with Signature Version 4" in url.detail
    assert url.fix
    assert probes(endpoint) == []
    no_secret(list(found.values()))


async def test_local_storage_says_base64_and_warns_about_large_files(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.delenv("IMAGE_STORAGE_URL")
    env.setenv("IMAGE_STORAGE_DIR", str(tmp_path / "images"))
    found = await checks()
    assert [(c.name, c.status) for c in found] == [
        ("storage.images", "pass"),
        ("storage.large_files", "skip"),
    ]
    named = by_name(found)
    assert "as base64" in named["storage.images"].detail
    assert str(tmp_path / "images") in named["storage.images"].detail
    large = named["storage.large_files"].detail
    assert "5 MB" in large and "IMAGE_STORAGE_URL=s3://" in large


async def test_a_served_folder_goes_by_url(env: pytest.MonkeyPatch) -> None:
    env.delenv("IMAGE_STORAGE_URL")
    env.setenv("IMAGE_PUBLIC_BASE_URL", "https://user:pw@images.example.com/art/")
    found = await checks()
    assert [(c.name, c.status) for c in found] == [("storage.images", "pass")]
    assert "https://images.example.com" in found[0].detail and "pw" not in found[0].detail
