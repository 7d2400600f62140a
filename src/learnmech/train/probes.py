"""Costly probes: measurements the trainer runs per member on their own schedule.

Contract. A :class:`Probe` names a function of one member's training state,

    fn(params, preconditioner, data)            or   fn(params, preconditioner, data, hp)

(the hyperparameter channel is the parameter name ``hp``, as everywhere in the trainer), returning a
scalar or small array, or a mapping of names to them. ``preconditioner`` is the diagonal ``P`` of the
member's update ``w <- w - eta P^{-1} m`` (:func:`learnmech.train.optimizers.preconditioner`: ones for
SGD and heavy ball, Adam's from its state; ``None`` for a custom optax chain holding Adam's state, whose
``b1, b2, eps`` are not known), so a probe of ``lambda_max(P^{-1} H)`` needs nothing else;
``data`` is the probe's own batch (``Probe.data``) or, by default, the training data. The schedule is
``every=K`` (steps ``0, K, 2K, ...`` up to the last step) or explicit ``steps``; ``members`` restricts
the probe to some members (flat indices, grid-major as :func:`learnmech.train.ensemble_members` orders
them). Ready-made probe functions (sharpness by Lanczos or power iteration, preconditioned sharpness,
empirical NTK, gradient noise) are in :mod:`learnmech.observe.probes`.

Where probes run (measured): inside the trainer's compiled chunk program, after the chunk, behind a
``lax.cond`` on "is this a probe step" (unbatched, so a real branch), on the probed members gathered
inside the program. The alternative, each probe its own compiled program called between chunks,
was measured on the same machine in the same hour (2-core CPU, light load, two cold runs each):
edge-of-stability quick (10 members, Lanczos of 20 HVPs every 20 of 1,000 full-batch steps, two
probes): compilation and start 5.5-5.8 s inside against 6.3-6.4 s between (one program instead of
three), the 1,000 steps with their probes 2.54-2.67 s against 2.72-2.74 s; linear-scaling quick (a
noise probe at all 41 stops): 6.0-6.3 s per cold run either way. Inside is kept.

Layout: as the trainer chooses its own, ``"auto"`` maps members one after another (``lax.map``) from
``map_from`` parameters per member on and batches them (``vmap``) below; ``map_from=None`` is the
trainer's threshold (``learnmech.train.trainer._AUTO_MAP_PARAMETERS``). A probe whose cost differs
from member to member should map at every size (``map_from=0``): a vmapped ``while_loop``, e.g. power
iteration, runs until its slowest member has converged (the probes of :mod:`learnmech.observe.probes`
carry the thresholds measured for their methods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from learnmech.train.schedule import validate_schedule

__all__ = ["Probe", "ProbeSeries", "probe_schedule"]

LAYOUTS = ("vmap", "map", "auto")


@dataclass(frozen=True)
class Probe:
    """A costly measurement, scheduled and run per member by :func:`learnmech.train.train`.

    Attributes:
      name: the name of its value in ``TrainResult.probes`` when ``fn`` returns an array; a mapping's
        keys name its values instead.
      fn: ``fn(params, preconditioner, data[, hp])`` (module docstring).
      every: probe at steps ``0, every, 2 every, ...`` (and not past the last step).
      steps: explicit steps (strictly increasing, ``>= 0``); exactly one of ``every`` and ``steps``.
      members: flat member indices (grid-major, seeds last) or ``None`` for every member.
      data: the probe's batch (a pytree of arrays; an argument of its compiled program), ``None``: the
        training data.
      layout: ``"vmap" | "map" | "auto"`` over the probed members.
      map_from: ``"auto"`` maps from this many parameters per member on (``None``: the trainer's rule).
    """

    name: str
    fn: Callable
    every: int | None = None
    steps: Sequence[int] | None = None
    members: Sequence[int] | None = None
    data: Any = None
    layout: str = "auto"
    map_from: int | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"probe: name must be a non-empty string, got {self.name!r}")
        if (self.every is None) == (self.steps is None):
            raise ValueError(f"probe {self.name!r}: give exactly one of every and steps")
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, int)
                                       or self.every < 1):
            raise ValueError(f"probe {self.name!r}: every must be an int >= 1, got {self.every!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"probe {self.name!r}: layout must be one of {list(LAYOUTS)}, got {self.layout!r}")


class ProbeSeries(NamedTuple):
    """One value of a probe: ``steps (T,)``, ``members (K,)`` flat indices, ``values (K, T, ...)``.

    After a member diverged its values are NaN (float values).
    """

    steps: np.ndarray
    members: np.ndarray
    values: np.ndarray


def probe_schedule(probe: Probe, last_step: int) -> np.ndarray:
    """The steps at which ``probe`` runs, ``<= last_step``."""
    if probe.every is not None:
        return np.arange(0, last_step + 1, probe.every, dtype=np.int64)
    steps = validate_schedule(probe.steps)
    if steps[-1] > last_step:
        raise ValueError(f"probe {probe.name!r}: step {int(steps[-1])} is past the last training step {last_step}")
    return steps


def probe_members(probe: Probe, n_members: int) -> np.ndarray:
    """The flat indices of the probed members, checked."""
    if probe.members is None:
        return np.arange(n_members)
    members = np.asarray(probe.members, dtype=np.int64).ravel()
    if members.size == 0 or members.min() < 0 or members.max() >= n_members or np.unique(members).size != members.size:
        raise ValueError(f"probe {probe.name!r}: members must be distinct indices in [0, {n_members}), "
                         f"got {members.tolist()}")
    return members


def as_mapping(name: str, value) -> Mapping[str, Any]:
    """A probe's return value as ``{name: value}`` unless it is already a mapping."""
    return value if isinstance(value, Mapping) else {name: value}


def probe_program(member_fn: Callable, layout: str, members: np.ndarray, n_members: int) -> Callable:
    """A traceable ``(states, hp, data) -> {name: (K, ...)}`` over the probed members.

    ``member_fn(state, hp_m, data)`` evaluates the probe on one member; ``states``/``hp`` carry every
    member on their leading axis and the probed ones are gathered inside (no gather when all are).
    """
    every = members.size == n_members and np.array_equal(members, np.arange(n_members))
    take = (lambda tree: tree) if every else (lambda tree: jax.tree.map(lambda a: a[members], tree))
    if layout == "vmap":
        run = jax.vmap(member_fn, in_axes=(0, 0, None))
    else:
        run = lambda s, h, d: jax.lax.map(lambda a: member_fn(a[0], a[1], d), (s, h))  # noqa: E731
    return lambda states, hp, data: run(take(states), take(hp), data)
