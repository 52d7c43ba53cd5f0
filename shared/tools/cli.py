"""``pod``: the command-line tool.

    pod submit --theme … --style … --niche … [--types tshirt,mug] [--channels shopify] [--wait]
    pod submit --csv jobs.csv    one job a line (POST /jobs/bulk; sending it again is safe)
    pod status <job id>          pod watch <job id>        pod jobs [--status …]
    pod dlq [--stage …]          pod replay (--id N | --job ID | --stage S) [--yes]
    pod top [--once]             pod up                    pod webhooks register --url …
    pod doctor [--api]           read-only preflight of every configured vendor
    pod review list [JOB]        pod review approve|reject|regenerate JOB INDEX [--prompt …]
    pod cancel <job id> [--reason …]
    pod unpublish|delete <job id> [--image N] [--type T] [--channels a,b]
    pod reprice (<job id> | --niche N | --theme T | --all) --margin M

Talks to the API at ``POD_API_URL`` (default http://127.0.0.1:3000) with ``POD_API_KEY`` as the
bearer key when the API requires one. On a terminal the output is for people (tables, live
progress); piped, or with ``--json``, it is JSON on stdout, so it pipes into ``jq`` (``--text``
forces the tables).

Exit codes: 0 done (a waited-for job completed), 1 refused or a job that ended ``partial`` or
``failed``, 2 the API cannot be reached or the command is incomplete, 3 a wait that timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import httpx

if TYPE_CHECKING:
    from rich.live import Live

TERMINAL = ("completed", "partial", "failed")
EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_TIMEOUT = 0, 1, 2, 3


# Terminal escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST: titles,
# hyperlinks), DCS/SOS/PM/APC strings, and the two-byte ESC sequences; their C1 forms too.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a line shows.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_text(value: object) -> str:
    """``value`` as text a terminal shows as it is: escape sequences and control characters
    removed (a line break or tab becomes a space), rich markup escaped (``[red]`` is printed,
    not obeyed). Every value the CLI prints came from a producer it does not control."""
    from rich.markup import escape

    text = _ESCAPES.sub("", str(value))
    text = _CONTROLS.sub(lambda m: " " if m.group() in "\t\n\r" else "", text)
    return escape(text)


def safe_body(body: Any) -> Any:
    """An API answer with :func:`safe_text` applied to every string in it (keys included)."""
    if isinstance(body, str):
        return safe_text(body)
    if isinstance(body, dict):
        return {safe_text(k): safe_body(v) for k, v in body.items()}
    if isinstance(body, list):
        return [safe_body(v) for v in body]
    return body


def _client() -> httpx.Client:
    headers = {}
    key = os.environ.get("POD_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    base = os.environ.get("POD_API_URL", "http://127.0.0.1:3000")
    return httpx.Client(base_url=base, headers=headers, timeout=30)


class Output:
    """JSON for scripts, tables and live progress for people."""

    def __init__(self, as_json: bool) -> None:
        from rich.console import Console

        self.json = as_json
        self.console = Console()
        self.err = Console(stderr=True)

    def emit(self, body: Any, render: Callable[[Any], Any] | None = None) -> None:
        """One result: JSON on stdout, or ``render(body)`` on the console."""
        if self.json or render is None:
            # JSON escapes every control character itself; markup means nothing there.
            sys.stdout.write(json.dumps(body, indent=2) + "\n")
        else:
            self.console.print(render(safe_body(body)))

    def answer(self, resp: httpx.Response, render: Callable[[Any], Any] | None = None) -> int:
        """An API answer: the body (or the error), and the exit code it means."""
        try:
            body: Any = resp.json()
        except ValueError:
            body = {"status": resp.status_code, "body": resp.text}
        if resp.is_success:
            self.emit(body, render)
            return EXIT_OK
        if self.json:
            sys.stdout.write(json.dumps(body, indent=2) + "\n")
        else:
            self.err.print(f"[red]{resp.status_code}[/red] {_problem(safe_body(body))}")
        return EXIT_REFUSED


def _problem(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)
    detail = body.get("detail")
    if isinstance(detail, list):
        return "; ".join(f"{d.get('field')}: {d.get('message')}" for d in detail)
    return f"{body.get('error', '')} {detail or ''}".strip()


# ------------------------------------------------------------------------------- answers
# The API answers the renderers read (the fields they read, as the API's schemas name them).
# Declared here rather than imported from services/api: the CLI ships without the services.


class JobAnswer(TypedDict):
    jobId: str
    detailedStatus: str
    theme: str
    productTypes: list[str]
    count: int
    createdAt: str
    autoPublish: bool
    channels: NotRequired[list[str] | None]
    error: NotRequired[str | None]
    imagesDone: int
    imagesFailed: int
    productsDone: int
    productsFailed: int
    expectedProducts: int
    publicationsDone: int
    publicationsFailed: int
    expectedPublications: int


class WaitAnswer(TypedDict):
    stage: NotRequired[str | None]
    what: str
    count: int
    until: NotRequired[str | None]
    deadline: NotRequired[str | None]


class JobDetailAnswer(TypedDict):
    job: JobAnswer
    waits: NotRequired[list[WaitAnswer] | None]


class JobsAnswer(TypedDict):
    jobs: NotRequired[list[JobAnswer]]


class CheckAnswer(TypedDict):
    status: str
    name: str
    detail: str
    fix: str | None


class DoctorAnswer(TypedDict):
    ok: NotRequired[bool]
    checks: NotRequired[list[CheckAnswer]]


class DeadLetterAnswer(TypedDict):
    id: int
    stage: str
    jobId: str | None
    errorClass: str
    message: str
    failedAt: str
    replayCount: int
    replayTo: NotRequired[str | None]


class DeadLettersAnswer(TypedDict):
    deadLetters: NotRequired[list[DeadLetterAnswer]]


class BulkProblem(TypedDict):
    field: str
    message: str


class BulkLineAnswer(TypedDict):
    line: int
    status: str
    jobId: str | None
    errors: list[BulkProblem]


class BulkAnswer(TypedDict):
    ok: bool
    accepted: int
    alreadyAccepted: int
    invalid: int
    notSubmitted: int
    lines: list[BulkLineAnswer]


class StageAnswer(TypedDict):
    instances: int
    inFlight: int
    processed: int
    failed: int
    lag: int | None
    dlqSize: int


class WorkerStatsAnswer(TypedDict):
    stages: dict[str, StageAnswer]


class StatsAnswer(TypedDict):
    workerStats: WorkerStatsAnswer
    jobs: dict[str, int]


class ReplayTargetAnswer(TypedDict):
    id: int
    jobId: str | None
    deadLetter: str
    replayTo: str


class ReplayAnswer(TypedDict):
    targets: NotRequired[list[ReplayTargetAnswer]]
    skipped: NotRequired[list[int]]


class ReviewProductAnswer(TypedDict):
    productType: str
    priceMinCents: int | None
    marginMinPercent: float | None
    mockups: list[str]


class ScreeningReasonAnswer(TypedDict):
    check: str
    outcome: str


class ScreeningAnswer(TypedDict):
    decision: str
    reasons: list[ScreeningReasonAnswer]


class ReviewImageAnswer(TypedDict):
    imageIndex: int
    generation: int
    state: str
    title: str
    decidedBy: str | None
    products: list[ReviewProductAnswer]
    screening: NotRequired[ScreeningAnswer | None]


class JobReviewAnswer(TypedDict):
    jobId: str
    detailedStatus: str
    images: list[ReviewImageAnswer]


class ReviewItemAnswer(TypedDict):
    jobId: str
    imageIndex: int
    generation: int
    title: str | None
    theme: str
    productCount: int
    awaitingSince: str | None


class ReviewQueueAnswer(TypedDict):
    reviews: list[ReviewItemAnswer]
    total: int


class DecisionAnswer(TypedDict):
    jobId: str
    imageIndex: int
    action: str
    decisionId: str
    generation: int
    state: str
    decidedBy: str


# ------------------------------------------------------------------------------- renderers


def _progress_table(detail: JobDetailAnswer) -> Any:
    """A job's progress per stage: what is done, failed and expected."""
    from rich.table import Table

    job = detail["job"]
    table = Table(title=f"job {job['jobId']}  {job['detailedStatus']}", title_justify="left")
    for col in ("stage", "done", "failed", "expected"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    rows = [
        ("images", job["imagesDone"], job["imagesFailed"], job["count"]),
        ("products", job["productsDone"], job["productsFailed"], job["expectedProducts"]),
    ]
    if job["autoPublish"]:
        channels = ",".join(job.get("channels") or [])
        rows.append(
            (
                f"publications ({channels})",
                job["publicationsDone"],
                job["publicationsFailed"],
                job["expectedPublications"],
            )
        )
    for name, done, failed, expected in rows:
        table.add_row(name, str(done), str(failed or ""), str(expected))
    if job.get("error"):
        table.caption = job["error"]
    waits = detail.get("waits") or []
    if not waits:
        return table
    from rich.console import Group

    waiting = Table(title="waiting for", title_justify="left")
    for col in ("stage", "what", "messages", "until about", "gives up at"):
        waiting.add_column(col)
    for w in waits:
        waiting.add_row(
            w.get("stage") or "",
            w["what"],
            str(w["count"]),
            _clock(w.get("until")),
            _clock(w.get("deadline")),
        )
    return Group(table, waiting)


def _clock(iso: str | None) -> str:
    """An API timestamp as local time of day (the date too when it is not today)."""
    if not iso:
        return ""
    from datetime import datetime

    at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    today = datetime.now(at.tzinfo).date()
    return at.strftime("%H:%M:%S" if at.date() == today else "%Y-%m-%d %H:%M:%S")


def _jobs_table(body: JobsAnswer) -> Any:
    from rich.table import Table

    table = Table()
    for col in ("job", "status", "theme", "types", "count", "created"):
        table.add_column(col)
    for j in body.get("jobs", []):
        table.add_row(
            j["jobId"],
            j["detailedStatus"],
            j["theme"],
            ",".join(j["productTypes"]),
            str(j["count"]),
            str(j["createdAt"])[:19],
        )
    return table


def _doctor_table(body: DoctorAnswer) -> Any:
    from rich.table import Table

    marks = {"pass": "[green]pass[/green]", "fail": "[red]FAIL[/red]", "skip": "[dim]skip[/dim]"}
    table = Table(title="pod doctor", title_justify="left")
    for col in ("", "check", "found", "fix"):
        table.add_column(col, overflow="fold")
    for c in body.get("checks", []):
        table.add_row(marks.get(c["status"], c["status"]), c["name"], c["detail"], c["fix"] or "")
    failed = sum(1 for c in body.get("checks", []) if c["status"] == "fail")
    table.caption = f"{failed} failed" if failed else "everything configured passed"
    return table


def _dlq_table(body: DeadLettersAnswer) -> Any:
    from rich.table import Table

    table = Table()
    for col in ("id", "stage", "job", "error", "failed at", "replays", "replays to"):
        table.add_column(col)
    for d in body.get("deadLetters", []):
        table.add_row(
            str(d["id"]),
            d["stage"],
            d["jobId"] or "-",
            f"{d['errorClass']}: {d['message']}"[:80],
            str(d["failedAt"])[:19],
            str(d["replayCount"]),
            d.get("replayTo") or "not replayable",
        )
    return table


def _stages_table(stats: StatsAnswer) -> Any:
    from rich.table import Table

    table = Table(title="stages", title_justify="left")
    for col in ("stage", "instances", "in flight", "processed", "failed", "lag", "dlq"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, s in stats["workerStats"]["stages"].items():
        table.add_row(
            name,
            str(s["instances"]),
            str(s["inFlight"]),
            str(s["processed"]),
            str(s["failed"]),
            "-" if s["lag"] is None else str(s["lag"]),
            str(s["dlqSize"]),
        )
    jobs = stats["jobs"]
    table.caption = " ".join(f"{k} {v}" for k, v in jobs.items())
    return table


def _price(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:.2f}"


def _job_review_table(body: JobReviewAnswer) -> Any:
    from rich.table import Table

    table = Table(title=f"review of job {body['jobId']}  {body['detailedStatus']}")
    for col in (
        "image",
        "gen",
        "state",
        "title",
        "products (price, least margin)",
        "decided by",
        "screening",
    ):
        table.add_column(col)
    for i in body["images"]:
        products = ", ".join(
            f"{p['productType']} {_price(p['priceMinCents'])}"
            + ("" if p["marginMinPercent"] is None else f" ({p['marginMinPercent']:.0f}%)")
            for p in i["products"]
        )
        table.add_row(
            str(i["imageIndex"]),
            str(i["generation"]),
            i["state"],
            i["title"],
            products,
            i["decidedBy"] or "",
            _screening_cell(i.get("screening")),
        )
    return table


def _screening_cell(s: ScreeningAnswer | None) -> str:
    """Screening's decision and the checks behind it (``review: near_duplicate``)."""
    if not s:
        return ""
    checks = sorted({r["check"] for r in s["reasons"] if r["outcome"] == s["decision"]})
    return s["decision"] + (f": {', '.join(checks)}" if checks else "")


def _review_queue_table(body: ReviewQueueAnswer) -> Any:
    from rich.table import Table

    table = Table(title=f"awaiting review: {body['total']}", title_justify="left")
    for col in ("job", "image", "gen", "theme", "title", "products", "waiting since"):
        table.add_column(col)
    for r in body["reviews"]:
        table.add_row(
            r["jobId"],
            str(r["imageIndex"]),
            str(r["generation"]),
            r["theme"],
            r["title"] or "",
            str(r["productCount"]),
            _clock(r["awaitingSince"]),
        )
    return table


def _decided(body: DecisionAnswer) -> str:
    return (
        f"image {body['imageIndex']} of job {body['jobId']} (generation {body['generation']}): "
        f"{body['state']} by {body['decidedBy']} (decision {body['decisionId']})"
    )


def review(client: httpx.Client, out: Output, args: argparse.Namespace) -> int:
    """``pod review``: list what awaits the seller, or decide about one image."""
    if args.action == "list":
        if args.job is None:
            resp = client.get("/reviews", params={"state": "awaiting", "limit": args.limit})
            return out.answer(resp, _review_queue_table)
        return out.answer(client.get(f"/jobs/{args.job}/review"), _job_review_table)
    if args.job is None or args.index is None:
        out.err.print(f"pod review {args.action} needs JOB and INDEX")
        return EXIT_UNREACHABLE
    body: dict[str, object] = {}
    if args.generation is not None:
        body["generation"] = args.generation
    if args.prompt is not None:
        if args.action != "regenerate":
            out.err.print("--prompt is for regenerate only")
            return EXIT_UNREACHABLE
        body["prompt"] = args.prompt
    resp = client.post(f"/jobs/{args.job}/images/{args.index}/{args.action}", json=body)
    if resp.status_code == 200 and not out.json:
        out.err.print("already decided so: nothing sent again")
    return out.answer(resp, _decided)


# ---------------------------------------------------------------------------------- follow


class _Progress:
    """One job's progress as :func:`follow` polls it: its detail, and whether it changed."""

    def __init__(self, client: httpx.Client, out: Output, job_id: str) -> None:
        self.client, self.out, self.job_id = client, out, job_id
        self.seen: tuple[Any, ...] | None = None

    def fetch(self) -> JobDetailAnswer | None:
        resp = self.client.get(f"/jobs/{self.job_id}")
        if resp.status_code == 404:
            return None  # not folded yet (a job produced straight to Kafka)
        resp.raise_for_status()
        body = safe_body(resp.json()) if not self.out.json else resp.json()
        return cast(JobDetailAnswer, dict(body))

    def step(self, detail: JobDetailAnswer | None) -> bool:
        """Note the detail (a line on stderr when it changed, for scripts); True once it ended."""
        if detail is None:
            return False
        job = detail["job"]
        now = (
            job["detailedStatus"],
            job["imagesDone"],
            job["productsDone"],
            job["publicationsDone"],
            job["imagesFailed"],
            job["productsFailed"],
            job["publicationsFailed"],
        )
        if now != self.seen and self.out.json:
            # Scripts get the final answer on stdout; people piping it see progress here.
            self.out.err.print(
                f"{safe_text(self.job_id)} {safe_text(now[0])}: images {now[1]}/{job['count']}, "
                f"products {now[2]}/{job['expectedProducts']}, publications "
                f"{now[3]}/{job['expectedPublications']}",
                highlight=False,
                soft_wrap=True,  # one line per change, whatever the width
            )
        self.seen = now
        return bool(job["detailedStatus"] in TERMINAL)

    def until_done(
        self, deadline: float, interval_s: float, live: Live | None
    ) -> JobDetailAnswer | None:
        """Poll until the job ends (its last detail) or the deadline passes (None); shown as
        a table on ``live`` (for people) when there is one."""
        detail = self.fetch()
        while True:
            done = self.step(detail)
            if live is not None and detail is not None:
                live.update(_progress_table(detail), refresh=True)
            if done:
                return detail
            if time.monotonic() > deadline:
                return None
            time.sleep(interval_s)
            detail = self.fetch()


def follow(
    client: httpx.Client, out: Output, job_id: str, *, timeout_s: float, interval_s: float = 0.5
) -> int:
    """Show a job's progress until it ends (or ``timeout_s``); the exit code of its outcome."""
    from rich.live import Live

    deadline = time.monotonic() + timeout_s
    progress = _Progress(client, out, job_id)
    if out.json:
        detail = progress.until_done(deadline, interval_s, None)
    else:
        with Live(console=out.console, auto_refresh=False) as live:
            detail = progress.until_done(deadline, interval_s, live)
    if detail is None:
        out.err.print(f"{safe_text(job_id)}: still not done after {timeout_s:.0f} s")
        return EXIT_TIMEOUT
    if out.json:
        out.emit(detail)
    return EXIT_OK if detail["job"]["detailedStatus"] == "completed" else EXIT_REFUSED


def top(client: httpx.Client, out: Output, *, once: bool, interval_s: float) -> int:
    """The stages, live (or once): instances, in-flight work, lag and dead letters."""
    from rich.live import Live

    def stats() -> StatsAnswer:
        resp = client.get("/stats")
        resp.raise_for_status()
        return cast(StatsAnswer, dict(resp.json()))

    def shown() -> Any:
        return _stages_table(safe_body(stats()))

    if once or out.json:
        out.emit(stats(), _stages_table)
        return EXIT_OK
    with Live(console=out.console, auto_refresh=False) as live:
        try:
            while True:
                live.update(shown(), refresh=True)
                time.sleep(interval_s)
        except KeyboardInterrupt:
            return EXIT_OK


def _replay_table(plan: ReplayAnswer) -> Any:
    from rich.table import Table

    table = Table(title="to replay", title_justify="left")
    for col in ("id", "job", "dead letter", "replays to"):
        table.add_column(col)
    for t in plan.get("targets", []):
        table.add_row(str(t["id"]), t["jobId"] or "-", t["deadLetter"], t["replayTo"])
    skipped = plan.get("skipped") or []
    if skipped:
        table.caption = f"{len(skipped)} not replayable (nothing to re-produce, or no input of "
        table.caption += "their stage to go to): " + ", ".join(str(i) for i in skipped[:20])
    return table


def replay(client: httpx.Client, out: Output, args: argparse.Namespace) -> int:
    """Show which letters would go where (the API's dry run), ask, then replay those letters
    (one by one by id: what was confirmed, not what matches by then)."""
    which: dict[str, object] = (
        {"id": args.id} if args.id else {"jobId": args.job} if args.job else {"stage": args.stage}
    )
    preview = client.post("/dlq/replay", json={**which, "dryRun": True})
    if not preview.is_success:
        return out.answer(preview)
    plan = cast(ReplayAnswer, dict(preview.json()))
    targets = plan.get("targets", [])
    shown = safe_body(plan)
    if out.json:
        for t in shown.get("targets", []):
            out.err.print(f"{t['id']} {t['deadLetter']} -> {t['replayTo']}", highlight=False)
    else:
        out.console.print(_replay_table(shown))
    if not targets:
        out.err.print("nothing to replay")
        return EXIT_OK if not plan.get("skipped") else EXIT_REFUSED
    if not args.yes:
        if not sys.stdin.isatty():
            out.err.print("not replayed: confirm with --yes")
            return EXIT_REFUSED
        answer = input(f"replay {len(targets)} dead letter(s) as shown? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.err.print("not replayed")
            return EXIT_REFUSED
    replayed: list[ReplayTargetAnswer] = []
    for t in targets:
        resp = client.post("/dlq/replay", json={"id": t["id"]})
        if not resp.is_success:
            out.err.print(f"replayed {len(replayed)} of {len(targets)}, then:")
            return out.answer(resp)
        replayed += resp.json().get("targets", [])
    body = {
        "replayed": len(replayed),
        "ids": [t["id"] for t in replayed],
        "targets": replayed,
        "skipped": plan.get("skipped", []),
    }
    out.emit(body, lambda b: f"replayed {b['replayed']}")
    return EXIT_OK


# ------------------------------------------------------------------------------------ main


def _review_parsers(sub: Any) -> None:
    """``pod review`` and ``pod cancel``: the seller's decisions."""
    rv = sub.add_parser(
        "review",
        help="images awaiting the seller's review; approve, reject or regenerate one",
    )
    rv.add_argument("action", choices=["list", "approve", "reject", "regenerate"])
    rv.add_argument("job", nargs="?", help="the job (list: only its images)")
    rv.add_argument("index", nargs="?", type=int, help="the image's index")
    rv.add_argument("--prompt", help="regenerate: the prompt to render instead")
    rv.add_argument(
        "--generation", type=int, help="the generation you looked at (refused if it changed)"
    )
    rv.add_argument("--limit", type=int, default=50)

    c = sub.add_parser("cancel", help="cancel a job: nothing more is made, what it made undone")
    c.add_argument("job_id")
    c.add_argument("--reason")

    for name, what in (
        ("unpublish", "take a job's listings down (kept, to list again)"),
        ("delete", "take a job's listings down and delete its products from Printify"),
        ("reprice", "price a job's products again by a margin (or every job of a niche, ...)"),
    ):
        p = sub.add_parser(name, help=what)
        if name == "reprice":
            p.add_argument("job_id", nargs="?")
        else:
            p.add_argument("job_id")
        p.add_argument("--image", type=int, help="one image's products only")
        p.add_argument("--type", help="one product type only")
        p.add_argument("--channels", help="these channels only (comma-separated)")
        p.add_argument("--reason")
        if name == "reprice":
            p.add_argument(
                "--margin", type=float, required=True, help="gross margin, in %% of price"
            )
            p.add_argument("--niche", help="every listed job of this niche")
            p.add_argument("--theme", help="every listed job of this theme")
            p.add_argument("--all", action="store_true", help="every listed job")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pod", description="POD Engine command line")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON on stdout (default when piped)")
    fmt.add_argument("--text", action="store_true", help="tables (default on a terminal)")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="submit a design job (or one a line of a CSV file)")
    s.add_argument("--theme")
    s.add_argument("--style")
    s.add_argument("--niche")
    s.add_argument(
        "--csv",
        metavar="FILE",
        help="submit one job per line of FILE (header: theme,style,niche,types,count,priority,"
        "channels[,prompt,review,autoPublish]); lines accepted before are not submitted again",
    )
    s.add_argument("--prompt")
    s.add_argument("--types", default="tshirt", help="product types, comma-separated")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--priority", default="normal", help="high, normal, low or 1-10")
    s.add_argument("--auto-publish", action="store_true")
    s.add_argument("--channels", help="sales channels, comma-separated (default: all)")
    s.add_argument("--review", action="store_true", help="hold each image for review (pod review)")
    s.add_argument("--idempotency-key")
    s.add_argument("--wait", action="store_true", help="follow the job until it ends")
    s.add_argument("--timeout", type=float, default=3600.0, help="seconds to --wait at most")

    st = sub.add_parser("status", help="show one job with its images, products and log")
    st.add_argument("job_id")

    w = sub.add_parser("watch", help="follow a job's progress until it ends")
    w.add_argument("job_id")
    w.add_argument("--timeout", type=float, default=3600.0)

    j = sub.add_parser("jobs", help="list jobs, newest first")
    j.add_argument("--status")
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--cursor")

    d = sub.add_parser("dlq", help="list dead letters, newest first")
    d.add_argument("--stage")
    d.add_argument("--job")
    d.add_argument("--limit", type=int, default=20)

    r = sub.add_parser(
        "replay",
        help="replay dead letters (an admin key): shows where each goes, then asks",
    )
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int)
    which.add_argument("--job")
    which.add_argument("--stage")
    r.add_argument("--yes", action="store_true", help="replay without asking")

    t = sub.add_parser("top", help="a live table of the stages")
    t.add_argument("--once", action="store_true")
    t.add_argument("--interval", type=float, default=2.0)

    sub.add_parser("up", help="run the whole stack (same as `make up`)")

    doc = sub.add_parser(
        "doctor",
        help="read-only preflight: credentials, shops, catalog, models, bucket, broker, "
        "database (exit 0 only when nothing fails)",
    )
    doc.add_argument(
        "--api",
        action="store_true",
        help="ask the running API (GET /doctor, an admin key) instead of checking from here",
    )

    _review_parsers(sub)

    _maintenance_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pod`` script."""
    args = _parser().parse_args(argv)
    if args.command == "up":
        try:
            from devstack.stack import main as up
        except ImportError:
            sys.stderr.write(
                "pod: up runs from a source checkout (devstack/), not the runtime image\n"
            )
            return EXIT_UNREACHABLE
        up()
        return EXIT_OK
    if args.command == "webhooks":
        return _register_webhooks(args.url, args.shop)
    if args.command == "summaries":
        return _rebuild_summaries()
    out = Output(as_json=args.json or (not args.text and not sys.stdout.isatty()))
    if args.command == "doctor" and not args.api:
        return _doctor(out)
    with _client() as client:
        try:
            return _run(args, client, out)
        except httpx.HTTPError as exc:
            sys.stderr.write(f"pod: cannot reach the API at {client.base_url}: {exc}\n")
            return EXIT_UNREACHABLE


# A file of many lines: each is one acknowledged produce at the API.
BULK_TIMEOUT_S = 600.0


def _submit_csv(args: argparse.Namespace, client: httpx.Client, out: Output) -> int:
    """POST /jobs/bulk with the file; a line per outcome; 0 only when every line is accepted
    (now or before). A 503 still says which lines went in: sending the file again is safe."""
    given = [f"--{n}" for n in ("theme", "style", "niche", "prompt") if getattr(args, n)]
    if given or args.wait or args.idempotency_key:
        extra = given + ["--wait"] * args.wait + ["--idempotency-key"] * bool(args.idempotency_key)
        sys.stderr.write(f"pod: --csv takes the jobs from the file, not {', '.join(extra)}\n")
        return EXIT_UNREACHABLE
    try:
        with open(args.csv, "rb") as f:
            data = f.read()
    except OSError as exc:
        sys.stderr.write(f"pod: cannot read {args.csv}: {exc.strerror}\n")
        return EXIT_UNREACHABLE
    resp = client.post(
        "/jobs/bulk", content=data, headers={"Content-Type": "text/csv"}, timeout=BULK_TIMEOUT_S
    )
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
        return out.answer(resp)
    out.emit(body, _bulk_table)
    return EXIT_OK if resp.is_success and body.get("ok") else EXIT_REFUSED


def _bulk_table(body: BulkAnswer) -> Any:
    from rich.table import Table

    table = Table(
        title=f"{body['accepted']} accepted, {body['alreadyAccepted']} already accepted, "
        f"{body['invalid']} invalid, {body['notSubmitted']} not submitted"
        + (" (send the file again to complete it)" if body["notSubmitted"] else "")
    )
    for col in ("line", "outcome", "job", "errors"):
        table.add_column(col)
    for line in body["lines"]:
        table.add_row(
            str(line["line"]),
            line["status"].replace("_", " "),
            line["jobId"] or "",
            "; ".join(f"{e['field']}: {e['message']}" for e in line["errors"]),
        )
    return table


def _submit(args: argparse.Namespace, client: httpx.Client, out: Output) -> int:
    """POST /jobs with the spec the arguments give (and, with --wait, follow it)."""
    if args.csv:
        return _submit_csv(args, client, out)
    missing = [f"--{n}" for n in ("theme", "style", "niche") if not getattr(args, n)]
    if missing:
        sys.stderr.write(f"pod: submit needs {', '.join(missing)} (or --csv FILE)\n")
        return EXIT_UNREACHABLE
    from shared.contract.events import (
        JobSpec,  # the contract loads pydantic: only a submit needs it
    )

    body = JobSpec.request_body(
        theme=args.theme,
        style=args.style,
        niche=args.niche,
        prompt=args.prompt or None,
        product_types=_listed(args.types),
        count=args.count,
        auto_publish=args.auto_publish,
        channels=_listed(args.channels) if args.channels else None,
        review=True if args.review else None,
        priority=int(args.priority) if args.priority.isdigit() else args.priority,
    )
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    resp = client.post("/jobs", json=body, headers=headers)
    if not args.wait or not resp.is_success:
        return out.answer(resp, lambda b: f"accepted: job {b['jobId']}")
    job_id = str(resp.json()["jobId"])
    if not out.json:
        out.console.print(f"accepted: job {safe_text(job_id)}")
    return follow(client, out, job_id, timeout_s=args.timeout)


def _run(args: argparse.Namespace, client: httpx.Client, out: Output) -> int:
    if args.command == "submit":
        return _submit(args, client, out)
    if args.command == "status":
        return out.answer(client.get(f"/jobs/{args.job_id}"), _progress_table)
    if args.command == "watch":
        return follow(client, out, args.job_id, timeout_s=args.timeout)
    if args.command == "dlq":
        params = {"limit": args.limit} | {
            k: v for k, v in (("stage", args.stage), ("jobId", args.job)) if v
        }
        return out.answer(client.get("/dlq", params=params), _dlq_table)
    if args.command == "replay":
        return replay(client, out, args)
    if args.command == "top":
        return top(client, out, once=args.once, interval_s=args.interval)
    if args.command == "review":
        return review(client, out, args)
    if args.command == "cancel":
        body = {"reason": args.reason} if args.reason else {}
        return out.answer(
            client.post(f"/jobs/{args.job_id}/cancel", json=body),
            lambda b: f"cancelled: job {b['jobId']} (decision {b['decisionId']})",
        )
    if args.command in ("unpublish", "delete", "reprice"):
        return change_listings(client, out, args)
    if args.command == "doctor":
        resp = client.get("/doctor", timeout=120)
        code = out.answer(resp, _doctor_table)
        if code == EXIT_OK and not resp.json().get("ok", False):
            return EXIT_REFUSED
        return code
    params = {"limit": args.limit} | {
        k: v for k, v in (("status", args.status), ("cursor", args.cursor)) if v
    }
    return out.answer(client.get("/jobs", params=params), _jobs_table)


def change_listings(client: httpx.Client, out: Output, args: argparse.Namespace) -> int:
    """``pod unpublish|delete|reprice``: an after-launch decision about a job's products (or a
    reprice of every listed job of a niche, a theme, or all)."""
    scope: dict[str, object] = {
        k: v
        for k, v in (
            ("imageIndex", args.image),
            ("productType", args.type),
            ("channels", _listed(args.channels) if args.channels else None),
            ("reason", args.reason),
        )
        if v is not None
    }
    many = args.command == "reprice" and (args.niche or args.theme or args.all)
    if args.job_id is None and not many:
        out.console.print("name a job (or, to reprice many, --niche, --theme or --all)")
        return EXIT_UNREACHABLE  # an incomplete command (see the exit codes)
    if args.command == "reprice" and args.job_id is None:
        many = {"marginPercent": args.margin, "niche": args.niche, "theme": args.theme}
        body = {k: v for k, v in many.items() if v is not None} | {"all": args.all}
        if args.reason:
            body["reason"] = args.reason
        return out.answer(
            client.post("/reprice", json=body),
            lambda b: f"repricing {len(b['decisions'])} job(s) at a {args.margin:g}% margin",
        )
    if args.command == "reprice":
        scope["marginPercent"] = args.margin
    return out.answer(
        client.post(f"/jobs/{args.job_id}/{args.command}", json=scope or None),
        lambda b: f"{args.command}: job {b['jobId']} (decision {b['decisionId']})",
    )


def _listed(raw: str) -> list[str]:
    return [t.strip() for t in raw.split(",") if t.strip()]


def _maintenance_parsers(sub: Any) -> None:
    wh = sub.add_parser(
        "webhooks",
        help="register the API's /webhooks/printify with Printify (PRINTIFY_API_KEY, "
        "PRINTIFY_WEBHOOK_SECRET)",
    )
    wh.add_argument("action", choices=["register"])
    wh.add_argument("--url", required=True, help="public URL of POST /webhooks/printify")
    wh.add_argument("--shop", help="one shop id (default: every custom-integration shop)")
    sm = sub.add_parser(
        "summaries",
        help="recount the job summaries /stats and /dashboard read from the rows (DATABASE_URL;"
        " writes to jobs wait meanwhile: about a minute a million jobs)",
    )
    sm.add_argument("action", choices=["rebuild"])


def _rebuild_summaries() -> int:
    """``pod summaries rebuild``: the job summaries recounted from the rows, in one transaction."""
    import psycopg

    from shared.adapters.store import job_summaries
    from shared.platform.settings import DatabaseSettings

    async def rebuild(url: str) -> int:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await job_summaries.rebuild(conn)

    try:
        hours = asyncio.run(rebuild(DatabaseSettings().url))
    except psycopg.Error as exc:
        sys.stderr.write(f"pod: summaries not rebuilt: {exc}\n")
        return EXIT_UNREACHABLE
    sys.stdout.write(f"job summaries rebuilt: {hours} (hour, status) rows\n")
    return EXIT_OK


def _doctor(out: Output) -> int:
    """The preflight from this process's own settings (what the services would read here)."""
    import logging

    from shared.tools.doctor import all_passed, run

    # The table is the output; the clients' own warnings still reach stderr.
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING").upper(), stream=sys.stderr)
    checks = asyncio.run(run())
    body = {"ok": all_passed(checks), "checks": [c.as_dict() for c in checks]}
    out.emit(body, _doctor_table)
    return EXIT_OK if body["ok"] else EXIT_REFUSED


def _register_webhooks(url: str, shop: str | None) -> int:
    from pydantic import ValidationError

    from shared.adapters.vendors.printify_webhooks import WebhookRegistrationSettings, register_all
    from shared.platform.errors import PodError

    try:
        settings = WebhookRegistrationSettings()
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]).upper() for e in exc.errors())
        sys.stderr.write(f"pod: webhooks register needs {missing}\n")
        return EXIT_UNREACHABLE
    try:
        registered = asyncio.run(register_all(settings, url, shop))
    except PodError as exc:
        sys.stderr.write(f"pod: Printify refused: {exc}\n")
        return EXIT_REFUSED
    shown = {shop: [w.model_dump(mode="json") for w in hooks] for shop, hooks in registered.items()}
    sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())


def console() -> None:
    """Console-script wrapper: exit with main()'s code."""
    sys.exit(main())
