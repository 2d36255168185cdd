"""Opening one uplink message: parse, match the topic, find the vehicle, verify, decode the body.

Pure given a vehicle lookup: a message becomes either an :class:`OpenedMessage` (authentic,
readable, with its decoded body) or a :class:`RejectedMessage` carrying one message-level
reason (``malformed``, ``too_large``, ``unknown_vehicle``, ``retired_vehicle``,
``bad_signature``, ``unknown_session``, ``bad_mac``) and the exact cause. Order matters for
trust: nothing in an envelope is believed before its signature verifies with the key the
registry holds for the VIN it names — or, for an envelope of a vehicle session, before its
MAC verifies with the key of a session that vehicle opened with that key — and the body is
decoded only after that (a garbled body with a bad signature is ``bad_signature``).

Every failure to read untrusted bytes is a refusal, never an exception: whatever the parsers
raise (deep nesting, huge numbers, invalid UTF-8, lone surrogates, a corrupt Arrow stream) is
``malformed``; a message over the size cap, or a body declaring more rows or decompressed bytes
than the caps allow, is ``too_large`` — refused before it is decompressed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.ingest.limits import IngestLimits
from drivetrain.cloud.ingest.reasons import MessageReason
from drivetrain.cloud.ingest.validation import PathTable
from drivetrain.core.errors import (
    InvalidTopicError,
    PayloadTooLargeError,
    SignatureError,
    WireFormatError,
)
from drivetrain.core.transport import VehicleTopic, parse_vehicle_topic
from drivetrain.core.wire import (
    MAC_KINDS,
    Ack,
    Envelope,
    MessageKind,
    SampleArrays,
    SessionOpen,
    VehicleEvent,
    batch_campaign,
    decode_sample_arrays,
    events_from_dict,
    load_json_object,
    parse,
)

if TYPE_CHECKING:
    from drivetrain.cloud.ingest.sessions import SessionBook

#: The uplink channel each message kind travels on (``dt/v1/{vin}/{channel}``).
CHANNEL_OF_KIND: Final[dict[MessageKind, str]] = {
    MessageKind.TELEMETRY: "telemetry",
    MessageKind.EVENTS: "events",
    MessageKind.ACK: "ack",
    # A session opens on the channel whose envelopes it MACs (MAC_KINDS).
    MessageKind.SESSION_OPEN: "telemetry",
}
#: The 8 bytes every Arrow IPC stream ends with (continuation marker, zero length).
ARROW_END_OF_STREAM: Final = b"\xff\xff\xff\xff\x00\x00\x00\x00"
#: Longest event type name accepted (the events store's column width).
MAX_EVENT_TYPE: Final = 120
#: Longest claimed VIN kept in a dead letter of an unparseable or unknown sender.
MAX_CLAIMED_VIN = 64
#: Each kind's name as a refusal names it.
_KIND_NAMES: Final = {kind: kind.name.lower() for kind in MessageKind}
_DEFAULT_LIMITS: Final = IngestLimits()
#: Topics already parsed (a vehicle publishes on the same few, message after message).
MAX_CACHED_TOPICS: Final = 65_536
_TOPICS: dict[str, VehicleTopic] = {}


@dataclass(frozen=True)
class RawMessage:
    """One payload as it arrived: the topic it was published to and its bytes."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class TelemetryBody:
    """A telemetry batch's samples as flat columns (path ids index the pipeline's PathTable)."""

    path_id: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    value_valid: npt.NDArray[np.bool_]
    text: pa.Array
    text_valid: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass(frozen=True)
class OpenedMessage:
    """An authentic uplink message from a registered, active vehicle, with its body decoded."""

    raw: RawMessage
    envelope: Envelope
    vehicle: Vehicle
    telemetry: TelemetryBody | None = None
    events: tuple[VehicleEvent, ...] = ()
    ack: Ack | None = None
    #: The collection campaign a telemetry batch names (its signed header), if any.
    campaign: str | None = None
    #: The session a SESSION_OPEN envelope opened (its id).
    opened_session: str | None = None

    @property
    def batch_id(self) -> str:
        """The envelope's message id (for telemetry: the batch id)."""
        return self.envelope.message_id


