"""Port helpers for launching local processes."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
