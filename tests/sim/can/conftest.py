"""Fixtures for the CAN-traffic tests: each simulated model's DBC, map and synthesizer."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.sim.can import FrameSynthesizer, LabelledFrames, VehicleCan, load_vehicle_can
from drivetrain.sim.can.throughput import random_vss_values


@pytest.fixture(scope="session", params=["compact_bev", "suv_bev"])
def vehicle_can(request: pytest.FixtureRequest) -> VehicleCan:
    """Each simulated model's DBC and validated map."""
    return load_vehicle_can(request.param)


@pytest.fixture(scope="session")
def synthesizer(vehicle_can: VehicleCan) -> FrameSynthesizer:
    return FrameSynthesizer(vehicle_can.database, vehicle_can.signal_map, seed=11)


@pytest.fixture(scope="session")
def suv() -> VehicleCan:
    return load_vehicle_can("suv_bev")


@pytest.fixture(scope="session")
def suv_synthesizer(suv: VehicleCan) -> FrameSynthesizer:
    return FrameSynthesizer(suv.database, suv.signal_map, seed=5)


@pytest.fixture
def suv_traffic(suv_synthesizer: FrameSynthesizer) -> LabelledFrames:
    """Ten seconds of one SUV's genuine bus traffic, in-range random values."""
    values = random_vss_values(suv_synthesizer, 1, np.random.default_rng(3))
    frames = suv_synthesizer.synthesize(0.0, 10.0, values).for_vehicle(0)
    return LabelledFrames.benign(frames, vehicle="DTSUV000000000007")
