"""`pod submit --wait` against the whole stack: it follows the job to its end and its exit code
says how it ended (0 completed; 1 partial or failed: tests/services/test_channels_e2e.py, whose
stack may be made to fail)."""

from __future__ import annotations

import json

import pytest

from devstack.stack import Stack
from shared.tools.cli import main
from tests.support.pipeline import api

SUBMIT = ["submit", "--theme", "cli wait", "--style", "flat", "--niche", "owls"]


def test_submit_wait_follows_the_job_to_completion(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", api(stack))
    code = main(["--json", *SUBMIT, "--types", "tshirt,mug", "--auto-publish", "--wait",
                 "--timeout", "120"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    detail = json.loads(captured.out)
    assert detail["job"]["detailedStatus"] == "completed"
    assert detail["job"]["publicationsDone"] == 2
    # Progress went to stderr as it happened, the last line the end.
    lines = captured.err.strip().splitlines()
    assert len(lines) >= 2 and lines[-1].endswith("publications 2/2")
    assert "completed" in lines[-1]
