"""The one tokenizer of the trigger expressions and the fleet query language."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from drivetrain.cloud.twins.query import QUERY_LEXICON, parse_query
from drivetrain.core.errors import ExpressionSyntaxError, QuerySyntaxError
from drivetrain.core.lexer import DOTTED_PATH, Lexicon, Token, TokenError, tokenize
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge import parse_expression
from drivetrain.edge.expressions.lexer import EXPRESSION_LEXICON

PATHS = Lexicon(name=DOTTED_PATH, operators=frozenset({"<", "<=", "-"}))


def kinds(text: str, lexicon: Lexicon) -> list[tuple[str, str, int]]:
    return [(t.kind, t.text, t.column) for t in tokenize(text, lexicon)]


def test_tokens_carry_kind_text_column_and_value() -> None:
    tokens = tokenize("Vehicle.Speed <= 12.5 'a\\'b' 7", PATHS)
    assert tokens == [
        Token("ident", "Vehicle.Speed", 1),
        Token("op", "<=", 15),
        Token("number", "12.5", 18, 12.5),
        Token("string", "a'b", 23, "a'b"),
        Token("number", "7", 30, 7),
        Token("eof", "", 31),
    ]


def test_names_are_dotted_paths_or_identifiers_with_dot_punctuation() -> None:
    assert kinds("a.b", PATHS)[0] == ("ident", "a.b", 1)
    assert kinds("a.b", QUERY_LEXICON)[:3] == [
        ("ident", "a", 1),
        ("punct", ".", 2),
        ("ident", "b", 3),
    ]


def test_minus_starts_a_number_only_where_the_lexicon_signs_numbers() -> None:
    assert kinds("x < -2", QUERY_LEXICON)[2] == ("number", "-2", 5)
    assert kinds("x <= -2", PATHS)[2:4] == [("op", "-", 6), ("number", "2", 7)]
    assert kinds("x -2", PATHS)[1] == ("op", "-", 3)


@pytest.mark.parametrize(
    ("text", "lexicon", "problem", "token", "column"),
    [
        ("a >> 1", PATHS, "unknown_operator", ">>", 3),
        ("a = 1", QUERY_LEXICON, "unknown_operator", "=", 3),
        ("a $ 1", PATHS, "unexpected_character", "$", 3),
        ("3abc < 1", PATHS, "malformed_number", "3abc", 1),
        ("Vehicle. < 1", PATHS, "incomplete_name", "Vehicle.", 1),
        ("'a\\n'", QUERY_LEXICON, "unknown_escape", "\\n", 3),
        ("x < 'open", PATHS, "unterminated_string", "'open", 5),
    ],
)
def test_what_is_not_a_token_is_named_with_its_column(
    text: str, lexicon: Lexicon, problem: str, token: str, column: int
) -> None:
    with pytest.raises(TokenError) as raised:
        tokenize(text, lexicon)
    assert (raised.value.problem, raised.value.token, raised.value.column) == (
        problem,
        token,
        column,
    )


def test_the_hint_for_a_familiar_mistake_comes_from_the_lexicon() -> None:
    with pytest.raises(TokenError) as raised:
        tokenize("a && b", QUERY_LEXICON)
    assert raised.value.hint == "use 'and'"


def test_both_languages_report_their_lexical_errors_through_the_shared_tokenizer() -> None:
    with pytest.raises(ExpressionSyntaxError, match="unexpected token '&&' at column 15") as e:
        parse_expression("Vehicle.Speed && true", builtin_catalog())
    assert isinstance(e.value.__cause__, TokenError)
    with pytest.raises(QuerySyntaxError, match="column 8") as q:
        parse_query('region && model == "x"')
    assert isinstance(q.value.__cause__, TokenError) and q.value.token == "&&"


def test_an_overlong_number_is_refused_not_converted() -> None:
    with pytest.raises(TokenError, match="malformed number"):
        tokenize("1" * 5000, PATHS)


@given(st.text(max_size=80), st.sampled_from([EXPRESSION_LEXICON, QUERY_LEXICON, PATHS]))
@example("²", EXPRESSION_LEXICON)
@example("é < 1", EXPRESSION_LEXICON)
@example("1e999999", QUERY_LEXICON)
def test_any_text_tokenizes_or_raises_a_token_error_inside_it(text: str, lexicon: Lexicon) -> None:
    try:
        tokens = tokenize(text, lexicon)
    except TokenError as e:
        assert 1 <= e.column <= len(text) and e.token
        return
    assert tokens[-1].kind == "eof" and tokens[-1].column == len(text) + 1
    assert all(1 <= t.column <= len(text) for t in tokens[:-1])
