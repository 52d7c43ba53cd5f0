"""The doctor's runner: a source that crashes or hangs is a failed check, never a crash, and
never carries the exception's text (it may hold a credential)."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Awaitable, Callable

import pytest

from shared.tools.doctor import SOURCES, Check, all_passed, run


def _module(name: str, body: Callable[[], Awaitable[list[Check]]]) -> str:
    module = types.ModuleType(name)
    module.checks = body  # type: ignore[attr-defined]
    sys.modules[name] = module
    return name


async def test_a_crashing_source_is_a_failed_check_without_its_message() -> None:
    async def crash() -> list[Check]:
        raise RuntimeError("token sk-live-123 refused")

    async def fine() -> list[Check]:
        return [Check.passed("fine.one", "ok")]

    found = await run([_module("doctor_fake_crash", crash), _module("doctor_fake_fine", fine)])
    assert [(c.name, c.status) for c in found] == [
        ("doctor_fake_crash.ran", "fail"),
        ("fine.one", "pass"),
    ]
    assert "sk-live-123" not in repr(found) and "RuntimeError" in found[0].detail
    assert not all_passed(found)


async def test_a_hanging_source_fails_at_the_timeout_and_the_others_still_answer() -> None:
    async def hang() -> list[Check]:
        await asyncio.sleep(60)
        return []

    async def fine() -> list[Check]:
        return [Check.skipped("fine.one", "not configured")]

    found = await run(
        [_module("doctor_fake_hang", hang), _module("doctor_fake_fine2", fine)], timeout_s=0.2
    )
    assert [(c.name, c.status) for c in found] == [
        ("doctor_fake_hang.answered", "fail"),
        ("fine.one", "skip"),
    ]
    assert all_passed(found[1:])  # a skipped check does not count against


@pytest.mark.parametrize("path", SOURCES)
def test_every_source_is_a_module_with_checks(path: str) -> None:
    import importlib

    assert callable(importlib.import_module(path).checks)
