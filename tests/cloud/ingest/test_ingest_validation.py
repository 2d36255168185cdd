"""The vectorised sample judge (pure): every rule, precedence, and agreement with the catalog's
reference check on generated samples."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.cloud.ingest.reasons import (
    CODE_OUTCOMES,
    NOT_CONSENTED_CODE,
    SAMPLE_REASON_CODES,
)
from drivetrain.cloud.ingest.validation import (
    EARLIEST_TS_NS,
    PathTable,
    SampleColumns,
    TimestampWindow,
    consent_bits,
    explain_sample,
    judge_samples,
)
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

CATALOG = builtin_catalog()
NOW = 1_795_000_000 * 1_000_000_000
WINDOW = TimestampWindow.of_seconds(30 * 86_400, 300)
BOUNDS = WINDOW.bounds(NOW)
ALL = consent_bits(PRIVACY_CATEGORIES)

SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"  # float [0, 100]
WASHER = "Vehicle.Body.Windshield.Front.WasherFluid.Level"  # uint8, max 100
HOOD = "Vehicle.Body.Hood.IsOpen"  # boolean
LIGHTS = "Vehicle.Body.Lights.LightSwitch"  # string with allowed values
CELLS = "Vehicle.Powertrain.TractionBattery.CellVoltage.CellVoltages"  # float[]
SPEED = "Vehicle.Speed"  # driving_behaviour


def judge(
    samples: list[tuple[str, int, float | None, str | None]], consent: int = ALL
) -> list[str]:
    """Outcome names for ``(path, ts, value, text)`` samples of one vehicle."""
    table = PathTable(CATALOG)
    ids = table.ids_for([s[0] for s in samples])
    values = np.array([np.nan if s[2] is None else s[2] for s in samples], np.float64)
    text = pa.array([s[3] for s in samples], pa.utf8())
    columns = SampleColumns(
        vehicle=np.zeros(len(samples), np.int32),
        path_id=ids,
        ts_ns=np.array([s[1] for s in samples], np.int64),
        value=values,
        value_valid=np.array([s[2] is not None for s in samples]),
        text=text,
        text_valid=np.asarray(text.is_valid()),
    )
    codes = judge_samples(columns, table, np.array([consent], np.uint8), BOUNDS)
    return [CODE_OUTCOMES[c] for c in codes]


def test_valid_samples_of_every_kind_are_accepted() -> None:
    assert (
        judge(
            [
                (SOC, NOW, 55.5, None),
                (WASHER, NOW, 100.0, None),
                (HOOD, NOW, 1.0, None),
                (LIGHTS, NOW, None, "AUTO"),
                (CELLS, NOW, None, "[3.7, 3.71]"),
            ]
        )
        == ["accepted"] * 5
    )


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ((SOC, NOW, 100.5, None), "out_of_range"),
        ((SOC, NOW, -0.1, None), "out_of_range"),
        ((WASHER, NOW, 101.0, None), "out_of_range"),
        ((LIGHTS, NOW, None, "DISCO"), "out_of_range"),
        ((CELLS, NOW, None, '[3.7, "x"]'), "wrong_type"),
        ((WASHER, NOW, 2.5, None), "wrong_type"),  # an integer signal with a fraction
        ((WASHER, NOW, 256.0, None), "wrong_type"),  # does not fit uint8
        ((WASHER, NOW, -1.0, None), "wrong_type"),
        ((HOOD, NOW, 2.0, None), "wrong_type"),  # a boolean is 0 or 1
        ((SOC, NOW, math.nan, None), "wrong_type"),
        ((SOC, NOW, math.inf, None), "wrong_type"),
        ((SOC, NOW, 1e39, None), "wrong_type"),  # beyond binary32
        ((SOC, NOW, None, "55"), "wrong_type"),  # a number sent as text
        ((SOC, NOW, None, None), "wrong_type"),  # neither value nor text
        ((SOC, NOW, 5.0, "5"), "wrong_type"),  # both
        ((LIGHTS, NOW, 1.0, None), "wrong_type"),  # a string sent as a number
        ((CELLS, NOW, None, "not json"), "wrong_type"),
        (("Vehicle.Warp.Drive", NOW, 1.0, None), "unknown_path"),
        (("Vehicle.Cabin", NOW, 1.0, None), "unknown_path"),  # a branch is not a signal
        ((SOC, 0, 50.0, None), "timestamp_too_old"),  # an unset clock: 1970
        ((SOC, EARLIEST_TS_NS - 1, 50.0, None), "timestamp_too_old"),
        ((SOC, NOW - 31 * 86_400 * 10**9, 50.0, None), "timestamp_too_old"),
        ((SOC, NOW + 301 * 10**9, 50.0, None), "timestamp_in_future"),
    ],
)
def test_each_broken_rule_gives_its_reason(
    sample: tuple[str, int, float | None, str | None], reason: str
) -> None:
    assert judge([sample]) == [reason]


def test_window_edges_are_inclusive() -> None:
    earliest, latest = BOUNDS
    assert judge([(SOC, earliest, 1.0, None), (SOC, latest, 1.0, None)]) == ["accepted"] * 2
    assert latest - NOW == 300 * 10**9 and NOW - earliest == 30 * 86_400 * 10**9


def test_the_first_reason_in_precedence_order_wins() -> None:
    assert judge(
        [
            ("Vehicle.Nope", 0, math.nan, None),  # unknown path beats everything
            (SOC, 0, math.nan, None),  # wrong type beats a bad timestamp
            (SOC, 0, 500.0, None),  # out of range beats a bad timestamp
            (CELLS, 0, None, "[1, 2]"),  # a valid array with an old timestamp
            (CELLS, 0, None, "nope"),  # an invalid array beats the timestamp
        ]
    ) == ["unknown_path", "wrong_type", "out_of_range", "timestamp_too_old", "wrong_type"]


def test_consent_drops_only_valid_samples_of_unconsented_categories() -> None:
    technical_only = consent_bits(["technical"])
    assert judge(
        [(SOC, NOW, 5.0, None), (SPEED, NOW, 50.0, None), (SPEED, NOW, math.nan, None)],
        consent=technical_only,
    ) == ["accepted", "not_consented", "wrong_type"]


def test_null_path_entries_are_unknown_paths() -> None:
    table = PathTable(CATALOG)
    ids = table.ids_for([None, SOC])
    assert table.spec(int(ids[0])) is None and table.path(int(ids[0])) == ""


def test_path_table_looks_each_path_up_once_and_grows() -> None:
    table = PathTable(CATALOG)
    first = table.ids_for([SOC, HOOD])
    again = table.ids_for([HOOD, SOC])
    assert list(again) == [first[1], first[0]]
    many = table.ids_for([f"Vehicle.X{i}" for i in range(200)])
    assert len(table) == 202 and len(set(many)) == 200


def test_explanations_quote_the_value_and_the_rule() -> None:
    spec = CATALOG.get(SOC)
    text = explain_sample(
        spec, SOC, "out_of_range", ts_ns=NOW, value=120.0, text=None, ts_bounds=BOUNDS
    )
    assert "120.0" in text and "100" in text
    old = explain_sample(
        spec, SOC, "timestamp_too_old", ts_ns=0, value=1.0, text=None, ts_bounds=BOUNDS
    )
    assert "1970-01-01" in old and "before the accepted window" in old
    assert "unknown VSS path" in explain_sample(
        None, "Vehicle.X", "unknown_path", ts_ns=NOW, value=1.0, text=None, ts_bounds=BOUNDS
    )


def test_window_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="max_age_ns"):
        TimestampWindow(0, 1)


# --- agreement with the reference check -------------------------------------------------
NUMERIC_PATHS = [
    s.path
    for s in CATALOG
    if s.datatype
    in ("float", "double", "uint8", "int8", "int16", "uint16", "uint32", "int32", "boolean")
    and s.allowed is None
]


def _reference(path: str, value: float) -> str:
    spec = CATALOG.get(path)
    given_value: object = value
    if spec.datatype == "boolean":
        given_value = {0.0: False, 1.0: True}.get(value, value)
    try:
        CATALOG.validate(path, given_value)
    except BadInputError as e:
        return "out_of_range" if "outside" in str(e) or "allowed" in str(e) else "wrong_type"
    return "accepted"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(NUMERIC_PATHS),
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.integers(-300, 70_000).map(float),
                st.sampled_from([0.0, 1.0, 100.0, 255.0, 256.0, -128.0, 127.5, 4294967295.0]),
            ),
        ),
        min_size=1,
        max_size=40,
    )
)
@example([("Vehicle.Body.Hood.IsOpen", 1.0), ("Vehicle.Body.Hood.IsOpen", 0.5)])
def test_vectorised_judge_agrees_with_the_reference_check(samples: list[tuple[str, float]]) -> None:
    outcomes = judge([(p, NOW, v, None) for p, v in samples])
    assert outcomes == [_reference(p, v) for p, v in samples]


def test_array_samples_are_checked_element_by_element() -> None:
    assert judge(
        [
            (CELLS, NOW, None, json.dumps([3.6, 3.7])),
            (CELLS, NOW, None, json.dumps({"a": 1})),
            (CELLS, NOW, 3.7, None),
        ]
    ) == ["accepted", "wrong_type", "wrong_type"]


def test_codes_cover_every_sample_reason_once() -> None:
    assert sorted(SAMPLE_REASON_CODES.values()) == list(range(1, len(SAMPLE_REASON_CODES) + 1))
    assert CODE_OUTCOMES[NOT_CONSENTED_CODE] == "not_consented"
