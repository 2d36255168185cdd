"""Benchmark: smart charging (LP, HiGHS) against charging immediately, per vehicle and per site.

    python benchmarks/charging.py [--quick] [--vehicles N] [--site-limit-kw KW] [--seed S]

A depot of ``--vehicles`` cars (default 40; ``--quick`` 12) plugs in between 16:00 and 21:00
with 15-45 % charge, each needing 90 % by its departure between 06:00 and 08:00; 11 kW
chargers, 50-77 kWh packs; a time-of-use tariff (0.12 /kWh 00-06, 0.25 06-17 and 21-24, 0.40
17-21). Two cases: every car planned alone (no site limit; the saving per vehicle), and the
whole depot behind one grid connection of ``--site-limit-kw`` (default: 35 % of the sum of
charger powers). The baseline, in the same run: each car at full power from plug-in to target,
the site limit shared in proportion to demand.

Last stdout line: one JSON object — costs, ``saving_fraction`` (fleet, shared limit),
``per_vehicle_saving_median``, hours above 80 % charge for both, targets missed, LP CPU
seconds, ``cost_ratio`` (immediate / smart, higher is better), ``peak_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
from rich.console import Console

from drivetrain.cloud.insights.charging import (
    ChargingComparison,
    ChargingSession,
    Tariff,
    charge_immediately,
    plan_site,
)

START_HOUR, SLOT_H, SLOTS = 16.0, 0.25, 64  # 16:00 to 08:00
BANDS = [(0.0, 6.0, 0.12), (6.0, 17.0, 0.25), (17.0, 21.0, 0.40), (21.0, 24.0, 0.25)]
err = Console(stderr=True)


def depot(vehicles: int, seed: int) -> list[ChargingSession]:
    rng = np.random.default_rng(seed)
    return [
        ChargingSession(
            vehicle=f"car-{i:03d}",
            capacity_kwh=float(rng.choice([50.0, 58.0, 77.0])),
            soc_now=float(rng.uniform(0.15, 0.45)),
            soc_target=0.9,
            plug_in_slot=int(rng.integers(0, 20)),  # 16:00-21:00
            departure_slot=int(rng.integers(56, 65)),  # 06:00-08:00
            max_kw=11.0,
        )
        for i in range(vehicles)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 vehicles")
    parser.add_argument("--vehicles", type=int, help="cars at the depot (default 40; quick 12)")
    parser.add_argument("--site-limit-kw", type=float, help="shared grid limit (default 35 %% of chargers)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    n = args.vehicles or (12 if args.quick else 40)
    sessions = depot(n, args.seed)
    tariff = Tariff.time_of_use(START_HOUR, SLOTS, SLOT_H, BANDS)
    limit = args.site_limit_kw if args.site_limit_kw is not None else 0.35 * 11.0 * n

    with err.status(f"planning {n} cars alone"):
        started = time.process_time()
        alone = [plan_site([s], tariff).plans[0] for s in sessions]
        alone_cpu = time.process_time() - started
        immediate_alone = charge_immediately(sessions, tariff).plans
    per_vehicle = np.array([b.cost - a.cost for a, b in zip(alone, immediate_alone, strict=True)])
    per_vehicle_fraction = per_vehicle / np.array([b.cost for b in immediate_alone])

    with err.status(f"planning the depot under {limit:.0f} kW"):
        started = time.process_time()
        smart = plan_site(sessions, tariff, site_limit_kw=limit)
        site_cpu = time.process_time() - started
    comparison = ChargingComparison(smart, charge_immediately(sessions, tariff, site_limit_kw=limit))

    def missed(plans: tuple[object, ...] | list[object]) -> int:
        return sum(1 for p in plans if p.shortfall_kwh > 0.01)  # type: ignore[attr-defined]

    console = Console(highlight=False)
    console.print(
        f"per vehicle (alone): median saving {np.median(per_vehicle):.2f} "
        f"({np.median(per_vehicle_fraction):.0%}), range {per_vehicle.min():.2f}-{per_vehicle.max():.2f}"
    )
    console.print(
        f"depot of {n} under {limit:.0f} kW: smart {smart.cost:.2f} vs immediate "
        f"{comparison.immediate.cost:.2f} ({comparison.saving_fraction:.0%} saved); peak "
        f"{smart.peak_kw:.0f} vs {comparison.immediate.peak_kw:.0f} kW; hours above 80 %: "
        f"{np.mean([p.hours_above_high_soc for p in smart.plans]):.1f} vs "
        f"{np.mean([p.hours_above_high_soc for p in comparison.immediate.plans]):.1f} per car; "
        f"targets missed {missed(smart.plans)} vs {missed(comparison.immediate.plans)}"
    )
    result = {
        "vehicles": n,
        "site_limit_kw": round(limit, 1),
        "smart_cost": round(smart.cost, 2),
        "immediate_cost": round(comparison.immediate.cost, 2),
        "saving": round(comparison.saving, 2),
        "saving_fraction": round(comparison.saving_fraction, 4),
        "cost_ratio": round(comparison.immediate.cost / smart.cost, 3),
        "per_vehicle_saving_median": round(float(np.median(per_vehicle)), 3),
        "per_vehicle_saving_fraction_median": round(float(np.median(per_vehicle_fraction)), 4),
        "smart_hours_above_80_per_car": round(float(np.mean([p.hours_above_high_soc for p in smart.plans])), 2),
        "immediate_hours_above_80_per_car": round(
            float(np.mean([p.hours_above_high_soc for p in comparison.immediate.plans])), 2
        ),
        "smart_targets_missed": missed(smart.plans),
        "immediate_targets_missed": missed(comparison.immediate.plans),
        "smart_peak_kw": round(smart.peak_kw, 1),
        "lp_cpu_s_site": round(site_cpu, 3),
        "lp_cpu_s_per_vehicle": round(alone_cpu / n, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
