"""Vectorised CAN frame synthesis: VSS values of a whole fleet in, each vehicle's bus traffic out.

``FrameSynthesizer(database, signal_map)`` compiles a DBC once. ``synthesize(start_s, end_s,
vss)`` takes one value per vehicle for each VSS path (``dict[path, array]``, held over the
window, as a physics step produces them) and returns every frame the vehicles' buses carry in
``[start_s, end_s)``:

1. **Values.** Each DBC signal that the map feeds takes its VSS value through the map's inverse
   conversion (``dbc = (vss - offset) / factor``); a signal the map does not feed keeps its DBC
   start value (``GenSigStartValue``) unless given directly as ``can_signals["MSG.SIGNAL"]``.
   Values are clipped to the DBC range and quantised as cantools does.
2. **Static words.** Per message, multiplexer page and vehicle, the quantised fields are packed
   into one 64-bit payload word: ``(signals, vehicles)`` shifts and one OR-reduction — no Python
   loop per frame or per vehicle.
3. **Schedule.** Per message and vehicle, the frames whose nominal send time falls in the window
   (see :mod:`drivetrain.sim.can.schedule`: phase, ECU clock drift, jitter, all seeded).
4. **Per frame.** Gather the static word, add the rolling counter (``(k + first) mod 2**bits``
   for the frame's number ``k`` since time 0), compute the CRC byte column by column for every
   protected frame at once, and sort by (vehicle, time).

The frames are bit-identical to cantools' ``Message.encode`` of the same values (tested);
decoding them with the foundation's ``BatchDecoder`` and the map returns the VSS values within
the DBC resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database
from numpy.typing import ArrayLike

from drivetrain.core.can import CLASSIC_CAN_MAX_BYTES, FrameBatch, SignalMap
from drivetrain.core.errors import NotFoundError, SignalMapError
from drivetrain.sim.can import schedule
from drivetrain.sim.can.layout import BusLayout, FieldLayout, MessageLayout
from drivetrain.sim.can.schedule import TimingModel

_U64 = np.uint64


@dataclass(frozen=True)
class FleetFrames:
    """Frames of many vehicles' buses, sorted by vehicle, then by time.

    ``vehicle[i]`` is the index (into the synthesizer call's vehicles) of frame ``i``'s vehicle;
    the frames of vehicle ``j`` are rows ``offsets[j]:offsets[j + 1]``.
    """

    frames: FrameBatch
    vehicle: npt.NDArray[np.int32]
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def n_vehicles(self) -> int:
        return len(self.offsets) - 1

    def for_vehicle(self, index: int) -> FrameBatch:
        """The frames of one vehicle's bus, in time order (views, no copy).

        Raises:
            IndexError: ``index`` is not a vehicle of this batch.
        """
        if not 0 <= index < self.n_vehicles:
            raise IndexError(f"vehicle index {index} is outside 0..{self.n_vehicles - 1}")
        rows = slice(int(self.offsets[index]), int(self.offsets[index + 1]))
        f = self.frames
        return FrameBatch(
            f.timestamp_s[rows],
            f.frame_id[rows],
            f.is_extended[rows],
            f.bus[rows],
            f.length[rows],
            f.data[rows],
        )


@dataclass(frozen=True)
class _Source:
    """Where a data field's value comes from: a VSS path through the inverse map conversion."""

    vss_path: str
    factor: float
    offset: float


class FrameSynthesizer:
    """Encodes fleet-wide VSS values into each vehicle's CAN frames (see the module docstring).

    Args:
        database: the vehicle model's DBC (classic CAN messages, integer signals).
        signal_map: its DBC→VSS map (validated, so ``from_unit`` entries have a ``to_unit``).
        seed: seeds phases, clock drifts, counter starts and jitter.
        timing: the ECUs' timing imperfections.
        bus: the bus number written into the frames.

    Raises:
        DbcFormatError: a message the synthesizer cannot encode (see ``layout_message``).
        SignalMapError: a map entry whose conversion cannot be built, or with factor 0.
    """

    def __init__(
        self,
        database: Database,
        signal_map: SignalMap,
        *,
        seed: int = 0,
        timing: TimingModel | None = None,
        bus: int = 0,
    ) -> None:
        self.database = database
        self.signal_map = signal_map
        self.seed = int(seed)
        self.timing = timing if timing is not None else TimingModel()
        self.bus = int(bus)
        self.bus_layout = BusLayout(database)
        self.layouts: tuple[MessageLayout, ...] = self.bus_layout.messages
        self._compile_fields()
        self._compile_messages()

    # --- compilation --------------------------------------------------------------------------
    def _compile_fields(self) -> None:
        sources: dict[tuple[str, str], _Source] = {}
        for entry in self.signal_map.mappings:
            key = (entry.message, entry.signal)
            if key in sources:
                continue  # one CAN signal feeding several VSS paths: the first one sets it
            conversion = entry.conversion()
            if conversion.factor == 0.0:
                raise SignalMapError(f"entry {entry.source!r}: factor 0 cannot be inverted")
            sources[key] = _Source(entry.vss_path, conversion.factor, conversion.offset)
        fields: list[tuple[int, FieldLayout]] = []
        for mi, lay in enumerate(self.layouts):
            fields.extend((mi, f) for f in lay.data_fields)
        self._fields = fields
        self._field_index = {(self.layouts[mi].name, f.name): i for i, (mi, f) in enumerate(fields)}
        self._sources = [sources.get((self.layouts[mi].name, f.name)) for mi, f in fields]

        def column(values: list[float], dtype: type[np.generic] = np.float64) -> npt.NDArray[Any]:
            return np.array(values, dtype)[:, None] if values else np.empty((0, 1), dtype)

        self._minimum = column([f.minimum for _, f in fields])
        self._maximum = column([f.maximum for _, f in fields])
        self._offset = column([f.offset for _, f in fields])
        self._scale = column([f.scale for _, f in fields])
        self._raw_min = column([f.raw_min for _, f in fields])
        self._raw_max = column([f.raw_max for _, f in fields])
        self._mask = column([f.mask for _, f in fields], _U64)
        self._shift = column([f.shift for _, f in fields], _U64)
        self._big_rows = np.array([f.big_endian for _, f in fields], np.bool_)
        self._initial = np.array([f.initial for _, f in fields], np.float64)
        # slots: one per (message, page); the fields each slot's word holds
        slot_rows: list[int] = []
        slot_starts: list[int] = []
        slot_constant: list[int] = []
        slot_base: list[int] = []
        dummy = len(fields)  # an all-zero row, so no slot is empty for the OR-reduction
        for mi, lay in enumerate(self.layouts):
            slot_base.append(len(slot_starts))
            for page in lay.pages or (None,):
                slot_starts.append(len(slot_rows))
                slot_rows.extend(
                    i
                    for i, (fm, f) in enumerate(fields)
                    if fm == mi and (f.pages is None or (page is not None and page in f.pages))
                )
                slot_rows.append(dummy)
                constant = 0
                if page is not None and lay.mux is not None:
                    constant = int(lay.mux.pack(np.array([page], np.int64))[0])
                slot_constant.append(constant)
        self._slot_rows = np.array(slot_rows, np.intp)
        self._slot_starts = np.array(slot_starts, np.intp)
        self._slot_constant = np.array(slot_constant, _U64)
        self._slot_base = np.array(slot_base, np.int64)

    def _compile_messages(self) -> None:
        lays = self.layouts
        self._frame_id = np.array([lay.frame_id for lay in lays], np.uint32)
        self._extended = np.array([lay.is_extended for lay in lays], np.bool_)
        self._length = np.array([lay.length for lay in lays], np.uint8)
        self._period = np.array([lay.period_s for lay in lays], np.float64)
        self._n_pages = np.array([max(len(lay.pages), 1) for lay in lays], np.int64)
        senders = sorted({lay.sender for lay in lays})
        self._sender = np.array([senders.index(lay.sender) for lay in lays], np.int64)
        self._n_senders = len(senders)

    # --- public surface -----------------------------------------------------------------------
    @property
    def mapped_paths(self) -> tuple[str, ...]:
        """The VSS paths the bus carries (the map's paths). Where one CAN signal feeds several
        paths (one brake-fluid reservoir for four wheels), the value of its first map entry's
        path is the one encoded."""
        return self.signal_map.paths

    def field_sources(self) -> dict[tuple[str, str], tuple[str, float, float]]:
        """``(message, signal) → (vss_path, factor, offset)`` for every DBC signal a VSS value
        feeds, where ``vss = dbc * factor + offset``."""
        return {
            (self.layouts[mi].name, f.name): (s.vss_path, s.factor, s.offset)
            for (mi, f), s in zip(self._fields, self._sources)
            if s is not None
        }

    def layout(self, message: str) -> MessageLayout:
        """The layout of the message named ``message``.

        Raises:
            NotFoundError: no such message (close matches are named).
        """
        return self.bus_layout.message(message)

    def signal_values(
        self,
        vss: Mapping[str, ArrayLike],
        *,
        can_signals: Mapping[str, ArrayLike] | None = None,
        n_vehicles: int | None = None,
    ) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
        """The physical DBC value of every data signal per vehicle, as it will be encoded:
        ``{message: {signal: array}}`` after the inverse map and clipping to the DBC range
        (before quantisation — what cantools' ``encode`` would be given).

        Raises:
            ValueError: see :meth:`synthesize`.
            NotFoundError: a ``can_signals`` key names no signal of the DBC.
        """
        n = self._vehicle_count(
            vss, can_signals, None if n_vehicles is None else np.arange(n_vehicles)
        )
        matrix = self._physical(vss, can_signals, n)
        out: dict[str, dict[str, npt.NDArray[np.float64]]] = {}
        for i, (mi, f) in enumerate(self._fields):
            out.setdefault(self.layouts[mi].name, {})[f.name] = matrix[i]
        return out

    def synthesize(
        self,
        start_s: float,
        end_s: float,
        vss: Mapping[str, ArrayLike],
        *,
        can_signals: Mapping[str, ArrayLike] | None = None,
        vehicle_ids: ArrayLike | None = None,
    ) -> FleetFrames:
        """Every frame the vehicles' buses carry with nominal send time in ``[start_s, end_s)``.

        Args:
            start_s, end_s: the window, in seconds since the simulation start (time 0, when
                every ECU starts sending).
            vss: per VSS path, one value per vehicle (or one scalar for all), in the VSS unit;
                booleans as 0/1. Paths the map does not carry are ignored. In a NumPy masked
                array, masked vehicles (and every vehicle, for an absent path) send the DBC
                signal's start value.
            can_signals: per ``"MESSAGE.SIGNAL"``, DBC physical values for signals the map does
                not feed (for example a charge-state code); they override the map.
            vehicle_ids: stable numbers of the vehicles (default ``0..n-1``): a vehicle's phases,
                drifts and counters depend on its number, not its position in the arrays.

        Raises:
            ValueError: ``end_s < start_s``, negative ``start_s``, arrays of different lengths,
                non-numeric or non-finite values (the message names the path and vehicle).
            NotFoundError: a ``can_signals`` key names no signal of the DBC.
        """
        if not (np.isfinite(start_s) and np.isfinite(end_s)) or start_s < 0 or end_s < start_s:
            raise ValueError(f"window [{start_s}, {end_s}) must satisfy 0 <= start_s <= end_s")
        ids = None if vehicle_ids is None else np.asarray(vehicle_ids, np.int64).reshape(-1)
        n = self._vehicle_count(vss, can_signals, ids)
        ids = np.arange(n, dtype=np.int64) if ids is None else ids
        words = self._static_words(self._physical(vss, can_signals, n))
        m_count = len(self.layouts)
        messages = np.arange(m_count, dtype=np.int64)
        seed, timing = self.seed, self.timing
        phase = schedule.uniform(schedule.stream_keys(seed, ids, messages, schedule.PHASE))
        drift_draw = schedule.uniform(
            schedule.stream_keys(
                seed, ids, np.arange(self._n_senders, dtype=np.int64), schedule.DRIFT
            )
        )
        drift = (2.0 * drift_draw - 1.0) * (timing.clock_drift_ppm * 1e-6)
        period = self._period[:, None] * (1.0 + drift[self._sender])
        phase_s = phase * self._period[:, None]
        index = schedule.frames_in_window(phase_s.reshape(-1), period.reshape(-1), start_s, end_s)
        total = len(index.k)
        # pairs are message-major, so each message's frames are one contiguous run of rows
        bounds = np.searchsorted(index.pair, np.arange(m_count + 1, dtype=np.intp) * n)
        jitter_keys = schedule.stream_keys(seed, ids, messages, schedule.JITTER)
        counter_keys = schedule.stream_keys(seed, ids, messages, schedule.COUNTER)
        max_delay = timing.max_delay_s(self._period)
        word = np.empty(total, _U64)
        timestamp = np.empty(total, np.float64)
        vehicle = np.empty(total, np.int64)
        message = np.empty(total, np.intp)
        for mi in range(m_count):
            rows = slice(int(bounds[mi]), int(bounds[mi + 1]))
            if rows.start == rows.stop:
                continue
            k = index.k[rows]
            v = index.pair[rows] - mi * n
            vehicle[rows] = v
            message[rows] = mi
            delay = schedule.frame_uniform(jitter_keys[mi, v], k) * max_delay[mi]
            timestamp[rows] = index.nominal_s[rows] + delay
            word[rows] = self._message_words(mi, words, k, v, counter_keys)
        order = _vehicle_time_order(vehicle, timestamp, start_s)
        v_sorted = vehicle[order].astype(np.int32)
        m_sorted = message[order]
        payload = (
            word[order].astype("<u8", copy=False).view(np.uint8).reshape(-1, CLASSIC_CAN_MAX_BYTES)
        )
        frames = FrameBatch(
            timestamp_s=timestamp[order],
            frame_id=self._frame_id[m_sorted],
            is_extended=self._extended[m_sorted],
            bus=np.full(total, self.bus, np.uint16),
            length=self._length[m_sorted],
            data=payload,
        )
        offsets = np.searchsorted(v_sorted, np.arange(n + 1, dtype=np.int32)).astype(np.int64)
        return FleetFrames(frames, v_sorted, offsets)

    def _message_words(
        self,
        mi: int,
        words: npt.NDArray[np.uint64],
        k: npt.NDArray[np.int64],
        v: npt.NDArray[np.int64],
        counter_keys: npt.NDArray[np.uint64],
    ) -> npt.NDArray[np.uint64]:
        """Payload words of message ``mi``'s frames ``k`` of vehicles ``v``: the static word of
        the frame's multiplexer page, its rolling counter, then its checksum."""
        base = int(self._slot_base[mi])
        pages = int(self._n_pages[mi])
        if pages > 1:
            out = words[base + k % pages, v]
        else:
            out = words[base][v]
        counter = self.layouts[mi].counter
        if counter is not None:
            first = (counter_keys[mi, v] >> _U64(40)).astype(np.int64)
            out |= counter.pack(k + first)
        protection = self.layouts[mi].protection
        if protection is not None and protection.has_checksum:
            payload = (
                out.astype("<u8", copy=False).view(np.uint8).reshape(-1, CLASSIC_CAN_MAX_BYTES)
            )
            payload[:, protection.checksum_byte] = protection.checksums(payload)
        return out

    # --- steps --------------------------------------------------------------------------------
    def _vehicle_count(
        self,
        vss: Mapping[str, ArrayLike],
        can_signals: Mapping[str, ArrayLike] | None,
        ids: npt.NDArray[np.int64] | None,
    ) -> int:
        sizes: dict[int, str] = {}
        for name, value in [*vss.items(), *(can_signals or {}).items()]:
            shape = np.shape(value)
            if len(shape) > 1:
                raise ValueError(
                    f"values of {name!r} must be one per vehicle (1-D), got shape {shape}"
                )
            if shape:
                sizes.setdefault(shape[0], name)
        if ids is not None:
            sizes.setdefault(len(ids), "vehicle_ids")
        if len(sizes) > 1:
            detail = ", ".join(f"{name!r} has {size}" for size, name in sizes.items())
            raise ValueError(f"every array must hold one value per vehicle; {detail}")
        if not sizes:
            raise ValueError(
                "give vehicle_ids (or at least one array of values) to set the number of vehicles"
            )
        return next(iter(sizes))

    def _physical(
        self,
        vss: Mapping[str, ArrayLike],
        can_signals: Mapping[str, ArrayLike] | None,
        n: int,
    ) -> npt.NDArray[np.float64]:
        """``(fields, vehicles)`` physical DBC values, clipped to each field's range."""
        matrix = np.repeat(self._initial[:, None], n, axis=1)
        for i, source in enumerate(self._sources):
            if source is not None and source.vss_path in vss:
                values, given = _as_values(vss[source.vss_path], source.vss_path, n)
                converted = (values - source.offset) / source.factor
                matrix[i] = converted if given is None else np.where(given, converted, matrix[i])
        for name, value in (can_signals or {}).items():
            message, _, signal = name.partition(".")
            index = self._field_index.get((message, signal))
            if index is None:
                self.layout(message).field(signal)  # raises NotFoundError naming the problem
                raise NotFoundError(
                    f"{name!r} is an E2E counter/checksum or multiplexer switch; "
                    "the synthesizer sets those itself"
                )
            values, given = _as_values(value, name, n)
            matrix[index] = values if given is None else np.where(given, values, matrix[index])
        return np.clip(matrix, self._minimum, self._maximum, out=matrix)

    def _static_words(self, physical: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
        """``(slots, vehicles)`` payload words of every data field and multiplexer value."""
        raw = np.rint((physical - self._offset) / self._scale)
        np.clip(raw, self._raw_min, self._raw_max, out=raw)
        bits = (raw.astype(np.int64).astype(_U64) & self._mask) << self._shift
        if self._big_rows.any():
            bits[self._big_rows] = bits[self._big_rows].byteswap()
        stacked = np.vstack([bits, np.zeros((1, bits.shape[1]), _U64)])
        words = np.bitwise_or.reduceat(stacked[self._slot_rows], self._slot_starts, axis=0)
        words |= self._slot_constant[:, None]
        return words


def _as_values(
    value: ArrayLike, name: str, n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_] | None]:
    """The values as float64, one per vehicle, and which are given (None: all); a masked
    array's masked entries are not given (the vehicle lacks that part)."""
    given: npt.NDArray[np.bool_] | None = None
    if isinstance(value, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(value)
        if mask.any():
            given = ~mask.reshape(-1) if mask.ndim else np.full(n, not bool(mask))
        value = np.ma.getdata(value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"values of {name!r} must be numbers (booleans as 0/1): {e}") from e
    if array.ndim == 0:
        array = np.full(n, float(array))
    bad = ~np.isfinite(array) if given is None else ~np.isfinite(array) & given
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"values of {name!r} must be finite; vehicle {i} has {float(array[i])!r}")
    return array, given


def _vehicle_time_order(
    vehicle: npt.NDArray[np.int64], timestamp: npt.NDArray[np.float64], start_s: float
) -> npt.NDArray[np.intp]:
    """Row order by vehicle, then time (ties by generation order)."""
    if not len(vehicle):
        return np.empty(0, np.intp)
    span = float(timestamp.max() - start_s)
    if span < 1000.0:  # nanoseconds since start_s fit 40 bits: one integer sort key
        ns = np.rint((timestamp - start_s) * 1e9).astype(np.int64)
        key = (vehicle.astype(np.int64) << 40) | np.maximum(ns, 0)
        return np.argsort(key, kind="stable")
    return np.lexsort((timestamp, vehicle))
