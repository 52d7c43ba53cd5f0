"""Exports the event contract's JSON Schemas to ``docs/events/`` (``make schemas``).

Other systems read these to produce events directly; a test fails when they are stale.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from shared.contract.events import EVENT_TYPES
from shared.platform.settings import REPO_ROOT

logger = logging.getLogger(__name__)

SCHEMA_DIR = REPO_ROOT / "docs" / "events"


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of each event type's schema."""
    out = {}
    for cls in EVENT_TYPES:
        name = cls.model_fields["type"].default
        schema = cls.model_json_schema(mode="validation")
        schema["$id"] = f"https://pod-engine.dev/events/{name}.json"
        schema["title"] = name
        out[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; remove files of event types that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_schemas()
    for stale in directory.glob("*.json"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for path in export():
        logger.info("wrote %s", path.relative_to(REPO_ROOT))
