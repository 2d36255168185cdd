"""Smart charging: the cheapest schedule that still meets each driver's departure and target.

A linear program per site (HiGHS through ``scipy.optimize.linprog``), over time slots of
``slot_h`` hours:

    minimise   sum_v,t price_t * p_vt * slot_h                      (energy cost)
             + high_soc_penalty * sum_v,t h_vt * slot_h             (time at high charge)
             + shortfall_penalty * sum_v s_v                        (missed target, kWh)
    subject to 0 <= p_vt <= max_kw_v while plugged in, 0 otherwise
               e_v0 + eff_v * sum_{u<=t} p_vu * slot_h = stored energy after slot t
               h_vt >= stored_t - high_soc * capacity_v,  h_vt >= 0   (kWh above the threshold)
               stored at departure + s_v >= target * capacity_v,  s_v >= 0
               sum_v p_vt <= site_limit_kw_t                       (shared grid connection)

``h`` makes charge that sits above ``high_soc`` cost a little per hour, so the optimiser fills
the battery as late as the price allows (calendar ageing is fastest at high charge); the
shortfall slack keeps the problem feasible when a target cannot be met, and reports by how much.

The baseline is what a car does unmanaged: charge at full power from plug-in until the target,
the site's limit shared in proportion to demand when cars charge at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.cloud.insights._deps import require
from drivetrain.core.errors import BadInputError

F64 = npt.NDArray[np.float64]

MAX_SLOTS = 24 * 4 * 7  # a week of 15-minute slots
MAX_VEHICLES = 2000


class ChargingRequestError(BadInputError):
    """A charging request or tariff that cannot be planned; names the field and the value."""


@dataclass(frozen=True)
class ChargingSession:
    """One plugged-in vehicle: when it is there, where its battery is, where it must be."""

    vehicle: str
    capacity_kwh: float
    soc_now: float  # 0..1 at plug-in
    soc_target: float  # 0..1 at departure
    plug_in_slot: int  # first slot it can charge in
    departure_slot: int  # first slot it is gone (exclusive)
    max_kw: float = 11.0
    efficiency: float = 0.9  # grid to battery

    def check(self, slots: int) -> None:
        """Raises ChargingRequestError naming the first bad field."""
        if not (0 < self.capacity_kwh <= 500):
            raise ChargingRequestError(f"{self.vehicle}: capacity_kwh {self.capacity_kwh} not in (0, 500]")
        for name in ("soc_now", "soc_target"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ChargingRequestError(f"{self.vehicle}: {name} {value} not in [0, 1]")
        if not (0 <= self.plug_in_slot < self.departure_slot <= slots):
            raise ChargingRequestError(
                f"{self.vehicle}: plug_in_slot {self.plug_in_slot} / departure_slot "
                f"{self.departure_slot} must satisfy 0 <= plug-in < departure <= {slots}"
            )
        if not (0 < self.max_kw <= 400) or not (0 < self.efficiency <= 1):
            raise ChargingRequestError(f"{self.vehicle}: max_kw {self.max_kw} / efficiency {self.efficiency}")

    @property
    def needed_kwh(self) -> float:
        """Energy the battery must gain (kWh, battery side)."""
        return max(0.0, (self.soc_target - self.soc_now) * self.capacity_kwh)


@dataclass(frozen=True)
class Tariff:
    """Price per slot (currency per kWh from the grid), slots of ``slot_h`` hours from ``start``."""

    price_per_kwh: F64
    slot_h: float = 0.25

    @classmethod
    def time_of_use(
        cls, start_hour: float, slots: int, slot_h: float, bands: Sequence[tuple[float, float, float]]
    ) -> Tariff:
        """Prices from daily bands ``(from_hour, to_hour, price)`` (the first band that covers an
        hour wins; hours wrap at 24)."""
        prices = np.zeros(slots)
        for i in range(slots):
            hour = (start_hour + i * slot_h) % 24.0
            prices[i] = next((p for lo, hi, p in bands if lo <= hour < hi), bands[-1][2])
        return cls(prices, slot_h)

    @property
    def slots(self) -> int:
        return int(self.price_per_kwh.shape[0])


@dataclass(frozen=True)
class VehiclePlan:
    """A vehicle's schedule: power per slot (kW from the grid) and what it costs and gives."""

    vehicle: str
    power_kw: F64
    cost: float
    soc_at_departure: float
    shortfall_kwh: float
    hours_above_high_soc: float

    def to_dict(self) -> dict[str, object]:
        return {
            "vehicle": self.vehicle,
            "power_kw": [round(float(p), 2) for p in self.power_kw],
            "cost": round(self.cost, 4),
            "soc_at_departure": round(self.soc_at_departure, 4),
            "shortfall_kwh": round(self.shortfall_kwh, 3),
            "hours_above_high_soc": round(self.hours_above_high_soc, 2),
        }


