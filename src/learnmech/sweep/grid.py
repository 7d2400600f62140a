"""Grids of configurations: the Cartesian product of override axes, in a stable order.

A sweep is a base set of overrides plus axes ``{field: [v1, v2, ...]}``; every point of the
grid is one config (validated later by the claim's pydantic model). Executors (local, Ray)
run the points; this module only enumerates them.

A sweep has at most :data:`MAX_POINTS` points: the size of a grid is the product of its axis
lengths, computed (and refused) before a single combination is built.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

__all__ = ["MAX_POINTS", "expand_grid", "grid_size"]

MAX_POINTS = 10_000  # points per sweep: each is a run and a row in the store (a day of 10 s runs on one core)


def grid_size(*lengths: int) -> int:
    """Points of a grid whose axes have these lengths (their product; 1 for no axes).

    >>> grid_size(10, 10, 10, 10, 10, 10, 10)
    10000000
    """
    return math.prod(lengths)


def expand_grid(axes: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None, *,
                max_points: int = MAX_POINTS) -> list[dict[str, Any]]:
    """Every combination of ``axes`` values merged over ``base``; the last axis varies fastest.

    ``ValueError`` when there would be more than ``max_points`` combinations (checked first).

    >>> expand_grid({"eta": [0.1, 0.2], "seeds": [4]}, {"u0": 1e-3})
    [{'u0': 0.001, 'eta': 0.1, 'seeds': 4}, {'u0': 0.001, 'eta': 0.2, 'seeds': 4}]
    """
    base = dict(base or {})
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid axis {name!r}: must be a non-empty list of values")
        if name in base:
            raise ValueError(f"grid axis {name!r}: also fixed in the base overrides")
    size = grid_size(*(len(values) for values in axes.values()))
    if size > max_points:
        raise ValueError(f"grid: {size:,} points (the product of the axis lengths) exceed the limit of "
                         f"{max_points:,} points per sweep (MAX_POINTS)")
    names = list(axes)
    return [{**base, **dict(zip(names, combo))} for combo in itertools.product(*(axes[n] for n in names))]
