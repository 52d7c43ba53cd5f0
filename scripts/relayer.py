"""Move ``shared``'s modules into layer packages and rewrite every reference to them.

    .venv/bin/python scripts/relayer.py [--dry-run]

``shared/`` had its modules side by side; this puts each under the package of its layer (the
table below, top to bottom: tools, adapters, domain | pipeline, contract, platform; a layer may
import the layers under it, never those above; domain and pipeline not each other) with
``git mv``, moves ``tests/shared/`` to mirror it, and rewrites what names them across the
repository: imports (``from shared import x`` included), dotted names in strings and text
(``python -m shared.init``, patch targets, ``module:attribute`` paths, mypy overrides), paths
(``shared/events.py``, ``"shared" / "vendors"``) and the package data of pyproject.toml. Then
it sorts and formats the Python files it changed (ruff) and rewraps comments it made too long.

It is written to run again on a tree other branches have changed since: it works from the table
and the tree, not from a list of files, and it is idempotent (a second run changes nothing). A
module or package of ``shared/`` (or a test of ``tests/shared/``) that the table does not place
stops it before anything is moved, naming the file: add it to the table and run it again.

docs/decisions.md is left as it is: its entries record the paths of their day.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"
TESTS = ROOT / "tests" / "shared"
LINE_LENGTH = 100

log = logging.getLogger("relayer")

# The layers, top to bottom, and what each holds (the docstring of its package).
LAYERS: dict[str, str] = {
    "tools": "Operator entry points: the ``pod`` CLI, ``init`` and the doctor. Nothing in\n"
    "``shared`` imports them.",
    "adapters": "The engine's outside world: the vendor clients and sales channels, the\n"
    "PostgreSQL stores and their migrations, image storage, vendor credentials and OAuth.",
    "domain": "The print-on-demand rules: the catalog, pricing, print sizes, the side-effect\n"
    "ledger and the vendors' rate budgets. Independent of the pipeline layer.",
    "pipeline": "How a stage runs on Kafka: the runner, a service's main, consumer groups, and\n"
    "the AsyncAPI document and broker ACLs derived from the contract. Independent of the domain\n"
    "layer.",
    "contract": "What travels between the services: the events, the topic registry, the sales\n"
    "channels' names and the events' JSON schemas.",
    "platform": "What every process runs on: settings, logging, errors, tracing, HTTP, the\n"
    "database pool, child processes, memory and waits. It knows nothing of the pipeline.",
}

# Every module and package of shared/ (old name -> layer). A new one stops the script until it
# is placed here.
MODULES: dict[str, str] = {
    # platform
    "aio": "platform",
    "db": "platform",
    "errors": "platform",
    "handback": "platform",
    "http": "platform",
    "httpserver": "platform",
    "lifecycle": "platform",
    "logs": "platform",
    "memory": "platform",
    "seed_config": "platform",  # settings read a seed-layout CONFIG_PATH through it
    "settings": "platform",
    "tracing": "platform",
    "waits": "platform",
    # contract
    "events": "contract",
    "sales_channels": "contract",
    "schemas": "contract",
    "topics": "contract",
    # pipeline
    "acls": "pipeline",
    "asyncapi": "pipeline",
    "groups": "pipeline",
    "runner": "pipeline",
    "service": "pipeline",
    # domain
    "budget": "domain",
    "catalog": "domain",
    "ledger": "domain",
    "pricing": "domain",
    "printsize": "domain",
    # adapters
    "credentials": "adapters",
    "migrations": "adapters",
    "oauth": "adapters",
    "storage": "adapters",
    "store": "adapters",
    "vendors": "adapters",
    # tools
    "cli": "tools",
    "doctor": "tools",
    "init": "tools",
}

# Tests of tests/shared/ whose name is no module's (test_<module>[_<topic>].py follows its
# module): name -> its folder under tests/shared/.
TEST_PLACES: dict[str, str] = {
    "test_channels": "adapters/vendors",
    "test_infra": "platform",
    "test_offset_tracker": "pipeline",
    "test_printify_client": "adapters/vendors",
    "test_topic_allowlist": "contract",
}
# Tests about shared as a whole: they stay in tests/shared/.
TEST_KEEP = frozenset({"test_layers"})

# Files whose text is history, not a reference to keep current.
UNTOUCHED = frozenset({"docs/decisions.md", "scripts/relayer.py"})
BINARY_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".ico", ".webp", ".jar", ".gz"})


class Unplaced(SystemExit):
    """A module, package or test the tables do not place: nothing was moved."""


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout


def check_tables() -> None:
    clash = set(LAYERS) & set(MODULES)
    if clash:
        raise SystemExit(f"relayer: a layer is named like a module: {sorted(clash)}")
    unknown = {layer for layer in MODULES.values() if layer not in LAYERS}
    if unknown:
        raise SystemExit(f"relayer: MODULES names unknown layers: {sorted(unknown)}")


def shared_entries() -> dict[str, Path]:
    """The modules and packages at the top of shared/ that are not layers yet: name -> path."""
    found: dict[str, Path] = {}
    unplaced: list[str] = []
    for path in sorted(SHARED.iterdir()):
        name = path.stem if path.suffix == ".py" else path.name
        if path.name in ("__init__.py", "__pycache__") or path.name in LAYERS:
            continue
        is_module = path.suffix == ".py" and path.is_file()
        if not (is_module or path.is_dir()):
            continue
        if not any(True for _ in git_tracked(path)):
            continue  # left behind by a tool (an empty folder, caches): not ours to place
        if name not in MODULES:
            unplaced.append(str(path.relative_to(ROOT)))
            continue
        found[name] = path
    if unplaced:
        raise Unplaced(
            "relayer: shared/ has modules the table does not place: "
            + ", ".join(unplaced)
            + "\nAdd each to MODULES in scripts/relayer.py (name -> layer) and run it again; "
            "nothing was moved."
        )
    return found


def git_tracked(path: Path) -> Iterator[str]:
    yield from (line for line in git("ls-files", "--", str(path)).splitlines() if line)


def test_place(path: Path) -> str | None:
    """The folder under tests/shared/ a test of tests/shared/ moves to (None: it stays)."""
    if path.is_dir():
        return MODULES.get(path.name)
    stem = path.stem
    if stem in TEST_KEEP:
        return None
    if stem in TEST_PLACES:
        return TEST_PLACES[stem]
    rest = stem.removeprefix("test_")
    owners = [m for m in MODULES if rest == m or rest.startswith(f"{m}_")]
    if not owners:
        return ""
    return MODULES[max(owners, key=len)]


def test_moves() -> dict[Path, Path]:
    """Tests of tests/shared/ not in their layer's folder yet: old path -> new path."""
    moves: dict[Path, Path] = {}
    unplaced: list[str] = []
    # Folders first: a test may move into a folder that moves (test_channels.py, vendors/).
    for path in sorted(TESTS.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
        if path.name in ("__init__.py", "__pycache__", "conftest.py") or path.name in LAYERS:
            continue
        if path.is_file() and not (path.suffix == ".py" and path.name.startswith("test_")):
            continue
        if path.is_dir() and not any(True for _ in git_tracked(path)):
            continue
        place = test_place(path)
        if place == "" or (path.is_dir() and place is None):
            unplaced.append(str(path.relative_to(ROOT)))
        elif place is not None:
            moves[path] = TESTS / place / path.name
    if unplaced:
        raise Unplaced(
            "relayer: tests/shared/ has tests the table does not place: "
            + ", ".join(unplaced)
            + "\nName them test_<module>[_<topic>].py, or add them to TEST_PLACES (or TEST_KEEP) "
            "in scripts/relayer.py, and run it again; nothing was moved."
        )
    return moves


def ensure_package(folder: Path, doc: str | None) -> None:
    """``folder`` as a package (its ``__init__.py`` made, with ``doc``, and staged)."""
    init = folder / "__init__.py"
    if init.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    init.write_text(f'"""{doc}"""\n' if doc else "")
    git("add", "--", str(init))


def move(old: Path, new: Path) -> None:
    if new.exists():
        raise SystemExit(f"relayer: cannot move {old} to {new}: it exists")
    log.info("move %s -> %s", old.relative_to(ROOT), new.relative_to(ROOT))
    git("mv", "--", str(old), str(new))


# ------------------------------------------------------------------------ rewriting references


def dotted_pairs(moves: dict[Path, Path]) -> list[tuple[str, str]]:
    """(old, new) dotted prefixes: shared's modules, then the moved tests."""
    pairs = [(f"shared.{m}", f"shared.{layer}.{m}") for m, layer in MODULES.items()]
    for old, new in moves.items():
        pairs.append((dotted(old), dotted(new)))
    return pairs


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def compile_rules(pairs: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], dict[str, str]]]:
    """One pattern for the dotted names and one for the paths of ``pairs``. A name is matched
    whole, and not as the tail of a longer one (``tests.shared.x`` is not ``shared.x``)."""
    as_path = {old.replace(".", "/"): new.replace(".", "/") for old, new in pairs}
    as_dots = dict(pairs)
    rules = []
    for table in (as_dots, as_path):
        names = "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True))
        # The leftmost match wins, so ``tests/shared/x`` (a moved test) is matched as a whole
        # before its tail ``shared/x`` could be.
        rules.append((re.compile(rf"(?<![\w.-])({names})(?![\w-])"), table))
    # ``ROOT / "shared" / "vendors"``: a path built from parts.
    parts = {f'"shared" / "{m}"': f'"shared" / "{layer}" / "{m}"' for m, layer in MODULES.items()}
    rules.append((re.compile("(" + "|".join(re.escape(k) for k in parts) + ")"), parts))
    return rules


