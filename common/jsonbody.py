"""JSON request bodies from clients, parsed with limits.

``json.loads`` takes what RFC 8259 allows and more: nesting as deep as the
interpreter's recursion limit (past it, a RecursionError), numbers of any
length (past 4300 digits a ValueError, and a long one costs quadratic time
to convert), and NaN and Infinity, which are not JSON. Each of those was an
internal error (500) in a handler. :func:`loads` refuses them with a
:class:`JSONBodyError` whose message says what was wrong, for a 400:

- nesting deeper than ``MAX_DEPTH`` arrays and objects (RFC 8259 section 9
  lets a parser limit it);
- an integer outside the signed 64-bit range, which no column or LMDB field
  of this project holds (RFC 8259 section 6 lets a parser limit the range);
- a number written with more than ``MAX_NUMBER_CHARS`` characters;
- NaN, Infinity and -Infinity;
- a body that is not UTF-8 (RFC 8259 section 8.1).
"""

import json
import math

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class JSONBodyError(ValueError):
    """A body that is not acceptable JSON; the message is for the client."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JSONBodyError(f"a number longer than {MAX_NUMBER_CHARS} characters")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JSONBodyError(f"the integer {text} is outside the signed 64-bit range")
    return value


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JSONBodyError(f"a number longer than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):  # 1e400: no double holds it
        raise JSONBodyError(f"the number {text} is out of range")
    return value


def _constant(text: str):
    raise JSONBodyError(f"{text} is not a JSON number (RFC 8259 section 6)")


def _check_depth(value, limit: int) -> None:
    """Iteratively: a deep value must not recurse here either."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise JSONBodyError(f"JSON nested deeper than {limit} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def loads(data: bytes | str, max_depth: int = MAX_DEPTH):
    """The JSON value of ``data``, or a :class:`JSONBodyError`."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONBodyError("the body is not UTF-8 text") from None
    try:
        value = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JSONBodyError(f"JSON nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise JSONBodyError(f"the body is not JSON: {exc.msg} at offset {exc.pos}") from None
    # Containers are counted only when there could be enough of them.
    if isinstance(value, dict | list) and data.count("[") + data.count("{") > max_depth:
        _check_depth(value, max_depth)
    return value
