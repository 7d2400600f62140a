"""One validated type for the grids users give: positive, strictly increasing, long enough to fit.

Widths, learning rates, batch sizes and example counts are all such grids; every layer checks
them with :func:`increasing` (a plain function: ``ValueError`` naming what failed) and every
claim config declares them with :func:`Increasing` (the same check as a pydantic type), so the
rule and its message are written once. It imports nothing from the package, so any layer may use
it.

>>> increasing([32, 64, 128], at_least=3)
(32, 64, 128)
>>> increasing([1.0, 0.5], name="lrs")
Traceback (most recent call last):
ValueError: lrs: must be at least 2 positive, strictly increasing values, got (1.0, 0.5)
"""

from __future__ import annotations

from typing import Annotated, Iterable

from pydantic import AfterValidator

__all__ = ["Increasing", "increasing"]


def _rule(at_least: int, what: str) -> str:
    return f"must be at least {at_least} positive, strictly increasing {what}"


def _problem(values: tuple, at_least: int, what: str) -> str | None:
    if len(values) < at_least or not values[0] > 0 or any(not a < b for a, b in zip(values, values[1:])):
        return _rule(at_least, what)
    return None


def increasing(values: Iterable, *, at_least: int = 2, name: str | None = None, what: str = "values") -> tuple:
    """``values`` as a tuple when they are ``at_least`` positive, strictly increasing numbers.

    ``ValueError`` otherwise, its message ``"{name}: must be at least {at_least} positive, strictly
    increasing {what}, got ..."`` (without the ``name:`` prefix when ``name`` is None).
    """
    out = tuple(values)
    problem = _problem(out, at_least, what)
    if problem is not None:
        raise ValueError(f"{name + ': ' if name else ''}{problem}, got {out}")
    return out


def Increasing(kind: type = float, at_least: int = 2, what: str = "values"):  # noqa: N802  (a type factory)
    """The pydantic type of a tuple of ``kind`` checked by :func:`increasing` (the field names itself)."""

    def check(values: tuple) -> tuple:
        problem = _problem(tuple(values), at_least, what)
        if problem is not None:
            raise ValueError(problem)
        return values

    return Annotated[tuple[kind, ...], AfterValidator(check)]