def rewrite_text(text: str, rules: list[tuple[re.Pattern[str], dict[str, str]]]) -> str:
    for pattern, table in rules:
        text = pattern.sub(lambda match: table[match.group(1)], text)  # noqa: B023  # used at once
    return text


def rewrite_from_shared(source: str) -> str:
    """``from shared import a, b`` -> one ``from shared.<layer> import ...`` per layer."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module == "shared" and not node.level):
            continue
        if not any(a.name in MODULES for a in node.names):
            continue
        indent = lines[node.lineno - 1][: node.col_offset]
        by_package: dict[str, list[str]] = {}
        for alias in node.names:
            package = f"shared.{MODULES[alias.name]}" if alias.name in MODULES else "shared"
            spelled = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            by_package.setdefault(package, []).append(spelled)
        statements = [f"from {p} import {', '.join(n)}" for p, n in sorted(by_package.items())]
        end = lines[(node.end_lineno or node.lineno) - 1]
        tail = end[node.end_col_offset :] if node.end_col_offset is not None else "\n"
        text = f"\n{indent}".join(statements)
        edits.append((node.lineno - 1, node.end_lineno or node.lineno, f"{indent}{text}{tail}"))
    for first, last, text in sorted(edits, reverse=True):
        lines[first:last] = [text]
    return "".join(lines)


def _docstring_lines(source: str) -> set[int]:
    """The 0-based numbers of the lines inside docstrings (module, class, function)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = node.body[0] if node.body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            found.update(range(first.lineno - 1, first.end_lineno or first.lineno))
    return found


