"""Trigger expressions: parsing, type checks, errors naming the token, vectorised evaluation."""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.core.errors import ExpressionSyntaxError, UnknownSignalError
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge.expressions import (
    MAX_DEPTH,
    Binary,
    Boolean,
    Node,
    Number,
    Signal,
    String,
    Unary,
    ValueType,
    parse_expression,
    to_text,
)

CATALOG = builtin_catalog()
SPEED = "Vehicle.Speed"
BATTERY_TEMP = "Vehicle.Powertrain.TractionBattery.Temperature.Average"
CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
STRING_SIGNAL = next(s.path for s in CATALOG if s.datatype == "string")
ARRAY_SIGNAL = next(s.path for s in CATALOG if s.datatype.endswith("[]"))


def test_issue_example_parses_and_evaluates() -> None:
    expression = parse_expression(f"{SPEED} > 120 and {BATTERY_TEMP} > 45", CATALOG)
    assert list(expression.signals) == [SPEED, BATTERY_TEMP]
    assert expression.evaluate({SPEED: 130.0, BATTERY_TEMP: 46.0})
    assert not expression.evaluate({SPEED: 130.0, BATTERY_TEMP: 45.0})
    assert not expression.evaluate({SPEED: 100.0, BATTERY_TEMP: 60.0})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{SPEED} >> 120", "unexpected token '>>' at column 15"),
        (f"{SPEED} = 120", "unexpected token '=' at column 15 (use '==' to compare)"),
        (f"{SPEED} > 1 && true", "unexpected token '&&' at column 19 (use 'and')"),
        (f"{SPEED} > 120 and", "a value is missing at the end of the expression"),
        (
            f"({SPEED} > 120",
            "missing ')' at the end of the expression (to close the '(' at column 1)",
        ),
        (f"{SPEED} > 120)", "unexpected token ')' at column 20"),
        (f"{SPEED} > 120 120", "unexpected token '120' at column 21"),
        ("1 < 2 < 3", "unexpected token '<' at column 7: comparisons do not chain"),
        (f"{SPEED} > 3a", "unexpected token '3a' at column 17"),
        (f"{SPEED} > 'fast", "unterminated string starting at column 17"),
        (f"{SPEED} > $1", "unexpected character '$' at column 17"),
        (f"max({SPEED}) > 1", "unknown function 'max' at column 1"),
        (f"{SPEED} > 'fast'", "operator '>' at column 15 compares a number"),
        (f"{SPEED} + 1", "a trigger needs a condition"),
        (f"{SPEED} and true", "operator 'and' at column 15 joins conditions"),
        (f"not {SPEED}", "operator 'not' at column 1 negates a condition"),
        (f"{CHARGING} > true", "operator '>' at column"),
        (f"{ARRAY_SIGNAL} == 1", "is an array"),
        ("", "expression is empty"),
        (f"{SPEED}. > 1", "a path level is missing after '.'"),
    ],
)
def test_syntax_errors_name_the_token_and_its_column(text: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression(text, CATALOG)
    assert message in str(info.value)


def test_unknown_signal_is_refused_with_a_suggestion() -> None:
    with pytest.raises(
        UnknownSignalError, match=r"'Vehicle\.Sped'; did you mean 'Vehicle\.Speed'.*column 1"
    ):
        parse_expression("Vehicle.Sped > 120", CATALOG)


def test_overlong_and_overdeep_expressions_are_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="at most 4096"):
        parse_expression(f"{SPEED} > 1 " + "or true " * 600, CATALOG)
    with pytest.raises(ExpressionSyntaxError, match="deeper than"):
        parse_expression("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1), CATALOG)
    with pytest.raises(ExpressionSyntaxError, match="operators deep"):
        parse_expression(" + ".join([SPEED] * 200) + " > 1", CATALOG)


def test_there_is_no_way_to_reach_python() -> None:
    for text in ("__import__('os').system('true')", "().__class__ == 1", "lambda: 1", "[1] == 1"):
        with pytest.raises((ExpressionSyntaxError, UnknownSignalError)):
            parse_expression(text, CATALOG)


def test_keywords_are_case_insensitive_and_strings_and_booleans_compare() -> None:
    expression = parse_expression(f"NOT {CHARGING} AND {STRING_SIGNAL} != 'x' Or False", CATALOG)
    assert expression.signals == {CHARGING: ValueType.BOOLEAN, STRING_SIGNAL: ValueType.STRING}
    assert expression.evaluate({CHARGING: False, STRING_SIGNAL: "y"})
    assert not expression.evaluate({CHARGING: True, STRING_SIGNAL: "y"})
    assert not expression.evaluate({CHARGING: False, STRING_SIGNAL: "x"})


def test_arithmetic_precedence_and_abs() -> None:
    expression = parse_expression(f"abs({SPEED} - 100) * 2 + 1 > 3 * -2 + 27", CATALOG)
    assert expression.evaluate({SPEED: 89.0})  # 11*2+1 = 23 > 21
    assert not expression.evaluate({SPEED: 90.0})  # 21 > 21 is false
    assert parse_expression(f"{SPEED} / 0 > 1", CATALOG).evaluate({SPEED: 1.0})  # +inf
    assert not parse_expression(f"{SPEED} / 0 > 1", CATALOG).evaluate({SPEED: 0.0})  # NaN


def test_a_signal_without_a_value_makes_the_condition_false() -> None:
    expression = parse_expression(f"{SPEED} > 120 or not ({BATTERY_TEMP} > 45)", CATALOG)
    assert not expression.evaluate({SPEED: 200.0})  # battery temperature unknown
    assert expression.evaluate({SPEED: 200.0, BATTERY_TEMP: 20.0})


def test_wrong_value_type_is_a_type_error() -> None:
    expression = parse_expression(f"{SPEED} > 1", CATALOG)
    with pytest.raises(TypeError, match="Vehicle.Speed"):
        expression.evaluate({SPEED: "fast"})


# --- reference evaluator and properties ---------------------------------------------------------

NUMERIC = [SPEED, BATTERY_TEMP]


def _reference(node: Node, values: dict[str, float]) -> object:
    """Straightforward scalar evaluation (Python semantics, IEEE division)."""
    if isinstance(node, (Number, String, Boolean)):
        return node.value
    if isinstance(node, Signal):
        return values[node.path]
    if isinstance(node, Unary):
        inner = _reference(node.operand, values)
        return {"not": lambda x: not x, "-": operator.neg, "abs": abs}[node.op](inner)
    assert isinstance(node, Binary)
    a, b = _reference(node.left, values), _reference(node.right, values)
    if node.op == "/":
        if b == 0:
            return (
                math.nan
                if a == 0 or math.isnan(a)
                else math.copysign(math.inf, a) * math.copysign(1, b)
            )
        return a / b
    ops = {
        "+": operator.add,
        "-": operator.sub,
        "*": operator.mul,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
        "and": lambda x, y: bool(x) and bool(y),
        "or": lambda x, y: bool(x) or bool(y),
    }
    return ops[node.op](a, b)


numbers = st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: Number(round(x, 3)))
signals = st.sampled_from(NUMERIC).map(lambda p: Signal(p, ValueType.NUMBER))
arith = st.recursive(
    numbers | signals,
    lambda inner: st.one_of(
        st.builds(Binary, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
        st.builds(Unary, st.just("abs"), inner),
        st.builds(Unary, st.just("-"), signals),
    ),
    max_leaves=6,
)
conditions = st.recursive(
    st.builds(Binary, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), arith, arith)
    | st.builds(Boolean, st.booleans()),
    lambda inner: st.one_of(
        st.builds(Binary, st.sampled_from(["and", "or"]), inner, inner),
        st.builds(Unary, st.just("not"), inner),
    ),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(conditions)
def test_text_round_trip_gives_the_same_tree(tree: Node) -> None:
    text = to_text(tree)
    assert parse_expression(text, CATALOG).root == tree


@settings(max_examples=200, deadline=None)
@given(
    conditions,
    st.lists(st.tuples(st.floats(-200, 200), st.floats(-200, 200)), min_size=1, max_size=20),
)
def test_vectorised_evaluation_agrees_with_the_scalar_reference(
    tree: Node, rows: list[tuple[float, float]]
) -> None:
    expression = parse_expression(to_text(tree), CATALOG)
    columns = {SPEED: np.array([r[0] for r in rows]), BATTERY_TEMP: np.array([r[1] for r in rows])}
    got = expression.evaluate_columns({p: columns[p] for p in expression.signals}, len(rows))
    with np.errstate(all="ignore"):
        expected = [bool(_reference(expression.root, {SPEED: a, BATTERY_TEMP: b})) for a, b in rows]
    assert got.tolist() == expected


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("Vehicle.Speed ><=!&|()+-*/'\"0123456789.eandortu_$")),
        max_size=60,
    )
)
@example("Vehicle.Speed >>> 1")
@example("((((")
@example("1e999 > 1")
def test_any_text_parses_or_raises_a_bad_input_error(text: str) -> None:
    try:
        parse_expression(text, CATALOG)
    except (ExpressionSyntaxError, UnknownSignalError) as e:
        assert str(e)
