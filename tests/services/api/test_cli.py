"""The `pod` command line against a running API."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from shared.tools.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_submit_status_and_list(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    theme = f"cli {uuid.uuid4().hex[:8]}"
    code, body = run(
        capsys, "submit", "--theme", theme, "--style", "flat", "--niche", "dogs",
        "--types", "tshirt,mug", "--count", "2", "--priority", "high", "--auto-publish",
    )  # fmt: skip
    assert code == 0
    job_id = body["jobId"]  # type: ignore[index]
    code, status = run(capsys, "status", job_id)
    assert code == 0
    assert status["job"]["theme"] == theme  # type: ignore[index]
    assert status["job"]["productTypes"] == ["tshirt", "mug"]  # type: ignore[index]
    assert status["job"]["autoPublish"] is True  # type: ignore[index]
    code, listing = run(capsys, "jobs", "--limit", "50")
    assert code == 0
    assert job_id in {j["jobId"] for j in listing["jobs"]}  # type: ignore[index]


def test_bad_input_exits_non_zero_with_the_reason(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    code, body = run(
        capsys, "submit", "--theme", "x", "--style", "y", "--niche", "z", "--types", "sock"
    )
    assert code == 1
    assert "productTypes" in json.dumps(body)


def test_unreachable_api(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", "http://127.0.0.1:9")
    assert main(["status", "nope"]) == 2
    assert "cannot reach the API" in capsys.readouterr().err


def test_a_job_that_does_not_end_in_time_exits_3(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No stage runs beside this API: the job stays queued.
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    code, body = run(capsys, "submit", "--theme", "t", "--style", "s", "--niche", "n")
    assert code == 0
    job_id = body["jobId"]  # type: ignore[index]
    assert main(["--json", "watch", job_id, "--timeout", "1"]) == 3
    assert "still not done after 1 s" in capsys.readouterr().err


def test_text_output_is_a_table_and_json_is_json(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    code, body = run(capsys, "submit", "--theme", "t", "--style", "s", "--niche", "n",
                     "--types", "mug", "--count", "2", "--auto-publish")  # fmt: skip
    assert code == 0
    job_id = body["jobId"]  # type: ignore[index]
    assert main(["--text", "status", job_id]) == 0
    table = capsys.readouterr().out
    assert f"job {job_id}" in table and "queued" in table
    assert "images" in table and "products" in table and "publications" in table
    code, stats = run(capsys, "--json", "top", "--once")
    assert code == 0 and "generator" in stats["workerStats"]["stages"]  # type: ignore[index]
    code, letters = run(capsys, "dlq", "--job", job_id)
    assert code == 0 and letters["deadLetters"] == []  # type: ignore[index]


def test_a_refused_command_exits_1_with_the_reason(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    assert main(["--text", "replay", "--stage", "nowhere"]) == 1
    assert "stage" in capsys.readouterr().err
