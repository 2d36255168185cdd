"""Bus attacks during a fleet run: a scenario of planned attacks, injected window by window.

An ``AttackScenario`` lists ``PlannedAttack`` entries — kind, vehicle, start and duration in
simulated seconds since the run's start, and for the DBC-aware kinds the message and the
forged values. ``AttackInjector`` (the runner's ``FrameTamper``) applies each attack to the
frames of its vehicle in every step window it overlaps, with the injectors of
``drivetrain.sim.can`` (flooding, fuzzing, replay, suspension, spoofing, masquerade), and
merges what each window did into one ``AttackRecord`` per planned attack — the ground truth.

Scenario files are JSON: ``{"attacks": [{"kind": "spoofing", "vehicle": 3, "start_s": 20,
"duration_s": 10, "message": "ESP_Speed", "values": {"VehicleSpeed": 250}}]}`` (``vehicle`` is
a fleet index or a VIN; ``message``/``values`` default to forging the vehicle speed). The
preset ``mixed`` puts one attack of each kind on six different vehicles (fewer in a smaller
fleet), spread over the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from drivetrain.core.can import FrameBatch
from drivetrain.core.errors import BadInputError
from drivetrain.sim.can import (
    ATTACK_KINDS,
    AttackKind,
    AttackRecord,
    LabelledFrames,
    dbc_values,
    flood,
    fuzz,
    masquerade,
    replay,
    spoof,
    suspend,
)
from drivetrain.sim.can.layout import BusLayout
from drivetrain.sim.can.vehicles import VehicleCan, load_vehicle_can
from drivetrain.sim.fleet.plan import SimVehicle

PRESETS: Final = ("mixed",)
#: The VSS signal spoofing and masquerade forge when the scenario names none, and its value.
DEFAULT_FORGED: Final = {"Vehicle.Speed": 250.0}


@dataclass(frozen=True)
class PlannedAttack:
    """One attack of a scenario (times in simulated seconds since the run's start)."""

    kind: AttackKind
    vehicle: int
    start_s: float
    duration_s: float
    message: str | None = None
    values: Mapping[str, float] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class AttackScenario:
    """The planned attacks of a run."""

    attacks: tuple[PlannedAttack, ...]

    @classmethod
    def preset(
        cls, name: str, vehicles: Sequence[SimVehicle], duration_s: float, seed: int
    ) -> AttackScenario:
        """A built-in scenario (``mixed``) for a run of ``duration_s`` simulated seconds.

        Raises:
            BadInputError: an unknown preset name.
        """
        if name not in PRESETS:
            raise BadInputError(
                f"attack scenario {name!r} is not a preset ({', '.join(PRESETS)}) or a .json file"
            )
        rng = np.random.default_rng([seed, 0xA77AC])
        count = min(len(ATTACK_KINDS), len(vehicles))
        victims = rng.choice(len(vehicles), size=count, replace=False)
        span = max(duration_s, 4.0)
        attacks = []
        for kind, vehicle in zip(ATTACK_KINDS, victims.tolist(), strict=False):
            start = float(np.floor(rng.uniform(0.2, 0.6) * span))
            length = float(max(2.0, np.floor(rng.uniform(0.1, 0.3) * span)))
            attacks.append(PlannedAttack(kind, int(vehicle), max(start, 2.0), length))
        return cls(tuple(attacks))

    @classmethod
    def from_file(cls, path: Path, vehicles: Sequence[SimVehicle]) -> AttackScenario:
        """Read a JSON scenario (see the module docstring).

        Raises:
            BadInputError: unreadable JSON, or an entry with a bad field (named, with its
                position).
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise BadInputError(f"cannot read the attack scenario {path}: {e}") from e
        entries = data.get("attacks") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise BadInputError(
                f"attack scenario {path}: expected an object with an 'attacks' list"
            )
        by_vin = {v.vin: v.index for v in vehicles}
        return cls(
            tuple(
                _parse_entry(e, i + 1, path, by_vin, len(vehicles)) for i, e in enumerate(entries)
            )
        )


def _parse_entry(
    entry: Any, number: int, path: Path, by_vin: Mapping[str, int], n: int
) -> PlannedAttack:
    where = f"attack scenario {path}: attack {number}"
    if not isinstance(entry, dict):
        raise BadInputError(f"{where}: expected an object")
    kind = entry.get("kind")
    if kind not in ATTACK_KINDS:
        raise BadInputError(f"{where}: kind {kind!r}; expected one of {', '.join(ATTACK_KINDS)}")
    vehicle = entry.get("vehicle")
    if isinstance(vehicle, str):
        if vehicle not in by_vin:
            raise BadInputError(f"{where}: vehicle {vehicle!r} is not in the fleet")
        index = by_vin[vehicle]
    elif isinstance(vehicle, int) and not isinstance(vehicle, bool) and 0 <= vehicle < n:
        index = vehicle
    else:
        raise BadInputError(f"{where}: vehicle {vehicle!r}; expected a VIN or an index 0..{n - 1}")
    numbers = {}
    for name in ("start_s", "duration_s"):
        value = entry.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise BadInputError(f"{where}: {name} {value!r}; expected a number of seconds")
        numbers[name] = float(value)
    if numbers["start_s"] < 0 or numbers["duration_s"] <= 0:
        raise BadInputError(f"{where}: expected start_s >= 0 and duration_s > 0")
    message = entry.get("message")
    values = entry.get("values", {})
    if message is not None and not isinstance(message, str):
        raise BadInputError(f"{where}: message {message!r}; expected a DBC message name")
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in values.items()
    ):
        raise BadInputError(f"{where}: values must map signal names to numbers")
    if (message is None) != (not values):
        raise BadInputError(f"{where}: give both message and values, or neither")
    return PlannedAttack(
        kind,
        index,
        numbers["start_s"],
        numbers["duration_s"],
        message,
        {k: float(v) for k, v in values.items()},
    )


class AttackInjector:
    """Applies a scenario to the fleet's buses (the runner's ``FrameTamper``).

    Raises:
        NotFoundError: an attack names a message or signal its vehicle's DBC lacks.
    """

    def __init__(self, scenario: AttackScenario, vehicles: Sequence[SimVehicle], seed: int) -> None:
        self.scenario = scenario
        self._vehicles = vehicles
        self._seed = seed
        self._can: dict[str, VehicleCan] = {}
        self._layouts: dict[str, BusLayout] = {}
        self._records: dict[int, AttackRecord] = {}
        self._captures: dict[int, list[FrameBatch]] = {}
        self._targets: dict[int, tuple[str, dict[str, float]]] = {}
        for number, attack in enumerate(scenario.attacks):
            if attack.kind in ("spoofing", "masquerade", "suspension"):
                self._targets[number] = self._target(attack)

    def _bus(self, vehicle: int) -> tuple[VehicleCan, BusLayout]:
        model = self._vehicles[vehicle].can_model
        if model not in self._can:
            self._can[model] = load_vehicle_can(model)
            self._layouts[model] = BusLayout(self._can[model].database)
        return self._can[model], self._layouts[model]

    def _target(self, attack: PlannedAttack) -> tuple[str, dict[str, float]]:
        can, layouts = self._bus(attack.vehicle)
        if attack.message is not None:
            message, values = attack.message, dict(attack.values)
        else:
            message, values = dbc_values(can.signal_map, DEFAULT_FORGED)
        layout = layouts.message(message)  # NotFoundError names a message the DBC lacks
        for signal in values:
            layout.field(signal)
        return message, values

    # --- FrameTamper ------------------------------------------------------------------------------

    def vehicles_in(self, start_s: float, end_s: float) -> frozenset[int]:
        """Vehicles with an attack (or a replay's capture window) overlapping the window."""
        out = set()
        for attack in self.scenario.attacks:
            begin = attack.start_s - (attack.duration_s if attack.kind == "replay" else 0.0)
            if begin < end_s and attack.end_s > start_s:
                out.add(attack.vehicle)
        return frozenset(out)

    def active(self, start_s: float, end_s: float) -> int:
        """How many attacks overlap ``[start_s, end_s)``."""
        return sum(1 for a in self.scenario.attacks if a.start_s < end_s and a.end_s > start_s)

    def apply(self, vehicle: int, frames: FrameBatch, start_s: float, end_s: float) -> FrameBatch:
        """The vehicle's frames of the window with every overlapping attack applied."""
        vin = self._vehicles[vehicle].vin
        traffic = LabelledFrames.benign(frames, vin)
        for number, attack in enumerate(self.scenario.attacks):
            if attack.vehicle != vehicle:
                continue
            if (
                attack.kind == "replay"
                and attack.start_s - attack.duration_s < end_s
                and start_s < attack.start_s
            ):
                self._captures.setdefault(number, []).append(frames)  # the attacker records
            lo, hi = max(attack.start_s, start_s), min(attack.end_s, end_s)
            if hi <= lo:
                continue
            rng = np.random.default_rng([self._seed, number, round(start_s * 1000)])
            before = len(traffic.records)
            try:
                traffic = self._inject(number, attack, traffic, rng, lo, hi)
            except ValueError:
                continue  # nothing of the attacked message in this window (a slow message)
            if len(traffic.records) > before:
                self._merge(number, traffic.records[-1])
        return traffic.frames

    def _inject(
        self,
        number: int,
        attack: PlannedAttack,
        traffic: LabelledFrames,
        rng: np.random.Generator,
        lo: float,
        hi: float,
    ) -> LabelledFrames:
        kind, duration = attack.kind, hi - lo
        if kind == "flooding":
            return flood(traffic, rng, start_s=lo, duration_s=duration)
        if kind == "fuzzing":
            return fuzz(traffic, rng, start_s=lo, duration_s=duration)
        _, layouts = self._bus(attack.vehicle)
        if kind == "replay":
            captured = self._captures.get(number)
            if not captured:
                raise ValueError("nothing recorded to replay")
            offset = attack.start_s - attack.duration_s
            history = LabelledFrames.benign(
                FrameBatch.concat([*captured, traffic.frames]), traffic.vehicle
            )
            replayed = replay(
                history,
                rng,
                capture_start_s=offset + (lo - attack.start_s),
                capture_end_s=offset + (hi - attack.start_s),
                start_s=lo,
            )
            keep = replayed.frames.timestamp_s >= lo - 1e-9
            return LabelledFrames(
                replayed.frames.take(keep), replayed.attack[keep], replayed.records, traffic.vehicle
            )
        message, values = self._targets[number]
        layout = layouts.message(message)
        if kind == "suspension":
            return suspend(
                traffic,
                can_id=layout.frame_id,
                is_extended=layout.is_extended,
                start_s=lo,
                duration_s=duration,
            )
        if kind == "spoofing":
            return spoof(
                traffic,
                rng,
                layouts,
                message=message,
                values=values,
                start_s=lo,
                duration_s=duration,
            )
        return masquerade(
            traffic, rng, layouts, message=message, values=values, start_s=lo, duration_s=duration
        )

    def _merge(self, number: int, record: AttackRecord) -> None:
        seen = self._records.get(number)
        if seen is None:
            self._records[number] = record
            return
        self._records[number] = replace(
            seen,
            start_s=min(seen.start_s, record.start_s),
            end_s=max(seen.end_s, record.end_s),
            can_ids=tuple(sorted(set(seen.can_ids) | set(record.can_ids))),
            injected=seen.injected + record.injected,
            removed=seen.removed + record.removed,
            detail=seen.detail,
        )

    @property
    def records(self) -> tuple[AttackRecord, ...]:
        """One record per planned attack that touched the bus, in scenario order (``detail``:
        the planned window and the parameters of its first step window)."""
        out = []
        for number in sorted(self._records):
            attack, record = self.scenario.attacks[number], self._records[number]
            detail = (
                f"planned [{attack.start_s:g}, {attack.end_s:g}) s; first step: {record.detail}"
            )
            out.append(replace(record, detail=detail))
        return tuple(out)
