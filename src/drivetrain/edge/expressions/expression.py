"""``Expression`` and ``parse_expression``: text to a checked, evaluable condition.

Text is tokenized (``lexer.py``, the tokenizer shared with the fleet query language), parsed
(``parser.py``), bounded in depth, type-checked against the catalog (``checker.py``) and
evaluated over columns (``evaluator.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import ExpressionSyntaxError
from drivetrain.core.vss import Catalog
from drivetrain.edge.expressions.checker import check
from drivetrain.edge.expressions.evaluator import evaluate_columns
from drivetrain.edge.expressions.parser import MAX_DEPTH, parse_tree
from drivetrain.edge.expressions.syntax import (
    Node,
    ValueType,
    signals_of,
    to_text,
    tree_depth,
    type_of,
)

#: Longest expression text accepted, characters (campaigns come from the cloud; keep them small).
MAX_EXPRESSION_CHARS: Final = 4096


@dataclass(frozen=True)
class Expression:
    """A parsed, type-checked condition.

    Attributes:
        text: the source text, as given.
        root: the syntax tree (signals typed).
        signals: the VSS paths it reads, with their value types, in order of appearance.
    """

    text: str
    root: Node
    signals: Mapping[str, ValueType]

    def __str__(self) -> str:
        return to_text(self.root)

    def evaluate_columns(
        self, columns: Mapping[str, npt.ArrayLike], size: int
    ) -> npt.NDArray[np.bool_]:
        """The condition at ``size`` instants (see ``evaluator.evaluate_columns``).

        Raises:
            KeyError: a signal the expression reads has no column (a programming error).
        """
        return evaluate_columns(self.root, self.signals, columns, size)

    def evaluate(self, values: Mapping[str, object]) -> bool:
        """The condition for one set of current values (missing or None = no value).

        Raises:
            TypeError: a value of the wrong kind for its signal (e.g. a string for a number).
        """
        columns: dict[str, npt.ArrayLike] = {}
        for path, kind in self.signals.items():
            value = values.get(path)
            if kind is ValueType.STRING:
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"value of {path!r} is {value!r}; expected a string")
                columns[path] = np.array([value], dtype=object)
            else:
                if value is not None and (
                    isinstance(value, str) or not isinstance(value, int | float)
                ):
                    raise TypeError(f"value of {path!r} is {value!r}; expected {kind}")
                columns[path] = np.array([np.nan if value is None else float(value)])
        return bool(self.evaluate_columns(columns, 1)[0])


def parse_expression(text: str, catalog: Catalog) -> Expression:
    """Parse and type-check a trigger condition against ``catalog``.

    Raises:
        ExpressionSyntaxError: the text does not parse, is too long or too deep, or combines
            values of the wrong types; the message names the token and its column.
        UnknownSignalError: a signal path that is not in the catalog (with suggestions).
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, got {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(
            f"expression is {len(text)} characters long; "
            f"at most {MAX_EXPRESSION_CHARS} are accepted"
        )
    if not text.strip():
        raise ExpressionSyntaxError(
            "expression is empty; expected a condition such as 'Vehicle.Speed > 120'"
        )
    tree = parse_tree(text)
    # Before the checker, which recurses: 'a + a + ... + a' parses flat but is a deep tree.
    if (depth := tree_depth(tree)) > MAX_DEPTH:
        raise ExpressionSyntaxError(
            f"expression nests {depth} operators deep; at most {MAX_DEPTH} are accepted"
        )
    root = check(tree, catalog)
    if type_of(root) is not ValueType.BOOLEAN:
        raise ExpressionSyntaxError(
            f"expression {text!r} is {type_of(root)}; a trigger needs a condition "
            "(a comparison, a boolean signal, or and/or/not of those)"
        )
    return Expression(text, root, signals_of(root))
