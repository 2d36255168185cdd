"""The agent's CAN path hands the cloud whole numbers for integer VSS signals."""

from __future__ import annotations

import numpy as np

from drivetrain.core.vss import builtin_catalog
from drivetrain.core.vss.datatypes import is_integer
from drivetrain.edge import CanDecoding
from drivetrain.sim.can import FrameSynthesizer
from drivetrain.sim.can.vehicles import load_vehicle_can

PRESSURE = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"


def test_scaled_can_values_on_integer_vss_paths_are_rounded() -> None:
    catalog = builtin_catalog()
    vehicle = load_vehicle_can("suv_bev", catalog)  # tyre pressure in psi on the bus, kPa in VSS
    frames = FrameSynthesizer(vehicle.database, vehicle.signal_map, seed=1).synthesize(
        0.0, 2.0, {PRESSURE: np.array([247.0])}
    ).frames
    samples = CanDecoding(vehicle.database, vehicle.signal_map, catalog).samples(frames)
    integral = np.array([is_integer(catalog.get(p).datatype) for p in samples.paths])
    whole = integral[samples.path_index]
    assert whole.any()
    assert np.array_equal(samples.value[whole], np.rint(samples.value[whole]))
    pressure = samples.value[np.asarray(samples.paths)[samples.path_index] == PRESSURE]
    assert len(pressure) and np.all(np.abs(pressure - 247.0) <= 1.0)
