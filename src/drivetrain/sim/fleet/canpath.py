"""The fleet's CAN path: VSS values → every vehicle's bus traffic → decoded VSS samples.

Per vehicle model, one ``FrameSynthesizer`` encodes the whole group's buses for a time window
(vectorised across vehicles), optional attack injectors alter the frames of the vehicles under
attack, and one ``BatchDecoder`` pass decodes every frame of the group — the signals the
DBC→VSS map reads, as a vehicle's feeder does (``mapped_signals_only``). The decoder has no
vehicle column, so each vehicle's frames carry the vehicle's position in its group as their
*bus number* (``FrameBatch.bus``, 16 bits): the decoded values keep it, and one counting sort
afterwards groups them by vehicle. The DBC→VSS map is compiled into dense lookup tables
(``CompiledSignalMap``), so mapping millions of decoded values is one gather and one
multiply-add — the same arithmetic as ``SignalMap.apply``, which the tests keep as reference.

What comes out (``FleetSamples``) is, per vehicle, its VSS samples in time order: what the
vehicle's edge agent would have decoded from its own bus.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database

from drivetrain.core.can import BatchDecoder, DecodedSignals, FrameBatch, SignalMap
from drivetrain.core.vss import Catalog
from drivetrain.core.vss.datatypes import is_integer
from drivetrain.sim.can.synthesizer import FleetFrames, FrameSynthesizer
from drivetrain.sim.can.vehicles import VehicleCan
from drivetrain.sim.fleet.feeder import CanFeeder

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: The most vehicles one model group may hold: their indices travel in the 16-bit bus column.
MAX_GROUP_VEHICLES = 1 << 16

#: Alters one vehicle's frames (attack injection): ``(group position, frames) -> frames``.
FrameHook = Callable[[int, FrameBatch], FrameBatch]


class CompiledSignalMap:
    """A DBC→VSS map compiled against one decoder's message and signal dictionaries.

    ``map(decoded)`` returns, for every decoded value an entry maps, its row, VSS path index
    (into ``paths``) and converted value — the rows and values ``SignalMap.apply`` gives, in
    layer order (a CAN signal feeding several VSS paths yields one row per path). With a
    ``catalog``, values of integer VSS datatypes are rounded to whole numbers, as a vehicle's
    feeder writes them (a tyre pressure of 2.5 kPa resolution is a ``uint16`` in VSS).
    """

    def __init__(
        self, signal_map: SignalMap, paths: Sequence[str], catalog: Catalog | None = None
    ) -> None:
        self.signal_map = signal_map
        self.paths = tuple(paths)
        self._path_of = {p: i for i, p in enumerate(self.paths)}
        missing = [p for p in signal_map.paths if p not in self._path_of]
        if missing:
            raise ValueError(f"paths must include every path of the map; missing {missing[:3]}")
        self._integral = np.array(
            [
                catalog is not None and p in catalog and is_integer(catalog.get(p).datatype)
                for p in self.paths
            ],
            np.bool_,
        )
        self._names: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._tables: list[tuple[npt.NDArray[np.int32], F64, F64]] = []
        self._width = 1

    def _compile(self, message_names: tuple[str, ...], signal_names: tuple[str, ...]) -> None:
        message_of = {name: i for i, name in enumerate(message_names)}
        signal_of = {name: i for i, name in enumerate(signal_names)}
        width = max(len(signal_names), 1)
        size = max(len(message_names), 1) * width
        depth: dict[int, int] = {}
        tables: list[tuple[npt.NDArray[np.int32], F64, F64]] = []
        for entry in self.signal_map.mappings:
            mi, si = message_of.get(entry.message), signal_of.get(entry.signal)
            if mi is None or si is None:
                continue
            key = mi * width + si
            layer = depth.get(key, 0)
            depth[key] = layer + 1
            if layer == len(tables):
                tables.append((np.full(size, -1, np.int32), np.ones(size), np.zeros(size)))
            conversion = entry.conversion()
            path, factor, offset = tables[layer]
            path[key] = self._path_of[entry.vss_path]
            factor[key] = conversion.factor
            offset[key] = conversion.offset
        self._names = (message_names, signal_names)
        self._tables = tables
        self._width = width

    def map(self, decoded: DecodedSignals) -> tuple[I64, npt.NDArray[np.int32], F64]:
        """``(rows, path_index, value)`` of every mapped decoded value."""
        names = (decoded.message_names, decoded.signal_names)
        if names != self._names:
            self._compile(*names)
        keys = decoded.message_index.astype(np.int64) * self._width + decoded.signal_index
        rows_parts, path_parts, value_parts = [], [], []
        for path_table, factor, offset in self._tables:
            path = path_table[keys]
            rows = np.flatnonzero(path >= 0)
            slot = keys[rows]
            rows_parts.append(rows)
            path_parts.append(path[rows])
            value_parts.append(decoded.value[rows] * factor[slot] + offset[slot])
        if not rows_parts:
            return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64)
        rows = np.concatenate(rows_parts).astype(np.int64)
        path = np.concatenate(path_parts)
        value = np.concatenate(value_parts)
        if self._integral.any():
            whole = self._integral[path]
            value[whole] = np.rint(value[whole])
        return rows, path, value


@dataclass(frozen=True)
class FleetSamples:
    """Decoded VSS samples of many vehicles, grouped by vehicle, in time order per vehicle.

    The samples of vehicle ``j`` (its index in the fleet) are rows ``offsets[j]:offsets[j+1]``;
    ``path_index`` points into ``paths``; ``ts_s`` is seconds since the simulation start.
    """

    paths: tuple[str, ...]
    path_index: npt.NDArray[np.int32]
    ts_s: F64
    value: F64
    offsets: I64

    def __len__(self) -> int:
        return len(self.value)

    def rows_of(self, vehicle: int) -> slice:
        """The rows of one vehicle."""
        return slice(int(self.offsets[vehicle]), int(self.offsets[vehicle + 1]))


@dataclass(frozen=True)
class CanStepReport:
    """Counts of one window of the fleet's CAN traffic."""

    frames: int
    decoded_frames: int
    unknown_frames: int
    signal_values: int
    vss_samples: int


