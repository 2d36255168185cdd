"""Trigger expressions: a small, safe condition language over VSS signals.

A collection campaign fires when a condition over the vehicle's current signal values becomes
true, e.g.::

    Vehicle.Speed > 120 and Vehicle.Powertrain.TractionBattery.Temperature.Average > 45

The language, in full (no ``eval``; the tokenizer shared with the fleet query language,
``core.lexer``, and a recursive-descent parser):

==============  ==============================================================================
literals        numbers (``120``, ``-3.5``, ``1e3``), strings (``'DRIVE'`` or ``"DRIVE"``,
                backslash escapes ``\\'`` ``\\"`` ``\\\\``), ``true``, ``false``
signals         VSS paths of the catalog (``Vehicle.Speed``); arrays are not supported
arithmetic      ``+ - * /`` and unary ``-`` on numbers; ``abs(x)``
comparisons     ``< <= > >= == !=`` on numbers; ``== !=`` on strings and on booleans
logic           ``and``, ``or``, ``not`` on conditions; parentheses group
==============  ==============================================================================

Precedence, loosest first: ``or``, ``and``, ``not``, comparison (one per operand pair:
``a < b < c`` is refused), ``+ -``, ``* /``, unary ``-``. Keywords are case-insensitive.

Every expression is type-checked against the catalog when parsed, so a campaign that cannot
work is refused before it is installed: unknown signals raise ``UnknownSignalError`` with the
closest known paths; anything else raises ``ExpressionSyntaxError`` naming the offending token
and its 1-based column (``unexpected token '>>' at column 15``).

Evaluation is vectorised: ``Expression.evaluate_columns`` takes one NumPy array per signal
(all of the same length: the signal values in force at a series of instants) and returns a
boolean array. A condition is false at every instant where a signal it names has no value yet
(NaN, or None for strings); division by zero gives ±inf or NaN as IEEE 754 says, so a
comparison with it is false. ``Expression.evaluate`` is the one-instant form.

Modules: ``lexer`` (the lexicon and its error wording), ``syntax`` (the tree, its canonical
text and static types), ``parser`` (grammar), ``checker`` (names and types against the
catalog), ``evaluator`` (vectorised evaluation), ``expression`` (``parse_expression``).
"""

from drivetrain.edge.expressions.expression import (
    MAX_EXPRESSION_CHARS,
    Expression,
    parse_expression,
)
from drivetrain.edge.expressions.lexer import tokenize
from drivetrain.edge.expressions.parser import MAX_DEPTH
from drivetrain.edge.expressions.syntax import (
    Binary,
    Boolean,
    Node,
    Number,
    Signal,
    String,
    Unary,
    ValueType,
    to_text,
    type_of,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "Binary",
    "Boolean",
    "Expression",
    "Node",
    "Number",
    "Signal",
    "String",
    "Unary",
    "ValueType",
    "parse_expression",
    "to_text",
    "tokenize",
    "type_of",
]