# A line that is one string literal, maybe after ``name = `` or ``name=``: in brackets (or put
# in parentheses) two adjacent literals are one value.
STRING_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<lead>[\w.]+ ?= ?)?(?P<prefix>[fu]?)"
    r'"(?P<body>(?:[^"\\]|\\.)*)"(?P<tail>[,)]*)$'
)
# Where prose in a comment or docstring does not go on with the line before.
NOT_PROSE = re.compile(r'^(- |\* |>>>|\.\. |:|"""|\||```|\d+\. |$)')


def _cut(text: str, width: int) -> int:
    """Where to break ``text`` to fit ``width`` (a space; -1 when there is none)."""
    return text.rfind(" ", 1, width + 1)


def _split_string(body: str) -> list[str] | None:
    """A long string-literal line as adjacent literals of the same value (None: it is no such
    line, or has no space to cut at outside an f-string's braces)."""
    found = STRING_LINE.match(body)
    if found is None:
        return None
    indent, lead, prefix, text, tail = found.group("indent", "lead", "prefix", "body", "tail")
    inner = f"{indent}    " if lead else indent
    pieces: list[str] = []
    # After ``name =`` it takes two literals at least: ruff format unwraps a lone one.
    while len(inner) + len(prefix) + len(text) + 2 > LINE_LENGTH or (lead and not pieces):
        cut = _cut(text, LINE_LENGTH - len(inner) - len(prefix) - 3)
        while cut > 0 and prefix == "f" and text[: cut + 1].count("{") != text[:cut].count("}"):
            cut = text.rfind(" ", 1, cut)
        if cut <= 0:
            break
        pieces.append(f'{inner}{prefix}"{text[: cut + 1]}"')
        text = text[cut + 1 :]
    if not pieces:
        return None
    if lead:
        return [f"{indent}{lead}(", *pieces, f'{inner}{prefix}"{text}"', f"{indent}){tail}"]
    return [*pieces, f'{inner}{prefix}"{text}"{tail}']


