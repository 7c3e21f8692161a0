"""A TCP port for a test server, from outside the range the OS hands out.

Kernels (five ZMQ ports each) and servers started with port 0 get their ports
from Linux's ephemeral range, 32768-60999. A port found free there can be taken
by one of them before our server binds it, and jupyter_server with port 0 even
closes the port it found before it listens again (once, under parallel tests,
it printed its URL and then refused connections). So pick one below that range.
"""
from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A port in 20000-32767 that 127.0.0.1 can bind right now."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port in 20000-32767")
