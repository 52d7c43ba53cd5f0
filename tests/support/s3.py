"""A real S3-compatible server for tests: moto's server mode, on a port of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from devstack.launch.ports import free_port

KEY_ID, SECRET = "test-key-id", "test-secret"


@contextmanager
def s3_server(bucket: str = "pod-art") -> Iterator[str]:
    """Serve S3 on loopback with ``bucket`` created; yields the endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def client(endpoint: str) -> Any:  # boto3 ships no types: its clients are built at run time
    """A boto3 S3 client of the test server."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
