"""The uplink: sends buffered messages in order and removes each once the transport confirmed it.

``Uplink.pump(now_s)`` does a bounded amount of work and never waits: it removes the messages
whose publish the transport acknowledged (``PublishTicket``: the broker's PUBACK for MQTT QoS 1;
at once for the in-process transport), then hands the next messages in buffer order to
``Transport.publish_async`` until ``max_in_flight`` are outstanding. A fleet runner calls it
from each agent's tick; no thread per agent.

Failures and reconnects:

* ``publish_async`` refusing (not connected, transport closed) sends nothing; the uplink backs
  off exponentially with jitter (``backoff_initial_s`` doubling up to ``backoff_max_s``) and
  then tries the same message again, so order is kept.
* Messages already handed over stay in flight across a disconnect: the MQTT client resends
  them on reconnect within its persistent session, and their tickets complete then.
* A ticket that failed (the broker refused the message, the transport closed) or stayed pending
  longer than ``resend_after_s`` is sent again. The copy carries the same message id, so the
  cloud drops whichever arrives second.
* After a crash, everything still in the buffer is sent again from the start: what was
  confirmed but not yet removed arrives twice and is dropped by id in the cloud.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from drivetrain.core.errors import TransportError
from drivetrain.core.transport import PublishTicket, Transport
from drivetrain.edge.buffer import Buffer, BufferedMessage

DEFAULT_MAX_IN_FLIGHT: Final = 64


@dataclass(frozen=True)
class UplinkStats:
    """Counters since the uplink started."""

    published: int
    confirmed: int
    resent: int
    refused_by_transport: int
    in_flight: int
    backing_off: bool
    last_error: str | None


@dataclass
class _InFlight:
    message: BufferedMessage
    ticket: PublishTicket
    sent_s: float


class Uplink:
    """Drains a ``Buffer`` into a ``Transport`` (see the module docstring).

    Args:
        buffer: where sealed messages wait.
        transport: the vehicle link.
        max_in_flight: messages handed to the transport and not yet confirmed, at most.
        resend_after_s: a message not confirmed this long after it was handed over is sent again.
        backoff_initial_s, backoff_max_s: the back-off after the transport refused a message.
        batch: messages read from the buffer per query.
        rng: jitter source (seed it for deterministic tests).
    """

    def __init__(
        self,
        buffer: Buffer,
        transport: Transport,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        resend_after_s: float = 120.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        batch: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("expected 0 < backoff_initial_s <= backoff_max_s")
        self.buffer = buffer
        self.transport = transport
        self.max_in_flight = max_in_flight
        self.resend_after_s = resend_after_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.batch = batch
        self._rng = rng or random.Random()
        self._in_flight: OrderedDict[int, _InFlight] = OrderedDict()
        self._resend: list[BufferedMessage] = []
        self._last_position = 0  # highest buffer position handed to the transport
        self._retry_at = 0.0
        self._backoff = 0.0
        self._published = 0
        self._confirmed = 0
        self._resent = 0
        self._refused = 0
        self._last_error: str | None = None

    def pump(self, now_s: float) -> int:
        """Confirm what was acknowledged, then send what the window allows; returns the number
        of messages confirmed (removed from the buffer) in this call.

        Raises:
            StorageError: the buffer failed.
        """
        confirmed = self._collect(now_s)
        if now_s < self._retry_at:
            return confirmed
        sent = self._fill(now_s)
        # Transports that confirm synchronously (in-process) have completed these already.
        return confirmed + (self._collect(now_s) if sent else 0)

    def _fill(self, now_s: float) -> int:
        sent = 0
        while len(self._in_flight) < self.max_in_flight:
            wanted = self.max_in_flight - len(self._in_flight)
            queue = (
                self._resend[:wanted]
                if self._resend
                else self.buffer.pending(self._last_position, min(self.batch, wanted))
            )
            if not queue:
                break
            for message in queue:
                if not self._send(message, now_s):
                    return sent
                sent += 1
        return sent

    def _collect(self, now_s: float) -> int:
        done: list[int] = []
        for position, flight in list(self._in_flight.items()):
            ticket = flight.ticket
            if ticket.acknowledged:
                done.append(position)
                del self._in_flight[position]
            elif ticket.done or now_s - flight.sent_s > self.resend_after_s:
                # Failed, or lost: send it again (same bytes, same id; the cloud dedupes).
                self._last_error = (
                    str(ticket.error)
                    if ticket.error
                    else (f"no acknowledgement within {self.resend_after_s:g} s")
                )
                del self._in_flight[position]
                self._resend.append(flight.message)
        if self._resend:
            self._resend.sort(key=lambda m: m.position)
        if done:
            self._confirmed += self.buffer.remove(done)
        return len(done)

    def _send(self, message: BufferedMessage, now_s: float) -> bool:
        try:
            ticket = self.transport.publish_async(message.topic, message.payload, qos=1)
        except TransportError as e:
            self._refused += 1
            self._last_error = str(e)
            self._backoff = min(self.backoff_max_s, max(self.backoff_initial_s, self._backoff * 2))
            self._retry_at = now_s + self._backoff * self._rng.uniform(0.5, 1.0)
            return False
        self._backoff = 0.0
        if self._resend and self._resend[0].position == message.position:
            self._resend.pop(0)
            self._resent += 1
        else:
            self._last_position = max(self._last_position, message.position)
        self._in_flight[message.position] = _InFlight(message, ticket, now_s)
        self._published += 1
        return True

    @property
    def idle(self) -> bool:
        """True when nothing is in flight or waiting to be resent (the buffer may hold more)."""
        return not self._in_flight and not self._resend

    def stats(self) -> UplinkStats:
        return UplinkStats(
            published=self._published,
            confirmed=self._confirmed,
            resent=self._resent,
            refused_by_transport=self._refused,
            in_flight=len(self._in_flight),
            backing_off=self._backoff > 0,
            last_error=self._last_error,
        )
