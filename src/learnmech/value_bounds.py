"""Bounds on the values a user types or loads (``--set`` JSON, sweep specs), stated once.

- Nesting: lists and tables inside one another at most :data:`MAX_NESTING` deep (a config field
  needs two or three; a parser that recurses would otherwise end in ``RecursionError``).
- Integers: every integer of a config fits a signed 64-bit int (:data:`INT64_MIN`..:data:`INT64_MAX`),
  what numpy and XLA compute with; digits beyond Python's own limit are refused as not fitting.
- Numbers are finite: ``NaN`` and ``Infinity`` (which :func:`json.loads` accepts) are refused.

:func:`echo` shortens a refused value for the one-line error message. Nothing here imports the
rest of the package: the command line, the sweep specs and the claim configs all use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["INT64_MAX", "INT64_MIN", "MAX_NESTING", "TOO_DEEP", "ValueRefused", "echo", "loads_bounded",
           "nesting_depth", "scalars"]

MAX_NESTING = 32  # lists/tables inside one another; a sweep spec needs 4 (file, [grid], axis, a list value)
TOO_DEEP = f"nested too deeply, at most {MAX_NESTING} levels of lists and tables"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # numpy's and XLA's widest integer
ECHO_CHARS = 80  # a refused value is shown up to this many characters


class ValueRefused(ValueError):
    """A value outside the bounds of this module; the message says what is allowed."""


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """Levels of lists, tuples and dicts in ``value`` (a scalar is 0), counted without recursion.

    Counting stops at ``limit + 1``: a value that deep is refused whatever its true depth.

    >>> nesting_depth({"grid": {"s": [[3.0, 1.0]]}})
    4
    """
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return limit + 1
        stack.extend((child, depth + 1) for child in children)
    return deepest


def scalars(value: Any):
    """The scalars inside ``value``: it, or the items of its lists, tuples, sets and dict values, at any depth.

    Walks without recursion. ``list(scalars({"a": [1, (2.0,)]}))`` is ``[1, 2.0]`` in some order.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            yield item


def echo(value: Any, chars: int = ECHO_CHARS) -> str:
    """``repr(value)`` cut to ``chars`` characters (``...`` marks the cut), for one-line messages.

    >>> echo(list(range(100)), 20)
    '[0, 1, 2, 3, 4, 5...'
    """
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's str-conversion limit (4300 digits)
        return "an integer of thousands of digits"
    return _cut(text, chars)


def _cut(text: str, chars: int = ECHO_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 3] + "..."


class _Refused(Exception):
    """Raised inside the JSON decoder's hooks; becomes :class:`ValueRefused` with the whole text."""


def _constant(name: str):
    raise _Refused("must be finite numbers")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf
        raise _Refused("must be finite numbers")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: far beyond 64 bits
        raise _Refused(f"integers must fit in 64 bits, {INT64_MIN} to {INT64_MAX}") from None


def loads_bounded(text: str) -> Any:
    """:func:`json.loads` of ``text`` within the bounds of this module.

    ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow to infinity (``1e999``), integers
    of more digits than Python converts, and nesting deeper than :data:`MAX_NESTING` raise
    :class:`ValueRefused` (the message ends with the text, cut); text that is not JSON raises
    :class:`json.JSONDecodeError` as usual. The config model checks the ranges of what is left.

    >>> loads_bounded("[3.0, 1]")
    [3.0, 1]
    """
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _Refused as exc:
        raise ValueRefused(f"{exc} (got {_cut(text)})") from None
    except RecursionError:
        raise ValueRefused(f"{TOO_DEEP} (got {_cut(text)})") from None
    if nesting_depth(value) > MAX_NESTING:
        raise ValueRefused(f"{TOO_DEEP} (got {_cut(text)})")
    return value
