"""Message layouts for encoding: where each signal's bits go, and how a value becomes bits.

A classic CAN payload (at most 8 bytes) is handled as one 64-bit word, ``int.from_bytes(data,
"little")`` (the "payload word"). An Intel (little-endian) signal occupies bits ``start ..
start+length-1`` of that word directly. A Motorola (big-endian) signal occupies a run of bits in
the payload read big-endian; we place it there (``raw << shift`` in the big-endian word) and
byte-swap into the payload word, so both byte orders end up as an OR of shifted fields. cantools
numbers a Motorola signal's start as the "sawtooth" position of its most significant bit; its
network (MSB-first) position is ``8 * (start // 8) + 7 - start % 8``.

Values become raw integers exactly as cantools' ``Message.encode(..., scaling=True)`` does:
``round((value - offset) / scale)``, with Python's (and NumPy's) round-half-to-even, then two's
complement in the field width. Values are first clipped to the DBC range ``[minimum, maximum]``
(an ECU saturates a value it cannot represent), then to what the bits can hold.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database, Message, Signal

from drivetrain.core.can import (
    CLASSIC_CAN_MAX_BYTES,
    E2EChecker,
    E2EProtection,
    FrameBatch,
    e2e_protection,
)
from drivetrain.core.errors import DbcFormatError, NotFoundError

_U64 = np.uint64


@dataclass(frozen=True)
class FieldLayout:
    """One signal of a message, ready for vectorised packing into payload words."""

    name: str
    big_endian: bool
    shift: int  # LSB position in the little-endian (Intel) or big-endian (Motorola) word
    bits: int
    signed: bool
    scale: float
    offset: float
    minimum: float  # physical clip range: the DBC's [min|max], or what the bits can hold
    maximum: float
    raw_min: int
    raw_max: int
    initial: float  # physical value from GenSigStartValue (0 raw if none), clipped
    pages: tuple[int, ...] | None  # multiplexer values that select the signal; None: always

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    @property
    def word_mask(self) -> int:
        """The bits of the payload word this field occupies."""
        if self.big_endian:
            return int.from_bytes((self.mask << self.shift).to_bytes(8, "big"), "little")
        return self.mask << self.shift

    def raw(self, physical: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Raw integers of physical values (clipped to the DBC range, quantised as cantools)."""
        clipped = np.clip(physical, self.minimum, self.maximum)
        raw = np.rint((clipped - self.offset) / self.scale)
        return np.clip(raw, self.raw_min, self.raw_max).astype(np.int64)

    def pack(self, raw: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
        """Raw integers placed in payload words (two's complement for negative values)."""
        bits = (raw.astype(_U64) & _U64(self.mask)) << _U64(self.shift)
        return bits.byteswap() if self.big_endian else bits

    def unpack(self, words: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """The raw integers of this field in payload words (sign-extended when signed)."""
        source = words.byteswap() if self.big_endian else words
        raw = (source >> _U64(self.shift)) & _U64(self.mask)
        out = raw.astype(np.int64)
        if self.signed:
            out = np.where(out > self.raw_max, out - (1 << self.bits), out)
        return out


@dataclass(frozen=True)
class MessageLayout:
    """Everything needed to encode one message's frames with NumPy."""

    message: Message
    fields: tuple[FieldLayout, ...]
    mux: FieldLayout | None  # the multiplexer switch, if the message is multiplexed
    pages: tuple[int, ...]  # multiplexer values in sending order; () when not multiplexed
    protection: E2EProtection | None
    period_s: float
    sender: str

    @property
    def name(self) -> str:
        return str(self.message.name)

    @property
    def frame_id(self) -> int:
        return int(self.message.frame_id)

    @property
    def is_extended(self) -> bool:
        return bool(self.message.is_extended_frame)

    @property
    def length(self) -> int:
        return int(self.message.length)

    @property
    def counter(self) -> FieldLayout | None:
        if self.protection is None or self.protection.counter_signal is None:
            return None
        return self.field(self.protection.counter_signal)

    @property
    def checksum(self) -> FieldLayout | None:
        if self.protection is None or self.protection.checksum_signal is None:
            return None
        return self.field(self.protection.checksum_signal)

    @property
    def data_fields(self) -> tuple[FieldLayout, ...]:
        """Fields that carry values (not the counter, checksum or multiplexer switch)."""
        skip = {f.name for f in (self.counter, self.checksum, self.mux) if f is not None}
        return tuple(f for f in self.fields if f.name not in skip)

    def field(self, name: str) -> FieldLayout:
        """The field of signal ``name``.

        Raises:
            NotFoundError: the message has no such signal (close matches are named).
        """
        for f in self.fields:
            if f.name == name:
                return f
        names = [f.name for f in self.fields]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; close matches: {', '.join(close)}" if close else f"; signals: {', '.join(names)}"
        raise NotFoundError(f"message {self.name} has no signal {name!r}{hint}")


def layout_message(message: Message, default_period_s: float = 1.0) -> MessageLayout:
    """Compile ``message`` for encoding.

    Raises:
        DbcFormatError: the message is longer than 8 bytes (CAN FD), has an IEEE float signal,
            nested multiplexers, a signal outside its payload, or invalid E2E attributes.
    """
    where = f"message {message.name} (0x{message.frame_id:X})"
    if message.length > CLASSIC_CAN_MAX_BYTES:
        raise DbcFormatError(
            f"{where}: {message.length} bytes; frames are synthesized for classic CAN (at most 8)"
        )
    mux_signals = [s for s in message.signals if s.is_multiplexer]
    if len(mux_signals) > 1 or any(s.multiplexer_ids and s.is_multiplexer for s in mux_signals):
        raise DbcFormatError(f"{where}: nested or multiple multiplexers are not supported")
    fields = tuple(_layout_signal(message, s, where) for s in message.signals)
    mux = next((f for f, s in zip(fields, message.signals) if s.is_multiplexer), None)
    pages = tuple(sorted({p for f in fields if f.pages for p in f.pages}))
    cycle_ms = message.cycle_time
    period_s = cycle_ms / 1000.0 if cycle_ms else default_period_s
    return MessageLayout(
        message=message,
        fields=fields,
        mux=mux,
        pages=pages,
        protection=e2e_protection(message),
        period_s=period_s,
        sender=message.senders[0] if message.senders else "",
    )


def _layout_signal(message: Message, signal: Signal, where: str) -> FieldLayout:
    if signal.is_float:
        raise DbcFormatError(
            f"{where}: signal {signal.name} is an IEEE float; only integer signals are encoded"
        )
    big = signal.byte_order == "big_endian"
    bits = int(signal.length)
    if big:
        network = 8 * (signal.start // 8) + 7 - signal.start % 8
        shift = 64 - network - bits
        fits = shift >= 0 and network + bits <= 8 * message.length
    else:
        shift = int(signal.start)
        fits = shift + bits <= 8 * message.length
    if not fits:
        raise DbcFormatError(
            f"{where}: signal {signal.name} reaches past the {message.length}-byte payload"
        )
    signed = bool(signal.is_signed)
    raw_min = -(1 << (bits - 1)) if signed else 0
    raw_max = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    scale, offset = float(signal.scale), float(signal.offset)
    ends = sorted((raw_min * scale + offset, raw_max * scale + offset))
    minimum = ends[0] if signal.minimum is None else max(float(signal.minimum), ends[0])
    maximum = ends[1] if signal.maximum is None else min(float(signal.maximum), ends[1])
    raw_initial = signal.raw_initial if signal.raw_initial is not None else 0
    initial = min(max(float(raw_initial) * scale + offset, minimum), maximum)
    pages = tuple(int(p) for p in signal.multiplexer_ids) if signal.multiplexer_ids else None
    return FieldLayout(
        name=signal.name,
        big_endian=big,
        shift=shift,
        bits=bits,
        signed=signed,
        scale=scale,
        offset=offset,
        minimum=minimum,
        maximum=maximum,
        raw_min=raw_min,
        raw_max=raw_max,
        initial=initial,
        pages=pages,
    )


def payload_words(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Payload words of ``(n, width)`` payload bytes (the first 8 bytes, little-endian)."""
    head = np.zeros((len(data), CLASSIC_CAN_MAX_BYTES), np.uint8)
    width = min(data.shape[1], CLASSIC_CAN_MAX_BYTES)
    head[:, :width] = data[:, :width]
    return head.view("<u8")[:, 0].astype(_U64)


def word_payload(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """``(n, 8)`` payload bytes of payload words."""
    return (
        np.ascontiguousarray(words, "<u8").view(np.uint8).reshape(-1, CLASSIC_CAN_MAX_BYTES).copy()
    )


class BusLayout:
    """Every message of a DBC compiled for encoding, found by name or by frame id.

    Raises (constructor):
        DbcFormatError: a message cannot be encoded (see :func:`layout_message`).
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.messages: tuple[MessageLayout, ...] = tuple(
            layout_message(m) for m in database.messages
        )
        self._by_name = {lay.name: lay for lay in self.messages}
        self._by_frame = {(lay.frame_id, lay.is_extended): lay for lay in self.messages}

    def message(self, name: str) -> MessageLayout:
        """The layout of the message named ``name``.

        Raises:
            NotFoundError: no such message (close matches are named).
        """
        layout = self._by_name.get(name)
        if layout is None:
            close = difflib.get_close_matches(name, list(self._by_name), n=3)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise NotFoundError(f"the DBC has no message {name!r}{hint}")
        return layout

    def by_frame(self, frame_id: int, is_extended: bool) -> MessageLayout | None:
        """The layout of the message sent under this id, or None."""
        return self._by_frame.get((frame_id, is_extended))

    def checksum_ok(self, frames: FrameBatch) -> npt.NDArray[np.bool_]:
        """Per frame, False where a protected message's checksum byte is wrong or the frame is
        too short to hold it (True for frames of unprotected or unknown messages) — the check a
        receiving ECU makes, by the same :class:`~drivetrain.core.can.e2e.E2EChecker` the
        vehicle's intrusion detector runs."""
        checker = E2EChecker(
            {
                (m.frame_id, m.is_extended): m.protection
                for m in self.messages
                if m.protection is not None
            }
        )
        verdict = checker.check(frames.frame_id, frames.is_extended, frames.length, frames.data)
        ok: npt.NDArray[np.bool_] = ~verdict.bad_checksum
        return ok


def with_values(
    layout: MessageLayout, words: npt.NDArray[np.uint64], values: dict[str, float]
) -> npt.NDArray[np.uint64]:
    """Payload words with the fields named in ``values`` overwritten (physical DBC values,
    clipped and quantised as in synthesis); other bits unchanged.

    Raises:
        NotFoundError: a name is not a signal of the message.
    """
    out = words.copy()
    for name, value in values.items():
        f = layout.field(name)
        raw = f.raw(np.full(len(out), float(value)))
        out = (out & ~_U64(f.word_mask)) | f.pack(raw)
    return out


def with_counter(
    layout: MessageLayout, words: npt.NDArray[np.uint64], counter: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint64]:
    """Payload words with the rolling counter set to ``counter`` (mod its range) and the
    checksum recomputed — what a forger who knows the E2E scheme sends."""
    out = words.copy()
    field = layout.counter
    if field is not None:
        out = (out & ~_U64(field.word_mask)) | field.pack(counter & field.mask)
    return sealed(layout, out)


def sealed(layout: MessageLayout, words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Payload words with a valid checksum byte (unchanged when the message has none)."""
    protection = layout.protection
    if protection is None or not protection.has_checksum:
        return words
    payload = word_payload(words)
    payload[:, protection.checksum_byte] = protection.checksums(payload)
    return payload_words(payload)


def initial_words(layout: MessageLayout, n: int) -> npt.NDArray[np.uint64]:
    """``n`` payload words with every field at its start value (first multiplexer page)."""
    word = _U64(0)
    page = layout.pages[0] if layout.pages else None
    for f in layout.fields:
        if f.pages is not None and page not in f.pages:
            continue
        value = float(page) if f is layout.mux and page is not None else f.initial
        word |= f.pack(f.raw(np.array([value])))[0]
    return sealed(layout, np.full(n, word, _U64))
