"""The car's report of its features (``entitlements.changed`` → twin reported state): any
JSON is read or refused with a reason naming the field, never an exception of another kind,
and a report reads back as written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain.core.entitlement_twin import (
    FeatureReport,
    feature_of_token_path,
    reports_from_event,
    token_path,
    twin_values,
)
from drivetrain.core.errors import WireFormatError

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
)
_reports = st.builds(
    FeatureReport,
    feature=st.from_regex(r"[a-z][a-z0-9_]{1,20}", fullmatch=True),
    token=st.text(alphabet="abcdefABCDEF0123456789-_.", min_size=1, max_size=80),
    seq=st.integers(0, 2**53 - 1),
    expires_s=st.integers(0, 2**53 - 1),
    state=st.sampled_from(["enabled", "grace", "disabled"]),
)


@given(st.dictionaries(st.sampled_from(["features", "enabled", "x"]), _json, max_size=3))
def test_any_event_data_is_read_or_refused_with_a_reason(data: dict[str, Any]) -> None:
    try:
        reports = reports_from_event(data)
    except WireFormatError as e:
        assert "entitlements.changed event" in str(e)
    else:
        assert all(isinstance(r, FeatureReport) for r in reports)


@given(st.lists(_reports, max_size=5, unique_by=lambda r: r.feature))
def test_a_report_reads_back_as_written(reports: list[FeatureReport]) -> None:
    assert reports_from_event({"features": [r.to_dict() for r in reports]}) == reports
    values = twin_values(reports)
    assert len(values) == 4 * len(reports)
    for r in reports:
        assert values[token_path(r.feature)] == r.token
        assert feature_of_token_path(token_path(r.feature)) == r.feature


def test_the_same_feature_twice_is_refused() -> None:
    report = FeatureReport("heated_seats", "a.b.c", 1, 2, "enabled").to_dict()
    with pytest.raises(WireFormatError, match="heated_seats twice"):
        reports_from_event({"features": [report, report]})


@pytest.mark.parametrize("path", ["Entitlement.heated_seats.State", "Entitlement.Bad.Token",
                                  "Vehicle.Speed", "Entitlement.heated_seats.Token.x"])
def test_only_a_token_path_names_a_feature(path: str) -> None:
    assert feature_of_token_path(path) is None
