"""What the benchmarks share: a broker to measure against, and table printing."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shared.launch.kafka import LocalKafka


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set, else a throw-away local broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="pod-bench-") as tmp:
        kafka = LocalKafka(Path(tmp), port=29092, controller_port=29093).start()
        try:
            yield kafka.bootstrap
        finally:
            kafka.stop()


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [title, fmt.format(*header), line]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(out)
