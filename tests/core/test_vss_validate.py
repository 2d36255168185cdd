"""Checking values against signals: types, integer widths, ranges, allowed values, enums."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.core.errors import SignalRangeError, SignalTypeError, UnknownSignalError
from drivetrain.core.vss import Catalog, SignalSpec, builtin_catalog
from drivetrain.core.vss.datatypes import INTEGER_BOUNDS

SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def _spec(datatype: str, **kw: object) -> SignalSpec:
    return SignalSpec(
        path=f"Vehicle.Test.{datatype.replace('[]', 'Array').capitalize()}",
        node_type="sensor",
        datatype=datatype,  # type: ignore[arg-type]
        description="test signal",
        privacy_category="technical",
        **kw,  # type: ignore[arg-type]
    )


def _catalog(*specs: SignalSpec) -> Catalog:
    return Catalog(specs)


# --- scalar rules -------------------------------------------------------------------------------
def test_in_range_state_of_charge_is_accepted_and_normalised_to_float() -> None:
    value = builtin_catalog().validate(SOC, 55)
    assert value == 55.0 and isinstance(value, float)


def test_state_of_charge_above_100_percent_is_a_range_error_quoting_value_and_bounds() -> None:
    with pytest.raises(SignalRangeError, match=r"value 100\.5 is outside \[0, 100\.0\] percent"):
        builtin_catalog().validate(SOC, 100.5)


def test_bool_is_not_a_number_for_a_float_signal() -> None:
    with pytest.raises(
        SignalTypeError, match=r"value True of Python type bool is not a valid VSS float"
    ):
        builtin_catalog().validate("Vehicle.Speed", True)


def test_bool_is_not_an_integer_for_an_integer_signal() -> None:
    with pytest.raises(SignalTypeError, match=r"bool is not an integer for uint8"):
        builtin_catalog().validate("Vehicle.Cabin.DoorCount", False)


def test_integer_is_not_a_boolean() -> None:
    with pytest.raises(
        SignalTypeError, match=r"value 1 of Python type int .* expected True or False"
    ):
        builtin_catalog().validate("Vehicle.IsMoving", 1)


def test_string_for_a_numeric_signal_is_a_type_error_naming_the_expected_datatype() -> None:
    with pytest.raises(
        SignalTypeError, match=r"value '87' of Python type str is not a valid VSS float"
    ):
        builtin_catalog().validate("Vehicle.Speed", "87")


def test_integer_wider_than_the_datatype_is_a_type_error() -> None:
    with pytest.raises(SignalTypeError, match=r"fits int8, in \[-128, 127\]"):
        builtin_catalog().validate("Vehicle.Powertrain.Transmission.CurrentGear", 128)


def test_integral_float_is_accepted_for_an_integer_signal_and_becomes_int() -> None:
    value = builtin_catalog().validate("Vehicle.Powertrain.Transmission.CurrentGear", 3.0)
    assert value == 3 and isinstance(value, int)


def test_fractional_float_is_rejected_for_an_integer_signal() -> None:
    with pytest.raises(SignalTypeError, match=r"value 2\.5 of Python type float"):
        builtin_catalog().validate("Vehicle.Powertrain.Transmission.CurrentGear", 2.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_float_is_rejected(bad: float) -> None:
    with pytest.raises(SignalTypeError, match="finite"):
        builtin_catalog().validate("Vehicle.Speed", bad)


def test_float_beyond_binary32_does_not_fit_a_vss_float_but_fits_a_double() -> None:
    catalog = _catalog(_spec("float"), _spec("double"))
    with pytest.raises(SignalTypeError, match="fits float"):
        catalog.validate("Vehicle.Test.Float", 1e39)
    assert catalog.validate("Vehicle.Test.Double", 1e39) == 1e39


def test_value_outside_allowed_is_a_range_error_listing_the_allowed_values() -> None:
    with pytest.raises(
        SignalRangeError, match=r"'WARP' is not one of the allowed values \['UNKNOWN'"
    ):
        builtin_catalog().validate("Vehicle.Powertrain.Transmission.Type", "WARP")


def test_numpy_scalars_are_accepted_and_normalised() -> None:
    catalog = builtin_catalog()
    assert catalog.validate("Vehicle.Speed", np.float32(12.5)) == 12.5
    assert type(catalog.validate("Vehicle.Cabin.DoorCount", np.uint8(4))) is int
    assert catalog.validate("Vehicle.IsMoving", np.bool_(True)) is True


def test_unknown_path_is_reported_before_the_value_is_looked_at() -> None:
    with pytest.raises(UnknownSignalError):
        builtin_catalog().validate("Vehicle.Nope", 1)


def test_enum_signal_accepts_the_name_or_the_number_and_rejects_others() -> None:
    spec = _spec("uint8", enum={"UNKNOWN": 0, "RAIN": 2}, allowed=(0, 2))
    catalog = _catalog(spec)
    assert catalog.validate(spec.path, "RAIN") == 2
    assert catalog.validate(spec.path, 0) == 0
    with pytest.raises(
        SignalRangeError, match=r"value 1 is not one of the allowed values \[0, 2\]"
    ):
        catalog.validate(spec.path, 1)
    with pytest.raises(SignalTypeError, match=r"one of the names \['RAIN', 'UNKNOWN'\]"):
        catalog.validate(spec.path, "HAIL")


# --- arrays -------------------------------------------------------------------------------------
def test_array_signal_checks_every_element_and_names_the_bad_one() -> None:
    catalog = builtin_catalog()
    cells = "Vehicle.Powertrain.TractionBattery.CellVoltage.CellVoltages"
    assert catalog.validate(cells, [3.71, 3.7, np.float64(3.69)]) == [3.71, 3.7, 3.69]
    assert catalog.validate(cells, np.array([3.6, 3.65])) == [3.6, 3.65]
    with pytest.raises(SignalTypeError, match=r"element 1: value 'x'"):
        catalog.validate(cells, [3.7, "x"])


def test_scalar_for_an_array_signal_is_a_type_error() -> None:
    with pytest.raises(SignalTypeError, match="expected a list, tuple or 1-D numpy array"):
        builtin_catalog().validate("Vehicle.Diagnostics.DTCList", "P0301")


def test_allowed_values_apply_to_each_array_element() -> None:
    inlets = (
        "Vehicle.Powertrain.TractionBattery.Charging.ChargingPort.AnyPosition.SupportedInletTypes"
    )
    allowed = builtin_catalog().get(inlets).allowed
    assert allowed is not None
    assert builtin_catalog().validate(inlets, [allowed[0]]) == [allowed[0]]
    with pytest.raises(SignalRangeError, match=r"element 0: value 'SCART'"):
        builtin_catalog().validate(inlets, ["SCART"])


# --- properties (Hypothesis) --------------------------------------------------------------------
INTEGER_TYPES = sorted(INTEGER_BOUNDS)


@st.composite
def bounded_integer_signal(draw: st.DrawFn) -> tuple[SignalSpec, int]:
    datatype = draw(st.sampled_from(INTEGER_TYPES))
    low, high = INTEGER_BOUNDS[datatype]
    a, b = sorted(draw(st.tuples(st.integers(low, high), st.integers(low, high))))
    value = draw(st.integers(a, b))
    return _spec(datatype, minimum=a, maximum=b), value


@given(bounded_integer_signal())
def test_any_in_range_integer_is_accepted_unchanged(case: tuple[SignalSpec, int]) -> None:
    spec, value = case
    assert _catalog(spec).validate(spec.path, value) == value


@given(st.sampled_from(INTEGER_TYPES), st.data())
@example("uint8", None)
def test_integers_outside_the_datatype_width_are_rejected(
    datatype: str, data: st.DataObject | None
) -> None:
    low, high = INTEGER_BOUNDS[datatype]
    spec = _spec(datatype)
    outside = (
        [low - 1, high + 1]
        if data is None
        else [data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))]
    )
    for value in outside:
        with pytest.raises(SignalTypeError, match=f"fits {datatype}"):
            _catalog(spec).validate(spec.path, value)


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.floats(min_value=0, max_value=1),
)
def test_any_float_between_min_and_max_is_accepted(a: float, b: float, t: float) -> None:
    low, high = sorted((a, b))
    value = min(max(low + (high - low) * t, low), high) if math.isfinite(high - low) else low
    spec = _spec("float", minimum=low, maximum=high)
    assert _catalog(spec).validate(spec.path, value) == value


@given(st.floats(min_value=-1e6, max_value=1e6), st.floats(min_value=0.001, max_value=1e6))
def test_any_float_below_min_is_a_range_error(low: float, gap: float) -> None:
    spec = _spec("double", minimum=low, maximum=low + 1e7)
    value = low - gap
    if value < low:  # gap may vanish in rounding next to a large low
        with pytest.raises(SignalRangeError):
            _catalog(spec).validate(spec.path, value)


# --- the vectorised check agrees with the scalar one ---------------------------------------------
NUMPY_SOURCES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float32,
    np.float64,
]


@settings(max_examples=60)
@given(
    datatype=st.sampled_from([*INTEGER_TYPES, "float", "double"]),
    source=st.sampled_from(NUMPY_SOURCES),
    bounds=st.tuples(st.none() | st.integers(-300, 300), st.none() | st.integers(-300, 300)),
    data=st.data(),
)
def test_validate_array_agrees_with_validate_on_every_value(
    datatype: str,
    source: type[np.generic],
    bounds: tuple[int | None, int | None],
    data: st.DataObject,
) -> None:
    low, high = bounds
    if low is not None and high is not None and low > high:
        low, high = high, low
    spec = _spec(datatype, minimum=low, maximum=high)
    dtype = np.dtype(source)
    if dtype.kind == "f":
        elements = st.floats(width=dtype.itemsize * 8) | st.sampled_from(
            [2.0**63, -(2.0**63), 2.0**64, 255.0, 256.0, 0.5]
        )
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max)) | st.sampled_from(
            [int(info.min), int(info.max)]
        )
    values = np.array(data.draw(st.lists(elements, max_size=30)), dtype=dtype)
    catalog = _catalog(spec)
    expected = [_accepts(catalog, spec.path, v) for v in values]
    assert catalog.validate_array(spec.path, values).tolist() == expected


def _accepts(catalog: Catalog, path: str, value: object) -> bool:
    try:
        catalog.validate(path, value)
    except (SignalTypeError, SignalRangeError):
        return False
    return True


def test_validate_array_rejects_bools_for_numbers_and_numbers_for_bools() -> None:
    catalog = builtin_catalog()
    assert not catalog.validate_array("Vehicle.Speed", np.array([True, False])).any()
    assert not catalog.validate_array("Vehicle.IsMoving", np.array([0, 1])).any()
    assert catalog.validate_array("Vehicle.IsMoving", np.array([True, False])).all()


def test_validate_array_checks_strings_against_allowed_values() -> None:
    mask = builtin_catalog().validate_array(
        "Vehicle.Powertrain.Transmission.Type", np.array(["CVT", "WARP", "DSG"])
    )
    assert mask.tolist() == [True, False, True]


def test_validate_array_on_object_columns_falls_back_to_the_scalar_rules() -> None:
    mask = builtin_catalog().validate_array(
        SOC, np.array([50.0, "x", True, 101, None], dtype=object)
    )
    assert mask.tolist() == [True, False, False, False, False]


def test_validate_array_refuses_two_dimensional_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        builtin_catalog().validate_array(SOC, np.zeros((2, 2)))
