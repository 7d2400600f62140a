"""Config checks shared by claims (used inside pydantic field validators)."""

from __future__ import annotations

__all__ = ["widths_spanning"]


def widths_spanning(widths: tuple[int, ...], min_span: float) -> tuple[int, ...]:
    """``widths`` if they are at least 2 positive, strictly increasing integers whose widest is at
    least ``min_span`` times the narrowest; ``ValueError`` saying which rule failed otherwise.

    >>> widths_spanning((32, 64, 256), 8.0)
    (32, 64, 256)
    """
    w = tuple(widths)
    if len(w) < 2 or w[0] < 1 or any(a >= b for a, b in zip(w, w[1:])):
        raise ValueError("must hold at least 2 positive, strictly increasing widths")
    if w[-1] < min_span * w[0]:
        raise ValueError(f"must span at least {min_span:g}x (widest / narrowest), got {w[0]}..{w[-1]}")
    return w