@dataclass(frozen=True)
class RejectedMessage:
    """A message refused as a whole; ``vin``/``batch_id``/``kind`` are what it claimed, if
    anything could be read (never trusted: they only help an operator find the sender)."""

    raw: RawMessage
    reason: MessageReason
    detail: str
    vin: str
    batch_id: str | None
    kind: str
    tenant: str | None = None
    #: True when the signature verified (the body was refused after it).
    verified: bool = False


VehicleLookup = Callable[[str], Vehicle | None]


def open_message(
    raw: RawMessage,
    lookup: VehicleLookup,
    paths: PathTable,
    limits: IngestLimits | None = None,
    sessions: SessionBook | None = None,
) -> OpenedMessage | RejectedMessage:
    """Judge one message (see the module docstring). Never raises for bad input.

    ``sessions`` knows the vehicle sessions (None: none, so every session envelope is
    ``unknown_session``) and opens those a SESSION_OPEN envelope asks for.

    ``lookup`` returns the registered vehicle for a VIN, or None when there is none; it may
    raise ``StorageError`` (the state database failed), which propagates: that is not the
    message's fault and must not dead-letter it.
    """
    limits = limits or _DEFAULT_LIMITS
    if len(raw.payload) > limits.max_message_bytes:
        claimed = _claimed_vin_from_topic(raw.topic)
        return RejectedMessage(
            raw,
            "too_large",
            f"message is {len(raw.payload)} bytes; at most {limits.max_message_bytes} are read",
            claimed,
            None,
            "unknown",
        )
    try:
        envelope = parse(raw.payload)
    except Exception as e:  # noqa: BLE001 - untrusted bytes: every failure is a format error
        claimed = _claimed_vin_from_topic(raw.topic)
        return RejectedMessage(raw, "malformed", _cause(e), claimed, None, "unknown")
    kind = _KIND_NAMES[envelope.kind]
    claimed = envelope.vehicle_id[:MAX_CLAIMED_VIN]
    channel = CHANNEL_OF_KIND.get(envelope.kind)
    vehicle: Vehicle | None = None
    refused: tuple[MessageReason, str] | None = None
    if channel is None:
        uplink = ", ".join(k.name.lower() for k in CHANNEL_OF_KIND)
        refused = "malformed", f"kind {kind!r} is not an uplink message (expected {uplink})"
    else:
        refused = _topic_refusal(raw.topic, envelope, kind, channel, claimed)
    if refused is None:
        vehicle = lookup(envelope.vehicle_id)
        refused, document = _authenticity_refusal(envelope, vehicle, claimed, sessions)
    if refused is not None:  # attributed to the claimed vehicle's tenant, never trusted
        tenant = vehicle.tenant if vehicle is not None else None
        return RejectedMessage(raw, *refused, claimed, envelope.message_id, kind, tenant)
    assert vehicle is not None  # authentic: its vehicle is registered
    try:
        if envelope.kind == MessageKind.SESSION_OPEN:
            return _session_opened(raw, envelope, vehicle, document, sessions)
        return _decoded(raw, envelope, vehicle, paths, document, limits)
    except PayloadTooLargeError as e:
        reason: MessageReason = "too_large"
        detail = str(e)
    except Exception as e:  # noqa: BLE001 - untrusted bytes: every failure is a format error
        reason, detail = "malformed", _cause(e)
    return RejectedMessage(
        raw, reason, detail, claimed, envelope.message_id, kind, vehicle.tenant, True
    )


def _topic_refusal(
    topic_name: str, envelope: Envelope, kind: str, channel: str, claimed: str
) -> tuple[MessageReason, str] | None:
    """Why the topic does not match the envelope (None: it does)."""
    topic = _TOPICS.get(topic_name)
    if topic is None:
        try:
            topic = parse_vehicle_topic(topic_name)
        except InvalidTopicError as e:
            return "malformed", f"topic: {e}"
        if len(_TOPICS) >= MAX_CACHED_TOPICS:
            _TOPICS.clear()
        _TOPICS[topic_name] = topic
    if topic.channel != channel:
        return "malformed", (
            f"a {kind} envelope arrived on channel {topic.channel!r}; "
            f"expected 'dt/v1/{{vin}}/{channel}'"
        )
    if topic.vin != envelope.vehicle_id:
        return "malformed", (
            f"topic names vehicle {topic.vin} but the envelope header names {claimed!r}"
        )
    return None


