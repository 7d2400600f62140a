"""The members of an ensemble: hyperparameter axes x seeds, and the records of a run over them.

Contract. ``grid`` maps an axis name to the values of one hyperparameter (``{"learning_rate": [0.1,
0.2]}``), or to several hyperparameters that vary together along that axis (``{"batch": {"k": [1, 2,
4], "learning_rate": [0.1, 0.2, 0.4]}}``: three points, not nine). The members are the Cartesian
product of the axes and the seeds, grid-major (the seed index varies fastest); results carry the
shape ``(*axis_lengths, n_seeds, ...)``. Values keep the dtype they are given in (a float32 array
stays float32 inside the compiled program).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from learnmech.train.probes import ProbeSeries

__all__ = ["TrainResult", "ensemble_members", "grid_axes", "masked_after_divergence"]


def grid_axes(grid: Mapping[str, Any] | None) -> list[dict[str, np.ndarray]]:
    """One ``{hyperparameter: values}`` per axis, checked (1-D, non-empty, equal lengths on an axis)."""
    axes = []
    for axis, values in (grid or {}).items():
        named = dict(values) if isinstance(values, Mapping) else {axis: values}
        if not named:
            raise ValueError(f"grid: axis {axis!r} names no hyperparameter")
        named = {k: np.asarray(v) for k, v in named.items()}
        lengths = {v.size if v.ndim == 1 else -1 for v in named.values()}
        if -1 in lengths or 0 in lengths or len(lengths) > 1:
            raise ValueError(f"grid: axis {axis!r} must be a non-empty 1-D sequence (or a mapping of equally long "
                             f"ones), got shapes {[v.shape for v in named.values()]}")
        axes.append(named)
    names = [k for named in axes for k in named]
    if len(names) != len(set(names)):
        raise ValueError(f"grid: a hyperparameter appears on two axes: {names}")
    return axes


def ensemble_members(grid: Mapping[str, Any] | None, seeds: Sequence[int]):
    """Flattened members: per-member hyperparameter arrays and seed indices, grid-major."""
    axes = grid_axes(grid)
    lengths = [len(next(iter(named.values()))) for named in axes]
    points = list(itertools.product(*[range(n) for n in lengths]))
    hp = {k: np.array([v[p[a]] for p in points for _ in seeds], dtype=v.dtype)
          for a, named in enumerate(axes) for k, v in named.items()}
    seed_index = np.tile(np.arange(len(seeds)), len(points))
    return hp, seed_index


def grid_shape(grid: Mapping[str, Any] | None, n_seeds: int) -> tuple[int, ...]:
    return tuple(len(next(iter(named.values()))) for named in grid_axes(grid)) + (n_seeds,)


def masked_after_divergence(values: np.ndarray, steps: np.ndarray, diverged_step: np.ndarray) -> np.ndarray:
    """``values`` ``(M, T, ...)`` with NaN where ``steps[t]`` is past member ``m``'s divergence step."""
    if not np.issubdtype(values.dtype, np.floating):
        return values
    after = (diverged_step[:, None] >= 0) & (steps[None, :] > diverged_step[:, None])  # (M, T)
    out = values.copy()
    out[after] = np.nan
    return out


@dataclass(frozen=True)
class TrainResult:
    """Observations of an ensemble, shaped ``(*grid_shape, n_seeds, n_steps, ...)``.

    ``diverged``/``diverged_step`` are ``(*grid_shape, n_seeds)``; observations of a member
    after the step at which it diverged are NaN. ``params`` holds the final parameters with the
    same leading axes. ``grid`` maps every hyperparameter to its values along its axis.
    ``step_loss`` (when asked for) is the loss of every step, ``(*grid_shape, n_seeds, last_step)``:
    entry ``t`` is the loss at the parameters after ``t`` steps, on the batch of step ``t + 1``. Entries past a member's own ``member_steps`` are NaN (steps not taken).
    ``probes`` maps the name of each probe value to its :class:`~learnmech.train.probes.ProbeSeries`.
    """

    steps: np.ndarray
    seeds: tuple[int, ...]
    grid: dict[str, np.ndarray]
    observations: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_step: np.ndarray
    params: Any
    step_loss: np.ndarray | None = None
    probes: dict[str, ProbeSeries] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.diverged.shape

    def __getitem__(self, name: str) -> np.ndarray:
        return self.observations[name]
