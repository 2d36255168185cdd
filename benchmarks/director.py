"""Director metadata for a fleet: per-vehicle targets, snapshot and timestamp, signed.

    python benchmarks/director.py [--quick] [--vehicles N] [--baseline-sample M]

Ours: ``Director.assign_many`` for ``--vehicles`` vehicles (default 100,000; ``--quick``:
2,000), each with two ECUs (BMS and ADAS builds from the Image repository): every vehicle's
repository is created with its root, and targets, snapshot and timestamp are signed (Ed25519)
and written — what the Director does when a rollout wave is assigned.

Baseline: the straightforward way with python-tuf's Metadata API, per vehicle — load the
signing keys from their PEM files, build targets/snapshot/timestamp, sign, and ``to_file`` with
the default serializer — on ``--baseline-sample`` vehicles (default 500; quick 200), as a rate.

Progress on stderr; the last stdout line is one JSON object: ``vehicles``, ``seconds``,
``vehicles_per_s``, ``signatures_per_s``, ``baseline_vehicles_per_s`` and ``ratio``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets, Timestamp

from drivetrain.cloud.ota import EcuAssignment, OtaLayout

ECUS = (("BMS-001", "bms-v2", "bms/bms-2.6.1.bin"), ("ADAS-001", "adas-v1", "adas/adas-5.1.bin"))


def _vin(i: int) -> str:
    return f"BENCH{i:012d}"


def _layout(root: Path) -> OtaLayout:
    layout = OtaLayout.under(root)
    layout.init({"root": (2, 3)})
    images = layout.images()
    for _, hw, name in ECUS:
        images.add_image(name, name.encode() * 1000, hardware_id=hw, release_counter=7,
                         version="x")
    return layout


def ours(layout: OtaLayout, vehicles: int) -> float:
    director, images = layout.director(), layout.images()
    orders = {_vin(i): [EcuAssignment(f"{s}-{i}", hw, name) for s, hw, name in ECUS]
              for i in range(vehicles)}
    start = time.perf_counter()
    chunk = 5_000
    vins = list(orders)
    for k in range(0, vehicles, chunk):
        director.assign_many({v: orders[v] for v in vins[k:k + chunk]}, images)
        print(f"  {min(k + chunk, vehicles):,} / {vehicles:,} vehicles signed", file=sys.stderr)
    return time.perf_counter() - start


def baseline(layout: OtaLayout, vehicles: int, out: Path) -> float:
    store = layout.director_keys
    roles = store.roles()
    pems = {role: [(store.path / "online" / f"{k.keyid}.pem", k) for k in roles[role].keys]
            for role in ("targets", "snapshot", "timestamp")}
    image_targets = layout.images().repo.targets().signed.targets
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    start = time.perf_counter()
    for i in range(vehicles):
        folder = out / _vin(i)
        folder.mkdir(parents=True)
        signers = {r: [Signer.from_priv_key_uri(f"file2:{p}", k) for p, k in v]
                   for r, v in pems.items()}
        targets = Metadata(Targets(expires=expires))
        for serial, hw, name in ECUS:
            image = image_targets[name]
            entry = type(image)(image.length, dict(image.hashes), name,
                                {"custom": {"hardware_id": hw, "ecu_identifiers": {
                                    f"{serial}-{i}": {"hardware_id": hw}}}})
            targets.signed.targets[name] = entry
        for s in signers["targets"]:
            targets.sign(s, append=True)
        targets.to_file(str(folder / "1.targets.json"))
        snapshot = Metadata(Snapshot(expires=expires, meta={"targets.json": MetaFile(1)}))
        for s in signers["snapshot"]:
            snapshot.sign(s, append=True)
        snapshot.to_file(str(folder / "1.snapshot.json"))
        timestamp = Metadata(Timestamp(expires=expires, snapshot_meta=MetaFile(1)))
        for s in signers["timestamp"]:
            timestamp.sign(s, append=True)
        timestamp.to_file(str(folder / "timestamp.json"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 vehicles, baseline on 200.")
    parser.add_argument("--vehicles", type=int, default=None, help="Vehicles (default 100,000).")
    parser.add_argument("--baseline-sample", type=int, default=None,
                        help="Vehicles the baseline signs (default 500; quick 200).")
    args = parser.parse_args()
    vehicles = args.vehicles or (2_000 if args.quick else 100_000)
    sample = args.baseline_sample or (200 if args.quick else 500)
    with tempfile.TemporaryDirectory(prefix="bench-director-") as tmp:
        layout = _layout(Path(tmp) / "ota")
        print(f"baseline: python-tuf Metadata API per vehicle, {sample:,} vehicles",
              file=sys.stderr)
        base_s = baseline(layout, sample, Path(tmp) / "baseline")
        print(f"ours: Director.assign_many, {vehicles:,} vehicles", file=sys.stderr)
        ours_s = ours(layout, vehicles)
    rate, base_rate = vehicles / ours_s, sample / base_s
    print(f"director metadata: {vehicles:,} vehicles in {ours_s:.1f} s = {rate:,.0f} "
          f"vehicles/s (baseline {base_rate:,.0f}/s)", file=sys.stderr)
    print(json.dumps({
        "vehicles": vehicles, "seconds": round(ours_s, 2), "vehicles_per_s": round(rate, 1),
        "signatures_per_s": round(3 * rate, 1), "baseline_vehicles": sample,
        "baseline_vehicles_per_s": round(base_rate, 1), "ratio": round(rate / base_rate, 2),
    }))


if __name__ == "__main__":
    main()