def _authenticity_refusal(
    envelope: Envelope, vehicle: Vehicle | None, claimed: str, sessions: SessionBook | None
) -> tuple[tuple[MessageReason, str] | None, dict[str, object] | None]:
    """Why a message whose topic matches is not whole or not authentic (None: it is), and
    its parsed JSON body when it has one."""
    incomplete, document = _framing(envelope)
    if incomplete is not None:
        return ("malformed", incomplete), None
    if vehicle is None:
        return ("unknown_vehicle", f"vehicle {claimed!r} is not registered"), None
    if vehicle.status == "retired":
        return ("retired_vehicle", f"vehicle {vehicle.vin} is retired"), None
    if envelope.session_id is not None:
        return _session_refusal(envelope, vehicle, sessions), document
    try:
        envelope.verify(vehicle.verify_key)
    except (SignatureError, WireFormatError) as e:
        return (
            "bad_signature",
            f"signature of {vehicle.vin}'s message does not verify: {e}",
        ), None
    return None, document


def _session_refusal(
    envelope: Envelope, vehicle: Vehicle, sessions: SessionBook | None
) -> tuple[MessageReason, str] | None:
    """Why a MAC'd envelope is not authentic (None: it is)."""
    if envelope.kind not in MAC_KINDS:
        return "bad_signature", (
            f"a {_KIND_NAMES[envelope.kind]} envelope must be signed, not MAC'd under a session"
        )
    session_id = envelope.session_id or ""
    entry = sessions.get(session_id) if sessions is not None else None
    if entry is None:
        return "unknown_session", (
            f"session {envelope.session_id} is not open (no session_open of it was ingested)"
        )
    if entry.vin != vehicle.vin:
        return "bad_signature", (
            f"session {envelope.session_id} was opened by another vehicle, not {vehicle.vin}"
        )
    if entry.vehicle_key_id != vehicle.verify_key.key_id or envelope.key_id != entry.vehicle_key_id:
        return "bad_signature", (
            f"session {envelope.session_id} was opened with key {entry.vehicle_key_id}; "
            f"the envelope names {envelope.key_id} and {vehicle.vin}'s key is "
            f"{vehicle.verify_key.key_id}"
        )
    try:
        envelope.verify_mac(entry.mac_key)
    except SignatureError as e:
        return "bad_mac", f"{vehicle.vin}'s message: {e}"
    return None


def _session_opened(
    raw: RawMessage,
    envelope: Envelope,
    vehicle: Vehicle,
    document: dict[str, object] | None,
    sessions: SessionBook | None,
) -> OpenedMessage:
    """A verified SESSION_OPEN envelope: its session opened.

    Raises:
        WireFormatError: the body does not read, or the session cannot be opened here.
    """
    if document is None:
        document = envelope.json_body()
    opened = SessionOpen.from_dict(document)
    if sessions is None:
        raise WireFormatError("this receiver opens no sessions")
    sessions.open(vehicle, opened)
    return OpenedMessage(raw, envelope, vehicle, opened_session=opened.session_id)


def _cause(error: Exception) -> str:
    """A parser's failure as a dead letter's detail (its own message for format errors)."""
    if isinstance(error, WireFormatError):
        return str(error)
    return f"message cannot be read: {type(error).__name__}: {error}"[:1000]


def _framing(envelope: Envelope) -> tuple[str | None, dict[str, object] | None]:
    """Why the body cannot be whole, from its framing alone (cheap, before verification),
    and the parsed JSON body when there is one (parsed once, used after verification).

    A cut-off message still parses as an envelope (the signature is its last 64 bytes), so
    without this a truncation would read as a bad signature. An Arrow IPC stream ends with the
    end-of-stream marker; a JSON body is one JSON object. Nothing is trusted from this check.
    """
    if envelope.body_encoding == "arrow-ipc":
        if not envelope.body.endswith(ARROW_END_OF_STREAM):
            return (
                f"message is truncated or garbled: its {len(envelope.body)}-byte arrow-ipc body "
                "does not end with the Arrow IPC end-of-stream marker"
            ), None
        return None, None
    try:
        return None, load_json_object(envelope.body, "json body")
    except WireFormatError as e:
        return f"message is truncated or garbled: {e}", None


def _claimed_vin_from_topic(topic: str) -> str:
    try:
        return parse_vehicle_topic(topic).vin
    except InvalidTopicError:
        return ""


