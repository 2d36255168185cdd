"""The signed envelope every vehicle-link message travels in (wire format v1).

Layout (all integers big-endian; see docs/wire-format.md)::

    offset  size  field
    0       3     magic  b"DTW"
    3       1     format version (1)
    4       1     kind (``MessageKind``)
    5       1     flags: 0 (signed) or 1 (``FLAG_SESSION_MAC``); other bits reserved
    6       4     header length H
    10      H     header: UTF-8 JSON object (fields below; unknown fields are kept)
    10+H    B     body, encoded as the header's ``body`` field says
    end-64  64    Ed25519 signature over every byte before it (flags 0), or
    end-32  32    HMAC-SHA256 under the session's key over every byte before it (flags 1)

Header fields: ``vehicle`` (VIN), ``id`` (message id, 32 lower-case hex digits, unique per
message: a receiver that has seen it ignores a re-delivery), ``seq`` (sender's sequence
number, increasing per vehicle and kind), ``sent_ns`` (sender clock, ns since the Unix epoch),
``key`` (signer's key id), ``body`` (``arrow-ipc`` or ``json``). A session-MAC envelope
also carries ``session`` (the session id, 32 lower-case hex digits, see ``session.py``); its
``seq`` is then checked against the session's replay window. A signed envelope has no
``session`` field.

Parsing and verifying are separate steps so a receiver can look up the signer's key by
``vehicle``/``key`` before checking the signature; nothing in an unverified envelope may be
trusted beyond choosing that key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from drivetrain.core.crypto import SIGNATURE_BYTES, SigningKey, VerifyKey
from drivetrain.core.errors import SignatureError, WireFormatError
from drivetrain.core.wire.safe_json import load_json_object

MAGIC: Final = b"DTW"
FORMAT_VERSION: Final = 1
_PREFIX = struct.Struct(">3sBBBI")
#: Flags bit: the envelope ends with a session's HMAC-SHA256, not an Ed25519 signature.
FLAG_SESSION_MAC: Final = 0x01
MAC_BYTES: Final = 32
#: Upper bound on a header, so a hostile length field cannot make a receiver allocate much.
MAX_HEADER_BYTES: Final = 16 * 1024
_INT64_MAX: Final = 2**63 - 1
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")

BodyEncoding = Literal["arrow-ipc", "json"]
_BODY_ENCODINGS: Final = ("arrow-ipc", "json")
_KNOWN_HEADER_FIELDS: Final = ("vehicle", "id", "seq", "sent_ns", "key", "body", "session")
_SESSION_ID = _MESSAGE_ID


class MessageKind(enum.IntEnum):
    """What an envelope carries; the direction is part of the meaning."""

    TELEMETRY = 1  # vehicle -> cloud: signal samples (body: arrow-ipc, see telemetry.py)
    EVENTS = 2  # vehicle -> cloud: security and diagnostic events (json)
    ACK = 3  # vehicle -> cloud: outcome of a downlink message (json)
    DESIRED_STATE = 4  # cloud -> vehicle: desired-state delta (json)
    CAMPAIGN = 5  # cloud -> vehicle: a collection campaign (json)
    COMMAND = 6  # cloud -> vehicle: a one-off command (json)
    DECODER_MANIFEST = 7  # cloud -> vehicle: how to decode its CAN traffic (json)
    ENTITLEMENTS = 8  # cloud -> vehicle: signed feature entitlement tokens (json)
    SESSION_OPEN = 9  # vehicle -> cloud: opens a MAC session (json, signed; see session.py)


def new_message_id() -> str:
    """A fresh random message id (UUID4 as 32 hex digits)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope. ``signed`` is the byte range the signature (or MAC) covers;
    ``signature`` holds the 32-byte MAC when ``session_id`` is set."""

    kind: MessageKind
    vehicle_id: str
    message_id: str
    seq: int
    sent_ns: int
    key_id: str
    body_encoding: BodyEncoding
    body: bytes
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)
    #: Header fields this version does not interpret, kept for forward compatibility.
    extra_header: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The session whose key MACs this envelope (None: signed with Ed25519).
    session_id: str | None = None

    def verify(self, key: VerifyKey) -> Envelope:
        """Return self if the signature verifies with ``key``.

        Raises:
            SignatureError: it does not (altered bytes, or another signer), or the envelope
                carries a session MAC instead of a signature.
            WireFormatError: the header names a different key id than ``key``.
        """
        if key.key_id != self.key_id:
            raise WireFormatError(
                f"header field 'key' is {self.key_id!r}; the vehicle's key is {key.key_id!r}"
            )
        if self.session_id is not None:
            raise SignatureError(
                f"the envelope carries a MAC of session {self.session_id}, not a signature"
            )
        key.verify(self.signature, self.signed)
        return self

    def verify_mac(self, mac_key: bytes) -> Envelope:
        """Return self if its HMAC-SHA256 verifies with the session key ``mac_key``.

        Raises:
            SignatureError: it does not (altered bytes, another key), or the envelope is
                signed rather than MAC'd.
        """
        if self.session_id is None:
            raise SignatureError("the envelope is signed; it carries no session MAC")
        expected = hmac.digest(mac_key, self.signed, hashlib.sha256)
        if not hmac.compare_digest(expected, self.signature):
            raise SignatureError(f"MAC does not verify with the key of session {self.session_id}")
        return self

    def json_body(self) -> dict[str, Any]:
        """The body parsed as a JSON object.

        Raises:
            WireFormatError: the body is not declared ``json`` or is not a JSON object.
        """
        if self.body_encoding != "json":
            raise WireFormatError(f"body is {self.body_encoding!r}; expected 'json'")
        return load_json_object(self.body, "body")


def seal(
    kind: MessageKind,
    vehicle_id: str,
    body: bytes,
    *,
    body_encoding: BodyEncoding,
    key: SigningKey,
    seq: int,
    message_id: str | None = None,
    sent_ns: int | None = None,
    extra_header: Mapping[str, Any] | None = None,
) -> bytes:
    """Build and sign an envelope; returns its bytes. ``extra_header`` adds header fields a
    message kind defines beyond the common ones (e.g. a telemetry batch's ``campaign``).

    Raises:
        ValueError: a malformed message id, a negative sequence number, or an extra header
            field that shadows a common one (programming errors).
    """
    signed = _unsealed(
        kind, vehicle_id, body, body_encoding, key.key_id, seq, message_id, sent_ns,
        extra_header, None,
    )  # fmt: skip
    return signed + key.sign(signed)


def seal_with_mac(
    kind: MessageKind,
    vehicle_id: str,
    body: bytes,
    *,
    body_encoding: BodyEncoding,
    key_id: str,
    session_id: str,
    mac_key: bytes,
    seq: int,
    message_id: str | None = None,
    sent_ns: int | None = None,
    extra_header: Mapping[str, Any] | None = None,
) -> bytes:
    """Build an envelope that ends with the HMAC-SHA256 of session ``session_id`` (its key
    ``mac_key``); ``key_id`` names the vehicle key that opened the session. See ``seal``.

    Raises:
        ValueError: as ``seal``, or a session id that is not 32 lower-case hex digits.
    """
    if not _SESSION_ID.fullmatch(session_id):
        raise ValueError(f"session id {session_id!r} is not 32 lower-case hex digits")
    signed = _unsealed(
        kind, vehicle_id, body, body_encoding, key_id, seq, message_id, sent_ns,
        extra_header, session_id,
    )  # fmt: skip
    return signed + hmac.digest(mac_key, signed, hashlib.sha256)


def _unsealed(
    kind: MessageKind,
    vehicle_id: str,
    body: bytes,
    body_encoding: BodyEncoding,
    key_id: str,
    seq: int,
    message_id: str | None,
    sent_ns: int | None,
    extra_header: Mapping[str, Any] | None,
    session_id: str | None,
) -> bytes:
    """Prefix, header and body: the bytes a signature or MAC covers."""
    message_id = message_id or new_message_id()
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"message id {message_id!r} is not 32 lower-case hex digits")
    if seq < 0:
        raise ValueError(f"seq {seq} is negative")
    header = {
        "vehicle": vehicle_id,
        "id": message_id,
        "seq": seq,
        "sent_ns": time.time_ns() if sent_ns is None else sent_ns,
        "key": key_id,
        "body": body_encoding,
    }
    if session_id is not None:
        header["session"] = session_id
    if extra_header:
        clash = sorted(set(extra_header) & set(_KNOWN_HEADER_FIELDS))
        if clash:
            raise ValueError(f"extra header fields {clash} shadow the common ones")
        header.update(extra_header)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    flags = 0 if session_id is None else FLAG_SESSION_MAC
    return (
        _PREFIX.pack(MAGIC, FORMAT_VERSION, int(kind), flags, len(header_bytes))
        + header_bytes
        + body
    )


def seal_json(
    kind: MessageKind, vehicle_id: str, payload: Mapping[str, Any], *, key: SigningKey, seq: int,
    message_id: str | None = None, sent_ns: int | None = None,
) -> bytes:
    """``seal`` with a JSON object body."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return seal(
        kind, vehicle_id, body, body_encoding="json", key=key, seq=seq,
        message_id=message_id, sent_ns=sent_ns,
    )