class ModelBus:
    """One vehicle model's bus for a group of vehicles: synthesizer, decoder and map.

    Args:
        can: the model's DBC and DBC→VSS map.
        vehicle_ids: stable numbers of the group's vehicles (phases, drifts and counters of a
            vehicle's ECUs depend on its number, not its position).
        seed: seeds the synthesizer's timing.
        paths: the VSS path dictionary (must include every path of the map).
        catalog: rounds values of integer VSS datatypes (see ``CompiledSignalMap``).

    Raises:
        ValueError: more than ``MAX_GROUP_VEHICLES`` vehicles.
    """

    def __init__(
        self,
        can: VehicleCan,
        vehicle_ids: I64,
        seed: int,
        paths: Sequence[str],
        catalog: Catalog | None = None,
    ) -> None:
        if len(vehicle_ids) > MAX_GROUP_VEHICLES:
            raise ValueError(
                f"a model group holds at most {MAX_GROUP_VEHICLES} vehicles, got {len(vehicle_ids)}"
            )
        self.can = can
        self.vehicle_ids = np.asarray(vehicle_ids, np.int64)
        self.synthesizer = FrameSynthesizer(can.database, can.signal_map, seed=seed)
        self.decoder = BatchDecoder(mapped_signals_only(can.database, can.signal_map))
        self.compiled = CompiledSignalMap(can.signal_map, paths, catalog)

    @property
    def mapped_paths(self) -> tuple[str, ...]:
        """The VSS paths this model's bus carries."""
        return self.synthesizer.mapped_paths

    def frames(
        self,
        start_s: float,
        end_s: float,
        vss: Mapping[str, F64],
        can_signals: Mapping[str, F64] | None = None,
        hook: FrameHook | None = None,
        hooked: Sequence[int] = (),
    ) -> FrameBatch:
        """The group's frames in ``[start_s, end_s)``, the bus column holding each frame's
        vehicle position in the group; ``hook`` alters the frames of the positions ``hooked``."""
        fleet = self.synthesizer.synthesize(
            start_s, end_s, vss, can_signals=can_signals, vehicle_ids=self.vehicle_ids
        )
        batch = _with_vehicle_bus(fleet)
        if hook is None or not hooked:
            return batch
        parts: list[FrameBatch] = []
        cursor = 0
        for position in sorted(set(hooked)):
            lo, hi = int(fleet.offsets[position]), int(fleet.offsets[position + 1])
            if lo > cursor:
                parts.append(_rows(batch, cursor, lo))
            altered = hook(position, _rows(batch, lo, hi))
            # the decoder's output keeps capture order; the feeder needs it by time
            altered = altered.take(np.argsort(altered.timestamp_s, kind="stable"))
            parts.append(_set_bus(altered, position))
            cursor = hi
        if cursor < len(batch):
            parts.append(_rows(batch, cursor, len(batch)))
        return FrameBatch.concat(parts)

    def decode(
        self, batch: FrameBatch, feeder: CanFeeder, window: tuple[float, float] | None = None
    ) -> tuple[FleetSamples, CanStepReport]:
        """Decode ``batch`` (bus = group position), keep what ``feeder`` forwards, map it to
        VSS and group it by vehicle position (each vehicle's rows in decoder order: by signal,
        then time). ``window`` is the frames' nominal time window (see ``CanFeeder``)."""
        decoded, report = self.decoder.decode_with_report(batch)
        forwarded = feeder.forwarded(decoded, window)
        if len(forwarded) < len(decoded):
            decoded_kept = _take_decoded(decoded, forwarded)
        else:
            decoded_kept = decoded
        rows, path_index, value = self.compiled.map(decoded_kept)
        vehicle = decoded_kept.bus[rows]
        ts = decoded_kept.timestamp_s[rows]
        n = len(self.vehicle_ids)
        order = np.argsort(vehicle, kind="stable")  # 16-bit keys: a radix sort
        counts = np.bincount(vehicle, minlength=n)[:n]
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        samples = FleetSamples(
            self.compiled.paths, path_index[order], ts[order], value[order], offsets
        )
        return samples, CanStepReport(
            frames=report.frames,
            decoded_frames=report.decoded_frames,
            unknown_frames=report.unknown_frame_count,
            signal_values=len(decoded),
            vss_samples=len(samples),
        )


