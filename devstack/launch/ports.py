"""Port helpers for launching local processes."""

from __future__ import annotations

import random
import socket

# Ports this process has handed out: a stack asks for a dozen at once, before binding any.
_GIVEN: set[int] = set()


def free_port(*, low: int = 20_000, high: int = 32_000) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, never the same twice in a process.

    Below Linux's ephemeral range (32768-60999), as :func:`free_port_run`'s: a port the kernel
    hands out for ``bind(0)`` comes from that range, where any outgoing connection may take it
    before the server that wants it binds (seen: a test stack's API refused with "address
    already in use").
    """
    for port in random.sample(range(low, high), 500):
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def free_port_run(n: int, *, low: int = 20_000, high: int = 32_000) -> int:
    """The first of ``n`` consecutive ports on 127.0.0.1 that are all free right now.

    Searched below Linux's ephemeral range (32768-60999): a port picked there may be taken by
    any outgoing connection before the server that wants it binds; these are not.
    """
    for base in random.sample(range(low, high - n), 200):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports between {low} and {high}")
