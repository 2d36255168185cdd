"""Per-message decode plans: everything about a message's layout, computed once.

A :class:`MessagePlan` holds, per signal ("column"), the numbers the vectorised kernels in
:mod:`drivetrain.core.can.bitfields` need: where the bits are, how to sign-extend them, how
to scale them exactly as cantools does, and which multiplexer branch the signal belongs to.

Bit numbering follows the DBC convention that cantools implements:

* little endian (Intel): ``start`` is the least significant bit, counted in the payload read
  as one little-endian integer (bit 0 = least significant bit of byte 0);
* big endian (Motorola): ``start`` is the most significant bit in "sawtooth" numbering
  (bit 7 of byte 0 is the first bit on the wire); we convert it to the network (MSB-first)
  position ``8 * (start // 8) + 7 - start % 8`` and read the payload as one big-endian
  integer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cantools.database.can import Message, Signal

from drivetrain.core.errors import DbcFormatError

#: Largest magnitude a float64 holds exactly as an integer.
_EXACT_FLOAT_INT = 2**53
_INT64_LIMIT = 2**63

FloatBits = int  # 0 for integer signals, else the IEEE width: 16, 32 or 64


@dataclass(frozen=True)
class ExactColumn:
    """A signal whose integer scaling could exceed float64's exact range: done in integers.

    cantools computes ``raw * scale + offset`` with Python integers when scale (and offset)
    are integers; for large raw values float64 arithmetic would round differently.
    """

    column: int
    scale: int
    offset: int | float
    fits_int64: bool


@dataclass(frozen=True)
class MuxBranch:
    """Children of one multiplexer signal: which columns appear for which multiplexer value."""

    mux_column: int
    #: every multiplexer value that has a branch; any other value makes cantools refuse the frame
    known_values: npt.NDArray[np.int64]
    children: tuple[tuple[int, npt.NDArray[np.int64]], ...]  # (column, values selecting it)


@dataclass(frozen=True)
class WordClass:
    """Signals of one message that share a byte order and signedness, for the 64-bit word path.

    Their fields are extracted together: one left shift of the word by ``left`` (one row per
    signal), then one right shift by ``right`` (arithmetic, so sign-extending, when ``signed``).
    """

    start: int  # first row of the class in the (signals, frames) scratch block
    stop: int
    big_endian: bool
    signed: bool
    left: npt.NDArray[np.uint64]  # shape (stop - start, 1)
    right: npt.NDArray[np.uint64] | npt.NDArray[np.int64]  # int64 when signed


@dataclass(frozen=True)
class MessagePlan:
    """How to decode every signal of one message from a batch of payloads."""

    message: Message
    message_index: int
    length: int  # bytes, as the DBC declares
    names: tuple[str, ...]
    signal_index: npt.NDArray[np.int32]  # global signal-name index per column
    big_endian: npt.NDArray[np.bool_]
    first_bit: npt.NDArray[np.int64]  # LE: start; BE: network position of the MSB
    bit_length: npt.NDArray[np.int64]
    end_bit: npt.NDArray[np.int64]  # one past the last bit, in the signal's own numbering
    signed: npt.NDArray[np.bool_]
    float_bits: tuple[FloatBits, ...]
    scale: npt.NDArray[np.float64]
    offset: npt.NDArray[np.float64]
    needs_scaling: bool
    exact_columns: tuple[ExactColumn, ...]
    unsigned64_columns: tuple[int, ...]
    root_columns: npt.NDArray[np.bool_]  # present unless truncated (not under a multiplexer)
    branches: tuple[MuxBranch, ...]  # in tree order: a branch's multiplexer is decided first
    #: all bits lie in the first 8 bytes: one 64-bit read per frame serves every signal
    within_first_8_bytes: bool
    #: with ``within_first_8_bytes``: right shift of each field in the 64-bit word of the first
    #: 8 bytes (read little endian for Intel signals, big endian for Motorola ones), and its mask
    word_shift: npt.NDArray[np.uint64]
    word_mask: npt.NDArray[np.uint64]
    #: the same field by two shifts: left until its MSB is bit 63, then right (arithmetic for
    #: signed signals, which sign-extends) until its LSB is bit 0
    word_left: tuple[int, ...]
    word_right: tuple[int, ...]
    identity: tuple[bool, ...]  # scale 1 and offset 0: the physical value is the raw value
    #: the 64-bit word path by classes: scratch rows hold the columns ``word_order`` (None: in
    #: column order) and ``word_special`` lists the (column, scratch row) pairs whose value is
    #: not the plain integer (scaled, IEEE float, or unsigned 64-bit)
    word_classes: tuple[WordClass, ...]
    word_order: npt.NDArray[np.intp] | None
    word_special: tuple[tuple[int, int], ...]
    #: some signal ends past the DBC length (never emitted; cantools refuses such messages)
    reaches_past_end: bool

    @property
    def width(self) -> int:
        return len(self.names)

    @property
    def is_multiplexed(self) -> bool:
        """Whether some signal depends on a multiplexer (and so is not in every frame)."""
        return not bool(self.root_columns.all())


def network_first_bit(signal: Signal) -> int:
    """The signal's first bit in MSB-first network order (big endian) or its LSB (little)."""
    if signal.byte_order == "big_endian":
        return 8 * (signal.start // 8) + 7 - signal.start % 8
    return int(signal.start)


def _float_bits(message: Message, signal: Signal) -> FloatBits:
    if not signal.is_float:
        return 0
    if signal.length not in (16, 32, 64):
        raise DbcFormatError(
            f"message {message.name!r} signal {signal.name!r}: float signal of {signal.length} bits; "
            "expected 16, 32 or 64"
        )
    return int(signal.length)


def _is_int(value: float) -> bool:
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _exact_column(column: int, signal: Signal) -> ExactColumn | None:
    """An :class:`ExactColumn` if float64 arithmetic might not reproduce cantools' result."""
    conversion = signal.conversion
    scale, offset = conversion.scale, conversion.offset
    if signal.is_float or not isinstance(scale, int):
        return None  # cantools multiplies in float too: float64 arithmetic is identical
    if scale == 1 and offset == 0:
        return None  # identity: int -> float64 is correctly rounded by NumPy as by Python
    largest_raw = 2 ** (signal.length - (1 if signal.is_signed else 0))
    bound = largest_raw * abs(scale) + abs(offset)
    if bound < _EXACT_FLOAT_INT:
        return None
    return ExactColumn(column, scale, offset, fits_int64=bound < _INT64_LIMIT)


def build_plan(message: Message, message_index: int, signal_ids: dict[str, int]) -> MessagePlan:
    """The decode plan of ``message``; ``signal_ids`` maps signal names to global indices.

    Raises:
        DbcFormatError: a float signal that is not 16, 32 or 64 bits long, or a signal longer
            than 64 bits.
    """
    signals = list(message.signals)
    for s in signals:
        if not 1 <= s.length <= 64:
            raise DbcFormatError(
                f"message {message.name!r} signal {s.name!r}: length {s.length} bits; expected 1..64"
            )
    column = {s.name: i for i, s in enumerate(signals)}
    first = np.array([network_first_bit(s) for s in signals], np.int64)
    length = np.array([s.length for s in signals], np.int64)
    scale = np.array([float(s.conversion.scale) for s in signals], np.float64)
    offset = np.array([float(s.conversion.offset) for s in signals], np.float64)
    exact = tuple(e for i, s in enumerate(signals) if (e := _exact_column(i, s)) is not None)
    unsigned64 = tuple(
        i for i, s in enumerate(signals) if s.length == 64 and not s.is_signed and not s.is_float
    )
    root, branches = _mux_tree(message, signals, column)
    end = first + length
    big_endian = np.array([s.byte_order == "big_endian" for s in signals], np.bool_)
    signed = np.array([s.is_signed and not s.is_float for s in signals], np.bool_)
    word_left = [
        int(f) if big else max(0, 64 - int(e))
        for f, e, big in zip(first.tolist(), end.tolist(), big_endian.tolist())
    ]
    word_right = [64 - int(n) for n in length.tolist()]
    identity = tuple(
        float(s.conversion.scale) == 1.0 and float(s.conversion.offset) == 0.0 for s in signals
    )
    classes, order = _word_classes(big_endian, signed, word_left, word_right)
    row_of = {column: row for row, column in enumerate(order)}
    special = tuple(
        (i, row_of[i])
        for i, s in enumerate(signals)
        if s.is_float or not identity[i] or i in unsigned64
    )
    return MessagePlan(
        message=message,
        message_index=message_index,
        length=int(message.length),
        names=tuple(s.name for s in signals),
        signal_index=np.array([signal_ids[s.name] for s in signals], np.int32),
        big_endian=big_endian,
        first_bit=first,
        bit_length=length,
        end_bit=end,
        signed=signed,
        float_bits=tuple(_float_bits(message, s) for s in signals),
        scale=scale,
        offset=offset,
        needs_scaling=bool(np.any(scale != 1.0) or np.any(offset != 0.0)),
        exact_columns=exact,
        unsigned64_columns=unsigned64,
        root_columns=root,
        branches=branches,
        within_first_8_bytes=bool(np.all(end <= 64)),
        reaches_past_end=bool(np.any(end > 8 * message.length)),
        word_shift=np.where(big_endian, 64 - end, first).clip(0, 63).astype(np.uint64),
        word_mask=np.array([(1 << n) - 1 for n in length.tolist()], np.uint64),
        word_left=tuple(word_left),
        word_right=tuple(word_right),
        identity=identity,
        word_classes=classes,
        word_order=None if order == list(range(len(signals))) else np.array(order, np.intp),
        word_special=special,
    )


def _word_classes(
    big_endian: npt.NDArray[np.bool_],
    signed: npt.NDArray[np.bool_],
    left: list[int],
    right: list[int],
) -> tuple[tuple[WordClass, ...], list[int]]:
    """The columns grouped by (byte order, signedness), and the column order of the groups."""
    classes: list[WordClass] = []
    order: list[int] = []
    for big in (False, True):
        for sign in (False, True):
            columns = np.flatnonzero((big_endian == big) & (signed == sign)).tolist()
            if not columns:
                continue
            shifts = [right[c] for c in columns]
            right_shift: npt.NDArray[np.uint64] | npt.NDArray[np.int64] = (
                np.array(shifts, np.int64)[:, None]
                if sign
                else np.array(shifts, np.uint64)[:, None]
            )
            classes.append(
                WordClass(
                    start=len(order),
                    stop=len(order) + len(columns),
                    big_endian=big,
                    signed=sign,
                    left=np.array([left[c] for c in columns], np.uint64)[:, None],
                    right=right_shift,
                )
            )
            order.extend(columns)
    return tuple(classes), order


def _mux_tree(
    message: Message, signals: list[Signal], column: dict[str, int]
) -> tuple[npt.NDArray[np.bool_], tuple[MuxBranch, ...]]:
    """Root columns and multiplexer branches, mirroring cantools' ``Message._create_codec``.

    A signal is decoded when its multiplexer signal is itself decoded and has one of the
    signal's multiplexer ids; a multiplexer whose value has no branch (among its children's ids
    and its own value table) makes cantools refuse the whole frame.
    """
    root = np.array([s.multiplexer_signal is None for s in signals], np.bool_)
    children: dict[str, list[Signal]] = {}
    for s in signals:
        if s.multiplexer_signal is not None and s.multiplexer_ids is not None:
            children.setdefault(s.multiplexer_signal, []).append(s)
    branches: list[MuxBranch] = []
    queue = [s for s in signals if s.multiplexer_signal is None and s.is_multiplexer]
    seen: set[str] = set()
    while queue:
        mux = queue.pop(0)
        if mux.name in seen:
            continue
        seen.add(mux.name)
        kids = children.get(mux.name, [])
        known = {i for k in kids for i in k.multiplexer_ids or ()}
        if mux.conversion.choices:
            known.update(int(v) for v in mux.conversion.choices)
        if not known:
            continue  # cantools builds no branch, so it neither decodes children nor refuses
        branches.append(
            MuxBranch(
                mux_column=column[mux.name],
                known_values=np.array(sorted(known), np.int64),
                children=tuple(
                    (column[k.name], np.array(sorted(set(k.multiplexer_ids or ())), np.int64))
                    for k in kids
                ),
            )
        )
        queue.extend(k for k in kids if k.is_multiplexer)
    return root, tuple(branches)


def cantools_layout_problem(message: Message) -> str | None:
    """Why cantools cannot decode ``message`` faithfully, or ``None`` if it can.

    cantools packs the signals of each multiplexer branch into one bit layout; signals that
    overlap within a branch, or reach past the message end, make that layout wrong (it then
    refuses to decode, or reads shifted bits). DBC files loaded with ``strict=False`` may
    contain such messages; the batch decoder reads every signal at its declared bits.
    """
    signals = list(message.signals)
    limit = 8 * message.length
    for s in signals:
        if network_first_bit(s) + s.length > limit:
            return f"signal {s.name} ends past the {message.length}-byte message"
    nodes: dict[tuple[str | None, int | None], list[Signal]] = {}
    for s in signals:
        if s.multiplexer_signal is None:
            nodes.setdefault((None, None), []).append(s)
        else:
            for mux_id in s.multiplexer_ids or ():
                nodes.setdefault((s.multiplexer_signal, mux_id), []).append(s)
    for node in nodes.values():
        for order in ("little_endian", "big_endian"):
            spans = sorted(
                (network_first_bit(s), s.length, s.name) for s in node if s.byte_order == order
            )
            for (a_first, a_len, a_name), (b_first, _, b_name) in itertools.pairwise(spans):
                if b_first < a_first + a_len:
                    return f"signals {a_name} and {b_name} overlap"
    return None
