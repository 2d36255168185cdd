"""Vehicle sessions: one signed ``session_open``, then an HMAC per envelope instead of a signature.

A vehicle opens a session with a SESSION_OPEN envelope, signed with its Ed25519 key, whose
JSON body carries a fresh session id and an ephemeral X25519 public key::

    {"session": "<32 hex>", "ephemeral": "<base64 of 32 bytes>", "platform_key": "<key id>"}

Both sides derive the session's MAC key as HKDF-SHA256(X25519(ephemeral, platform), salt =
session id, info = ``drivetrain/session/v1`` ‖ VIN ‖ platform key id), where the platform's
X25519 key is the cloud's Ed25519 key in its Montgomery form (``VerifyKey.x25519_public``):
nothing secret travels, and the vehicle forgets the ephemeral private key once the MAC key is
derived. Following envelopes set ``FLAG_SESSION_MAC``, name the session in their header and end
with HMAC-SHA256 over every byte before it (``envelope.seal_with_mac``).

A session covers at most :data:`SESSION_MAX_MESSAGES` envelopes, so that every sequence number
it MACs stays inside the receiver's replay window (:data:`REPLAY_WINDOW`) whatever order a
store-and-forward buffer sends them in.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire.envelope import (
    BodyEncoding,
    MessageKind,
    new_message_id,
    seal_json,
    seal_with_mac,
)

SESSION_INFO: Final = b"drivetrain/session/v1"
#: Envelopes one session MACs before the vehicle opens the next.
SESSION_MAX_MESSAGES: Final = 1024
#: Longest a vehicle MACs under one session (by its clock), however few envelopes it sent: a
#: stolen session key is good for a day at most, and the platform can forget a replaced
#: session once its envelopes are too old to accept.
SESSION_MAX_AGE_NS: Final = 86_400 * 10**9
#: Sequence numbers a receiver remembers per session (RFC 4303 §3.4.3): twice a session's
#: span, so no envelope of a session can fall below it.
REPLAY_WINDOW: Final = 2 * SESSION_MAX_MESSAGES
#: Kinds an envelope may carry under a session MAC: telemetry only. Events (security events,
#: consent withdrawals) and acks stay signed, since a MAC proves the sender to the platform
#: alone, not to a third party.
MAC_KINDS: Final = frozenset({MessageKind.TELEMETRY})
_HEX32 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class SessionOpen:
    """The body of a SESSION_OPEN envelope."""

    session_id: str
    ephemeral: bytes
    platform_key_id: str

    def to_dict(self) -> dict[str, str]:
        """The JSON body."""
        return {
            "session": self.session_id,
            "ephemeral": base64.b64encode(self.ephemeral).decode("ascii"),
            "platform_key": self.platform_key_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionOpen:
        """Read a SESSION_OPEN body.

        Raises:
            WireFormatError: a field missing, of the wrong type or malformed (names it).
        """
        for name in ("session", "ephemeral", "platform_key"):
            if not isinstance(data.get(name), str):
                raise WireFormatError(f"session_open field {name!r} is missing or not a string")
        session_id, platform_key = data["session"], data["platform_key"]
        if len(session_id) != 32 or not set(session_id) <= _HEX32:
            raise WireFormatError(
                f"session_open field 'session' is {session_id[:40]!r}; expected 32 hex digits"
            )
        if len(platform_key) != 16 or not set(platform_key) <= _HEX32:
            raise WireFormatError(
                f"session_open field 'platform_key' is {platform_key[:40]!r}; "
                "expected 16 hex digits"
            )
        try:
            ephemeral = base64.b64decode(data["ephemeral"], validate=True)
        except (binascii.Error, ValueError):
            raise WireFormatError("session_open field 'ephemeral' is not base64") from None
        if len(ephemeral) != 32:
            raise WireFormatError(
                f"session_open field 'ephemeral' is {len(ephemeral)} bytes; expected 32"
            )
        return cls(session_id, ephemeral, platform_key)


def session_mac_key(shared: bytes, session_id: str, vin: str, platform_key_id: str) -> bytes:
    """The session's 32-byte MAC key from the X25519 shared secret."""
    return HKDF(
        hashes.SHA256(),
        32,
        salt=bytes.fromhex(session_id),
        info=SESSION_INFO + vin.encode() + platform_key_id.encode(),
    ).derive(shared)


