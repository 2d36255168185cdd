"""What a delivery carries on the wire: checked job payloads and their signed envelopes.

A job's payload is a downlink message kind the vehicle obeys and its JSON body: a command
(``{"name", "args"}``; the dispatcher adds ``expires_ns`` when it sends, from the policy's
freshness window) or a collection campaign (the body as the owner built it). Each delivery is
sealed (wire format v1) for its vehicle with the cloud key: the body is serialised once per
job and round, the header and signature per vehicle.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from drivetrain.core.can import MAX_MANIFEST_BYTES, DecoderManifest
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, WireFormatError
from drivetrain.core.transport import CAMPAIGNS, COMMANDS, DECODER, ENTITLEMENTS
from drivetrain.core.wire import Command, MessageKind, seal

#: The downlink kinds a job may carry and the vehicle channel each travels on.
CHANNELS: Final[Mapping[MessageKind, str]] = {
    MessageKind.COMMAND: COMMANDS,
    MessageKind.CAMPAIGN: CAMPAIGNS,
    MessageKind.DECODER_MANIFEST: DECODER,
    MessageKind.ENTITLEMENTS: ENTITLEMENTS,
}
#: The ``ref_kind`` of the vehicle's acknowledgement of each kind.
ACK_KINDS: Final[Mapping[MessageKind, str]] = {
    MessageKind.COMMAND: "command",
    MessageKind.CAMPAIGN: "campaign",
    MessageKind.DECODER_MANIFEST: "decoder_manifest",
    MessageKind.ENTITLEMENTS: "entitlements",
}
COMMAND_NAME: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
#: Largest JSON body a job may carry, bytes.
MAX_BODY_BYTES: Final = 256 * 1024
MAX_BODY_BYTES_BY_KIND: Final[Mapping[MessageKind, int]] = {
    MessageKind.COMMAND: 16 * 1024,
    MessageKind.DECODER_MANIFEST: MAX_MANIFEST_BYTES,
    MessageKind.ENTITLEMENTS: 64 * 1024,
}
_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Payload:
    """A downlink message for a job: its kind and JSON body."""

    kind: MessageKind
    body: Mapping[str, Any]

    @property
    def channel(self) -> str:
        return CHANNELS[self.kind]

    @classmethod
    def command(cls, name: str, args: Mapping[str, Any] | None = None) -> Payload:
        """A command payload, checked (see :func:`check_payload`)."""
        return check_payload(cls(MessageKind.COMMAND, {"name": name, "args": dict(args or {})}))


def body_json(body: Mapping[str, Any]) -> str:
    """The canonical JSON text of a body (sorted keys, no spaces)."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False)


def check_payload(payload: Payload) -> Payload:
    """``payload`` if a vehicle can act on it.

    Raises:
        BadInputError: a kind that is not a job's (command, campaign), a body that is not
            JSON, too large, or (commands) a bad name or ``args`` that is not an object.
    """
    if payload.kind not in CHANNELS:
        raise BadInputError(
            f"payload kind {payload.kind.name} cannot be sent by a job; expected "
            f"{', '.join(k.name for k in CHANNELS)}"
        )
    try:
        text = body_json(payload.body)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"payload body is not JSON-serialisable: {e}") from e
    limit = MAX_BODY_BYTES_BY_KIND.get(payload.kind, MAX_BODY_BYTES)
    if len(text.encode()) > limit:
        raise BadInputError(
            f"payload body is {len(text.encode()):,} bytes; at most {limit:,}"
        )
    if payload.kind == MessageKind.COMMAND:
        try:
            command = Command.from_dict(payload.body)
        except WireFormatError as e:
            raise BadInputError(str(e)) from e
        if not COMMAND_NAME.fullmatch(command.name):
            raise BadInputError(
                f"command name {command.name!r} is not valid; expected 1-64 characters of "
                "a-z, 0-9, '_', '.', '-' starting with a letter (e.g. 'flash_lights')"
            )
        extra = sorted(set(payload.body) - {"name", "args"})
        if extra:
            raise BadInputError(f"command body: unknown fields {extra}; expected name, args")
    if payload.kind == MessageKind.DECODER_MANIFEST:
        try:
            DecoderManifest.from_dict(payload.body)
        except WireFormatError as e:
            raise BadInputError(str(e)) from e
    if payload.kind == MessageKind.ENTITLEMENTS:
        tokens = payload.body.get("tokens")
        version = payload.body.get("version")
        if (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)
                or isinstance(version, bool) or not isinstance(version, int)):
            raise BadInputError("entitlements body: expected {'version': int, 'tokens': [str]}")
    return payload


def message_id_for(nonce: str, delivery_id: int, attempt: int) -> str:
    """The message id of a delivery's ``attempt``: unique per (round nonce, delivery, attempt),
    32 lower-case hex digits as the wire format wants."""
    return hashlib.blake2b(f"{nonce}:{delivery_id}:{attempt}".encode(), digest_size=16).hexdigest()


class Sealer:
    """Seals the deliveries of one round: each distinct body is serialised once.

    Args:
        key: the cloud signing key.
        sent_ns: the round's send time, Unix ns (the envelopes' ``sent_ns``).
    """

    def __init__(self, key: SigningKey, sent_ns: int) -> None:
        self.key = key
        self.sent_ns = sent_ns
        # Sequence numbers increase per vehicle and kind as time does: microseconds.
        self.seq = sent_ns // 1000
        self._bodies: dict[tuple[str, str, float], bytes] = {}

    def body_bytes(self, kind: MessageKind, body_text: str, freshness_s: float) -> bytes:
        """The wire body: a command gains ``expires_ns`` = send time + freshness."""
        cache_key = (kind.name, body_text, freshness_s)
        cached = self._bodies.get(cache_key)
        if cached is not None:
            return cached
        if kind == MessageKind.COMMAND:
            body = json.loads(body_text)
            body["expires_ns"] = self.sent_ns + round(freshness_s * _NS)
            data = body_json(body).encode()
        else:
            data = body_text.encode()
        self._bodies[cache_key] = data
        return data

    def seal(self, kind: MessageKind, vin: str, body: bytes, message_id: str) -> bytes:
        """A signed envelope of ``body`` for ``vin``."""
        return seal(kind, vin, body, body_encoding="json", key=self.key, seq=self.seq,
                    message_id=message_id, sent_ns=self.sent_ns)
