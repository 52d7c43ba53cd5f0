"""A real S3 server for tests: s3proxy (devstack/launch/s3proxy.py) on a free loopback port,
checking every signature and refusing Signature Version 2, as AWS, R2 and MinIO do."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config

from devstack.launch.s3proxy import LocalS3Proxy, stop_leftovers
from tests.support.infra import TEST_STATE

KEY_ID, SECRET = "test-key-id", "test-secret-access-key"
HOMES = TEST_STATE / "s3proxy"


@contextmanager
def s3_server(bucket: str = "pod-art") -> Iterator[str]:
    """Serve S3 on loopback with ``bucket`` created; yields the endpoint URL."""
    stop_leftovers(HOMES)
    home = HOMES / uuid.uuid4().hex[:12]
    try:
        with LocalS3Proxy(home, identity=KEY_ID, credential=SECRET) as server:
            client(server.endpoint).create_bucket(Bucket=bucket)
            yield server.endpoint
    finally:
        shutil.rmtree(home, ignore_errors=True)


def client(endpoint: str, *, secret: str = SECRET, **config: Any) -> Any:  # boto3 ships no types
    """A boto3 S3 client of the test server, signing with Version 4 and sending checksums only
    where required, as the engine's client does (``config``: botocore's ``Config`` options to
    change, ``signature_version="s3"`` for Version 2)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=secret,
        config=Config(
            **{
                "signature_version": "s3v4",
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
                **config,
            }
        ),
    )