@dataclass(frozen=True)
class SitePlan:
    """Every vehicle's plan at one site, and the site's load per slot (kW)."""

    plans: tuple[VehiclePlan, ...]
    site_load_kw: F64
    solver_status: str

    @property
    def cost(self) -> float:
        return float(sum(p.cost for p in self.plans))

    @property
    def peak_kw(self) -> float:
        return float(self.site_load_kw.max()) if self.site_load_kw.size else 0.0


def _soc_trace(session: ChargingSession, power_kw: F64, slot_h: float) -> F64:
    """State of charge at the end of each slot."""
    gained = np.cumsum(power_kw) * slot_h * session.efficiency
    return session.soc_now + gained / session.capacity_kwh


def _plan_of(session: ChargingSession, power_kw: F64, tariff: Tariff, high_soc: float) -> VehiclePlan:
    soc = _soc_trace(session, power_kw, tariff.slot_h)
    at_departure = float(soc[session.departure_slot - 1])
    plugged = np.arange(tariff.slots)
    present = (plugged >= session.plug_in_slot) & (plugged < session.departure_slot)
    return VehiclePlan(
        vehicle=session.vehicle,
        power_kw=power_kw,
        cost=float(np.sum(power_kw * tariff.price_per_kwh) * tariff.slot_h),
        soc_at_departure=at_departure,
        shortfall_kwh=max(0.0, (session.soc_target - at_departure) * session.capacity_kwh),
        hours_above_high_soc=float(np.sum((soc > high_soc + 1e-6) & present) * tariff.slot_h),
    )


def _site_limit(site_limit_kw: float | F64 | None, slots: int) -> F64:
    if site_limit_kw is None:
        return np.full(slots, np.inf)
    limit = np.broadcast_to(np.asarray(site_limit_kw, dtype=np.float64), (slots,)).copy()
    if np.any(limit < 0) or np.any(np.isnan(limit)):
        raise ChargingRequestError("site_limit_kw must be non-negative")
    return limit


