"""Virtual vehicles: the reference vehicle's CAN database and signal map (more to come)."""

from drivetrain.sim.reference_vehicle import (
    REFERENCE_DBC,
    REFERENCE_SIGNAL_MAP,
    ReferenceVehicle,
    frame_checksum,
    load_reference_vehicle,
)

__all__ = [
    "REFERENCE_DBC",
    "REFERENCE_SIGNAL_MAP",
    "ReferenceVehicle",
    "frame_checksum",
    "load_reference_vehicle",
]
