"""A campaign's cap on samples per signal: the earliest samples up to the cap, per signal,
across ticks; a new version counts afresh; signals without a cap are untouched."""

from __future__ import annotations

from typing import Any

from drivetrain.core.vss import builtin_catalog
from drivetrain.edge.campaigns import Campaign
from drivetrain.edge.collection import CollectionEngine
from drivetrain.edge.samples import Samples

T0 = 1_800_000_000_000_000_000
SPEED, SOC = "Vehicle.Speed", "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def _campaign(version: int, cap: Any) -> Campaign:
    return Campaign.from_dict({"id": "capped", "version": version, "period_ms": 100,
                               "signals": [SPEED, SOC], "max_samples_per_signal": cap},
                              builtin_catalog())


def _tick(engine: CollectionEngine, start: int, count: int) -> dict[str, list[int]]:
    ts = [T0 + (start + i) * 100_000_000 for i in range(count)]
    samples = Samples.concat([Samples.from_values({SPEED: 50.0 + i, SOC: 80.0}, t)
                              for i, t in enumerate(ts)])
    out: dict[str, list[int]] = {}
    for collected in engine.process(samples, ts[-1]).collected:
        for path, t in zip(collected.samples.path_of_rows().tolist(),
                           collected.samples.ts_ns.tolist(), strict=True):
            out.setdefault(path, []).append(t)
    return out


def test_a_campaign_sends_at_most_its_cap_per_signal_the_earliest_first() -> None:
    engine = CollectionEngine([_campaign(1, {SPEED: 3})])
    first = _tick(engine, 0, 2)
    second = _tick(engine, 2, 5)
    assert len(first[SPEED]) + len(second.get(SPEED, [])) == 3
    assert second[SPEED] == [T0 + 2 * 100_000_000]
    assert len(first[SOC]) + len(second[SOC]) == 7  # no cap on this signal


def test_one_number_caps_every_signal_and_a_new_version_counts_afresh() -> None:
    engine = CollectionEngine([_campaign(1, 2)])
    assert {p: len(t) for p, t in _tick(engine, 0, 5).items()} == {SPEED: 2, SOC: 2}
    assert _tick(engine, 5, 3) == {}
    engine.install(_campaign(2, 2))
    assert {p: len(t) for p, t in _tick(engine, 8, 3).items()} == {SPEED: 2, SOC: 2}
