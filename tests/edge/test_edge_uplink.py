"""The uplink: in order, removed only once confirmed, back-off on refusal, resend of what was
lost — against a transport whose acknowledgements the test controls."""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

from drivetrain.core.errors import TransportError
from drivetrain.core.transport import InProcessTransport, PublishTicket
from drivetrain.core.wire import MessageKind, new_message_id
from drivetrain.edge import MemoryBuffer, OutgoingMessage, Uplink

TOPIC = "dt/v1/DTVJETH88T571PG8B/telemetry"


class ControlledLink(InProcessTransport):
    """Publishes nowhere; hands out tickets the test completes (or refuses while down)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.sent: list[tuple[bytes, PublishTicket]] = []

    def publish_async(self, topic: str, payload: bytes, **kwargs: Any) -> PublishTicket:
        if self.down:
            raise TransportError("cannot publish: not connected to the broker")
        ticket = PublishTicket(topic, 1)
        self.sent.append((payload, ticket))
        return ticket

    def ack(self, count: int | None = None) -> None:
        pending = [t for _, t in self.sent if not t.done]
        for ticket in pending[:count]:
            ticket.complete()


def _fill(buffer: MemoryBuffer, n: int) -> list[bytes]:
    payloads = [os.urandom(50) for _ in range(n)]
    for seq, payload in enumerate(payloads):
        buffer.append(
            OutgoingMessage(new_message_id(), MessageKind.TELEMETRY, seq, TOPIC, 1, 0, payload)
        )
    return payloads


def test_messages_leave_in_order_and_are_removed_only_when_confirmed() -> None:
    buffer, link = MemoryBuffer(), ControlledLink()
    payloads = _fill(buffer, 10)
    uplink = Uplink(buffer, link, max_in_flight=4)
    uplink.pump(0.0)
    assert [p for p, _ in link.sent] == payloads[:4]
    assert buffer.stats().messages == 10  # nothing confirmed yet
    link.ack(2)
    assert uplink.pump(0.1) == 2
    assert buffer.stats().messages == 8
    assert [p for p, _ in link.sent] == payloads[:6]
    for _ in range(5):
        link.ack()
        uplink.pump(0.2)
    assert buffer.stats().messages == 0 and uplink.idle
    assert [p for p, _ in link.sent] == payloads
    link.close()


def test_a_refusing_link_backs_off_then_resumes_at_the_same_message() -> None:
    buffer, link = MemoryBuffer(), ControlledLink()
    payloads = _fill(buffer, 3)
    uplink = Uplink(buffer, link, backoff_initial_s=1.0, backoff_max_s=8.0, rng=random.Random(0))
    link.down = True
    waits = []
    now = 0.0
    for _ in range(5):
        uplink.pump(now)
        waits.append(uplink._retry_at - now)
        now = uplink._retry_at
    assert all(later <= earlier * 4 + 1e-9 for earlier, later in itertools.pairwise(waits))
    assert 4.0 <= waits[-1] <= 8.0  # doubled up to the cap, with jitter in [0.5, 1]
    assert uplink.stats().refused_by_transport == 5 and link.sent == []
    uplink.pump(now - 0.5)  # still backing off: nothing tried
    assert uplink.stats().refused_by_transport == 5
    link.down = False
    uplink.pump(now)
    link.ack()
    uplink.pump(now)
    assert [p for p, _ in link.sent] == payloads and buffer.stats().messages == 0
    link.close()


def test_failed_or_lost_messages_are_sent_again_with_the_same_bytes() -> None:
    buffer, link = MemoryBuffer(), ControlledLink()
    payloads = _fill(buffer, 3)
    uplink = Uplink(buffer, link, resend_after_s=60.0)
    uplink.pump(0.0)
    link.sent[0][1].complete(TransportError("the broker refused the message: quota exceeded"))
    link.sent[1][1].complete()
    uplink.pump(1.0)  # the first is sent again; the third stays pending
    assert [p for p, _ in link.sent] == [payloads[0], payloads[1], payloads[2], payloads[0]]
    uplink.pump(100.0)  # neither the third nor the copy of the first was acknowledged in 60 s
    assert [p for p, _ in link.sent][-2:] == [payloads[0], payloads[2]]  # in buffer order
    link.ack()
    uplink.pump(100.1)
    assert buffer.stats().messages == 0
    stats = uplink.stats()
    assert (
        stats.resent == 3
        and stats.published == 6
        and stats.confirmed == 3
        and "acknowledgement" in str(stats.last_error)
    )
    link.close()