class _Reflow:
    """Comment and docstring lines cut to the line length, what is cut off carried into the next
    line of the same paragraph (or onto a line of its own)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.carry = ""
        self.where: tuple[str, str] = ("", "")  # (indent, "# " or "") of the carried text

    def flush(self) -> None:
        if self.carry:
            indent, mark = self.where
            self.out.append(f"{indent}{mark}{self.carry}\n")
            self.carry = ""

    def prose(self, body: str, end: str, mark: str) -> None:
        stripped = body.lstrip()
        indent = body[: len(body) - len(stripped)]
        text = stripped[len(mark) :]
        if self.carry and (indent, mark) == self.where and not NOT_PROSE.match(text):
            text = f"{self.carry} {text}"
            self.carry = ""
        self.flush()
        line = f"{indent}{mark}{text}"
        cut = _cut(line, LINE_LENGTH) if len(line) > LINE_LENGTH else -1
        if cut <= len(indent) + len(mark):
            self.out.append(line + end)
            return
        self.out.append(line[:cut] + "\n")
        self.carry = line[cut + 1 :]
        # A list item goes on under its text, not under its dash.
        self.where = (indent + "  " if text.startswith(("- ", "* ")) else indent, mark)
        if not end:
            self.flush()

    def code(self, line: str) -> None:
        self.flush()
        self.out.append(line)


def rewrap(source: str) -> str:
    """Full-line comments, docstrings and one-literal lines the longer names pushed past the
    line length, cut at spaces (the rest of the code is ruff format's)."""
    docstrings = _docstring_lines(source)
    flow = _Reflow()
    for number, line in enumerate(source.splitlines(keepends=True)):
        body = line.rstrip("\n")
        end = line[len(body) :]
        stripped = body.lstrip()
        if stripped.startswith("# ") and (len(body) > LINE_LENGTH or flow.carry):
            flow.prose(body, end, "# ")
        elif number in docstrings and (len(body) > LINE_LENGTH or flow.carry):
            flow.prose(body, end, "")
        elif len(body) > LINE_LENGTH and (pieces := _split_string(body)) is not None:
            flow.code("".join(f"{piece}\n" for piece in pieces[:-1]) + pieces[-1] + end)
        else:
            flow.code(line)
    flow.flush()
    return "".join(flow.out)


def package_data(text: str) -> str:
    """pyproject's ``shared = ["migrations/*.sql", ...]``: the data under its layer's folder."""

    def place(match: re.Match[str]) -> str:
        entry = match.group(1)
        first = entry.split("/", 1)[0]
        return f'"{MODULES[first]}/{entry}"' if first in MODULES else match.group(0)

    def line(match: re.Match[str]) -> str:
        return re.sub(r'"([^"]+)"', place, match.group(0))

    return re.sub(r"(?m)^shared = \[.*\]$", line, text)


def text_files() -> Iterable[Path]:
    for name in git("ls-files").splitlines():
        path = ROOT / name
        if name in UNTOUCHED or path.suffix in BINARY_SUFFIXES or path.suffix == ".lock":
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def rewrite_all(moves: dict[Path, Path], dry_run: bool) -> list[Path]:
    rules = compile_rules(dotted_pairs(moves))
    changed: list[Path] = []
    for path in text_files():
        try:
            old = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_text(old, rules)
        if path.suffix == ".py":
            new = rewrite_from_shared(new)
        if path.name == "pyproject.toml":
            new = package_data(new)
        if new != old:
            changed.append(path)
            if not dry_run:
                path.write_text(new)
    return changed


def tidy(changed: list[Path]) -> None:
    """Sort the imports the new names reordered, format, and rewrap long comments and
    docstrings."""
    python = [str(p) for p in changed if p.suffix == ".py"]
    if not python:
        return
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "check", "--select", "I", "--fix", "-q", *python], cwd=ROOT, check=False)
    subprocess.run([*ruff, "format", "-q", *python], cwd=ROOT, check=True)
    rewrapped = []
    for name in python:
        path = Path(name)
        text = path.read_text()
        wrapped = rewrap(text)
        if wrapped != text:
            path.write_text(wrapped)
            rewrapped.append(name)
    if rewrapped:  # a literal cut in two after ``name=`` is put in parentheses
        subprocess.run([*ruff, "format", "-q", *rewrapped], cwd=ROOT, check=True)
    long = subprocess.run(
        [*ruff, "check", "--select", "E501", "--output-format", "concise", "-q", *python],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if long:
        log.warning("lines still too long (in strings), to wrap by hand:\n%s", long)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="list what would change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_tables()
    entries = shared_entries()
    moves = test_moves()
    if args.dry_run:
        for name, path in entries.items():
            log.info("would move %s -> shared/%s/", path.relative_to(ROOT), MODULES[name])
        for old, new in moves.items():
            log.info("would move %s -> %s", old.relative_to(ROOT), new.relative_to(ROOT))
    else:
        for layer, doc in LAYERS.items():
            if layer in MODULES.values():
                ensure_package(SHARED / layer, f"The {layer} layer of ``shared``.\n\n{doc}\n")
        for name, path in entries.items():
            move(path, SHARED / MODULES[name] / path.name)
        for old, new in moves.items():
            for folder in reversed(new.relative_to(TESTS).parents[:-1]):
                ensure_package(TESTS / folder, None)
            move(old, new)
    changed = rewrite_all(moves, args.dry_run)
    for path in changed:
        log.info("%s %s", "would rewrite" if args.dry_run else "rewrote", path.relative_to(ROOT))
    if not args.dry_run:
        tidy(changed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