def mapped_signals_only(database: Database, signal_map: SignalMap) -> Database:
    """A copy of ``database`` whose messages keep only the signals ``signal_map`` reads (and
    multiplexer switches): what a vehicle's feeder decodes. Every message stays, so every frame
    is still recognised and decoded; the E2E counters and checksums, which the map does not
    carry to VSS, are left to the ECUs that check them."""
    needed = {(m.message, m.signal) for m in signal_map.mappings}
    reduced = copy.deepcopy(database)
    for message in reduced.messages:
        message.signals[:] = [
            s for s in message.signals if (message.name, s.name) in needed or s.is_multiplexer
        ]
        message.refresh()
    reduced.refresh()
    return reduced


def _take_decoded(decoded: DecodedSignals, rows: npt.NDArray[np.intp]) -> DecodedSignals:
    return DecodedSignals(
        timestamp_s=decoded.timestamp_s[rows],
        frame_id=decoded.frame_id[rows],
        bus=decoded.bus[rows],
        message_index=decoded.message_index[rows],
        signal_index=decoded.signal_index[rows],
        value=decoded.value[rows],
        message_names=decoded.message_names,
        signal_names=decoded.signal_names,
    )


def _with_vehicle_bus(fleet: FleetFrames) -> FrameBatch:
    f = fleet.frames
    return FrameBatch(
        f.timestamp_s, f.frame_id, f.is_extended, fleet.vehicle.astype(np.uint16), f.length, f.data
    )


def _rows(batch: FrameBatch, lo: int, hi: int) -> FrameBatch:
    return batch.take(np.arange(lo, hi))


def _set_bus(batch: FrameBatch, position: int) -> FrameBatch:
    return FrameBatch(
        batch.timestamp_s,
        batch.frame_id,
        batch.is_extended,
        np.full(len(batch), position, np.uint16),
        batch.length,
        batch.data,
    )
