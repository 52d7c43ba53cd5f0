"""The collector settings a service process takes after startup (``shared.platform.memory``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter: freezing the test process's own objects would outlive the test.
_PROBE = textwrap.dedent(
    """
    import gc, weakref
    from shared.platform.memory import settle_after_startup

    kept = [object() for _ in range(1000)]  # startup state: frozen
    settle_after_startup()
    frozen = gc.get_freeze_count()
    freed = 0

    def count(_ref):
        global freed
        freed += 1

    class Node:
        pass

    refs = []
    for _ in range(100_000):  # cyclic garbage: only the collector can free it
        a, b = Node(), Node()
        a.other, b.other = b, a
        refs.append(weakref.ref(a, count))
        del a, b
    print(frozen, freed)
    """
)


def test_cyclic_garbage_made_after_startup_is_still_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    frozen, freed = int(out[0]), int(out[1])
    assert frozen >= 1000  # startup's objects are out of the collector's way
    # Passes still run on their own: at most one young generation's worth is left over.
    assert freed >= 90_000, f"only {freed} of 100000 cycles were collected"