def parse(data: bytes | bytearray | memoryview) -> Envelope:
    """Parse an envelope without checking its signature (call ``Envelope.verify`` next).

    Raises:
        WireFormatError: truncated, wrong magic or version, unknown kind, or a header field
            missing or of the wrong type — the message names which.
    """
    data = bytes(data)
    if len(data) < _PREFIX.size + MAC_BYTES:
        raise WireFormatError(
            f"message is {len(data)} bytes; shorter than the smallest envelope "
            f"({_PREFIX.size + MAC_BYTES})"
        )
    magic, version, kind_code, flags, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise WireFormatError(f"magic is {magic!r}; expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise WireFormatError(f"format version is {version}; this receiver reads {FORMAT_VERSION}")
    try:
        kind = MessageKind(kind_code)
    except ValueError:
        raise WireFormatError(f"kind {kind_code} is not a known message kind") from None
    if flags not in (0, FLAG_SESSION_MAC):
        raise WireFormatError(
            f"flags are {flags:#04x}; expected 0 (signed) or {FLAG_SESSION_MAC:#04x} "
            "(session MAC) in format version 1"
        )
    if header_len > MAX_HEADER_BYTES:
        raise WireFormatError(f"header length {header_len} exceeds {MAX_HEADER_BYTES} bytes")
    trailer = MAC_BYTES if flags else SIGNATURE_BYTES
    body_start = _PREFIX.size + header_len
    body_end = len(data) - trailer
    if body_start > body_end:
        raise WireFormatError(
            f"message is truncated: header length {header_len} runs past the end "
            f"({len(data)} bytes with the {'MAC' if flags else 'signature'})"
        )
    header = load_json_object(data[_PREFIX.size : body_start], "header")
    vehicle_id = _field(header, "vehicle", str)
    message_id = _field(header, "id", str)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise WireFormatError(f"header field 'id' is {message_id!r}; expected 32 hex digits")
    seq = _field(header, "seq", int)
    sent_ns = _field(header, "sent_ns", int)
    for name, number in (("seq", seq), ("sent_ns", sent_ns)):
        if not 0 <= number <= _INT64_MAX:  # stored in 64-bit columns downstream
            raise WireFormatError(
                f"header field {name!r} is {number}; expected 0 to {_INT64_MAX}"
            )
    key_id = _field(header, "key", str)
    if not _KEY_ID.fullmatch(key_id):
        raise WireFormatError(f"header field 'key' is {key_id!r}; expected 16 hex digits")
    body_encoding = _field(header, "body", str)
    if body_encoding not in _BODY_ENCODINGS:
        raise WireFormatError(
            f"header field 'body' is {body_encoding!r}; expected one of {_BODY_ENCODINGS}"
        )
    session_id: str | None = None
    if flags:
        session_id = _field(header, "session", str)
        if not _SESSION_ID.fullmatch(session_id):
            raise WireFormatError(
                f"header field 'session' is {session_id!r}; expected 32 hex digits"
            )
    elif "session" in header:
        raise WireFormatError(
            "header field 'session' is set but flags are 0: a session envelope sets flag "
            f"{FLAG_SESSION_MAC:#04x} and ends with its MAC"
        )
    extra = {k: v for k, v in header.items() if k not in _KNOWN_HEADER_FIELDS}
    return Envelope(
        kind=kind,
        vehicle_id=vehicle_id,
        message_id=message_id,
        seq=seq,
        sent_ns=sent_ns,
        key_id=key_id,
        body_encoding=body_encoding,  # checked against _BODY_ENCODINGS above
        body=data[body_start:body_end],
        signature=data[body_end:],
        signed=data[:body_end],
        extra_header=MappingProxyType(extra),
        session_id=session_id,
    )


def _field(header: dict[str, Any], name: str, kind: type) -> Any:
    if name not in header:
        raise WireFormatError(f"header field {name!r} is missing")
    value = header[name]
    # bool is an int subclass; a JSON true is never a valid seq or timestamp.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireFormatError(
            f"header field {name!r} is {value!r}; expected a JSON {kind.__name__}"
        )
    return value
