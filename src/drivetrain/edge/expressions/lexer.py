"""The trigger expressions' tokens: the shared tokenizer (``core.lexer``) with this language's
lexicon, and its errors worded as ``unexpected token '>>' at column 15``."""

from __future__ import annotations

from typing import Final

from drivetrain.core.errors import ExpressionSyntaxError
from drivetrain.core.lexer import DOTTED_PATH, Lexicon, Token, TokenError
from drivetrain.core.lexer import tokenize as tokenize_text

COMPARISONS: Final = ("<", "<=", ">", ">=", "==", "!=")
ARITHMETIC: Final = ("+", "-", "*", "/")
#: Signal names are dotted VSS paths; ``-`` before a number is the unary operator (the parser
#: folds it into the number); a backslash before anything but a quote or a backslash is kept.
EXPRESSION_LEXICON: Final = Lexicon(
    name=DOTTED_PATH,
    operators=frozenset(COMPARISONS + ARITHMETIC),
    punctuation="()",
    signed_numbers=False,
    strict_escapes=False,
    numbers_end_at_letters=False,
    hints={"=": "use '==' to compare", "&&": "use 'and'", "||": "use 'or'", "!": "use 'not'"},
)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``eof`` token.

    Raises:
        ExpressionSyntaxError: a character or operator that is not part of the language, a
            malformed number or path, or an unterminated string; names it and its column.
    """
    try:
        return tokenize_text(text, EXPRESSION_LEXICON)
    except TokenError as e:
        raise ExpressionSyntaxError(_message(e)) from e


def _message(e: TokenError) -> str:
    where = f"at column {e.column}"
    if e.problem == "unterminated_string":
        return f"unterminated string starting {where}"
    if e.problem == "unexpected_character":
        return f"unexpected character {e.token!r} {where}"
    detail = {
        "malformed_number": ": not a number (a signal path starts with a letter)",
        "incomplete_name": ": a path level is missing after '.'",
        "unknown_operator": f" ({e.hint})"
        if e.hint
        else f"; expected one of {' '.join(COMPARISONS)}",
    }.get(e.problem, "")
    return f"unexpected token {e.token!r} {where}{detail}"


def syntax_error(message: str, token: Token, detail: str = "") -> ExpressionSyntaxError:
    """``message`` at ``token``'s column (or at the end of the expression), then ``detail``."""
    where = "the end of the expression" if token.kind == "eof" else f"column {token.column}"
    return ExpressionSyntaxError(f"{message} at {where}{detail}")
