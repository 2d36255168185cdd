"""Health-gated rollouts: waves, per-vehicle states, success and error thresholds, and a
fleet health gate against a control group. Pure: values in, decisions out.

A rollout is a **draft** until someone other than its creator approves it; it sends one
build to a target set in **waves** (cumulative fractions of the set, e.g.
5 %, 25 %, 100 %). Each vehicle moves ``pending → downloading → installing → installed``, or
ends ``failed`` (refused by verification, download error) or ``rolled_back`` (the ECU's health
check failed and it went back to its other slot). A wave is judged once all its vehicles have
an outcome:

- **error threshold**: (failed + rolled back) / wave ≥ ``error_threshold`` → the rollout
  **stops**;
- **success threshold**: installed / wave < ``success_threshold`` → it **pauses**;
- **health gate**: the updated vehicles' KPIs, measured by the platform (energy per 100 km,
  error DTCs and security events per vehicle-hour, see :class:`VehicleHealth`) must not be
  worse than the control group's (targets not yet updated) by more than ``health_margin``
  (relative) — else it **pauses, with the evidence**; with too little data it **holds**. A
  build that installs cleanly but makes cars worse is stopped here, not by install failures.

Vehicles that join the target set later (:meth:`Rollout.add_targets`) go into the waves not
yet started. Every vehicle's outcome becomes an :class:`UpdateRecord` (UN R156 §7.2: software before and
after, RXSWIN, campaign, preconditions checked, result, timestamps), exportable as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from drivetrain.core.errors import BadInputError, StateTransitionError

VehicleState = Literal["pending", "downloading", "installing", "installed", "failed",
                       "rolled_back"]
RolloutStatus = Literal["draft", "running", "paused", "stopped", "completed", "cancelled"]
ROLLOUT_STATUSES: Final = ("draft", "running", "paused", "stopped", "completed", "cancelled")
VEHICLE_STATES: Final = ("pending", "downloading", "installing", "installed", "failed",
                         "rolled_back")
FINAL: Final[frozenset[str]] = frozenset({"installed", "failed", "rolled_back"})
_NEXT: Final[Mapping[str, frozenset[str]]] = {
    "pending": frozenset({"downloading", "failed"}),
    "downloading": frozenset({"installing", "failed"}),
    "installing": frozenset({"installed", "failed", "rolled_back"}),
}
#: The forward path a vehicle's reports may skip along (a report of ``installed`` from
#: ``pending`` passes ``downloading`` and ``installing``).
_PATH: Final[tuple[VehicleState, ...]] = ("pending", "downloading", "installing")
#: The KPIs the gate compares, pooled over each group; larger is worse for each.
KPI_NAMES: Final = ("energy_kwh_per_100km", "dtc_per_vehicle_hour",
                    "security_events_per_vehicle_hour")
#: Least distance a group must have driven in the window for its energy use to be judged.
MIN_GROUP_KM: Final = 1.0
MAX_WAVES: Final = 20


@dataclass(frozen=True, slots=True)
class WavePolicy:
    """How a rollout advances (see the module doc)."""

    waves: tuple[float, ...] = (0.1, 0.3, 1.0)
    success_threshold: float = 0.9
    error_threshold: float = 0.2
    health_margin: float = 0.05
    min_control: int = 3
    #: How long the updated group is observed after a wave's last install before the gate
    #: judges it, seconds.
    observe_s: float = 3600.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.waves) <= MAX_WAVES:
            raise BadInputError(f"waves: {len(self.waves)} given; expected 1..{MAX_WAVES}")
        last = 0.0
        for w in self.waves:
            if not (isinstance(w, int | float) and math.isfinite(w) and last < w <= 1.0):
                raise BadInputError(f"waves: {w!r}; expected increasing fractions in (0, 1]")
            last = w
        if self.waves[-1] != 1.0:
            raise BadInputError("waves: the last wave must reach 1.0 (the whole target set)")
        for name in ("success_threshold", "error_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise BadInputError(f"{name} {value!r}; expected a fraction in (0, 1]")
        if not 0.0 <= self.health_margin <= 1.0:
            raise BadInputError(f"health_margin {self.health_margin!r}; expected 0..1")
        if not (math.isfinite(self.observe_s) and 0.0 <= self.observe_s <= 30 * 86_400):
            raise BadInputError(f"observe_s {self.observe_s!r}; expected 0..2592000 seconds")
        if self.min_control < 1:
            raise BadInputError(f"min_control {self.min_control!r}; expected at least 1")


@dataclass(frozen=True, slots=True)
class VehicleHealth:
    """One vehicle's measured health over the gate's window: distance and net energy from its
    telemetry, the error DTCs it raised, the security events it reported, and the hours its
    telemetry covers (0: no telemetry in the window)."""

    vin: str
    distance_km: float
    energy_kwh: float
    hours: float
    dtcs: int
    security_events: int

    @property
    def has_data(self) -> bool:
        return self.hours > 0.0


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The health gate's verdict and its evidence: per KPI the updated and control figures,
    the limit the updated figure had to stay under, the margin, each group's size and whether
    the KPI failed. ``held``: too little data to judge (the wave waits)."""

    passed: bool
    evidence: Mapping[str, Mapping[str, float]]
    reason: str
    held: bool = False


