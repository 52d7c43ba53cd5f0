"""Screening's OCR: the ``tesseract`` the generator reads designs' rendered text with.

- ``ocr.tesseract``: the binary is on PATH with its English data, and reads a probe image drawn
  here ("POD DOCTOR" in black on white) back as those words. Skipped when screening or its
  rendered-text check is off (the generator then never starts a reader).
"""

from __future__ import annotations

import asyncio
import io
import subprocess

from PIL import Image, ImageDraw, ImageFont

from shared.adapters.ocr import TesseractReader, tesseract_available, tesseract_path
from shared.contract.events import ScreeningCheck
from shared.domain.screening.settings import ScreeningSettings
from shared.platform.errors import ConfigError, PodError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check

PROBE = "POD DOCTOR"
FIX = (
    "install Debian's tesseract-ocr and tesseract-ocr-eng (the services' image has them; "
    "scripts/bootstrap.sh installs them as root), or turn the check off with "
    'SCREENING_CHECKS_OFF=["rendered_text"]'
)


def probe_image() -> bytes:
    """A PNG with :data:`PROBE` in large black letters on white."""
    img = Image.new("L", (640, 160), 255)
    ImageDraw.Draw(img).text((320, 80), PROBE, font=ImageFont.load_default(size=64), anchor="mm")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _version(path: str) -> str:
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else "tesseract (no version)"


async def checks() -> list[Check]:
    name = "ocr.tesseract"
    try:
        settings = load_settings(ScreeningSettings)
    except ConfigError as exc:
        return [Check.failed("ocr.settings", exc.message, "fix the SCREENING_* settings")]
    if not settings.screening_enabled:
        return [Check.skipped(name, "screening is off (SCREENING_ENABLED=false)")]
    if ScreeningCheck.RENDERED_TEXT in settings.screening_checks_off:
        return [Check.skipped(name, "the rendered-text check is off (SCREENING_CHECKS_OFF)")]
    path = tesseract_path()
    if path is None:
        return [Check.failed(name, "no tesseract on PATH", FIX)]
    if not await asyncio.to_thread(tesseract_available):
        return [Check.failed(name, f"{path} has no English data (tesseract-ocr-eng)", FIX)]
    version = await asyncio.to_thread(_version, path)
    try:
        read = await TesseractReader.from_settings(settings).read_text(probe_image())
    except PodError as exc:
        return [Check.failed(name, f"{version} failed to read a probe: {exc.message}", FIX)]
    if PROBE not in read:
        return [
            Check.failed(
                name, f"{version} read the probe {PROBE!r} as {read!r}", "reinstall " + FIX
            )
        ]
    return [Check.passed(name, f"{version} at {path} reads a probe image")]
