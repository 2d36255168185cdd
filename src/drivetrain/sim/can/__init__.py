"""CAN traffic of the simulated vehicles, and attacks on their buses.

- **Vehicle models** (:mod:`.vehicles`): two project-authored DBCs with DBC→VSS maps —
  ``compact_bev`` and ``suv_bev`` — ``load_vehicle_can(model)``; ``MAPPED_VSS_PATHS[model]``
  lists the VSS paths each model's bus carries.
- **Frame synthesis** (:mod:`.synthesizer`): ``FrameSynthesizer`` turns per-vehicle VSS values
  into every frame of every vehicle's bus in a time window, vectorised across the fleet, with
  seeded phases, clock drift, jitter, rolling counters and CRC-8 checksums
  (:mod:`drivetrain.core.can.e2e`, the same check the vehicle's receivers run).
- **Buses and logs** (:mod:`.bus`): send frames to a python-can virtual bus.
- **Attacks** (:mod:`.attacks`, :mod:`.forgery`): flooding, fuzzing, replay, suspension,
  targeted spoofing and masquerade, each recorded as ground truth (:mod:`.ground_truth`).
"""

from drivetrain.core.can import (
    CHECKSUM_ALGORITHMS,
    CRC8_AUTOSAR_H2F,
    CRC8_SAE_J1850,
    Crc8,
    E2EProtection,
)
from drivetrain.sim.can.attacks import FuzzIds, flood, fuzz, replay, suspend
from drivetrain.sim.can.bus import frame_messages, open_virtual_bus, send_frames
from drivetrain.sim.can.forgery import dbc_values, masquerade, spoof
from drivetrain.sim.can.ground_truth import (
    ATTACK_KINDS,
    BENIGN_LABEL,
    FRAME_LABELS,
    AttackKind,
    AttackRecord,
    LabelledFrames,
    read_records,
    write_records,
)
from drivetrain.sim.can.layout import BusLayout, MessageLayout
from drivetrain.sim.can.schedule import TimingModel
from drivetrain.sim.can.synthesizer import FleetFrames, FrameSynthesizer
from drivetrain.sim.can.throughput import SynthesisThroughput, measure_cantools, measure_synthesis
from drivetrain.sim.can.vehicles import (
    MAPPED_VSS_PATHS,
    VEHICLE_MODELS,
    VehicleCan,
    VehicleModelName,
    load_vehicle_can,
    mapped_vss_paths,
)

__all__ = [
    "ATTACK_KINDS",
    "BENIGN_LABEL",
    "CHECKSUM_ALGORITHMS",
    "CRC8_AUTOSAR_H2F",
    "CRC8_SAE_J1850",
    "FRAME_LABELS",
    "MAPPED_VSS_PATHS",
    "VEHICLE_MODELS",
    "AttackKind",
    "AttackRecord",
    "BusLayout",
    "Crc8",
    "E2EProtection",
    "FleetFrames",
    "FrameSynthesizer",
    "FuzzIds",
    "LabelledFrames",
    "MessageLayout",
    "SynthesisThroughput",
    "TimingModel",
    "VehicleCan",
    "VehicleModelName",
    "dbc_values",
    "flood",
    "frame_messages",
    "fuzz",
    "load_vehicle_can",
    "mapped_vss_paths",
    "masquerade",
    "measure_cantools",
    "measure_synthesis",
    "open_virtual_bus",
    "read_records",
    "replay",
    "send_frames",
    "spoof",
    "suspend",
    "write_records",
]
