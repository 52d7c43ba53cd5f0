"""Screening's OCR preflight: the real tesseract reads its probe; a missing or broken one, or
one without English data, fails with what to install; off when screening does not read text."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.adapters.ocr import tesseract_available
from shared.tools.doctor.ocr import FIX, checks

ENV = ("SCREENING_ENABLED", "SCREENING_CHECKS_OFF", "SCREENING_OCR_TIMEOUT_S", "CONFIG_PATH")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def fake_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, langs: str, reads: str) -> None:
    """A ``tesseract`` first on PATH listing ``langs`` and reading every image as ``reads``."""
    script = tmp_path / "tesseract"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  --list-langs) printf "List of available languages (1):\\n{langs}\\n"; exit 0;;\n'
        '  --version) echo "tesseract 0.0-fake"; exit 0;;\n'
        "esac\n"
        f"cat >/dev/null\necho '{reads}'\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


@pytest.mark.skipif(not tesseract_available(), reason="no tesseract with English data")
async def test_the_installed_tesseract_reads_the_probe() -> None:
    [check] = await checks()
    assert (check.name, check.status) == ("ocr.tesseract", "pass"), check
    assert check.detail.startswith("tesseract ")


async def test_no_tesseract_on_path_fails_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    [check] = await checks()
    assert (check.status, check.detail, check.fix) == ("fail", "no tesseract on PATH", FIX)


async def test_no_english_data_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_on_path(monkeypatch, tmp_path, langs="osd", reads="POD DOCTOR")
    [check] = await checks()
    assert check.status == "fail" and "no English data" in check.detail, check


async def test_a_tesseract_that_misreads_the_probe_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_on_path(monkeypatch, tmp_path, langs="eng", reads="P0D D0CT0R")
    [check] = await checks()
    assert check.status == "fail", check
    assert "tesseract 0.0-fake read the probe 'POD DOCTOR' as 'P0D D0CT0R'" in check.detail


@pytest.mark.parametrize(
    ("name", "value"),
    [("SCREENING_ENABLED", "false"), ("SCREENING_CHECKS_OFF", '["rendered_text"]')],
)
async def test_it_does_not_apply_when_no_text_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract: not needed either
    monkeypatch.setenv(name, value)
    [check] = await checks()
    assert check.status == "skip", check
