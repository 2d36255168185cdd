"""Ports on 127.0.0.1 for the servers that tests and benchmarks start themselves (a private
Mosquitto, a local JetStream cluster): free ones to bind, and whether one accepts yet."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 (held together while chosen, so no two are
    the same; another process may still take one before it is bound again)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def accepts(port: int) -> bool:
    """Whether something on 127.0.0.1 accepts a TCP connection on ``port`` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
