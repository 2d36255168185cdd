"""From CAN frames to VSS samples: the foundation codec's batch decoder plus a DBC→VSS map.

``CanDecoding.samples(frames)`` decodes a whole ``FrameBatch`` at once (NumPy, exact to
cantools) and maps it to VSS paths and units; frames whose id the DBC does not know are
counted, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cantools.database.can import Database

from drivetrain.core.can import BatchDecoder, FrameBatch, SignalMap, load_dbc, load_signal_map
from drivetrain.core.vss import Catalog
from drivetrain.core.vss.datatypes import is_integer
from drivetrain.edge.samples import Samples


@dataclass
class DecodeCounters:
    """Frames seen by the agent's decoder since it started."""

    frames: int = 0
    decoded_frames: int = 0
    unknown_frames: int = 0
    rejected_frames: int = 0
    values: int = 0
    unknown_ids: dict[str, int] = field(default_factory=dict)


class CanDecoding:
    """Decode frames with a DBC and map them to VSS.

    Args:
        database: the vehicle's DBC (loaded with ``load_dbc``).
        signal_map: a validated DBC→VSS map of that DBC.
    """

    def __init__(
        self, database: Database, signal_map: SignalMap, catalog: Catalog | None = None
    ) -> None:
        self.decoder = BatchDecoder(database)
        self.signal_map = signal_map
        self.counters = DecodeCounters()
        # A scaled CAN value mapped to an integer VSS type (e.g. a tyre pressure of 247.5 kPa
        # on a uint16 path) is rounded, as a vehicle's feeder would; the cloud refuses
        # fractional values of integer signals.
        self._integral_paths = frozenset(
            p for p in signal_map.paths
            if catalog is not None and p in catalog and is_integer(catalog.get(p).datatype)
        )

    @classmethod
    def load(cls, dbc: str | Path, signal_map: str | Path, catalog: Catalog) -> CanDecoding:
        """Load a DBC and a map file and check the map against both.

        Raises:
            DbcFormatError: the DBC cannot be loaded.
            SignalMapError: the map is malformed or names unknown signals.
        """
        loaded = load_dbc(dbc)
        mapping = load_signal_map(signal_map, loaded.database, catalog, dbc_name=Path(dbc).name)
        return cls(loaded.database, mapping, catalog)

    @property
    def paths(self) -> tuple[str, ...]:
        """The VSS paths this vehicle's CAN bus provides."""
        return self.signal_map.paths

    def samples(self, frames: FrameBatch, time_offset_ns: int = 0) -> Samples:
        """The VSS samples in ``frames`` (timestamps: frame seconds + ``time_offset_ns``)."""
        if not len(frames):
            return Samples.empty()
        decoded, report = self.decoder.decode_with_report(frames)
        c = self.counters
        c.frames += report.frames
        c.decoded_frames += report.decoded_frames
        c.unknown_frames += report.unknown_frame_count
        c.rejected_frames += report.rejected_frame_count
        for key, count in report.unknown_frames.items():
            c.unknown_ids[str(key)] = c.unknown_ids.get(str(key), 0) + count
        samples = Samples.from_vss(self.signal_map.apply(decoded), time_offset_ns)
        if self._integral_paths:
            integral = np.array([p in self._integral_paths for p in samples.paths], dtype=bool)
            whole = integral[samples.path_index]
            samples.value[whole] = np.rint(samples.value[whole])
        c.values += len(samples)
        return samples
