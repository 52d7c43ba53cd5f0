"""Printify's webhook signature (X-Pfy-Signature) without a server."""

import hashlib
import hmac

import pytest

from shared.adapters.vendors.printify_webhooks import sign, signature_ok

SECRET = "whsec-5b0c1e"
BODY = b'{"id":"e1","type":"order:created","resource":{"id":"o1","type":"order","data":{}}}'


def test_the_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY) == f"sha256={digest}"
    assert signature_ok(SECRET, BODY, f"sha256={digest}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256=" + "0" * 64,
        sign("another-secret", BODY),
        sign(SECRET, BODY).removeprefix("sha256="),  # the bare digest
        sign(SECRET, BODY).upper(),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(header: str | None) -> None:
    assert not signature_ok(SECRET, BODY, header)


def test_a_signature_replayed_with_a_changed_body_is_refused() -> None:
    header = sign(SECRET, BODY)
    changed = BODY.replace(b"order:created", b"order:updated")
    assert not signature_ok(SECRET, changed, header)
    assert not signature_ok(SECRET, BODY + b" ", header)
