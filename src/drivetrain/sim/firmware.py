"""Simulated ECU firmware: an image whose bytes say how the build behaves in the simulator.

A simulated image is a one-line JSON header followed by filler (so images have realistic
sizes and deltas between builds are meaningful). The header tells the simulator what the build
does once booted: whether its power-on self-test passes (a failing one triggers the ECU's
automatic rollback) and how it shifts the vehicle's behaviour (energy use, fault codes) — the
regressions a fleet health gate must catch even though the install itself succeeded.
:func:`apply_firmware` puts a build's extra electrical load into a simulated car's physics
(the world's ``aux_load_w``), so a car running it really uses more energy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final

from drivetrain.edge import HealthResult
from drivetrain.sim.world import VirtualFleet

MAX_HEADER_BYTES: Final = 4096
MAGIC: Final = "drivetrain-sim-firmware/1"


@dataclass(frozen=True, slots=True)
class FirmwareBehaviour:
    """What a simulated build does: self-test result, energy factor, DTCs per hour."""

    component: str
    version: str
    self_test_passes: bool = True
    energy_factor: float = 1.0
    dtc_per_hour: float = 0.0
    #: Electrical load the build adds while the car is on (e.g. a pack heater left on), W.
    extra_load_w: float = 0.0


def build_firmware(behaviour: FirmwareBehaviour, size_bytes: int = 64 * 1024) -> bytes:
    """The image bytes of a simulated build (deterministic for a behaviour and size)."""
    header = json.dumps({"magic": MAGIC, "component": behaviour.component,
                         "version": behaviour.version,
                         "self_test": "pass" if behaviour.self_test_passes else "fail",
                         "energy_factor": behaviour.energy_factor,
                         "dtc_per_hour": behaviour.dtc_per_hour,
                         "extra_load_w": behaviour.extra_load_w}, sort_keys=True).encode() + b"\n"
    seed = hashlib.sha256(f"{behaviour.component}".encode()).digest()
    # filler shared by every build of a component, with a version-specific tail: like real
    # firmware, most bytes survive a release
    body = (seed * (size_bytes // len(seed) + 1))[: max(0, size_bytes - len(header) - 64)]
    tail = hashlib.sha512(behaviour.version.encode()).digest()
    return header + body + tail


def read_firmware(image: bytes) -> FirmwareBehaviour:
    """The behaviour in a simulated image's header.

    Raises:
        ValueError: not a simulated image (no header, bad JSON, wrong magic or fields).
    """
    line, sep, _ = image[: MAX_HEADER_BYTES + 1].partition(b"\n")
    if not sep:
        raise ValueError(f"no firmware header in the first {MAX_HEADER_BYTES} bytes")
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"firmware header is not JSON: {e}") from e
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise ValueError("firmware header lacks the simulator's magic")
    try:
        return FirmwareBehaviour(
            str(header["component"]), str(header["version"]), header["self_test"] == "pass",
            float(header["energy_factor"]), float(header["dtc_per_hour"]),
            float(header.get("extra_load_w", 0.0)))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"firmware header field missing or bad: {e}") from e


def simulated_health_check(serial: str, image: bytes) -> HealthResult:
    """Boot ``image`` in the simulator: healthy when it parses and its self-test passes."""
    try:
        behaviour = read_firmware(image)
    except ValueError as e:
        return HealthResult(False, f"ECU {serial} does not boot the image: {e}")
    if not behaviour.self_test_passes:
        return HealthResult(False, f"ECU {serial}: {behaviour.component} {behaviour.version} "
                                   "failed its power-on self-test")
    return HealthResult(True, f"ECU {serial}: {behaviour.component} {behaviour.version} "
                              "booted, self-test passed")


def apply_firmware(world: VirtualFleet, index: int, image: bytes | None,
                   base_load_w: float) -> FirmwareBehaviour | None:
    """Vehicle ``index`` of ``world`` now runs ``image`` (None: its factory build): its
    electrical load while on becomes ``base_load_w`` plus the build's ``extra_load_w``.
    Returns the build's behaviour (None for the factory build or an image that is not a
    simulated build, which adds nothing)."""
    behaviour: FirmwareBehaviour | None = None
    if image is not None:
        try:
            behaviour = read_firmware(image)
        except ValueError:
            behaviour = None
    extra = behaviour.extra_load_w if behaviour is not None else 0.0
    world.physics.params.aux_load_w[index] = base_load_w + extra
    return behaviour
