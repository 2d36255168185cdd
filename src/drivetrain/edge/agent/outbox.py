"""``Outbox``: seals what the vehicle sends into its store-and-forward buffer.

Every message is an envelope whose sequence number comes from the buffer, appended before it
is sent. Telemetry is MAC'd under a vehicle session (``drivetrain.core.wire.session``): the
outbox appends the session's signed ``session_open`` ahead of the first batch it MACs (the
buffer sends in order, so it reaches the cloud first) and opens the next once a session has
MAC'd its share, or once the buffer evicted its ``session_open``. Everything else — events
(security events, consent withdrawals) and acks — is signed with the vehicle's key. Events wait in the outbox until the next flush seals them
as one events message; a buffer that evicts to make room adds an ``edge.buffer.evicted`` event,
so no eviction goes unreported.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from drivetrain.core import tracing
from drivetrain.core.transport import EVENTS, TELEMETRY, vehicle_topic
from drivetrain.core.wire import (
    MessageKind,
    VehicleEvent,
    VehicleSession,
    events_to_dict,
    new_message_id,
    seal_json,
    seal_telemetry,
)
from drivetrain.edge.agent.config import EVENT_PRIORITY, SESSION_PRIORITY
from drivetrain.edge.buffer import AppendResult, Buffer, OutgoingMessage
from drivetrain.edge.identity import VehicleIdentity
from drivetrain.edge.samples import Samples
from drivetrain.edge.state import StateRecord

log = logging.getLogger("drivetrain.edge")


class Outbox:
    """Seals telemetry, events and acknowledgements of one vehicle into ``buffer``.

    ``sessions`` False signs every telemetry batch instead (as agents before sessions did).

    Attributes:
        events: events waiting for the next ``seal_events``.
        batches, bytes: telemetry batches sealed and their payload bytes.
        events_sent: events sealed.
        evicted: messages the buffer evicted to make room for these.
        sessions_opened: vehicle sessions opened.
    """

    def __init__(self, identity: VehicleIdentity, buffer: Buffer, *, sessions: bool = True) -> None:
        self.vin = identity.vin
        self.buffer = buffer
        self._key = identity.signing_key
        self._cloud = identity.cloud_key
        self.sessions = sessions
        self._session: VehicleSession | None = None
        self.sessions_opened = 0
        self.events: list[VehicleEvent] = []
        self.batches = 0
        self.bytes = 0
        self.events_sent = 0
        self.evicted = 0

    def seal_telemetry(
        self, samples: Samples, priority: int, now_ns: int, *, campaign: str | None = None
    ) -> AppendResult:
        """Seal ``samples`` as one telemetry batch (Unix ns ``now_ns`` as its send time),
        naming the ``campaign`` that collected them in its header.

        Raises:
            StorageError: the buffer failed (nothing was stored).
        """
        key = self._session_for(now_ns) if self.sessions else self._key
        seq = self.buffer.next_seq(MessageKind.TELEMETRY)
        message_id = new_message_id()
        # A producer span: its context travels in the signed header, and the cloud's ingest
        # spans link to it (a no-op without OpenTelemetry).
        with tracing.span("telemetry.seal", {"messaging.message.id": message_id},
                          kind="producer"):
            payload = seal_telemetry(
                self.vin,
                samples.to_table(),
                key=key,
                seq=seq,
                message_id=message_id,
                sent_ns=now_ns,
                campaign=campaign,
                traceparent=tracing.current_traceparent(),
            )
        result = self._append(OutgoingMessage(
            message_id, MessageKind.TELEMETRY, seq, vehicle_topic(self.vin, TELEMETRY), priority,
            now_ns, payload,
        ))  # fmt: skip
        self.batches += 1
        self.bytes += len(payload)
        return result

    def _session_for(self, now_ns: int) -> VehicleSession:
        """The session to MAC the next batch under: the current one, or a new one whose
        session_open is appended first (the current one has MAC'd its 1,024 envelopes, or is
        a day old).

        Raises:
            StorageError: the buffer failed (no session opened).
        """
        current = self._session
        if current is not None and not current.exhausted and not current.expired(now_ns):
            return current
        seq = self.buffer.next_seq(MessageKind.SESSION_OPEN)
        session = VehicleSession(self.vin, self._key, self._cloud, seq=seq, sent_ns=now_ns)
        self._append(OutgoingMessage(
            session.open_message_id, MessageKind.SESSION_OPEN, seq,
            vehicle_topic(self.vin, TELEMETRY), SESSION_PRIORITY, now_ns, session.open_envelope,
        ))  # fmt: skip
        self._session = session
        self.sessions_opened += 1
        return session

    def seal_json(
        self,
        kind: MessageKind,
        channel: str,
        body: Mapping[str, Any],
        priority: int,
        now_ns: int,
        state: Sequence[StateRecord] = (),
    ) -> AppendResult:
        """Seal a JSON body of ``kind`` for ``channel``, with ``state`` records committed in the
        same transaction.

        Raises:
            StorageError: the buffer failed (nothing was stored).
        """
        seq = self.buffer.next_seq(kind)
        message_id = new_message_id()
        payload = seal_json(
            kind,
            self.vin,
            body,
            key=self._key,
            seq=seq,
            message_id=message_id,
            sent_ns=now_ns,
        )
        return self._append(
            OutgoingMessage(
                message_id, kind, seq, vehicle_topic(self.vin, channel), priority, now_ns, payload
            ),
            state,
        )

    def seal_events(self, now_ns: int) -> None:
        """Seal the waiting events as one events message (nothing when none wait).

        Raises:
            StorageError: the buffer failed (the events keep waiting).
        """
        if not self.events:
            return
        events = list(self.events)
        self.seal_json(MessageKind.EVENTS, EVENTS, events_to_dict(events), EVENT_PRIORITY, now_ns)
        del self.events[: len(events)]  # an eviction event raised by this append stays
        self.events_sent += len(events)

    def _append(self, message: OutgoingMessage, state: Sequence[StateRecord] = ()) -> AppendResult:
        result = self.buffer.append(message, state=state)
        if result.evicted:
            opening = self._session.open_message_id if self._session else None
            if any(e.message_id == opening for e in result.evicted):
                self._session = None  # its batches still buffered will be refused; not new ones
            self.evicted += len(result.evicted)
            by_kind = Counter(e.kind.name.lower() for e in result.evicted)
            self.events.append(VehicleEvent(
                "edge.buffer.evicted", message.created_ns, "medium",
                {"messages": len(result.evicted), "bytes": sum(e.size for e in result.evicted),
                 "by_kind": dict(by_kind),
                 "lowest_priority": min(e.priority for e in result.evicted)},
            ))  # fmt: skip
            log.warning("%s: buffer full, evicted %d messages", self.vin, len(result.evicted))
        return result