def _decoded(
    raw: RawMessage,
    envelope: Envelope,
    vehicle: Vehicle,
    paths: PathTable,
    document: dict[str, object] | None,
    limits: IngestLimits,
) -> OpenedMessage:
    if envelope.kind == MessageKind.TELEMETRY:
        if envelope.body_encoding != "arrow-ipc":
            raise WireFormatError(
                f"telemetry body is {envelope.body_encoding!r}; expected 'arrow-ipc'"
            )
        campaign = batch_campaign(envelope)
        decoded = decode_sample_arrays(envelope.body, limits.body)
        body = (
            telemetry_columns(decoded, paths)
            if isinstance(decoded, pa.Table)
            else body_of_arrays(decoded, paths)
        )
        return OpenedMessage(raw, envelope, vehicle, telemetry=body, campaign=campaign)
    if document is None:
        document = envelope.json_body()
    if envelope.kind == MessageKind.EVENTS:
        events = tuple(events_from_dict(document))
        for position, event in enumerate(events):
            if not 0 < len(event.type) <= MAX_EVENT_TYPE or not event.type.isprintable():
                raise WireFormatError(
                    f"event {position}: field 'type' is {event.type[:40]!r} "
                    f"({len(event.type)} characters); expected 1 to {MAX_EVENT_TYPE} "
                    "printable characters"
                )
        return OpenedMessage(raw, envelope, vehicle, events=events)
    return OpenedMessage(raw, envelope, vehicle, ack=Ack.from_dict(document))


def body_of_arrays(arrays: SampleArrays, paths: PathTable) -> TelemetryBody:
    """A telemetry body read as NumPy arrays (every path index inside its dictionary, the
    text checked) with its path dictionary mapped to path ids once per distinct path."""
    lookup = paths.dictionary_ids(arrays.dictionary)
    return TelemetryBody(
        path_id=lookup[arrays.path_index],
        ts_ns=arrays.ts_ns,
        value=arrays.value,
        value_valid=arrays.value_valid,
        text=arrays.text,
        text_valid=_valid_mask(arrays.text),
    )


def telemetry_columns(table: pa.Table, paths: PathTable) -> TelemetryBody:
    """Flatten a decoded telemetry table into NumPy columns, mapping its path dictionary to
    path ids once per distinct path.

    Raises:
        WireFormatError: a dictionary index outside its dictionary (a corrupt body).
    """
    path_ids: list[npt.NDArray[np.int32]] = []
    ts: list[npt.NDArray[np.int64]] = []
    values: list[npt.NDArray[np.float64]] = []
    value_valid: list[npt.NDArray[np.bool_]] = []
    texts: list[pa.Array] = []
    for batch in table.to_batches():
        path = batch.column(0)
        lookup = paths.dictionary_ids(path.dictionary)  # -1 (null) selects its last entry
        indices = path.indices
        index = indices.fill_null(-1).to_numpy() if indices.null_count else indices.to_numpy()
        if len(index) and (int(index.min()) < -1 or int(index.max()) >= len(path.dictionary)):
            raise WireFormatError(
                f"telemetry column 'path' has indices outside its dictionary of "
                f"{len(path.dictionary)} paths"
            )
        path_ids.append(lookup[index.astype(np.intp)])  # -1 selects the appended null path
        stamps = batch.column(1).view(pa.int64())
        if stamps.null_count:  # a null time is no time: it fails the window as too old
            stamps = stamps.fill_null(np.iinfo(np.int64).min)
        ts.append(stamps.to_numpy())
        value = batch.column(2)
        values.append(value.to_numpy(zero_copy_only=False))
        value_valid.append(
            np.asarray(value.is_valid()) if value.null_count else np.ones(len(value), np.bool_)
        )
        texts.append(batch.column(3))
    text = pa.concat_arrays(texts) if texts else pa.array([], pa.utf8())
    return TelemetryBody(
        path_id=_joined(path_ids, np.int32),
        ts_ns=_joined(ts, np.int64),
        value=_joined(values, np.float64),
        value_valid=_joined(value_valid, np.bool_),
        text=text,
        text_valid=_valid_mask(text),
    )


def _joined(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    if len(parts) == 1:
        return parts[0].astype(dtype, copy=False)
    if not parts:
        return np.zeros(0, dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def _valid_mask(array: pa.Array) -> npt.NDArray[np.bool_]:
    if array.null_count == len(array):
        return np.zeros(len(array), np.bool_)
    if array.null_count == 0:
        return np.ones(len(array), np.bool_)
    return np.asarray(array.is_valid())