def platform_session_key(platform: SigningKey, opened: SessionOpen, vin: str) -> bytes:
    """The MAC key of a session ``vin`` opened with ``opened`` (the platform's side).

    Raises:
        WireFormatError: the session names another platform key, or its ephemeral key is
            degenerate (a low-order point: X25519 yields all zeros).
    """
    if opened.platform_key_id != platform.key_id:
        raise WireFormatError(
            f"session_open names platform key {opened.platform_key_id}; this platform's is "
            f"{platform.key_id}"
        )
    try:
        shared = platform.x25519_private().exchange(
            X25519PublicKey.from_public_bytes(opened.ephemeral)
        )
    except ValueError as e:  # cryptography refuses an all-zero shared secret
        raise WireFormatError(f"session_open field 'ephemeral' is unusable: {e}") from None
    return session_mac_key(shared, opened.session_id, vin, opened.platform_key_id)


class VehicleSession:
    """The vehicle's side of one session: opens it, then MACs up to
    :data:`SESSION_MAX_MESSAGES` envelopes with its key.

    Attributes:
        open_envelope: the signed SESSION_OPEN envelope to send before any MAC'd one.
        open_message_id: its message id.
        opened_ns: when it was opened (``sent_ns``, or now), nanoseconds since the epoch.
        used: envelopes MAC'd so far.
    """

    def __init__(
        self, vin: str, key: SigningKey, platform: VerifyKey, *, seq: int, sent_ns: int | None = None
    ) -> None:
        self.open_message_id = new_message_id()
        ephemeral = X25519PrivateKey.generate()
        self.vin = vin
        self.key_id = key.key_id
        self.session_id = secrets.token_hex(16)
        opened = SessionOpen(
            self.session_id, ephemeral.public_key().public_bytes_raw(), platform.key_id
        )
        shared = ephemeral.exchange(platform.x25519_public)
        del ephemeral  # forgotten once the key is derived
        self._mac_key = session_mac_key(shared, self.session_id, vin, platform.key_id)
        self.open_envelope = seal_json(
            MessageKind.SESSION_OPEN, vin, opened.to_dict(), key=key, seq=seq,
            message_id=self.open_message_id, sent_ns=sent_ns,
        )  # fmt: skip
        self.opened_ns = time.time_ns() if sent_ns is None else sent_ns
        self.used = 0

    @property
    def exhausted(self) -> bool:
        """True once the session has MAC'd all it may; open the next."""
        return self.used >= SESSION_MAX_MESSAGES

    def expired(self, now_ns: int) -> bool:
        """True once the session is :data:`SESSION_MAX_AGE_NS` old at ``now_ns``; open the
        next."""
        return now_ns - self.opened_ns >= SESSION_MAX_AGE_NS

    def seal(
        self,
        kind: MessageKind,
        body: bytes,
        *,
        body_encoding: BodyEncoding,
        seq: int,
        message_id: str | None = None,
        sent_ns: int | None = None,
        extra_header: dict[str, Any] | None = None,
    ) -> bytes:
        """An envelope MAC'd under this session (see ``envelope.seal_with_mac``).

        Raises:
            ValueError: the session is exhausted, or ``kind`` must stay signed (programming
                errors), or as ``seal_with_mac``.
        """
        if kind not in MAC_KINDS:
            raise ValueError(f"{kind.name.lower()} envelopes are signed, never MAC'd")
        if self.exhausted:
            raise ValueError(f"session {self.session_id} has MAC'd {self.used}; open the next")
        payload = seal_with_mac(
            kind, self.vin, body, body_encoding=body_encoding, key_id=self.key_id,
            session_id=self.session_id, mac_key=self._mac_key, seq=seq,
            message_id=message_id, sent_ns=sent_ns, extra_header=extra_header,
        )  # fmt: skip
        self.used += 1
        return payload

    def __repr__(self) -> str:
        return f"VehicleSession({self.vin}, {self.session_id}, used {self.used})"
