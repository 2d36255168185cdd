"""Pure rules: value encoding, desired-value checks, version order, reconciliation decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drivetrain.cloud.twins.models import DesiredItem
from drivetrain.cloud.twins.reconcile import (
    DEFAULT_TTL_S,
    EXPIRED_REASON,
    MAX_TTL_S,
    build_delta,
    check_ttl,
    count_items,
    delta_values,
    effective_item,
    plan_desired,
    rejected_paths,
)
from drivetrain.cloud.twins.values import (
    decode_value,
    encode_value,
    from_ns,
    to_ns,
    validate_desired,
    values_equal,
    version_key,
)
from drivetrain.core.errors import (
    BadInputError,
    SignalRangeError,
    SignalTypeError,
    UnknownSignalError,
)
from drivetrain.core.vss import builtin_catalog

CATALOG = builtin_catalog()
LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
TEMP = "Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _item(path: str = LIMIT, value: object = 80, **changes: object) -> DesiredItem:
    fields: dict[str, object] = {
        "path": path, "value": value, "set_version": 1, "set_at": T0, "set_by": "op",
        "expires_at": T0 + timedelta(days=7), "status": "pending",
    }
    fields.update(changes)
    return DesiredItem(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False, 0, -7, 2**40, 3.25, "", "ECO"])
def test_scalars_round_trip_through_their_stored_columns(value: object) -> None:
    stored = encode_value(value, where="test")
    assert decode_value(stored.kind, stored.num, stored.text) == value
    assert type(decode_value(stored.kind, stored.num, stored.text)) is type(value)


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), [1], {"a": 1}, b"x"])
def test_non_scalar_or_non_finite_values_are_refused(value: object) -> None:
    with pytest.raises(BadInputError, match="test"):
        encode_value(value, where="test")


def test_float_equality_tolerates_scaling_noise_but_not_real_differences() -> None:
    assert values_equal(21.4999999, 21.5) and values_equal(80.0, 80) and values_equal(1.0, True)
    assert not values_equal(79.0, 80) and not values_equal("80", 80) and not values_equal(None, 1)


def test_only_scalar_actuators_can_be_desired() -> None:
    assert validate_desired(CATALOG, LIMIT, 80.0) == 80
    with pytest.raises(BadInputError, match="is a VSS sensor; only actuators"):
        validate_desired(CATALOG, "Vehicle.Speed", 50)
    with pytest.raises(BadInputError, match="is a VSS attribute"):
        validate_desired(CATALOG, "Vehicle.Cabin.DoorCount", 4)
    with pytest.raises(UnknownSignalError, match="Vehicle.Nope"):
        validate_desired(CATALOG, "Vehicle.Nope", 1)


def test_desired_values_must_fit_the_signal() -> None:
    with pytest.raises(SignalRangeError, match=r"outside \[0, 100\]"):
        validate_desired(CATALOG, LIMIT, 120)
    with pytest.raises(SignalTypeError, match="uint8"):
        validate_desired(CATALOG, LIMIT, "eighty")
    with pytest.raises(SignalTypeError, match="remove it"):
        validate_desired(CATALOG, LIMIT, None)


@pytest.mark.parametrize(
    "ordered",
    [
        ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
         "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"],  # the Semantic Versioning 2.0.0 §11 example
        ["2.3.9", "2.4.0-rc.1", "2.4", "2.10.0", "10.0.0"],
        ["v1", "1.0.1", "1.1"],
    ],
)
def test_version_keys_sort_as_versions(ordered: list[str]) -> None:
    keys = [version_key(v) for v in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_version_keys_ignore_build_metadata_and_trailing_zeros() -> None:
    assert version_key("2.4.0+build.7") == version_key("2.4") == version_key("v2.4.0.0")


@pytest.mark.parametrize("bad", ["", "latest", "1..2", "1.2.3.4.5", "-1", "1.2-", "1.2 "])
def test_malformed_versions_are_refused(bad: str) -> None:
    with pytest.raises(BadInputError, match="not a version"):
        version_key(bad)


def test_nanosecond_timestamps_round_trip_to_the_microsecond() -> None:
    ts = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert to_ns(ts, where="t") == 1772366400123456000 and from_ns(to_ns(ts, where="t")) == ts
    with pytest.raises(BadInputError, match="timezone-aware"):
        to_ns(datetime(2026, 1, 1), where="t")


def test_ttl_defaults_to_seven_days_and_is_bounded() -> None:
    assert check_ttl(None) == DEFAULT_TTL_S == 604_800
    for bad in (0, -1, MAX_TTL_S + 1, True, 1.5):
        with pytest.raises(BadInputError, match="ttl_s"):
            check_ttl(bad)  # type: ignore[arg-type]


def test_a_new_value_is_pending_unless_the_vehicle_already_reports_it() -> None:
    plan = plan_desired(
        {}, {LIMIT: 80, TEMP: 21.5}, replace_all=False, reported={TEMP: 21.5}, version=3,
        now=T0, actor="op", ttl_s=60,
    )
    by_path = {item.path: item for item in plan.upserts}
    assert by_path[LIMIT].status == "pending" and by_path[LIMIT].set_version == 3
    assert by_path[LIMIT].expires_at == T0 + timedelta(seconds=60)
    assert by_path[TEMP].status == "converged" and by_path[TEMP].time_to_converge_s == 0.0


def test_rewriting_the_same_value_keeps_the_item_but_retries_a_failed_one() -> None:
    pending = _item(status="pending")
    failed = _item(TEMP, 21.0, status="failed", reason="rejected")
    plan = plan_desired(
        {LIMIT: pending, TEMP: failed}, {LIMIT: 80, TEMP: 21.0}, replace_all=False, reported={},
        version=2, now=T0, actor="op", ttl_s=60,
    )
    assert [item.path for item in plan.upserts] == [TEMP]
    assert plan.upserts[0].status == "pending"


def test_none_removes_a_path_and_replace_removes_every_unnamed_path() -> None:
    current = {LIMIT: _item(), TEMP: _item(TEMP, 20.0)}
    merge = plan_desired(current, {LIMIT: None}, replace_all=False, reported={}, version=2,
                         now=T0, actor="op", ttl_s=60)
    assert merge.deletes == (LIMIT,) and not merge.upserts
    replace = plan_desired(current, {LIMIT: 70}, replace_all=True, reported={}, version=2,
                           now=T0, actor="op", ttl_s=60)
    assert replace.deletes == (TEMP,) and [i.value for i in replace.upserts] == [70]


def test_stale_desired_values_expire_and_leave_the_delta() -> None:
    item = _item(expires_at=T0 + timedelta(hours=1))
    assert effective_item(item, T0).status == "pending"
    expired = effective_item(item, T0 + timedelta(hours=1))
    assert (expired.status, expired.reason) == ("failed", EXPIRED_REASON)
    assert delta_values([item], T0 + timedelta(hours=2)) == {}
    assert delta_values([item, _item(TEMP, 21.0, status="converged")], T0) == {LIMIT: 80}


def test_the_delta_message_carries_pending_values_and_their_earliest_expiry() -> None:
    soon = T0 + timedelta(hours=1)
    delta = build_delta(
        5, [_item(expires_at=soon), _item(TEMP, 19.5), _item("Vehicle.Cabin.Light.IsDomeOn",
                                                              True, status="failed")], T0,
    )
    assert delta.version == 5 and delta.values == {LIMIT: 80, TEMP: 19.5}
    assert delta.expires_ns == to_ns(soon, where="t")


def test_a_rejection_fails_only_pending_items_set_at_or_before_its_version() -> None:
    items = [
        _item(set_version=2), _item(TEMP, 20.0, set_version=4),
        _item("Vehicle.Cabin.Light.IsDomeOn", True, set_version=1, status="converged"),
    ]
    assert rejected_paths(items, 3) == (LIMIT,)


def test_counts_use_status_at_the_given_time_with_time_to_converge() -> None:
    items = [
        _item(status="converged", status_at=T0 + timedelta(seconds=4)),
        _item(TEMP, 20.0, status="converged", status_at=T0 + timedelta(seconds=10)),
        _item("Vehicle.Cabin.Light.IsDomeOn", True, expires_at=T0 + timedelta(seconds=1)),
    ]
    counts = count_items(items, T0 + timedelta(seconds=30))
    assert (counts.pending, counts.converged, counts.failed) == (0, 2, 1)
    assert counts.time_to_converge_p50_s == 7.0 and counts.time_to_converge_max_s == 10.0


def test_rewriting_a_converged_value_the_vehicle_drifted_from_sends_it_again() -> None:
    converged = _item(status="converged", status_at=T0)
    kept = plan_desired({LIMIT: converged}, {LIMIT: 80}, replace_all=False, reported={LIMIT: 80},
                        version=2, now=T0, actor="op", ttl_s=60)
    assert not kept.changes
    drifted = plan_desired({LIMIT: converged}, {LIMIT: 80}, replace_all=False,
                           reported={LIMIT: 90}, version=2, now=T0, actor="op", ttl_s=60)
    assert [(i.status, i.set_version) for i in drifted.upserts] == [("pending", 2)]
