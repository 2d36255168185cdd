"""Helpers shared by the MQTT transport tests (a collector, waiting, transports that close)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from drivetrain.core.transport import Message, MqttTransport
from drivetrain.core.transport.testing import PrivateBroker, unique_name

#: The one account of ``authenticated_broker``.
BROKER_USER, BROKER_PASSWORD = "vehicle1", "s3cret"


class Inbox:
    """A handler that records messages; ``wait_for(n)`` blocks until n have arrived."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    @property
    def payloads(self) -> list[bytes]:
        with self._changed:
            return [m.payload for m in self.messages]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} messages within {timeout_s} s, got "
                        f"{len(self.messages)}: {[m.payload for m in self.messages][:20]}"
                    )
                self._changed.wait(remaining)
            return list(self.messages)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.02)


def settle(seconds: float = 0.3) -> None:
    """Give a broker time to deliver anything still on its way (used to show absence)."""
    time.sleep(seconds)


class Clients:
    """Makes ``MqttTransport``s with unique client ids and closes them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[MqttTransport] = []

    def new(self, client_id: str | None = None, **options: object) -> MqttTransport:
        options.setdefault("reconnect_min_delay_s", 0.1)
        options.setdefault("reconnect_max_delay_s", 0.5)
        transport = MqttTransport(
            self.url,
            client_id=client_id or unique_name("client"),
            **options,  # type: ignore[arg-type]
        )
        self.made.append(transport)
        return transport

    def close_all(self) -> None:
        for transport in self.made:
            transport.close()


@contextmanager
def clients(url: str) -> Iterator[Clients]:
    made = Clients(url)
    try:
        yield made
    finally:
        made.close_all()


def authenticated_broker(tmp_path: Path) -> PrivateBroker:
    """A private Mosquitto without anonymous access: one account (``BROKER_USER``,
    ``BROKER_PASSWORD``) that may use ``dt/v1/vehicle1/#`` only."""
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), BROKER_USER, BROKER_PASSWORD], check=True
    )
    acl.write_text(f"user {BROKER_USER}\ntopic readwrite dt/v1/{BROKER_USER}/#\n")
    return PrivateBroker(
        tmp_path / "broker",
        anonymous=False,
        extra_config=f"password_file {passwords}\nacl_file {acl}\n",
    )
