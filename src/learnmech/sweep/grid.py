"""Grids of configurations: the Cartesian product of override axes, in a stable order.

A sweep is a base set of overrides plus axes ``{field: [v1, v2, ...]}``; every point of the
grid is one config (validated later by the claim's pydantic model). Executors (local, Ray)
run the points; this module only enumerates them.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

__all__ = ["expand_grid"]


def expand_grid(axes: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of ``axes`` values merged over ``base``; the last axis varies fastest.

    >>> expand_grid({"eta": [0.1, 0.2], "seeds": [4]}, {"u0": 1e-3})
    [{'u0': 0.001, 'eta': 0.1, 'seeds': 4}, {'u0': 0.001, 'eta': 0.2, 'seeds': 4}]
    """
    base = dict(base or {})
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid axis {name!r}: must be a non-empty list of values")
        if name in base:
            raise ValueError(f"grid axis {name!r}: also fixed in the base overrides")
    names = list(axes)
    return [{**base, **dict(zip(names, combo))} for combo in itertools.product(*(axes[n] for n in names))]
