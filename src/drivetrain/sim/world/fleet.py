"""``VirtualFleet``: drivers, routes, places and chargers driving the fleet physics and wear.

One ``step(dt)`` advances every vehicle: parked cars wait for their next departure (charging
if plugged in), driving cars follow their route at the speed their road class and driving
style give, stop at a DC charger when the battery runs low, and park at the destination, where
the driver decides whether to plug in. Routine work is vectorised; only the vehicles that
depart or arrive in a step are handled one by one (a few per second in a fleet of thousands).

Seeded and deterministic: the same ``FleetConfig`` gives the same fleet and the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import SimulationConfigError
from drivetrain.sim.physics.arrays import clip
from drivetrain.sim.physics.fleet import FleetPhysics
from drivetrain.sim.physics.state import Controls
from drivetrain.sim.physics.vehicle_models import VEHICLE_MODELS, VehicleModel
from drivetrain.sim.wear.components import FailureEvent, FleetWear
from drivetrain.sim.wear.faults import WearConfig
from drivetrain.sim.world.charging import ChargerKind, ChargingSession, draw_dc_rating_w
from drivetrain.sim.world.drivers import (
    DriverProfile,
    Place,
    PlaceKind,
    SpeedLibrary,
    draw_profile,
    next_departure,
)
from drivetrain.sim.world.groundtruth import GroundTruthLog
from drivetrain.sim.world.places import REGION_CODES, REGIONS, RegionCode
from drivetrain.sim.world.route_table import RouteTable
from drivetrain.sim.world.routes import plan_route
from drivetrain.sim.world.signals import Navigation, extra_values, vss_values
from drivetrain.sim.world.vin import make_vin

F64 = npt.NDArray[np.float64]

PARKED, DRIVING, DC_STOP = 0, 1, 2
#: 2025-01-13 00:00 UTC, a Monday in winter.
DEFAULT_START_UTC: Final = 1_736_726_400.0
_STOP_DECEL = 1.2  # m/s², how drivers ease to a stop at the destination


@dataclass(frozen=True)
class FleetConfig:
    """What fleet to simulate. ``regions`` are spread round-robin over the vehicles;
    ``model_mix`` maps built-in model names to their share."""

    vehicles: int
    seed: int = 0
    regions: tuple[RegionCode, ...] = ("EU", "US", "CN")
    model_mix: dict[str, float] = field(
        default_factory=lambda: {"compact-hatch-50": 0.5, "midsize-suv-77": 0.5}
    )
    start_utc: float = DEFAULT_START_UTC
    wear: WearConfig = field(default_factory=WearConfig)
    max_vehicle_age_years: float = 4.0

    def __post_init__(self) -> None:
        if not isinstance(self.vehicles, int) or self.vehicles < 1:
            raise SimulationConfigError(f"vehicles {self.vehicles!r}; expected an integer >= 1")
        if not self.regions:
            raise SimulationConfigError("regions is empty; expected one or more of EU, US, CN")
        for r in self.regions:
            if r not in REGION_CODES:
                raise SimulationConfigError(f"region {r!r}; expected one of {list(REGION_CODES)}")
        for name, share in self.model_mix.items():
            if name not in VEHICLE_MODELS:
                raise SimulationConfigError(
                    f"model_mix names {name!r}; expected built-in models {sorted(VEHICLE_MODELS)}"
                )
            if not share >= 0:
                raise SimulationConfigError(
                    f"model_mix[{name!r}] = {share!r}; expected a share >= 0"
                )
        if sum(self.model_mix.values()) <= 0:
            raise SimulationConfigError("model_mix shares sum to 0; expected a positive total")
        if not 0 <= self.max_vehicle_age_years <= 30:
            raise SimulationConfigError(
                f"max_vehicle_age_years {self.max_vehicle_age_years!r}; expected 0..30"
            )


class VirtualFleet:
    """A seeded fleet of virtual battery-electric vehicles in their regions."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        n = config.vehicles
        seeds = np.random.SeedSequence(config.seed).spawn(4)
        setup_rng, wear_rng, self._rng, self._noise_rng = (np.random.default_rng(s) for s in seeds)
        names = sorted(config.model_mix)
        shares = np.array([config.model_mix[m] for m in names], dtype=float)
        model_index = setup_rng.choice(len(names), size=n, p=shares / shares.sum())
        self.models: tuple[VehicleModel, ...] = tuple(VEHICLE_MODELS[names[i]] for i in model_index)
        self.region_codes: tuple[RegionCode, ...] = tuple(
            config.regions[i % len(config.regions)] for i in range(n)
        )
        self.profiles: list[DriverProfile] = []
        for code in self.region_codes:
            region = REGIONS[code]
            city = region.cities[int(setup_rng.integers(len(region.cities)))]
            self.profiles.append(draw_profile(setup_rng, city, region.cities))
        # Serials start at an offset drawn from the seed, so fleets of different seeds get
        # different VINs and can share one registry.
        first_serial = int(np.random.default_rng([config.seed, 3779]).integers(1_000_000))
        self.vins = [
            make_vin(code, m.name, first_serial + i)
            for i, (code, m) in enumerate(zip(self.region_codes, self.models))
        ]
        self.time_utc = float(config.start_utc)

        age_s = setup_rng.uniform(0.0, config.max_vehicle_age_years, n) * 365.25 * 86400.0
        km = age_s / (365.25 * 86400.0) * 15000.0 * setup_rng.uniform(0.6, 1.4, n)
        usable = np.array([m.battery.usable_kwh for m in self.models])
        fade_cal = 0.02 * np.sqrt(age_s / (365.25 * 86400.0))
        fade_cyc = 1.2e-4 * km * 0.17 / usable
        self._cities = sorted({p.home_city.name for p in self.profiles})
        self._city_objs = [
            next(p.home_city for p in self.profiles if p.home_city.name == c) for c in self._cities
        ]
        self._city_index = np.array([self._cities.index(p.home_city.name) for p in self.profiles])
        ambient = self._ambient()
        self.physics = FleetPhysics(
            self.models,
            ambient_c=ambient,
            soc=setup_rng.uniform(0.45, 0.9, n),
            fade_calendar=fade_cal,
            fade_cycle=fade_cyc,
            odometer_m=km * 1000.0,
        )
        # Winter tyres where the season's mean is below 7 °C (EU practice, also used elsewhere).
        self.physics.tire_rolling_factor = np.where(ambient < 7.0, 1.15, 1.0)
        self.wear = FleetWear(
            n,
            wear_rng,
            config.wear,
            cells_series=np.array([m.battery.cells_series for m in self.models]),
            vehicle_age_s=age_s,
        )
        self.ground_truth = GroundTruthLog(self.vins)

        # per-vehicle world state
        self.mode = np.full(n, PARKED, dtype=np.int8)
        self.at_kind: list[PlaceKind] = ["home"] * n
        self.place: list[Place] = [p.home for p in self.profiles]
        self.destination: list[Place] = [p.home for p in self.profiles]
        self.depart_at = np.zeros(n)
        for i, p in enumerate(self.profiles):
            self.depart_at[i], self.destination[i] = next_departure(
                self._rng, p, self.time_utc, "home"
            )
        self.latitude = np.array([p.home.latitude for p in self.profiles])
        self.longitude = np.array([p.home.longitude for p in self.profiles])
        self.altitude_m = np.array([p.home.elevation_m for p in self.profiles])
        self.heading_deg = self._rng.uniform(0.0, 360.0, n)
        self.yaw_rate_dps = np.zeros(n)
        self.routes = RouteTable(n)
        self.speed_library = [
            SpeedLibrary.standard(REGIONS[c].highway_speed_scale) for c in REGION_CODES
        ]
        packed = [lib.packed() for lib in self.speed_library]
        self._lib_values = np.concatenate([pk[0] for pk in packed])
        base = np.cumsum([0] + [len(pk[0]) for pk in packed[:-1]])
        self._lib_offset = np.stack([pk[1] + b for pk, b in zip(packed, base)])  # (region, class)
        self._lib_length = np.stack([pk[2] for pk in packed])
        self._region_index = np.array([REGION_CODES.index(c) for c in self.region_codes])
        self.cursor = self._rng.uniform(0.0, 300.0, n)
        self._road_class = np.zeros(n, dtype=np.int64)
        self.speed_factor = np.array([p.style.speed_factor for p in self.profiles])
        self.accel_limit = np.array([p.style.accel_limit_mps2 for p in self.profiles])
        self.decel_limit = np.array([p.style.decel_limit_mps2 for p in self.profiles])
        self.setpoint_c = np.array([p.cabin_setpoint_c for p in self.profiles])
        self.dc_below = np.array([p.dc_below_soc for p in self.profiles])
        self.charger_w = np.zeros(n)
        self.charger_dc = np.zeros(n, dtype=bool)
        self.charge_limit = np.array([p.charge_limit for p in self.profiles])
        self.sessions: list[ChargingSession | None] = [None] * n
        self.trip_start: list[dict[str, object] | None] = [None] * n
        self.immobilised = np.zeros(n, dtype=bool)
        self._condition = self.wear.condition()
        # a vehicle that starts at home below its plug-in threshold is charging already
        for i, p in enumerate(self.profiles):
            if p.has_home_charger and self.physics.state.soc[i] < p.plug_in_below_soc:
                self._plug(i, "home_ac", p.home_charger_w)

    @property
    def n(self) -> int:
        """Number of vehicles."""
        return self.config.vehicles

    # --- the step --------------------------------------------------------------------------
    def step(self, dt_s: float = 1.0) -> list[FailureEvent]:
        """Advance the whole fleet by ``dt_s`` seconds; returns wear events of this step.

        Raises:
            ValueError: ``dt_s`` is not in (0, 10] s (routes and driver reactions are resolved
                at up to 10 s per step).
        """
        if not 0 < dt_s <= 10.0:
            raise ValueError(f"dt_s must be in (0, 10] seconds, got {dt_s!r}")
        now = self.time_utc
        for i in np.flatnonzero(
            (self.mode == PARKED) & (now >= self.depart_at) & ~self.immobilised
        ):
            self._depart(int(i))
        driving = self.mode == DRIVING
        s = self.physics.state
        low = driving & (s.soc < self.dc_below)
        self.mode[low] = DC_STOP  # ease to a stop, then plug into a public DC charger
        driving = self.mode == DRIVING
        on_road = driving | (self.mode == DC_STOP)

        pos = self.routes.position(self.routes.progress_m)
        seg_class = np.where(on_road, pos.road_class, 0)
        changed = on_road & (seg_class != self._road_class)
        self.cursor[changed] = (
            self._rng.uniform(0.0, 1.0, int(changed.sum()))
            * self._lib_length[self._region_index[changed], seg_class[changed]]
        )
        self._road_class = seg_class
        length = self._lib_length[self._region_index, seg_class]
        offset = self._lib_offset[self._region_index, seg_class]
        k = np.floor(self.cursor).astype(np.int64) % length
        frac = self.cursor - np.floor(self.cursor)
        lib_now = self._lib_values[offset + k]
        lib_next = self._lib_values[offset + (k + 1) % length]
        target = (lib_now + frac * (lib_next - lib_now)) * self.speed_factor
        remaining = np.maximum(self.routes.length_m - self.routes.progress_m, 0.0)
        target = np.minimum(target, np.sqrt(2.0 * _STOP_DECEL * np.maximum(remaining - 1.0, 0.0)))
        target = np.where(driving, target, 0.0)

        ambient = self._ambient()
        controls = Controls(
            target_speed_mps=target,
            ambient_c=ambient,
            grade=np.where(on_road, pos.grade, 0.0),
            drive_active=driving | ((self.mode == DC_STOP) & (self.charger_w == 0.0)),
            accel_limit_mps2=self.accel_limit,
            decel_limit_mps2=np.where(self.mode == DC_STOP, 2.0, self.decel_limit),
            cabin_setpoint_c=self.setpoint_c,
            hvac_on=on_road,
            charger_w=self.charger_w,
            charger_dc=self.charger_dc,
            charge_limit=self.charge_limit,
            altitude_m=self.altitude_m,
        )
        out = self.physics.step(dt_s, controls, self._condition)
        events = self.wear.step(out, s.odometer_m)
        for e in events:
            self.ground_truth.events.append(
                {
                    "vin": self.vins[e.vehicle],
                    "component": e.component,
                    "kind": e.kind,
                    "time_s": self.time_utc + dt_s,
                    "odometer_m": e.odometer_m,
                }
            )
            if e.kind == "failure" and e.component == "lv_battery":
                self.immobilised[e.vehicle] = True  # a dead 12 V battery cannot wake the car
        self._condition = self.wear.condition()

        # move along the routes
        self.routes.progress_m = np.where(
            on_road, self.routes.progress_m + out.distance_m, self.routes.progress_m
        )
        self.cursor = np.where(
            driving, self.cursor + dt_s, self.cursor
        )  # traffic runs in real time
        pos = self.routes.position(self.routes.progress_m)
        new_heading = np.where(on_road, pos.bearing, self.heading_deg)
        turn = (new_heading - self.heading_deg + 180.0) % 360.0 - 180.0
        step_turn = turn * (1.0 - np.exp(-dt_s / 3.0))  # drivers round corners over ~3 s
        self.yaw_rate_dps = np.where(on_road & (s.speed_mps > 0.1), step_turn / dt_s, 0.0)
        self.heading_deg = np.where(
            on_road & (s.speed_mps > 0.1), (self.heading_deg + step_turn) % 360.0, self.heading_deg
        )
        self.latitude = np.where(on_road, pos.latitude, self.latitude)
        self.longitude = np.where(on_road, pos.longitude, self.longitude)
        self.altitude_m = np.where(on_road, pos.altitude_m, self.altitude_m)
        self.time_utc += dt_s

        stopped = s.speed_mps < 0.05
        for i in np.flatnonzero(driving & stopped & (remaining - out.distance_m < 1.5)):
            self._arrive(int(i))
        for i in np.flatnonzero((self.mode == DC_STOP) & stopped & (self.charger_w == 0.0)):
            self._plug(int(i), "public_dc", draw_dc_rating_w(self._rng))
        resume = (self.mode == DC_STOP) & (self.charger_w > 0.0) & (s.soc >= 0.8)
        for i in np.flatnonzero(resume):
            self._unplug(int(i))
            self.mode[i] = DRIVING
        self._track_sessions(dt_s)
        return events

    # --- events (per vehicle, rare) --------------------------------------------------------
    def _depart(self, i: int) -> None:
        origin = self.place[i]
        dest = self.destination[i]
        self._unplug(i)
        try:
            route = plan_route(
                self._rng,
                (origin.latitude, origin.longitude, origin.elevation_m),
                (dest.latitude, dest.longitude, dest.elevation_m),
                hilliness_m=REGIONS[self.region_codes[i]].hilliness_m,
            )
        except ValueError:
            # origin and destination coincide: skip this trip, plan the next one
            self.depart_at[i], self.destination[i] = next_departure(
                self._rng, self.profiles[i], self.time_utc, dest.kind
            )
            return
        self.routes.assign(i, route)
        self.mode[i] = DRIVING
        self._road_class[i] = -1
        mask = np.zeros(self.n, dtype=bool)
        mask[i] = True
        self.physics.start_trip(mask)
        s = self.physics.state
        self.trip_start[i] = {
            "vin": self.vins[i],
            "start_s": self.time_utc,
            "from_kind": origin.kind,
            "to_kind": dest.kind,
            "from_lat": origin.latitude,
            "from_lon": origin.longitude,
            "to_lat": dest.latitude,
            "to_lon": dest.longitude,
            "start_soc_pct": 100.0 * float(s.soc[i]),
            "route_km": route.length_m / 1000.0,
            "start_kwh_out": float(s.discharged_kwh[i]),
            "start_kwh_in": float(s.charged_kwh[i]),
            "start_odometer_m": float(s.odometer_m[i]),
            "charge_stops": 0,
        }

    def _arrive(self, i: int) -> None:
        s = self.physics.state
        dest = self.destination[i]
        self.mode[i] = PARKED
        self.place[i] = dest
        self.at_kind[i] = dest.kind
        self.latitude[i], self.longitude[i], self.altitude_m[i] = (
            dest.latitude,
            dest.longitude,
            dest.elevation_m,
        )
        start = self.trip_start[i]
        if start is not None:
            row = dict(start)
            row.update(
                end_s=self.time_utc,
                end_soc_pct=100.0 * float(s.soc[i]),
                distance_km=(float(s.odometer_m[i]) - float(start["start_odometer_m"])) / 1000.0,  # type: ignore[arg-type]
                battery_out_kwh=float(s.discharged_kwh[i]) - float(start["start_kwh_out"]),  # type: ignore[arg-type]
                battery_in_kwh=float(s.charged_kwh[i]) - float(start["start_kwh_in"]),  # type: ignore[arg-type]
            )
            self.ground_truth.trips.append(row)
            self.trip_start[i] = None
        profile = self.profiles[i]
        if (
            dest.kind == "home"
            and profile.has_home_charger
            and s.soc[i] < profile.plug_in_below_soc
        ):
            self._plug(i, "home_ac", profile.home_charger_w)
        elif dest.kind == "work" and profile.work_charger_w > 0 and s.soc[i] < 0.8:
            self._plug(i, "work_ac", profile.work_charger_w)
        self.depart_at[i], self.destination[i] = next_departure(
            self._rng, profile, self.time_utc, dest.kind
        )

    def _plug(self, i: int, kind: ChargerKind, rated_w: float) -> None:
        trip = self.trip_start[i]
        if trip is not None:
            trip["charge_stops"] = int(trip["charge_stops"]) + 1  # type: ignore[call-overload]
        self.charger_w[i] = rated_w
        self.charger_dc[i] = kind == "public_dc"
        self.sessions[i] = ChargingSession(
            self.vins[i],
            kind,
            rated_w / 1000.0,
            self.time_utc,
            float(self.physics.state.soc[i]),
            float(self.latitude[i]),
            float(self.longitude[i]),
        )

    def _unplug(self, i: int) -> None:
        session = self.sessions[i]
        if session is not None:
            session.end_s = self.time_utc
            session.end_soc = float(self.physics.state.soc[i])
            self.ground_truth.sessions.append(session.to_row())
            self.sessions[i] = None
        self.charger_w[i] = 0.0
        self.charger_dc[i] = False

    def _track_sessions(self, dt_s: float) -> None:
        power = self.physics.state.charge_power_w
        for i in np.flatnonzero(power > 0.0):
            session = self.sessions[i]
            if session is not None:
                session.energy_kwh += float(power[i]) * dt_s / 3.6e6
                session.max_power_kw = max(session.max_power_kw, float(power[i]) / 1000.0)

    def _ambient(self) -> F64:
        temps = np.array([c.ambient_c(self.time_utc) for c in self._city_objs], dtype=np.float64)
        ambient: F64 = temps[self._city_index]
        return ambient

    # --- outputs ---------------------------------------------------------------------------
    def navigation(self) -> Navigation:
        """Position and world state arrays (GNSS noise of a few metres included)."""
        # GNSS noise has its own generator, so sampling outputs never changes the trajectory.
        accuracy = np.where(self._road_class == 0, 4.5, 2.5) + 0.5 * self._noise_rng.random(self.n)
        noise = self._noise_rng.normal(0.0, 1.0, (2, self.n)) * accuracy / 2.0 / 111_320.0
        return Navigation(
            latitude=clip(self.latitude + noise[0], -90.0, 90.0),
            longitude=self.longitude + noise[1] / np.cos(np.radians(self.latitude)),
            altitude_m=self.altitude_m.copy(),
            heading_deg=self.heading_deg.copy(),
            yaw_rate_dps=self.yaw_rate_dps.copy(),
            horizontal_accuracy_m=accuracy,
            ambient_c=self._ambient(),
            plugged=self.charger_w > 0.0,
            charger_dc=self.charger_dc.copy(),
            charge_limit=np.where(self.charger_dc, 0.8, self.charge_limit),
            driving=self.mode != PARKED,
            broken_down=self.immobilised
            | ((self.mode != PARKED) & (self.physics.state.soc <= 0.0)),
        )

    def vss_values(self) -> dict[str, npt.NDArray[np.generic]]:
        """Every VSS signal of every vehicle now, keyed by catalog path (see ``signals``)."""
        return vss_values(self.physics, self.wear, self._condition, self.navigation())

    def extra_values(self) -> dict[str, npt.NDArray[np.generic]]:
        """Signals the reference CAN database has beyond the VSS catalog."""
        return extra_values(self.physics, self.wear, self.navigation())

    def record_ground_truth(self) -> None:
        """Sample every vehicle's component health and RUL into ``ground_truth`` now."""
        columns: dict[str, npt.NDArray[np.generic]] = dict(self.wear.rul())
        columns.update(
            pad_thickness_min_mm=self.wear.pad_mm.min(axis=1),
            tire_pressure_ratio_min=self._condition.tire_pressure_ratio.min(axis=1),
            lv_capacity=self._condition.lv_capacity,
            coolant_pump_health=self.wear.pump_health(),
            hv_cell_deficit=self._condition.weak_cell_deficit,
            battery_soh_pct=self.physics.state.soh * 100.0,
            odometer_m=self.physics.state.odometer_m,
        )
        for component, flags in self.wear.fault_started.items():
            columns[f"{component}_fault"] = flags
        self.ground_truth.sample(self.time_utc, columns)
