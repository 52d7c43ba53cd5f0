"""Credentials in URLs are redacted from whatever is shown: log lines, errors, doctor checks."""

from __future__ import annotations

import io
import logging

import pytest

from shared.platform.errors import RetryableError
from shared.platform.logs import RedactingFormatter, redact_url, redact_urls, split_credentials
from shared.tools.doctor import Check


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://pod:hunter2@db:5432/pod", "postgresql://pod:***@db:5432/pod"),
        ("https://user:p%40ss@gpu.example/x?y=1", "https://user:***@gpu.example/x?y=1"),
        ("https://ghp_tokenonly@git.example/r", "https://***@git.example/r"),
        ("http://127.0.0.1:8188/prompt", "http://127.0.0.1:8188/prompt"),
        ("mailto-ish a@b and http://h/p?mail=a@b", "mailto-ish a@b and http://h/p?mail=a@b"),
        (
            "backends http://a:one@h1, s3://key:two@bucket failed",
            "backends http://a:***@h1, s3://key:***@bucket failed",
        ),
        ("COMFYUI_API_URL=http://u:pw@h:1 down", "COMFYUI_API_URL=http://u:***@h:1 down"),
    ],
)
def test_redact_urls(text: str, shown: str) -> None:
    assert redact_urls(text) == shown
    assert redact_url(text) == shown


def test_split_credentials_gives_the_bare_url_and_the_decoded_pair() -> None:
    assert split_credentials("https://user:p%40ss@gpu:8443/base") == (
        "https://gpu:8443/base",
        ("user", "p@ss"),
    )
    assert split_credentials("http://127.0.0.1:8188") == ("http://127.0.0.1:8188", None)


def test_every_logged_line_is_redacted_tracebacks_included() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connecting url=%s", "postgresql://pod:hunter2@db/pod")
        try:
            raise ValueError("cannot reach http://render:hunter2@gpu:8188")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "hunter2" not in out
    assert "postgresql://pod:***@db/pod" in out and "http://render:***@gpu:8188" in out


def test_errors_and_doctor_checks_never_carry_a_url_password() -> None:
    error = RetryableError("render failed backend=http://u:hunter2@gpu:8188", vendor="comfyui")
    assert "hunter2" not in str(error) and "hunter2" not in error.describe()
    check = Check.failed(
        "comfyui.server", "http://u:hunter2@gpu does not answer", "check http://u:hunter2@gpu"
    )
    assert "hunter2" not in repr(check)