def _pooled(group: Sequence[VehicleHealth]) -> dict[str, float]:
    km = sum(v.distance_km for v in group)
    hours = sum(v.hours for v in group)
    return {
        "energy_kwh_per_100km": 100.0 * sum(v.energy_kwh for v in group) / km if km else 0.0,
        "dtc_per_vehicle_hour": sum(v.dtcs for v in group) / hours if hours else 0.0,
        "security_events_per_vehicle_hour":
            sum(v.security_events for v in group) / hours if hours else 0.0,
    }


def health_gate(updated: Sequence[VehicleHealth], control: Sequence[VehicleHealth],
                margin: float, *, min_control: int = 3) -> GateDecision:
    """Compare the updated group with the control group, KPI by KPI, each pooled over its
    group (energy: total kWh over total km; DTCs and security events: total over vehicle-hours
    of telemetry). Only vehicles with telemetry in the window count.

    A KPI fails when ``updated > control * (1 + margin) + allowance``: energy has no
    allowance; a count rate is allowed one event more than the control rate predicts over the
    updated group's hours (so one stray event in a small group is not a regression). Too
    little data — no updated vehicle with telemetry, fewer than ``min_control`` control
    vehicles with telemetry, or a group that drove under ``MIN_GROUP_KM`` — holds the wave.
    """
    seen_u = [v for v in updated if v.has_data]
    seen_c = [v for v in control if v.has_data]
    u, c = _pooled(seen_u), _pooled(seen_c)
    hours_u = sum(v.hours for v in seen_u)
    km_u, km_c = sum(v.distance_km for v in seen_u), sum(v.distance_km for v in seen_c)
    evidence: dict[str, dict[str, float]] = {}
    worse: list[str] = []
    for name in KPI_NAMES:
        allowance = 0.0 if name == "energy_kwh_per_100km" else \
            (1.0 / hours_u if hours_u else 0.0)
        limit = c[name] * (1 + margin) + allowance
        failed = u[name] > limit
        evidence[name] = {"updated": round(u[name], 4), "control": round(c[name], 4),
                          "limit": round(limit, 4), "margin": margin,
                          "updated_vehicles": float(len(seen_u)),
                          "control_vehicles": float(len(seen_c)), "failed": float(failed)}
        if failed:
            worse.append(f"{name} {u[name]:.3g} > limit {limit:.3g} (control {c[name]:.3g})")
    short: list[str] = []
    if not seen_u:
        short.append(f"no updated vehicle has telemetry in the window (of {len(updated)})")
    if len(seen_c) < min_control:
        short.append(f"{len(seen_c)} control vehicle(s) with telemetry (of {len(control)}); "
                     f"the gate needs {min_control}")
    if seen_u and km_u < MIN_GROUP_KM:
        short.append(f"the updated group drove {km_u:.2f} km; the gate needs {MIN_GROUP_KM}")
    if len(seen_c) >= min_control and km_c < MIN_GROUP_KM:
        short.append(f"the control group drove {km_c:.2f} km; the gate needs {MIN_GROUP_KM}")
    if short:
        for kpi in evidence.values():
            kpi["failed"] = 0.0
        return GateDecision(False, evidence, "too little data: " + "; ".join(short), held=True)
    if worse:
        return GateDecision(False, evidence, "health gate: " + "; ".join(worse))
    return GateDecision(True, evidence, "health gate passed: updated group within "
                                        f"{margin:.0%} of control on {', '.join(KPI_NAMES)}")


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """One vehicle's update, as UN R156 asks it to be kept."""

    vin: str
    campaign: str
    software_before: str
    software_after: str
    rxswin: str
    preconditions: str
    result: str
    detail: str
    started_at: datetime
    ended_at: datetime

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["ended_at"] = self.ended_at.isoformat()
        return out


