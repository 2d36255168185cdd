"""End-to-end protection of CAN messages: CRC-8 checksums and rolling counters.

Safety-relevant messages of real cars carry a rolling counter (a receiver sees a lost, repeated
or replayed frame) and a checksum over the payload and a per-message *data id* (a receiver sees a
corrupted frame, or a frame of one message sent under another id). The layout follows AUTOSAR E2E
Profile 1: the checksum is computed over the data id (low byte, then high byte) followed by every
data byte of the message except the checksum byte itself, in byte order.

Which signals are the counter and the checksum, which algorithm, and the data id are message
attributes of the DBC (so any tool that reads the DBC sees them)::

    BA_ "E2ECounterSignal" BO_ 195 "Spd_Cnt";
    BA_ "E2EChecksumSignal" BO_ 195 "Spd_CRC";
    BA_ "E2EChecksumAlgorithm" BO_ 195 "CRC8_SAE_J1850";
    BA_ "E2EDataId" BO_ 195 259;

A receiver (the gateway, an ECU, the vehicle's intrusion detector) checks both per frame:
:class:`E2EChecker` holds the protections of a DBC's messages and says, for a batch of frames,
which fail their checksum and which break their message's counter sequence.

Two algorithms, both standard, parametrised as in the CRC catalogue (no reflection):

=====================  ==========  ====  =======  =============================
name                   polynomial  init  xor out  check ("123456789")
=====================  ==========  ====  =======  =============================
``CRC8_SAE_J1850``     0x1D        0xFF  0xFF     0x4B
``CRC8_AUTOSAR_H2F``   0x2F        0xFF  0xFF     0xDF
=====================  ==========  ====  =======  =============================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from cantools.database.can import Message

from drivetrain.core.errors import DbcFormatError

#: DBC message attributes that describe a message's end-to-end protection.
COUNTER_ATTRIBUTE = "E2ECounterSignal"
CHECKSUM_ATTRIBUTE = "E2EChecksumSignal"
ALGORITHM_ATTRIBUTE = "E2EChecksumAlgorithm"
DATA_ID_ATTRIBUTE = "E2EDataId"


@dataclass(frozen=True)
class Crc8:
    """A CRC-8 without reflection: ``poly`` (normal form), start value ``init``, final XOR."""

    name: str
    poly: int
    init: int
    xor_out: int

    @cached_property
    def table(self) -> npt.NDArray[np.uint8]:
        """The 256-entry lookup table: ``table[crc ^ byte]`` is the register after ``byte``."""
        out = np.zeros(256, np.uint8)
        for value in range(256):
            crc = value
            for _ in range(8):
                crc = ((crc << 1) ^ self.poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
            out[value] = crc
        return out

    def register_after(self, prefix: bytes, register: int | None = None) -> int:
        """The CRC register (before the final XOR) after feeding ``prefix``."""
        crc = self.init if register is None else register
        table = self.table
        for byte in prefix:
            crc = int(table[crc ^ byte])
        return crc

    def compute(self, data: bytes) -> int:
        """The CRC of ``data``."""
        return self.register_after(data) ^ self.xor_out


CRC8_SAE_J1850 = Crc8("CRC8_SAE_J1850", poly=0x1D, init=0xFF, xor_out=0xFF)
CRC8_AUTOSAR_H2F = Crc8("CRC8_AUTOSAR_H2F", poly=0x2F, init=0xFF, xor_out=0xFF)
CHECKSUM_ALGORITHMS: dict[str, Crc8] = {c.name: c for c in (CRC8_SAE_J1850, CRC8_AUTOSAR_H2F)}


@dataclass(frozen=True)
class E2EProtection:
    """How one message is protected: a rolling counter, a checksum, or both.

    ``checksum_byte`` is the payload byte (0-based) that holds the 8-bit checksum; the counter
    lies at ``counter_shift`` (its LSB) in the payload's first 8 bytes read as a little-endian
    (Intel) or big-endian (Motorola) word, ``counter_bits`` wide.
    """

    message: str
    counter_signal: str | None
    checksum_signal: str | None = None
    algorithm: Crc8 | None = None
    data_id: int = 0
    checksum_byte: int = -1
    length: int = 8
    covered: tuple[int, ...] = field(default=())
    counter_shift: int = 0
    counter_bits: int = 0
    counter_big_endian: bool = False

    @property
    def has_checksum(self) -> bool:
        return self.algorithm is not None

    def counters(self, payload: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """The rolling counter of many frames at once (``payload`` is ``(n, >= length)``)."""
        block = np.zeros((len(payload), 8), np.uint8)
        width = min(8, payload.shape[1])
        block[:, :width] = payload[:, :width]
        word = block.view(">u8" if self.counter_big_endian else "<u8")[:, 0]
        mask = np.uint64((1 << self.counter_bits) - 1)
        return ((word >> np.uint64(self.counter_shift)) & mask).astype(np.int64)

    def start_register(self) -> int:
        """The CRC register after the data id (low byte, high byte), before the payload."""
        assert self.algorithm is not None
        return self.algorithm.register_after(bytes((self.data_id & 0xFF, self.data_id >> 8)))

    def checksum(self, payload: bytes) -> int:
        """The checksum of one frame's payload (the checksum byte itself is skipped).

        Raises:
            ValueError: the message carries no checksum.
        """
        if self.algorithm is None:
            raise ValueError(f"message {self.message} carries no checksum")
        register = self.start_register()
        register = self.algorithm.register_after(bytes(payload[i] for i in self.covered), register)
        return register ^ self.algorithm.xor_out

    def checksums(self, payload: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The checksums of many frames of this message at once: ``payload`` is ``(n, >= length)``
        bytes; one table lookup per covered byte column, vectorised over frames.

        Raises:
            ValueError: the message carries no checksum.
        """
        if self.algorithm is None:
            raise ValueError(f"message {self.message} carries no checksum")
        table = self.algorithm.table
        register = np.full(len(payload), self.start_register(), np.uint8)
        for byte in self.covered:
            register = table[register ^ payload[:, byte]]
        return register ^ np.uint8(self.algorithm.xor_out)

    def checksum_ok(self, payload: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        """Per frame, whether the checksum byte matches (as a receiving ECU checks it)."""
        ok: npt.NDArray[np.bool_] = self.checksums(payload) == payload[:, self.checksum_byte]
        return ok


def e2e_protection(message: Message) -> E2EProtection | None:
    """The end-to-end protection the DBC attributes declare for ``message`` (None if none).

    Raises:
        DbcFormatError: an attribute names a signal the message lacks, an unknown algorithm, a
            checksum signal that is not one whole unsigned byte, a counter that is signed or
            longer than 8 bits, a data id outside 0..65535, or a checksum without a counter.
    """
    attributes = message.dbc.attributes if message.dbc is not None else {}

    def text(name: str) -> str:
        attribute = attributes.get(name)
        return str(attribute.value).strip() if attribute is not None else ""

    counter, checksum, algorithm = (
        text(COUNTER_ATTRIBUTE),
        text(CHECKSUM_ATTRIBUTE),
        text(ALGORITHM_ATTRIBUTE),
    )
    if not counter and not checksum:
        return None
    where = f"message {message.name} (0x{message.frame_id:X})"
    names = {s.name: s for s in message.signals}
    if not counter:
        raise DbcFormatError(f"{where}: {CHECKSUM_ATTRIBUTE} without an {COUNTER_ATTRIBUTE}")
    signal = names.get(counter)
    if signal is None:
        raise DbcFormatError(f"{where}: {COUNTER_ATTRIBUTE} names {counter!r}, not a signal of it")
    if signal.is_signed or signal.length > 8 or signal.multiplexer_ids:
        raise DbcFormatError(
            f"{where}: counter {counter} must be an unsigned field of at most 8 bits outside "
            f"any multiplexer branch, got {signal.length} bits, signed={signal.is_signed}"
        )
    geometry = _counter_geometry(signal.start, signal.length, signal.byte_order == "big_endian")
    if geometry is None:
        raise DbcFormatError(f"{where}: counter {counter} must lie in the first 8 payload bytes")
    if not checksum:
        return E2EProtection(message.name, counter, length=message.length, **geometry)
    signal = names.get(checksum)
    if signal is None:
        raise DbcFormatError(
            f"{where}: {CHECKSUM_ATTRIBUTE} names {checksum!r}, not a signal of it"
        )
    crc = CHECKSUM_ALGORITHMS.get(algorithm)
    if crc is None:
        raise DbcFormatError(
            f"{where}: {ALGORITHM_ATTRIBUTE} {algorithm!r} is not one of {sorted(CHECKSUM_ALGORITHMS)}"
        )
    byte = _whole_byte(signal.start, signal.length, signal.byte_order == "big_endian")
    if byte is None or signal.is_signed or signal.multiplexer_ids or byte >= message.length:
        raise DbcFormatError(
            f"{where}: checksum {checksum} must be one whole unsigned byte of the payload outside "
            f"any multiplexer branch, got start {signal.start}, {signal.length} bits"
        )
    data_id_attribute = attributes.get(DATA_ID_ATTRIBUTE)
    data_id = int(data_id_attribute.value) if data_id_attribute is not None else message.frame_id
    if not 0 <= data_id <= 0xFFFF:
        raise DbcFormatError(f"{where}: {DATA_ID_ATTRIBUTE} {data_id} is outside 0..65535")
    covered = tuple(i for i in range(message.length) if i != byte)
    return E2EProtection(
        message.name, counter, checksum, crc, data_id, byte, message.length, covered, **geometry
    )


def _counter_geometry(start: int, length: int, big_endian: bool) -> dict[str, Any] | None:
    """Where a counter field sits in the 64-bit payload word (None past byte 7)."""
    if big_endian:
        # DBC Motorola start bit is the MSB in sawtooth numbering; count from the word's MSB.
        msb_from_top = (start // 8) * 8 + (7 - start % 8)
        lsb_from_top = msb_from_top + length - 1
        if lsb_from_top > 63:
            return None
        shift = 63 - lsb_from_top
    else:
        if start + length > 64:
            return None
        shift = start
    return {"counter_shift": shift, "counter_bits": length, "counter_big_endian": big_endian}


def _whole_byte(start: int, length: int, big_endian: bool) -> int | None:
    """The byte index of an 8-bit field that fills exactly one byte, else None."""
    if length != 8:
        return None
    if big_endian:
        return start // 8 if start % 8 == 7 else None
    return start // 8 if start % 8 == 0 else None


@dataclass(frozen=True)
class E2EVerdict:
    """Per frame of a batch: whether its checksum is wrong, and whether its counter is not
    the previous frame's of the same message plus one (modulo the counter's range)."""

    bad_checksum: npt.NDArray[np.bool_]
    bad_counter: npt.NDArray[np.bool_]


class E2EChecker:
    """The receiver's end-to-end check over a stream of frames, for every protected message
    of a DBC. Stateful: the last counter of each message carries over between batches, so
    checking a capture in chunks gives the same verdicts as checking it whole."""

    def __init__(self, protections: dict[tuple[int, bool], E2EProtection]) -> None:
        self.protections = dict(protections)
        self._last: dict[tuple[int, bool], int] = {}

    @classmethod
    def from_messages(cls, messages: list[Message]) -> E2EChecker:
        """The checker for every message of ``messages`` that declares a protection.

        Raises:
            DbcFormatError: a message's E2E attributes are invalid (see ``e2e_protection``).
        """
        found = {}
        for message in messages:
            protection = e2e_protection(message)
            if protection is not None:
                found[(int(message.frame_id), bool(message.is_extended_frame))] = protection
        return cls(found)

    def reset(self) -> None:
        """Forget the last counters (a new capture or a bus restart)."""
        self._last.clear()

    def check(
        self,
        frame_id: npt.NDArray[np.uint32],
        is_extended: npt.NDArray[np.bool_],
        length: npt.NDArray[np.uint8],
        data: npt.NDArray[np.uint8],
    ) -> E2EVerdict:
        """Check a batch of frames in time order. A frame too short for its message's
        protection fails both checks; frames of unprotected messages pass both."""
        bad_crc = np.zeros(len(frame_id), np.bool_)
        bad_counter = np.zeros(len(frame_id), np.bool_)
        for key, protection in self.protections.items():
            rows = np.flatnonzero((frame_id == key[0]) & (is_extended == key[1]))
            if not len(rows):
                continue
            short = length[rows] < protection.length
            bad_crc[rows[short]] = True
            bad_counter[rows[short]] = True
            full = rows[~short]
            if not len(full):
                continue
            payload = data[full]
            if protection.has_checksum:
                bad_crc[full] = ~protection.checksum_ok(payload)
            counters = protection.counters(payload)
            previous = np.empty_like(counters)
            previous[1:] = counters[:-1]
            last = self._last.get(key)
            previous[0] = counters[0] - 1 if last is None else last
            modulus = 1 << protection.counter_bits
            bad_counter[full] = (counters - previous - 1) % modulus != 0
            self._last[key] = int(counters[-1])
        return E2EVerdict(bad_crc, bad_counter)