def plan_site(
    sessions: Sequence[ChargingSession],
    tariff: Tariff,
    *,
    site_limit_kw: float | F64 | None = None,
    high_soc: float = 0.8,
    high_soc_penalty: float = 0.002,
    shortfall_penalty: float = 10.0,
) -> SitePlan:
    """The lowest-cost schedule of all ``sessions`` under one shared site limit (see module doc).

    ``high_soc_penalty`` is in currency per kWh-above-threshold per hour: small against the
    price differences, so it breaks ties toward charging late without costing money.

    Raises:
        ChargingRequestError: a bad session, tariff or limit (the field is named).
        MissingExtraError: scipy is not installed.
    """
    slots, dt = tariff.slots, tariff.slot_h
    if not 0 < slots <= MAX_SLOTS or not 0 < dt <= 2:
        raise ChargingRequestError(f"tariff has {slots} slots of {dt} h; expected 1..{MAX_SLOTS} slots of (0, 2] h")
    if not np.all(np.isfinite(tariff.price_per_kwh)):
        raise ChargingRequestError("tariff prices must be finite numbers")
    if not 0 < len(sessions) <= MAX_VEHICLES:
        raise ChargingRequestError(f"{len(sessions)} sessions; expected 1..{MAX_VEHICLES}")
    for s in sessions:
        s.check(slots)
    limit = _site_limit(site_limit_kw, slots)
    optimize = require("scipy.optimize")
    sparse = require("scipy.sparse")

    n = len(sessions)
    # Variables: p (n*T), h (n*T), s (n). Index helpers:
    def p_index(v: int, t: int) -> int:
        return v * slots + t

    h0, s0 = n * slots, 2 * n * slots
    n_vars = 2 * n * slots + n
    cost = np.zeros(n_vars)
    bounds_hi = np.zeros(n_vars)
    cost[:h0] = np.tile(tariff.price_per_kwh * dt, n)
    cost[h0:s0] = high_soc_penalty * dt
    cost[s0:] = shortfall_penalty
    bounds_hi[h0:] = np.inf
    rows, cols, vals, rhs = [], [], [], []
    row = 0
    for v, s in enumerate(sessions):
        bounds_hi[p_index(v, s.plug_in_slot) : p_index(v, s.departure_slot)] = s.max_kw
        gain = s.efficiency * dt  # kWh in the battery per kW for one slot
        start_kwh = s.soc_now * s.capacity_kwh
        # h_vt >= start + gain * cumsum(p) - high*cap   <=>   gain*cumsum(p) - h <= high*cap - start
        for t in range(s.plug_in_slot, s.departure_slot):
            ts = range(s.plug_in_slot, t + 1)
            rows += [row] * (len(ts) + 1)
            cols += [p_index(v, u) for u in ts] + [h0 + p_index(v, t)]
            vals += [gain] * len(ts) + [-1.0]
            rhs.append(high_soc * s.capacity_kwh - start_kwh)
            row += 1
        # start + gain * sum(p) + shortfall >= target*cap   <=>   -gain*sum(p) - s <= start - target*cap
        ts = range(s.plug_in_slot, s.departure_slot)
        rows += [row] * (len(ts) + 1)
        cols += [p_index(v, u) for u in ts] + [s0 + v]
        vals += [-gain] * len(ts) + [-1.0]
        rhs.append(start_kwh - s.soc_target * s.capacity_kwh)
        row += 1
        # never above full
        rows += [row] * len(ts)
        cols += [p_index(v, u) for u in ts]
        vals += [gain] * len(ts)
        rhs.append(s.capacity_kwh - start_kwh)
        row += 1
    for t in map(int, np.flatnonzero(np.isfinite(limit))):
        rows += [row] * n
        cols += [p_index(v, t) for v in range(n)]
        vals += [1.0] * n
        rhs.append(float(limit[t]))
        row += 1
    a_ub = sparse.csr_array((vals, (rows, cols)), shape=(row, n_vars))
    result = optimize.linprog(
        cost, A_ub=a_ub, b_ub=np.array(rhs), bounds=np.column_stack([np.zeros(n_vars), bounds_hi]),
        method="highs",
    )  # fmt: skip
    if result.status != 0 or result.x is None:
        raise ChargingRequestError(f"no charging plan: {result.message}")
    power = np.clip(result.x[:h0].reshape(n, slots), 0.0, None)
    plans = tuple(_plan_of(s, power[v], tariff, high_soc) for v, s in enumerate(sessions))
    return SitePlan(plans, power.sum(axis=0), str(result.message))


def charge_immediately(
    sessions: Sequence[ChargingSession],
    tariff: Tariff,
    *,
    site_limit_kw: float | F64 | None = None,
    high_soc: float = 0.8,
) -> SitePlan:
    """The unmanaged baseline: full power from plug-in to target, the site limit shared in
    proportion to what the cars ask for."""
    slots, dt = tariff.slots, tariff.slot_h
    for s in sessions:
        s.check(slots)
    limit = _site_limit(site_limit_kw, slots)
    remaining = np.array([s.needed_kwh for s in sessions])
    power = np.zeros((len(sessions), slots))
    for t in range(slots):
        want = np.array([
            min(s.max_kw, remaining[v] / (s.efficiency * dt)) if s.plug_in_slot <= t < s.departure_slot else 0.0
            for v, s in enumerate(sessions)
        ])  # fmt: skip
        total = want.sum()
        scale = 1.0 if total <= limit[t] or total == 0 else limit[t] / total
        power[:, t] = want * scale
        remaining -= power[:, t] * dt * np.array([s.efficiency for s in sessions])
        remaining = np.maximum(remaining, 0.0)
    plans = tuple(_plan_of(s, power[v], tariff, high_soc) for v, s in enumerate(sessions))
    return SitePlan(plans, power.sum(axis=0), "charge immediately")


@dataclass(frozen=True)
class ChargingComparison:
    """Smart plan against charging immediately, per vehicle and for the site."""

    smart: SitePlan
    immediate: SitePlan

    @property
    def saving(self) -> float:
        return self.immediate.cost - self.smart.cost

    @property
    def saving_fraction(self) -> float:
        return self.saving / self.immediate.cost if self.immediate.cost > 0 else math.nan

    def per_vehicle_saving(self) -> F64:
        return np.array([b.cost - a.cost for a, b in zip(self.smart.plans, self.immediate.plans, strict=True)])
