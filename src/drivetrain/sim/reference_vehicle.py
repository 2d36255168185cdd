"""The Drivetrain reference battery-electric vehicle: its CAN database and DBC→VSS map.

A project-authored vehicle (rear motor, 400 V pack) that the demo, the simulator and the tests
drive. The files ship with the package (``drivetrain/sim/data``), so nothing outside it is
needed:

- ``drivetrain_bev.dbc`` — 11-bit ids, little- and big-endian signals, signed values, value
  tables (gear, charge state, GNSS fix), a multiplexed message (``BMS_CellStats``), rolling
  counters and checksum bytes, message cycle times (``GenMsgCycleTime``);
- ``drivetrain_bev_vss.toml`` — which CAN signal becomes which VSS signal, in which unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cantools.database.can import Database

from drivetrain.core.can import SignalMap, load_dbc, load_signal_map
from drivetrain.core.vss import Catalog, builtin_catalog

DATA_DIR = Path(__file__).resolve().parent / "data"
REFERENCE_DBC = DATA_DIR / "drivetrain_bev.dbc"
REFERENCE_SIGNAL_MAP = DATA_DIR / "drivetrain_bev_vss.toml"

#: Checksum bytes of the reference DBC sit in data byte 7 of the messages that carry one.
CHECKSUM_BYTE = 7


@dataclass(frozen=True)
class ReferenceVehicle:
    """The reference vehicle's CAN database and its signal map, validated against the catalog."""

    database: Database
    signal_map: SignalMap
    catalog: Catalog

    def checksummed_frame_ids(self) -> tuple[int, ...]:
        """Ids of the messages that end in a checksum byte (signal ``<message>_Checksum``)."""
        return tuple(
            m.frame_id
            for m in self.database.messages
            if any(s.name == f"{m.name}_Checksum" for s in m.signals)
        )


def load_reference_vehicle(catalog: Catalog | None = None) -> ReferenceVehicle:
    """Load the reference DBC and its signal map, checked against ``catalog`` (default: built-in).

    Raises:
        DbcFormatError: the packaged DBC cannot be read (a broken installation).
        SignalMapError: the packaged map names a signal or VSS path that does not exist.
    """
    catalog = catalog if catalog is not None else builtin_catalog()
    database = load_dbc(REFERENCE_DBC).database
    signal_map = load_signal_map(
        REFERENCE_SIGNAL_MAP, database, catalog, dbc_name=REFERENCE_DBC.name
    )
    return ReferenceVehicle(database=database, signal_map=signal_map, catalog=catalog)


def frame_checksum(data: bytes | bytearray, frame_id: int) -> int:
    """The reference vehicle's checksum of a frame (see the DBC comment on the checksum signals).

    ``(sum of data bytes 0-6 + (frame_id & 0xFF) + (frame_id >> 8)) mod 256, XOR 0xFF`` — the
    frame id is folded in so a frame replayed under another id fails the check.
    """
    total = sum(data[:CHECKSUM_BYTE]) + (frame_id & 0xFF) + (frame_id >> 8)
    return (total & 0xFF) ^ 0xFF
