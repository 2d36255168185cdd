"""Parsing untrusted JSON (envelope headers, event and ack bodies) so that every failure is a
:class:`~drivetrain.core.errors.WireFormatError`.

``json.loads`` alone lets through more than format errors: 16,000 ``[`` raise
``RecursionError``, a 4,300-digit integer ``ValueError``, bytes that are not UTF-8
``UnicodeDecodeError``. And it accepts what no database can bind: ``"\\ud800"`` (a lone
surrogate, which has no UTF-8 form) and ``"\\u0000"`` (PostgreSQL text refuses NUL).
:func:`load_json_object` maps all of it to a format error and checks the document's depth and
strings with an iterative walk (no recursion of its own).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from drivetrain.core.errors import WireFormatError

#: Deepest nesting accepted (objects and arrays); vehicle messages need a handful.
MAX_JSON_DEPTH: Final = 32
#: A lone surrogate or a NUL character: text no UTF-8 encoder or PostgreSQL column accepts.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def load_json_object(data: bytes | memoryview, where: str) -> dict[str, Any]:
    """``data`` parsed as one JSON object whose strings are all storable text.

    Raises:
        WireFormatError: not UTF-8, not JSON, not an object, nested deeper than
            :data:`MAX_JSON_DEPTH`, an integer too long to convert, or a string (key or value)
            holding a lone surrogate or NUL — the message says which, after ``where``.
    """
    raw = bytes(data)
    try:
        # Decoded strictly here: json.loads would decode bytes with "surrogatepass", letting
        # the UTF-8 form of a lone surrogate (ED A0 80) through as text.
        value = json.loads(raw.decode(json.detect_encoding(raw)))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireFormatError(f"{where} is not valid JSON: {e}") from e
    except RecursionError:
        raise WireFormatError(f"{where} is nested too deeply to parse") from None
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string ..."
        raise WireFormatError(f"{where} holds a value that cannot be read: {e}") from e
    if not isinstance(value, dict):
        raise WireFormatError(f"{where} is a JSON {type(value).__name__}; expected an object")
    if not _plainly_storable(raw):
        check_document(value, where)
    return value


def _plainly_storable(raw: bytes) -> bool:
    """True when the bytes of a parsed JSON document show that it passes
    :func:`check_document` (an envelope header's do). A NUL or a lone surrogate in a parsed
    string can only come from an escape (the parser refuses raw control characters; raw
    surrogates do not decode strictly), and every escape holds the byte of a backslash, in UTF-8,
    -16 or -32 alike; a document with no more bytes of ``{`` and ``[`` than
    :data:`MAX_JSON_DEPTH` cannot nest deeper."""
    return b"\\" not in raw and raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH


def check_document(document: Any, where: str) -> None:
    """Check depth and strings of a parsed JSON value (see :func:`load_json_object`)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise WireFormatError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key, where)
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in value)


def _check_text(text: str, where: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is not None:
        raise WireFormatError(
            f"{where} holds a string with character U+{ord(found.group()):04X} at position "
            f"{found.start()} (a lone surrogate or NUL; expected text that UTF-8 can encode)"
        )
