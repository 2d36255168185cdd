"""The fleet query language: grammar, errors that point at the bad token, limits (pure)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from drivetrain.cloud.twins.query import (
    MAX_DEPTH,
    MAX_IN_VALUES,
    MAX_PREDICATES,
    MAX_QUERY_CHARS,
    And,
    Compare,
    Exists,
    Field,
    In,
    MatchAll,
    Not,
    Or,
    parse_query,
    render_query,
    tokenize,
)
from drivetrain.cloud.twins.values import version_key
from drivetrain.core.errors import QuerySyntaxError
from drivetrain.core.vss import builtin_catalog

SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
CATALOG = builtin_catalog()


def test_the_issue_example_parses_into_three_anded_predicates() -> None:
    query = f'region == "EU" and reported."{SOH}" < 80 and software."BMS" < "2.4.0"'
    node = parse_query(query, CATALOG)
    assert node == And(
        And(
            Compare(Field(None, "region", 1), "==", "EU"),
            Compare(Field("reported", SOH, query.index("reported") + 1), "<", 80),
        ),
        Compare(Field("software", "BMS", query.index("software") + 1), "<", version_key("2.4.0")),
    )


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    node = parse_query('model == "a" or not model == "b" and region == "EU"')
    assert isinstance(node, Or)
    assert isinstance(node.right, And) and isinstance(node.right.left, Not)


def test_parentheses_group_and_keywords_ignore_case() -> None:
    query = '(model == "a" OR model == "b") AND NOT exists(owner)'
    node = parse_query(query)
    assert isinstance(node, And) and isinstance(node.left, Or)
    assert node.right == Not(Exists(Field(None, "owner", query.index("owner") + 1)))


def test_in_lists_and_not_in() -> None:
    query = 'region in ["EU", "US"] and model not in [\'x\']'
    node = parse_query(query)
    assert isinstance(node, And)
    assert node.left == In(Field(None, "region", 1), ("EU", "US"), negated=False)
    assert node.right == In(Field(None, "model", query.index("model") + 1), ("x",), negated=True)


def test_empty_query_matches_every_twin() -> None:
    assert parse_query("   ") == MatchAll()


def test_numbers_booleans_and_negative_values() -> None:
    node = parse_query(
        'reported."Vehicle.Speed" >= -1.5e1 and desired."Vehicle.Cabin.Light.IsDomeOn" == true',
        CATALOG,
    )
    assert isinstance(node, And)
    assert node.left == Compare(Field("reported", "Vehicle.Speed", 1), ">=", -15.0)
    assert isinstance(node.right, Compare) and node.right.value is True


def test_strings_unescape_quotes_and_backslashes() -> None:
    node = parse_query(r'owner == "a \"b\" \\ c"')
    assert isinstance(node, Compare) and node.value == 'a "b" \\ c'


@pytest.mark.parametrize(
    ("query", "token", "column"),
    [
        ('region = "EU"', "=", 8),
        ('region == "EU" and', "end of query", 19),
        ('region == "EU" "US"', "US", 16),
        ('(region == "EU"', "end of query", 16),
        ('colour == "red"', "colour", 1),
        ('tenant == "acme"', "tenant", 1),
        ('reported.Vehicle.Speed > 3', "Vehicle", 10),
        ('reported."Vehicle.Sped" > 3', "Vehicle.Sped", 10),
        ('reported."Vehicle.Speed" > true', "true", 28),
        ('region == 5', "5", 11),
        ('software."BMS" < "latest"', "latest", 18),
        ('software."BMS" < 2', "2", 18),
        ('region == "EU', '"EU', 11),
        ('region == null', "null", 11),
        ('region in ["EU" "US"]', "US", 17),
        ('owner == "a\\n"', "\\n", 12),
        ('region == "EU" ; drop table twins', ";", 16),
        ('exists(region', "end of query", 14),
        ('not', "end of query", 4),
        ('region', "end of query", 7),
    ],
)
def test_invalid_query_syntax_names_the_bad_token_and_its_column(
    query: str, token: str, column: int
) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        parse_query(query, CATALOG)
    assert (raised.value.token, raised.value.column) == (token, column)
    assert f"column {column}" in str(raised.value)


def test_unknown_vss_path_suggests_the_closest_signal() -> None:
    with pytest.raises(QuerySyntaxError, match="did you mean 'Vehicle.Speed'"):
        parse_query('reported."Vehicle.Sped" > 3', CATALOG)


def test_sql_looking_input_is_only_ever_a_string_value() -> None:
    node = parse_query("""owner == "x' OR 1=1; DROP TABLE twins; --\"""")
    assert isinstance(node, Compare) and node.value == "x' OR 1=1; DROP TABLE twins; --"


