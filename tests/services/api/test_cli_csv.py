"""`pod submit --csv` against a running API: a line per outcome, safe to run again, and an exit
code that says whether every line went in."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shared.tools.cli import main
from tests.support.infra import unique

HEADER = "theme,style,niche,types,count,priority,channels"


def test_a_csv_file_is_submitted_once_however_often_it_is_run(
    api: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    theme = unique("cli csv")
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\n{theme},flat,dogs,tshirt|mug,1,high,\n{theme},flat,dogs,mug,2,3,\n")
    assert main(["--json", "submit", "--csv", str(good)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [line["status"] for line in first["lines"]] == ["accepted", "accepted"]
    assert main(["--json", "submit", "--csv", str(good)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [line["status"] for line in again["lines"]] == ["already_accepted"] * 2
    assert [line["jobId"] for line in again["lines"]] == [line["jobId"] for line in first["lines"]]

    # A bad line: exit 1, every line's outcome still printed (as a table on a terminal).
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n{theme},flat,dogs,tshirt,1,high,\n{theme},flat,dogs,sock,0,high,\n")
    assert main(["--text", "submit", "--csv", str(bad)]) == 1
    shown = capsys.readouterr().out
    assert "already accepted" in shown and "invalid" in shown
    assert "types[0]" in shown and "count: must be at least 1" in shown


def test_a_file_that_cannot_be_sent_exits_non_zero(
    api: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    assert main(["--json", "submit", "--csv", str(tmp_path / "none.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    header_only = tmp_path / "wrong.csv"
    header_only.write_text("theme,colour\n")
    assert main(["--json", "submit", "--csv", str(header_only)]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "bad_csv"
    # The file gives the jobs: a job's own arguments beside it are a mistake, as is none at all.
    assert main(["submit", "--csv", str(header_only), "--theme", "x"]) == 2
    assert "--theme" in capsys.readouterr().err
    assert main(["submit", "--theme", "x"]) == 2
    assert "--style, --niche" in capsys.readouterr().err
