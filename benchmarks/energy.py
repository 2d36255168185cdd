"""Benchmark: per-trip energy prediction on real Peugeot e-208 trips, leave one trip out.

    python benchmarks/energy.py [--quick] [--data-dir DIR]

Each of the 29 drives in ``../shared/data/ev-trips/peugeot-e208`` (charging logs and the
whole-day file excluded) is predicted by ``HybridEnergyModel`` (the simulator's physics times a
Huber-regressed correction on ambient temperature, with a CV+ 80 % interval) fitted on the
other 28, and by the physics alone (the baseline, same run, same inputs: speed profile,
ambient temperature, HVAC at the owner's 17 °C, start SoC, pack temperature, SoH; the logs
carry no elevation, so grade is 0 for both). ``--quick`` uses the first 12 trips.

Figures (fractions): ``median_ape`` (median |predicted/measured - 1|), ``mape`` (mean),
``total_error`` (sum predicted / sum measured - 1), ``coverage_80`` (share of trips inside
their 80 % interval; the physics gives no interval: null). ``cpu_s`` is CPU seconds of the
whole leave-one-out run. Last stdout line: one JSON object with ``ours`` and ``baseline``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from drivetrain.cloud.insights.energy import TripInput, leave_one_trip_out, score
from drivetrain.cloud.insights.trip_logs import e208_trip_files, read_obd_trip

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = PROJECT_ROOT.parent / "shared" / "data" / "ev-trips" / "peugeot-e208"
err = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the first 12 trips only")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR, help="e-208 trip folder")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        err.print(f"no trip folder at {args.data_dir} (needs ../shared/data/ev-trips)")
        return 2
    files = e208_trip_files(args.data_dir)[: 12 if args.quick else None]
    started = time.process_time()
    with err.status(f"reading {len(files)} trips"):
        records = [read_obd_trip(p) for p in files]
    trips = [TripInput.from_record(r) for r in records]
    measured = np.array([r.measured_energy_kwh() for r in records])
    with err.status("leave one trip out: physics, then the hybrid model fitted 29 x 29 times"):
        predictions, physics = leave_one_trip_out(trips, measured)
    cpu_s = time.process_time() - started
    ours = score(
        np.array([p.kwh for p in predictions]), measured,
        np.array([p.low_kwh for p in predictions]), np.array([p.high_kwh for p in predictions]),
    )  # fmt: skip
    baseline = score(physics, measured)
    table = Table(title="e-208 trips, leave one trip out: predicted vs measured battery energy")
    for column in ("trip", "km", "measured kWh", "physics", "ours", "80 % interval", "inside"):
        table.add_column(column, justify="left" if column == "trip" else "right")
    for p, m in zip(predictions, measured, strict=True):
        inside = p.low_kwh <= m <= p.high_kwh
        table.add_row(
            p.name[:40], f"{p.distance_km:.1f}", f"{m:.2f}", f"{p.physics_kwh:.2f} ({p.physics_kwh / m - 1:+.0%})",
            f"{p.kwh:.2f} ({p.kwh / m - 1:+.0%})", f"{p.low_kwh:.2f}-{p.high_kwh:.2f}", "yes" if inside else "NO",
        )  # fmt: skip
    console = Console(highlight=False, width=140)
    console.print(table)
    for name, s in (("ours", ours), ("physics", baseline)):
        cover = "n/a" if s.coverage_80 is None else f"{s.coverage_80:.0%}"
        console.print(
            f"{name:8s} median |error| {s.median_ape:.1%}, mean {s.mape:.1%}, total {s.total_error:+.1%}, "
            f"inside 80 % interval {cover}"
        )
    result = {
        "trips": len(trips),
        "km": round(sum(t.distance_km for t in trips), 1),
        "ours": ours.to_dict(),
        "baseline": baseline.to_dict(),
        "median_ape_ratio": round(baseline.median_ape / ours.median_ape, 3),
        "cpu_s": round(cpu_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
