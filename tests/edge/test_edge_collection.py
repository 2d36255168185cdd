"""The collection engine (pure): sampling, trigger windows, minimum intervals, priorities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.core.errors import VersionConflictError
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge import Campaign, CollectionEngine, CollectionResult, Samples

CATALOG = builtin_catalog()
SPEED = "Vehicle.Speed"
TEMP = "Vehicle.Powertrain.TractionBattery.Temperature.Average"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000_000_000


def campaign(**fields: Any) -> Campaign:
    data = {"id": "c", "version": 1, "signals": [SPEED, TEMP, SOC], **fields}
    return Campaign.from_dict(data, CATALOG)


def drive(duration_s: float = 20.0, hot: tuple[float, float] = (8.0, 10.0)) -> Samples:
    """Speed every 10 ms (130 km/h during ``hot``, else 100), battery temperature 50 °C and
    state of charge every 100 ms."""
    fast = np.arange(0, int(duration_s * 100)) * 10 * MS
    slow = np.arange(0, int(duration_s * 10)) * 100 * MS
    speed = np.where((fast >= hot[0] * S) & (fast < hot[1] * S), 130.0, 100.0)
    return Samples(
        (SPEED, TEMP, SOC),
        np.r_[np.zeros(len(fast)), np.ones(len(slow)), np.full(len(slow), 2)].astype(np.int32),
        np.r_[fast, slow, slow] + T0,
        np.r_[speed, np.full(len(slow), 50.0), np.full(len(slow), 80.0)],
    )


def run(engine: CollectionEngine, samples: Samples, tick_s: float = 1.0) -> list[CollectionResult]:
    results = []
    end = int(samples.ts_ns.max()) + 1
    start = T0
    while start < end:
        stop = start + int(tick_s * S)
        rows = np.flatnonzero((samples.ts_ns >= start) & (samples.ts_ns < stop))
        results.append(engine.process(samples.take(rows), stop))
        start = stop
    return results


def collected(results: list[CollectionResult]) -> dict[str, list[float]]:
    """Seconds since T0 of every collected sample, per path."""
    out: dict[str, list[float]] = {}
    for result in results:
        for c in result.collected:
            for path, ts in zip(c.samples.path_of_rows(), c.samples.ts_ns, strict=True):
                out.setdefault(path, []).append((int(ts) - T0) / S)
    return {p: sorted(v) for p, v in out.items()}


def test_time_based_sampling_takes_the_first_sample_of_each_period_slot() -> None:
    engine = CollectionEngine([campaign(signal_period_ms={SPEED: 500})])
    got = collected(run(engine, drive(), tick_s=0.3))
    assert got[SPEED] == [i * 0.5 for i in range(40)]
    assert got[TEMP] == [float(i) for i in range(20)]


def test_default_campaign_sends_every_signal_at_one_hertz_when_none_is_installed() -> None:
    results = run(CollectionEngine(), drive(duration_s=5))
    assert all(c.campaign_id == "default" for r in results for c in r.collected)
    assert collected(results) == {p: [0.0, 1.0, 2.0, 3.0, 4.0] for p in (SPEED, TEMP, SOC)}


def test_trigger_captures_pre_and_post_windows_and_reports_the_rising_edge() -> None:
    hot = campaign(
        period_ms=None,
        triggers=[
            {"name": "hot", "expression": f"{SPEED} > 120 and {TEMP} > 45", "pre_s": 2, "post_s": 3}
        ],
    )
    results = run(CollectionEngine([hot]), drive(), tick_s=0.25)
    got = collected(results)
    # The condition holds from 8.00 s to 9.99 s: window [6.00, 12.99].
    assert got[SPEED][0] == 6.0 and got[SPEED][-1] == pytest.approx(12.99)
    assert len(got[SPEED]) == 700
    assert got[TEMP] == pytest.approx([6.0 + 0.1 * i for i in range(70)])
    fired = [f for r in results for f in r.fired]
    assert [(f.campaign_id, f.trigger, (f.ts_ns - T0) / S) for f in fired] == [("c", "hot", 8.0)]


def test_minimum_interval_thins_a_signal_within_a_window() -> None:
    hot = campaign(
        period_ms=None,
        min_interval_ms={SPEED: 250},
        triggers=[{"name": "hot", "expression": f"{SPEED} > 120", "pre_s": 1, "post_s": 1}],
    )
    got = collected(run(CollectionEngine([hot]), drive(), tick_s=0.7))
    # The condition holds from 8.00 s to 9.99 s: window [7.00, 10.99].
    assert got[SPEED] == pytest.approx([7.0 + 0.25 * i for i in range(16)])
    assert min(np.diff(got[SPEED])) >= 0.25 - 1e-9


def test_trigger_never_fires_while_a_signal_it_names_has_no_value() -> None:
    waiting = campaign(
        period_ms=None,
        triggers=[
            {"name": "w", "expression": f"{SPEED} > 120 or {SOC} < 200", "pre_s": 0, "post_s": 0}
        ],
    )
    only_speed = drive().take(np.flatnonzero(drive().path_index == 0))
    results = run(CollectionEngine([waiting]), only_speed)
    assert not any(r.fired or r.collected for r in results)


def test_a_sample_selected_by_several_campaigns_is_sent_once_by_the_highest_priority() -> None:
    low = campaign(id="low", priority=2)
    high = campaign(id="high", priority=7, signals=[SPEED], period_ms=2000)
    results = run(CollectionEngine([low, high]), drive(duration_s=4))
    by_campaign: dict[str, set[tuple[str, int]]] = {}
    for r in results:
        for c in r.collected:
            rows = set(zip(c.samples.path_of_rows(), c.samples.ts_ns.tolist(), strict=True))
            by_campaign.setdefault(c.campaign_id, set()).update(rows)
            assert c.priority == {"low": 2, "high": 7}[c.campaign_id]
    assert by_campaign["high"] == {(SPEED, T0), (SPEED, T0 + 2 * S)}
    assert not by_campaign["high"] & by_campaign["low"]
    assert (SPEED, T0 + S) in by_campaign["low"] and (SPEED, T0) not in by_campaign["low"]


def test_older_or_equal_versions_never_replace_a_newer_campaign() -> None:
    engine = CollectionEngine()
    assert engine.install(campaign(version=3)) == "installed"
    for version in (2, 3):
        with pytest.raises(
            VersionConflictError, match=f"version {version} is not newer than version 3"
        ):
            engine.install(campaign(version=version))
    assert engine.install(campaign(version=4, period_ms=500)) == "replaced"
    assert engine.campaigns[0].period_ms == 500
    assert engine.install(campaign(version=5, status="cancelled")) == "cancelled"
    assert engine.campaigns == ()
    with pytest.raises(VersionConflictError):
        engine.install(campaign(version=4))
    assert engine.versions == {"c": 5}


def test_expired_campaigns_are_removed_and_the_default_resumes() -> None:
    engine = CollectionEngine([campaign(expires_ns=T0 + 2 * S, signals=[SPEED], period_ms=100)])
    results = run(engine, drive(duration_s=4))  # ticks end at 1, 2, 3, 4 s
    assert [r.expired for r in results] == [(), ("c",), (), ()]
    assert {c.campaign_id for c in results[0].collected} == {"c"}
    assert {c.campaign_id for c in results[1].collected} == {"default"}


def test_history_is_bounded_by_the_longest_pre_window() -> None:
    hot = campaign(
        period_ms=None,
        triggers=[{"name": "h", "expression": f"{SPEED} > 500", "pre_s": 2, "post_s": 0}],
    )
    engine = CollectionEngine([hot])
    run(engine, drive(duration_s=30), tick_s=0.5)
    # 2 s (+ one tick) of speed at 100 Hz and two 10 Hz signals, never the whole drive.
    assert engine.history_rows <= 2.5 * (100 + 10 + 10)


@settings(max_examples=40, deadline=None)
@given(
    tick_s=st.sampled_from([0.01, 0.05, 0.13, 0.5, 1.0, 3.7, 25.0]),
    pre_s=st.sampled_from([0, 0.5, 2.0]),
    post_s=st.sampled_from([0, 0.3, 3.0]),
    min_interval=st.sampled_from([0, 30, 100]),
    hot=st.tuples(st.floats(0, 15), st.floats(0.01, 5)),
)
def test_output_does_not_depend_on_how_samples_are_split_into_ticks(
    tick_s: float, pre_s: float, post_s: float, min_interval: int, hot: tuple[float, float]
) -> None:
    def make() -> CollectionEngine:
        return CollectionEngine(
            [
                campaign(
                    id="a",
                    period_ms=700,
                    min_interval_ms={SPEED: min_interval},
                    triggers=[
                        {
                            "name": "t",
                            "expression": f"{SPEED} > 120",
                            "pre_s": pre_s,
                            "post_s": post_s,
                        }
                    ],
                ),
                campaign(id="b", priority=4, signals=[SOC], period_ms=300),
            ]
        )

    samples = drive(hot=(hot[0], hot[0] + hot[1]))
    whole = collected(run(make(), samples, tick_s=100.0))
    split = collected(run(make(), samples, tick_s=tick_s))
    assert split == whole
