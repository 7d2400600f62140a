"""Sweeps over claim configurations: grid expansion (executors build on it)."""

from learnmech.sweep.grid import expand_grid

__all__ = ["expand_grid"]
