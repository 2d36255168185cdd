"""Which vehicles get which fault, when, and how severe — drawn once from a seeded RNG.

Fault onsets are part of the plan from the start, so the ground-truth remaining useful life
reported at any moment already accounts for a fault that has not begun yet: it is the true
time (or usage) to failure, not a forecast from the current rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import SimulationConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Component = Literal["brake_pads", "tires", "lv_battery", "coolant_pump", "hv_cell"]
COMPONENTS: Final[tuple[Component, ...]] = get_args(Component)

DAY_S: Final = 86400.0
HOUR_S: Final = 3600.0

#: Default share of vehicles that develop each fault within the horizon.
DEFAULT_FAULT_PROBABILITY: Final[dict[Component, float]] = {
    "brake_pads": 0.04,  # a sticking caliper
    "tires": 0.10,  # a slow puncture
    "lv_battery": 0.05,  # sulfation after deep discharge
    "coolant_pump": 0.03,  # bearing wear
    "hv_cell": 0.02,  # a cell with a growing internal micro-short
}


@dataclass(frozen=True)
class WearConfig:
    """How component wear and faults play out.

    ``acceleration`` multiplies every degradation rate (1 = real time; a demo may use 1000 to
    see failures within minutes); remaining useful life is then in simulated-and-accelerated
    units. ``horizon_s`` is the window in which fault onsets are drawn (calendar seconds, or
    pump operating seconds for the coolant pump). ``fault_probability`` maps each component to
    the share of vehicles that develop its fault within the horizon.
    """

    acceleration: float = 1.0
    horizon_s: float = 30 * DAY_S
    fault_probability: dict[Component, float] = field(
        default_factory=lambda: dict(DEFAULT_FAULT_PROBABILITY)
    )

    def __post_init__(self) -> None:
        if not (np.isfinite(self.acceleration) and self.acceleration > 0):
            raise SimulationConfigError(
                f"wear acceleration {self.acceleration!r}; expected a finite number > 0"
            )
        if not (np.isfinite(self.horizon_s) and self.horizon_s > 0):
            raise SimulationConfigError(
                f"fault horizon_s {self.horizon_s!r}; expected a finite number of seconds > 0"
            )
        for name, p in self.fault_probability.items():
            if name not in COMPONENTS:
                raise SimulationConfigError(
                    f"fault_probability names component {name!r}; expected one of {list(COMPONENTS)}"
                )
            if not 0.0 <= p <= 1.0:
                raise SimulationConfigError(
                    f"fault_probability[{name!r}] = {p!r}; expected a probability in [0, 1]"
                )


@dataclass(frozen=True)
class FaultPlan:
    """Per-vehicle fault draws. Onsets are ``inf`` where a vehicle never gets that fault.

    Times are simulation seconds from the fleet's start; ``*_wheel``/``*_tire`` pick the
    affected corner (0 FL, 1 FR, 2 RL, 3 RR).
    """

    caliper_onset_s: F64
    caliper_wheel: I64
    caliper_drag_n: F64
    leak_onset_s: F64
    leak_tire: I64
    leak_tau_s: F64
    lv_onset_s: F64
    lv_fade_per_s: F64
    pump_onset_op_s: F64
    pump_life_op_s: F64
    cell_onset_s: F64
    cell_drift_per_s: F64
    weak_cell_index: I64

    @classmethod
    def draw(
        cls, rng: np.random.Generator, n: int, config: WearConfig, cells_series: I64
    ) -> FaultPlan:
        """Draw faults for ``n`` vehicles; ``cells_series`` per vehicle numbers the cells."""
        horizon = config.horizon_s
        accel = config.acceleration
        prob = {c: config.fault_probability.get(c, 0.0) for c in COMPONENTS}

        def onset(component: Component) -> F64:
            hit = rng.random(n) < prob[component]
            return np.where(hit, rng.uniform(0.0, horizon, n), np.inf)

        caliper_onset = onset("brake_pads")
        caliper_wheel = rng.integers(0, 4, n)
        caliper_drag = rng.uniform(80.0, 250.0, n)
        leak_onset = onset("tires")
        leak_tire = rng.integers(0, 4, n)
        # Slow punctures: a pressure time constant of 1 to 30 days (log-uniform).
        leak_tau = np.exp(rng.uniform(np.log(1.0), np.log(30.0), n)) * DAY_S / accel
        lv_onset = onset("lv_battery")
        lv_days = rng.uniform(10.0, 60.0, n)  # from onset to the failure threshold
        lv_fade = 0.45 / (lv_days * DAY_S) * accel
        pump_onset = onset("coolant_pump")
        pump_life = rng.uniform(20.0, 200.0, n) * HOUR_S / accel  # operating time to failure
        cell_onset = onset("hv_cell")
        cell_days = rng.uniform(10.0, 90.0, n)
        cell_drift = 0.15 / (cell_days * DAY_S) * accel
        weak_cell = (rng.random(n) * cells_series).astype(np.int64)
        return cls(
            caliper_onset_s=caliper_onset,
            caliper_wheel=caliper_wheel,
            caliper_drag_n=caliper_drag,
            leak_onset_s=leak_onset,
            leak_tire=leak_tire,
            leak_tau_s=leak_tau,
            lv_onset_s=lv_onset,
            lv_fade_per_s=lv_fade,
            pump_onset_op_s=pump_onset,
            pump_life_op_s=pump_life,
            cell_onset_s=cell_onset,
            cell_drift_per_s=cell_drift,
            weak_cell_index=weak_cell,
        )