@dataclass
class Rollout:
    """The state of one rollout over a fixed, ordered target set."""

    campaign: str
    targets: tuple[str, ...]
    policy: WavePolicy = field(default_factory=WavePolicy)
    status: RolloutStatus = "draft"
    created_by: str = ""
    approved_by: str = ""
    wave_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) per wave
    wave: int = 0  # waves started so far
    states: dict[str, VehicleState] = field(default_factory=dict)
    reason: str = ""
    evidence: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    records: list[UpdateRecord] = field(default_factory=list)
    #: Set by :meth:`judge_wave`: the gate had too little data and the wave waits.
    holding: bool = False

    def approve(self, actor: str) -> None:
        """Approve a draft rollout; it then runs. The one who created it may not approve it
        (two-person rule).

        Raises:
            StateTransitionError: not a draft, or approved by its creator.
        """
        if self.status != "draft":
            raise StateTransitionError(f"rollout {self.campaign} is {self.status}; only a "
                                       "draft is approved")
        if not actor or actor == self.created_by:
            raise StateTransitionError(f"rollout {self.campaign} was created by {actor!r}; "
                                       "another person must approve it")
        self.approved_by, self.status = actor, "running"

    def add_targets(self, vins: Sequence[str]) -> int:
        """Vehicles that joined the target set (the twin query matches them now): they go
        into the waves not yet started. Returns how many were new.

        Raises:
            StateTransitionError: the rollout stopped or completed.
        """
        if self.status in ("stopped", "completed", "cancelled"):
            raise StateTransitionError(f"rollout {self.campaign} is {self.status}")
        known = set(self.targets)
        new = tuple(v for v in dict.fromkeys(vins) if v not in known)
        self.targets += new
        return len(new)

    def _next_span(self) -> tuple[int, int]:
        n = len(self.targets)
        start = self.wave_spans[-1][1] if self.wave_spans else 0
        if self.wave >= len(self.policy.waves):  # vehicles that joined after the last wave
            return start, n
        end = n if self.wave == len(self.policy.waves) - 1 else \
            max(1, math.ceil(self.policy.waves[self.wave] * n))
        return start, max(start, end)

    def start_next_wave(self) -> tuple[str, ...]:
        """Mark the next wave's vehicles pending and return them (after the planned waves,
        one more wave takes the vehicles that joined since).

        Raises:
            StateTransitionError: the rollout is not running, the current wave is not done
                or holding, or no vehicle is left to start.
        """
        if self.status != "running":
            raise StateTransitionError(f"rollout {self.campaign} is {self.status}; it must be "
                                       "approved (or resumed) to start a wave")
        if self.wave and not self.wave_done():
            raise StateTransitionError(f"wave {self.wave} of {self.campaign} is still running")
        if self.holding:
            raise StateTransitionError(f"wave {self.wave} of {self.campaign} is holding: "
                                       f"{self.reason}")
        start, end = self._next_span()
        if self.wave >= len(self.policy.waves) and start >= end:
            raise StateTransitionError(f"rollout {self.campaign} has started every wave")
        vins = self.targets[start:end]
        for vin in vins:
            self.states[vin] = "pending"
        self.wave_spans.append((start, end))
        self.wave += 1
        return vins

    def current_wave(self) -> tuple[str, ...]:
        if not self.wave_spans:
            return ()
        start, end = self.wave_spans[-1]
        return self.targets[start:end]

    def wave_done(self) -> bool:
        return all(self.states.get(v) in FINAL for v in self.current_wave())

    def advance(self, vin: str, state: VehicleState) -> None:
        """Move ``vin`` to ``state``.

        Raises:
            StateTransitionError: a move the per-vehicle state machine does not allow.
        """
        current = self.states.get(vin)
        if current is None:
            raise StateTransitionError(f"{vin} is not in a started wave of {self.campaign}")
        if state not in _NEXT.get(current, frozenset()):
            raise StateTransitionError(f"{vin}: {current} → {state} is not allowed; from "
                                       f"{current} expected {sorted(_NEXT.get(current, ()))}")
        self.states[vin] = state

    def advance_to(self, vin: str, state: VehicleState) -> list[VehicleState]:
        """Move ``vin`` forward to ``state``, through the states between (a vehicle that
        reports ``installed`` while the platform still had it ``pending`` downloaded and
        installed in between). Returns the states passed, ``state`` last; none when the
        vehicle already is in ``state``.

        Raises:
            StateTransitionError: ``state`` is not ahead of the vehicle's current state.
        """
        current = self.states.get(vin)
        if current == state:
            return []
        steps: list[VehicleState] = [state]
        if current in _PATH and state != "failed":
            ahead = _PATH[_PATH.index(current) + 1:]
            steps = list(ahead[:ahead.index(state) + 1]) if state in ahead else [*ahead, state]
        for step in steps:
            self.advance(vin, step)
        return steps

    def pause(self, reason: str) -> None:
        """An operator pauses a running rollout: no further wave starts until it resumes
        (vehicles of the wave under way finish their update).

        Raises:
            StateTransitionError: the rollout is not running.
        """
        if self.status != "running":
            raise StateTransitionError(f"rollout {self.campaign} is {self.status}; only a "
                                       "running rollout pauses")
        self.status, self.reason = "paused", reason

    def cancel(self, reason: str) -> None:
        """An operator cancels a rollout that has not ended: no further wave starts and the
        notices not yet delivered are withdrawn.

        Raises:
            StateTransitionError: the rollout already ended (stopped, completed, cancelled).
        """
        if self.status in ("stopped", "completed", "cancelled"):
            raise StateTransitionError(f"rollout {self.campaign} is {self.status}; it has "
                                       "already ended")
        self.status, self.reason = "cancelled", reason

    def counts(self) -> dict[str, int]:
        """Vehicles per state (targets not yet in a wave are ``waiting``)."""
        out = {s: 0 for s in ("waiting", "pending", "downloading", "installing", "installed",
                               "failed", "rolled_back")}
        for vin in self.targets:
            out[self.states.get(vin, "waiting")] += 1
        return out

    def thresholds_decide(self) -> bool:
        """Whether the finished wave's outcomes alone decide it (error threshold reached or
        success threshold missed): no health needs measuring then."""
        wave = self.current_wave()
        if not wave or not self.wave_done():
            return False
        bad = sum(self.states[v] in ("failed", "rolled_back") for v in wave)
        good = sum(self.states[v] == "installed" for v in wave)
        return (bad / len(wave) >= self.policy.error_threshold
                or good / len(wave) < self.policy.success_threshold)

    def judge_wave(self, updated: Sequence[VehicleHealth],
                   control: Sequence[VehicleHealth]) -> RolloutStatus:
        """Judge the finished wave (thresholds, then the health gate) and set the status:
        ``stopped`` or ``paused`` with the reason and evidence, ``completed`` after the last
        wave, else ``running``. With too little data the wave **holds** (``holding``; the
        status stays ``running``, the reason says what is missing) — except in the last
        wave, when the control group has run out (every target has had the build): then the
        gate is not applied (earlier waves were gated) and the reason says so.

        Raises:
            StateTransitionError: the wave has vehicles without an outcome.
        """
        self.holding = False
        if not self.wave_done():
            raise StateTransitionError(f"wave {self.wave} of {self.campaign} has vehicles "
                                       "without an outcome")
        wave = self.current_wave()
        bad = sum(self.states[v] in ("failed", "rolled_back") for v in wave)
        good = sum(self.states[v] == "installed" for v in wave)
        if wave and bad / len(wave) >= self.policy.error_threshold:
            self.status = "stopped"
            self.reason = (f"wave {self.wave}: {bad} of {len(wave)} failed or rolled back "
                           f"(error threshold {self.policy.error_threshold:.0%})")
            return self.status
        if wave and good / len(wave) < self.policy.success_threshold:
            self.status = "paused"
            self.reason = (f"wave {self.wave}: {good} of {len(wave)} installed (success "
                           f"threshold {self.policy.success_threshold:.0%})")
            return self.status
        gate = health_gate(updated, control, self.policy.health_margin,
                           min_control=self.policy.min_control)
        self.evidence = gate.evidence
        last = self.wave >= len(self.policy.waves) and \
            self.wave_spans[-1][1] >= len(self.targets)
        if gate.held and last:
            self.reason = (f"wave {self.wave} (the last): health gate not applied, "
                           f"{gate.reason} (every target has had the build; earlier waves "
                           "were gated)")
        elif gate.held:
            self.holding = True
            self.reason = f"wave {self.wave}: holding, {gate.reason}"
            return self.status
        elif not gate.passed:
            self.status, self.reason = "paused", f"wave {self.wave}: {gate.reason}"
            return self.status
        else:
            self.reason = f"wave {self.wave}: {gate.reason}"
        if last:
            self.status = "completed"
        return self.status

    def resume(self) -> None:
        """An operator resumes a paused rollout (a stopped one stays stopped)."""
        if self.status != "paused":
            raise StateTransitionError(f"rollout {self.campaign} is {self.status}; only a "
                                       "paused rollout resumes")
        self.status = "running"
