"""``pod`` against the real API (uvicorn, real broker and database): what it prints of fields
other systems wrote is inert text, and ``pod replay`` shows where each letter goes before it
replays anything."""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from confluent_kafka import Message
from psycopg_pool import AsyncConnectionPool

from services.monitor.dlq import parse_record
from services.monitor.fold import Folder
from shared.contract.events import EVENT_TYPES, JobRequested, JobRequestedPayload
from shared.contract.topics import GENERATOR
from shared.platform.db import open_pool
from shared.tools.cli import main, safe_text
from tests.services.api.conftest import serve
from tests.support.infra import unique

# An OSC 8 hyperlink, a clear-screen, rich markup (colour and a link), a C1 CSI, a bidi
# override and a line break: what a producer can put in a theme or a reason.
HOSTILE = (
    "\x1b]8;;http://evil\x07click\x1b]8;;\x07 \x1b[2J [red]x[/red] [link=http://evil]y[/link]"
    " \x9b31mz \u202eab\ncd"
)
_offsets = iter(range(random.randrange(6 * 10**12, 7 * 10**12), 8 * 10**12))


@pytest.fixture(scope="module")
def api(pipeline_topics: str, migrated_db: str) -> Iterator[httpx.Client]:
    with serve(kafka_bootstrap_servers=pipeline_topics, database_url=migrated_db) as client:
        yield client


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(migrated_db, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def terminal(api: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI aimed at the API, printing for a wide colour terminal (where escapes and markup
    would take effect)."""
    monkeypatch.setenv("POD_API_URL", str(api.base_url))
    monkeypatch.delenv("POD_API_KEY", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "400")


async def folded_job(pool: AsyncConnectionPool, theme: str = "t") -> JobRequested:
    """A job another system produced, as the monitor folds it (the API's checks never saw it)."""
    job = JobRequested(
        job_id=unique("cli"),
        producer="elsewhere",
        payload=JobRequestedPayload(
            theme=theme, style="s", niche=theme, product_types=["mug"], count=1
        ),
    )
    await Folder(pool).fold(job, "jobs.requested.normal", 0, 0)
    return job


async def generator_letter(pool: AsyncConnectionPool, job: JobRequested, message: str) -> None:
    """A dead letter of the generator for ``job``, as the runner writes it and the monitor
    records it."""
    headers: list[tuple[str, str | bytes | None]] = [
        ("pod.error.class", b"PermanentError"),
        ("pod.error.message", message.encode()),
        ("pod.original.topic", b"jobs.requested.normal"),
        ("pod.original.partition", b"0"),
        ("pod.original.offset", b"1"),
        ("pod.stage", b"generator"),
    ]
    offset = next(_offsets)
    msg = Message(
        topic=GENERATOR.dlq, partition=0, offset=offset, key=job.job_id.encode(),
        value=job.to_json(), headers=headers, timestamp=(1, 1_800_000_000_000),
    )  # fmt: skip
    await Folder(pool).fold(parse_record(msg, EVENT_TYPES), GENERATOR.dlq, 0, offset)


def assert_inert(out: str) -> None:
    assert "\x1b]" not in out  # no hyperlink, no window title
    assert "\x1b[2J" not in out and "\x07" not in out and "\x9b" not in out
    assert "\u202e" not in out
    # The markup is shown as the text it is, not obeyed.
    assert "[red]x[/red]" in out and "[link=http://evil]y[/link]" in out
    assert "ab cd" in out  # the line break is a space: one row stays one row


@pytest.mark.usefixtures("terminal")
async def test_job_fields_and_dead_letter_reasons_print_as_inert_text(
    pool: AsyncConnectionPool, capsys: pytest.CaptureFixture[str]
) -> None:
    job = await folded_job(pool, HOSTILE)
    assert main(["--text", "jobs", "--limit", "100"]) == 0
    listed = capsys.readouterr().out
    assert job.job_id in listed
    assert "\x1b[" in listed  # a colour terminal indeed: the table's own styles are there
    assert_inert(listed)

    await generator_letter(pool, job, HOSTILE)
    assert main(["--text", "dlq", "--job", job.job_id]) == 0
    letters = capsys.readouterr().out
    assert "jobs.requested.normal" in letters  # the letter's replay target
    assert_inert(letters)


def test_safe_text_removes_escapes_and_controls_and_escapes_markup() -> None:
    assert safe_text("\x1b]8;;http://evil\x07click\x1b]8;;\x07") == "click"
    assert safe_text("\x1b[2Ja\x1b[31mb\x9b0mc\x1bPdata\x1b\\d") == "abcd"
    assert safe_text("[bold]x[/bold]") == "\\[bold]x\\[/bold]"
    assert safe_text("a\tb\nc\x00d\x7fe\u202ef") == "a b cdef"
    assert safe_text("plain, 100% [not a tag") == "plain, 100% [not a tag"


@pytest.mark.usefixtures("terminal")
async def test_replay_shows_each_target_and_asks_first(
    api: httpx.Client,
    pool: AsyncConnectionPool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = await folded_job(pool)
    await generator_letter(pool, job, "no")

    def replayed() -> bool:
        [letter] = api.get("/dlq", params={"jobId": job.job_id}).json()["deadLetters"]
        return letter["replayedAt"] is not None

    # Not on a terminal and no --yes: shown, not replayed.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["--text", "replay", "--job", job.job_id]) == 1
    shown = capsys.readouterr()
    assert "jobs.requested.normal" in shown.out and job.job_id in shown.out
    assert "confirm with --yes" in shown.err
    assert not replayed()

    # On a terminal: asked, and a "no" replays nothing.
    tty = io.StringIO("")
    monkeypatch.setattr(tty, "isatty", lambda: True)
    monkeypatch.setattr(sys, "stdin", tty)
    asked: list[str] = []

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return "n"

    monkeypatch.setattr("builtins.input", answer)
    assert main(["--text", "replay", "--job", job.job_id]) == 1
    assert asked == ["replay 1 dead letter(s) as shown? [y/N] "]
    assert not replayed()
    capsys.readouterr()

    # --yes: replayed, and the answer says where it went.
    assert main(["--json", "replay", "--job", job.job_id, "--yes"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["replayed"] == 1
    assert [t["replayTo"] for t in body["targets"]] == ["jobs.requested.normal"]
    assert replayed()
