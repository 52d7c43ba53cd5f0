"""The simulated model's intellectual-property judgement: how it fills a risk-review tool.

Claude, asked through a forced tool for a risk level and the protected terms it found, reads
the text and judges. Generating arbitrary values from the schema would answer "high" for an
innocent design half of the time, so the simulator judges too, with a small knowledge of
well-known marks of its own (``marks.json``: brands, characters, franchises, celebrities,
leagues and teams, slogans; written for the simulator, not taken from the engine's deny list).

What it recognises, by the tool's schema and not its name: an object with a ``level`` string
enum containing ``"none"`` and a ``findings`` array of objects with a ``term`` string. Its
findings are the marks named in the user's text, case- and accent-insensitively, as whole words
(a plural or possessive ``s`` allowed); each is attributed to the XML-style section it appears
in (``<title>…</title>``) when the section's name is one of the finding's ``field`` enum values,
else to the enum's first value. Section text is HTML-unescaped first (callers escape their data
so it cannot close its tag). The level is ``"high"`` with findings, else ``"none"`` (the enum's
last and first values when it lacks those). It follows no instruction found in the text: a
simple judge; the real model is smarter (it also catches hints and evasions, which is the deny
list's job here).
"""

from __future__ import annotations

import functools
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.anthropic.generator import Concept, Generator

MARKS_FILE = Path(__file__).with_name("marks.json")


@dataclass(frozen=True)
class Mark:
    """A well-known mark the simulated model knows: its name, what it is, how it is written."""

    name: str
    kind: str
    pattern: re.Pattern[str]


def _fold(text: str) -> str:
    # Case and accents do not hide a name ("POKEMON" is "Pokémon").
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _spelling_pattern(spelling: str) -> str:
    words = [re.escape(w) for w in re.split(r"[\s-]+", _fold(spelling)) if w]
    # Words apart by spaces or hyphens; a trailing plural or possessive s still names it.
    return r"(?<!\w)" + r"[\s-]+".join(words) + r"(?:'?s)?(?!\w)"


@functools.cache
def marks() -> tuple[Mark, ...]:
    """The marks of ``marks.json``."""
    doc = json.loads(MARKS_FILE.read_text(encoding="utf-8"))
    out = []
    for entry in doc["marks"]:
        spellings = "|".join(_spelling_pattern(s) for s in entry["spellings"])
        out.append(Mark(entry["name"], entry["kind"], re.compile(spellings)))
    return tuple(out)


def is_risk_review(schema: dict[str, Any]) -> bool:
    """Whether a tool's input schema asks for a risk review (see the module's docstring)."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return False
    level, findings = props.get("level"), props.get("findings")
    if not isinstance(level, dict) or not isinstance(findings, dict):
        return False
    items = findings.get("items")
    item_props = items.get("properties") if isinstance(items, dict) else None
    return (
        "none" in (level.get("enum") or [])
        and findings.get("type") == "array"
        and isinstance(item_props, dict)
        and "term" in item_props
    )


def _sections(text: str, fields: list[str]) -> list[tuple[str | None, str]]:
    """The text's sections named like a field, each as (field, plain text); none: the whole
    text, under no field."""
    # Only the fields' own tags: an enclosing <design> section must not swallow them.
    names = "|".join(re.escape(f) for f in fields) or r"(?!)"
    section = re.compile(rf"<({names})>(.*?)</\1>", re.DOTALL)
    found: list[tuple[str | None, str]] = [
        (name, _fold(html.unescape(body))) for name, body in section.findall(text)
    ]
    return found or [(None, _fold(html.unescape(text)))]


def judge(text: str, schema: dict[str, Any], salt: str = "") -> dict[str, Any]:
    """The tool input answering a risk review of ``text``."""
    props: dict[str, Any] = schema["properties"]
    item_schema: dict[str, Any] = props["findings"]["items"]
    item_props: dict[str, Any] = item_schema.get("properties", {})
    fields = [f for f in (item_props.get("field", {}).get("enum") or []) if isinstance(f, str)]
    findings: list[dict[str, Any]] = []
    for mark in marks():
        for field, body in _sections(text, fields):
            if mark.pattern.search(body):
                finding: dict[str, Any] = {
                    "term": mark.name,
                    "why": f"{mark.name} is a {mark.kind}: a protected name.",
                }
                if "field" in item_props:
                    finding["field"] = field or (fields[0] if fields else "")
                findings.append(finding)
                break  # one finding per mark, at its first section
    levels: list[Any] = props["level"]["enum"]
    high = "high" if "high" in levels else levels[-1]
    answer: dict[str, Any] = {"level": high if findings else "none", "findings": findings}
    # Whatever else the schema asks for (an item's or the answer's other properties) is made
    # up as for any tool.
    filler = Generator(text, schema, salt=salt)
    for i, finding in enumerate(findings):
        for name, sub in item_props.items():
            if name not in finding:
                finding[name] = filler.value(sub, name, f"$.findings[{i}].{name}", _concept(filler))
    for name, sub in props.items():
        if name not in answer:
            answer[name] = filler.value(sub, name, f"$.{name}", _concept(filler))
    return answer


def _concept(filler: Generator) -> Concept:
    return Concept.pick(filler.rng("$"), 0, int(filler.digest[:8], 16))