def test_deep_nesting_is_refused_before_it_can_exhaust_the_stack() -> None:
    with pytest.raises(QuerySyntaxError, match=f"deeper than {MAX_DEPTH}"):
        parse_query("(" * 500 + 'region == "EU"' + ")" * 500)
    with pytest.raises(QuerySyntaxError, match=f"deeper than {MAX_DEPTH}"):
        parse_query("not " * (MAX_DEPTH + 1) + 'region == "EU"')


def test_oversized_queries_lists_and_predicate_counts_are_refused() -> None:
    with pytest.raises(QuerySyntaxError, match=f"at most {MAX_QUERY_CHARS}"):
        parse_query('region == "' + "x" * MAX_QUERY_CHARS + '"')
    with pytest.raises(QuerySyntaxError, match=f"more than {MAX_IN_VALUES} values"):
        parse_query("model in [" + ", ".join('"m"' for _ in range(MAX_IN_VALUES + 1)) + "]")
    with pytest.raises(QuerySyntaxError, match=f"more than {MAX_PREDICATES} comparisons"):
        parse_query(" or ".join('model == "m"' for _ in range(MAX_PREDICATES + 1)))


def test_tokens_carry_their_columns() -> None:
    assert [(t.kind, t.text, t.column) for t in tokenize('a.b  <= "c"')] == [
        ("ident", "a", 1), ("punct", ".", 2), ("ident", "b", 3), ("op", "<=", 6),
        ("string", "c", 9), ("eof", "end of query", 12),
    ]


_fields = st.sampled_from(["vin", "model", "region", "owner"])
_strings = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


@st.composite
def _queries(draw: st.DrawFn, depth: int = 0) -> object:
    choice = draw(st.integers(0, 5 if depth < 3 else 1))
    if choice == 0:
        return Compare(Field(None, draw(_fields), 1), draw(st.sampled_from(["==", "<", ">="])), draw(_strings))
    if choice == 1:
        return In(Field(None, draw(_fields), 1), tuple(draw(st.lists(_strings, min_size=1, max_size=3))), draw(st.booleans()))
    if choice == 2:
        return Not(draw(_queries(depth + 1)))
    if choice == 3:
        return And(draw(_queries(depth + 1)), draw(_queries(depth + 1)))
    if choice == 4:
        return Or(draw(_queries(depth + 1)), draw(_queries(depth + 1)))
    return Exists(Field(None, draw(_fields), 1))


def _without_columns(node: object) -> object:
    if isinstance(node, (And, Or)):
        return (type(node).__name__, _without_columns(node.left), _without_columns(node.right))
    if isinstance(node, Not):
        return ("Not", _without_columns(node.operand))
    if isinstance(node, (Compare, In, Exists)):
        parts = [(node.field.scope, node.field.name)]
        if isinstance(node, Compare):
            parts += [node.op, node.value]
        if isinstance(node, In):
            parts += [node.values, node.negated]
        return (type(node).__name__, *parts)
    return node


@given(_queries())
def test_rendered_queries_parse_back_to_the_same_tree(node: object) -> None:
    assert _without_columns(parse_query(render_query(node))) == _without_columns(node)  # type: ignore[arg-type]


@given(st.text(max_size=60))
@example('region == "EU" and (')
@example("\x00")
def test_any_text_either_parses_or_raises_a_query_syntax_error(text: str) -> None:
    try:
        parse_query(text, CATALOG)
    except QuerySyntaxError as e:
        assert 1 <= e.column <= len(text) + 1
