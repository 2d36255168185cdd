"""Act "Charging planned": a depot's overnight charging as one LP against charging at once.

A seeded depot of cars plugs in during the evening peak with a time-of-use tariff and a shared
grid limit; the act plans it with HiGHS and checks that every car reaches its target by its
departure, the site never exceeds its limit, the plan costs less than charging immediately,
and cars spend less time above 80 % charge.
"""

from __future__ import annotations

from drivetrain.demo.acts import Act, ActResult, DemoContext

NAME = "charging"
TITLE = "Charging planned: a depot's night under a tariff and a grid limit"
BANDS = [(0.0, 6.0, 0.12), (6.0, 17.0, 0.25), (17.0, 21.0, 0.40), (21.0, 24.0, 0.25)]


def run(context: DemoContext) -> ActResult:
    from drivetrain.cloud.insights.charging import (
        ChargingComparison,
        ChargingSession,
        Tariff,
        charge_immediately,
        plan_site,
    )

    rng = context.rng(NAME)
    cars = max(8, min(60, context.vehicles * 3))
    sessions = [
        ChargingSession(f"car-{i:03d}", float(rng.choice([50.0, 77.0])), float(rng.uniform(0.15, 0.45)), 0.9,
                        int(rng.integers(0, 20)), int(rng.integers(56, 65)), 11.0)
        for i in range(cars)
    ]
    tariff = Tariff.time_of_use(16.0, 64, 0.25, BANDS)
    limit = 0.35 * 11.0 * cars
    context.report(f"planning {cars} cars under {limit:.0f} kW", fraction=0.3)
    comparison = ChargingComparison(
        plan_site(sessions, tariff, site_limit_kw=limit), charge_immediately(sessions, tariff, site_limit_kw=limit)
    )
    smart, immediate = comparison.smart, comparison.immediate
    missed = sum(1 for p in smart.plans if p.shortfall_kwh > 0.01)
    high_smart = sum(p.hours_above_high_soc for p in smart.plans) / cars
    high_now = sum(p.hours_above_high_soc for p in immediate.plans) / cars
    passed = missed == 0 and smart.peak_kw <= limit + 1e-6 and comparison.saving > 0 and high_smart < high_now
    check = (
        f"charging planned: {cars} cars, {comparison.saving_fraction:.0%} cheaper than charging at once "
        f"({smart.cost:.2f} vs {immediate.cost:.2f}), peak {smart.peak_kw:.0f} kW of {limit:.0f}, "
        f"{missed} targets missed, {high_smart:.1f} h vs {high_now:.1f} h above 80 % per car"
    )
    figures = {
        "cars": cars,
        "smart_cost": round(smart.cost, 2),
        "immediate_cost": round(immediate.cost, 2),
        "saving_pct": round(100 * comparison.saving_fraction, 1),
        "peak_kw": round(smart.peak_kw, 1),
        "targets_missed": missed,
        "hours_above_80_per_car": round(high_smart, 2),
    }
    return ActResult(passed=passed, check=check if passed else f"FAILED: {check}", figures=figures)


CHARGING_PLANNED = Act(name=NAME, title=TITLE, run=run, weight=0.3)
