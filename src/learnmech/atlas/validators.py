"""Config checks shared by claims (used inside pydantic field validators)."""

from __future__ import annotations

from learnmech.increasing import increasing

__all__ = ["widths_spanning"]


def widths_spanning(widths: tuple[int, ...], min_span: float) -> tuple[int, ...]:
    """``widths`` if they are at least 2 positive, strictly increasing integers whose widest is at
    least ``min_span`` times the narrowest; ``ValueError`` saying which rule failed otherwise.

    >>> widths_spanning((32, 64, 256), 8.0)
    (32, 64, 256)
    """
    try:
        w = increasing(widths, at_least=2, what="widths")
    except ValueError as exc:  # pydantic's refusal shows the value itself: keep the rule, drop its ", got ..."
        raise ValueError(str(exc).partition(", got ")[0]) from None
    if w[-1] < min_span * w[0]:
        raise ValueError(f"must span at least {min_span:g}x (widest / narrowest), got {w[0]}..{w[-1]}")
    return w
