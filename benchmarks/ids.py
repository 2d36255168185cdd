"""Benchmark: the in-vehicle intrusion detector on real attacks (ORNL ROAD) and on the
simulator's six attack classes, learned from benign traffic only.

    python benchmarks/ids.py [--quick] [--data-dir DIR]

ROAD, leave one capture out: for each capture in ``../shared/data/road``, train on the benign
rows of the others and score it per frame. Simulator: a compact BEV's benign drives train the
model; flooding, fuzzing (random and known ids), replay, spoofing and masquerade are injected
into an unseen drive. Each is scored by our detector and by the baseline measured in the same
run — the simple general detector (per-id timing from the last accepted frame, unseen byte
values and bit novelty, calibrated on held-out benign segments), i.e. the same pipeline without
the cross-signal, bit-flip and counter detectors. ``--quick`` trains on two ROAD captures and
scores one (max_engine_coolant_temp_attack_masquerade): a check of the output's shape, whose
figures say little (two captures of one drive are too little benign traffic to calibrate on).

Figures per capture: ``auroc``, ``precision``, ``recall``, ``f1`` (threshold fixed from benign
data), ``latency_s`` (attack start to first alert), ``false_alerts_per_h``, ``us_per_frame``
(scoring only, batches of 4,096 frames, one core). Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

from drivetrain.core.can import FrameBatch, read_capture
from drivetrain.edge import score_capture, train_model
from drivetrain.sim.can import (
    FrameSynthesizer,
    LabelledFrames,
    flood,
    fuzz,
    load_vehicle_can,
    masquerade,
    replay,
    spoof,
)
from drivetrain.sim.can.throughput import random_vss_values

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = PROJECT_ROOT.parent / "shared" / "data" / "road"
BASELINE = ("unknown_id", "byte_value", "constant_bit")
err = Console(stderr=True)


def _road(path: Path) -> tuple[FrameBatch, np.ndarray]:
    capture = read_capture(path)
    assert capture.labels is not None
    order = np.argsort(capture.frames.timestamp_s, kind="stable")
    names = capture.labels.names
    attack = capture.labels.codes[order] != (names.index("Benign") if "Benign" in names else -1)
    return capture.frames.take(order), attack


def road(files: list[Path], tests: list[Path]) -> dict[str, dict[str, dict[str, object]]]:
    loaded = {f: _road(f) for f in sorted({*files, *tests})}
    out: dict[str, dict[str, dict[str, object]]] = {"ours": {}, "baseline": {}}
    for test in tests:
        benign = [fr.take(~att) for f, (fr, att) in loaded.items() if f != test and f in files]
        frames, attack = loaded[test]
        for name, detectors in (("ours", None), ("baseline", BASELINE)):
            err.log(f"{test.stem}: training {name}")
            model = train_model(benign) if detectors is None else train_model(benign, detectors=detectors)
            out[name][test.stem] = score_capture(model, frames, attack).to_dict()
    return out


def simulator() -> dict[str, dict[str, dict[str, object]]]:
    can = load_vehicle_can("suv_bev")
    synth = FrameSynthesizer(can.database, can.signal_map, seed=21)
    values = random_vss_values(synth, 1, np.random.default_rng(4))

    def drive(start: float, seconds: float) -> LabelledFrames:
        return LabelledFrames.benign(synth.synthesize(start, start + seconds, values).for_vehicle(0))

    benign = [drive(s, 20.0).frames for s in (0.0, 100.0, 200.0)]
    base = drive(300.0, 20.0)
    rng = np.random.default_rng(7)
    layouts = synth.bus_layout
    attacks = {
        "flooding": flood(base, rng, start_s=305.0, duration_s=2.0),
        "fuzzing_random_ids": fuzz(base, rng, start_s=305.0, duration_s=2.0),
        "fuzzing_known_ids": fuzz(base, rng, start_s=305.0, duration_s=2.0, ids="known"),
        "replay": replay(base, rng, capture_start_s=301.0, capture_end_s=303.0, start_s=310.0, can_ids=[0x1A1]),
        "spoofing": spoof(base, rng, layouts, message="ESC_VehSpeed", values={"VehSpeed": 55.0},
                          start_s=305.0, duration_s=4.0),
        "masquerade": masquerade(base, rng, layouts, message="ESC_VehSpeed", values={"VehSpeed": 55.0},
                                 start_s=305.0, duration_s=4.0),
    }
    out: dict[str, dict[str, dict[str, object]]] = {"ours": {}, "baseline": {}}
    for name, detectors in (("ours", None), ("baseline", BASELINE)):
        model = train_model(benign) if detectors is None else train_model(benign, detectors=detectors)
        for attack, traffic in attacks.items():
            out[name][attack] = score_capture(model, traffic.frames, traffic.is_attack).to_dict()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="train on two ROAD captures, score one")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR, help="folder of ROAD CSV captures")
    args = parser.parse_args(argv)
    files = sorted(args.data_dir.glob("*.csv"))
    if len(files) < 2:
        print(f"needs ROAD captures (*.csv) in {args.data_dir}", file=sys.stderr)
        return 2
    if args.quick:
        quick_test = [f for f in files if f.stem == "max_engine_coolant_temp_attack_masquerade"] or files[-1:]
        train = [f for f in files if f not in quick_test][:2]
        figures = {"road": road(train, quick_test), "simulator": simulator()}
    else:
        figures = {"road": road(files, files), "simulator": simulator()}
    for scope, results in figures.items():
        for name, captures in results.items():
            for stem, c in captures.items():
                err.print(f"{scope:9} {name:8} {stem:42} auroc {c['auroc'] or 0:.3f} f1 {c['f1']:.2f} "
                          f"us/frame {c['us_per_frame']:.1f} FA/h {c['false_alerts_per_h']:.0f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
