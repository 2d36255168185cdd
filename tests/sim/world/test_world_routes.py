"""Routes look like roads between real places; VINs carry a valid check digit."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.errors import SimulationConfigError
from drivetrain.sim.world import REGIONS, get_region, plan_route
from drivetrain.sim.world.routes import HIGHWAY, URBAN, bearing_deg, haversine_m
from drivetrain.sim.world.vin import check_digit, make_vin


def test_haversine_gives_the_known_paris_berlin_distance() -> None:
    paris, berlin = REGIONS["EU"].city("Paris"), REGIONS["EU"].city("Berlin")
    d = haversine_m(paris.latitude, paris.longitude, berlin.latitude, berlin.longitude)
    assert float(d) / 1000 == pytest.approx(878, abs=5)
    assert float(bearing_deg(0.0, 0.0, 1.0, 0.0)) == pytest.approx(0.0)
    assert float(bearing_deg(0.0, 0.0, 0.0, 1.0)) == pytest.approx(90.0)


def test_city_route_starts_and_ends_at_its_places_and_is_road_like() -> None:
    rng = np.random.default_rng(1)
    munich = REGIONS["EU"].city("Munich")
    start = (48.10, 11.50, 530.0)
    end = (48.17, 11.62, 510.0)
    route = plan_route(rng, start, end, hilliness_m=25.0)
    assert (route.lat[0], route.lon[0]) == pytest.approx(start[:2])
    assert (route.lat[-1], route.lon[-1]) == pytest.approx(end[:2], abs=1e-9)
    assert route.alt_m[0] == pytest.approx(530.0) and route.alt_m[-1] == pytest.approx(510.0)
    straight = float(haversine_m(*start[:2], *end[:2]))
    assert 1.0 < route.length_m / straight < 1.6
    assert np.all(np.diff(route.cum_m) > 0) and np.all(np.diff(route.cum_m) < 700)
    assert np.all(np.abs(route.grade) < 0.08)
    assert np.all((route.bearing >= 0) & (route.bearing < 360))
    assert route.road_class[0] == URBAN and route.road_class[-1] == URBAN
    assert (route.road_class != HIGHWAY).all()  # 12 km across town: no motorway
    assert abs(munich.latitude - route.lat.mean()) < 0.2


def test_intercity_route_uses_the_highway_between_urban_ends() -> None:
    rng = np.random.default_rng(2)
    a, b = REGIONS["US"].city("San Francisco"), REGIONS["US"].city("San Jose")
    route = plan_route(
        rng, (a.latitude, a.longitude, a.elevation_m), (b.latitude, b.longitude, b.elevation_m)
    )
    assert route.road_class[0] == URBAN and route.road_class[-1] == URBAN
    assert (route.road_class == HIGHWAY).sum() > route.segments // 3
    assert 65_000 < route.length_m < 110_000


def test_a_route_between_coincident_points_is_refused() -> None:
    with pytest.raises(ValueError, match="apart; expected at least 50 m"):
        plan_route(np.random.default_rng(0), (48.0, 11.0, 0.0), (48.0, 11.0001, 0.0))


def test_regions_have_real_cities_and_unknown_regions_are_refused() -> None:
    assert set(REGIONS) == {"EU", "US", "CN"}
    for region in REGIONS.values():
        assert len(region.cities) >= 5
        for c in region.cities:
            assert -90 < c.latitude < 90 and -180 < c.longitude < 180
    beijing = REGIONS["CN"].city("Beijing")
    january, july = (
        beijing.ambient_c(1_736_755_200.0 + 6 * 3600),
        beijing.ambient_c(1_752_000_000.0 + 6 * 3600),
    )
    assert january < 0.0  # continental winter at 14:00 local
    assert july > 20.0
    with pytest.raises(SimulationConfigError, match="'MARS'"):
        get_region("MARS")
    with pytest.raises(SimulationConfigError, match="no city 'Atlantis'"):
        REGIONS["EU"].city("Atlantis")


def test_vins_are_17_characters_with_a_valid_iso_3779_check_digit() -> None:
    assert check_digit("1M8GDM9AXKP042788") == "X"  # the standard worked example
    vins = {
        make_vin(r, m, i)
        for r in ("EU", "US", "CN")
        for m in ("compact-hatch-50", "midsize-suv-77")
        for i in range(50)
    }
    assert len(vins) == 300
    for vin in vins:
        assert len(vin) == 17 and not set(vin) & set("IOQ")
        assert vin[8] == check_digit(vin)
