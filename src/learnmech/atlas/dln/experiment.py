"""The deep-linear-network experiment shared by the ``dln.*`` claims.

A rank-``r`` linear teacher ``W* = U diag(s) V^T`` (random orthonormal ``U``, ``V`` drawn from
``teacher_seed``) labels a whitened sample (``X^T X / n = I`` exactly), so the sample loss
``(1/2n) sum ||f(x) - y||^2`` equals the population loss ``1/2 ||W - W*||_F^2`` of the
theory. A :class:`~learnmech.nets.DeepLinear` ensemble is trained by full-batch GD with a small
learning rate, and the mode strengths ``diag(U^T W_L...W_1 V)`` and the singular values of the
end-to-end map are recorded on a log-spaced schedule. Time is ``t = eta * steps``.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.atlas.contract import Curve, Progress
from learnmech.atlas.keys import key
from learnmech.data import LinearTeacher
from learnmech.nets import DeepLinear, end_to_end
from learnmech.observe import mode_strengths, mse_loss, singular_values
from learnmech.train import OptimizerSpec, TrainResult, log_schedule, train

__all__ = ["DTYPE", "decreasing", "horizon", "loss_curve", "make_teacher", "mode_curves", "rank_curve", "train_dln"]

DTYPE = "float64"  # the comparisons are to 1e-2 and below; float64 removes rounding from them


def decreasing(cls, s: tuple[float, ...]) -> tuple[float, ...]:
    """Pydantic validator body for singular values: positive and strictly decreasing."""
    if len(s) == 0 or any(v <= 0 for v in s) or any(a <= b for a, b in zip(s, s[1:])):
        raise ValueError("must be positive and strictly decreasing")
    return s


def make_teacher(d_in: int, d_out: int, s, teacher_seed: int) -> LinearTeacher:
    """The teacher ``U diag(s) V^T`` with Haar-random singular vectors."""
    return LinearTeacher.random(jax.random.key(teacher_seed), d_in, d_out, jnp.asarray(s, DTYPE), dtype=DTYPE)


def train_dln(
    teacher: LinearTeacher,
    *,
    widths: tuple[int, ...],
    init: Callable,
    eta: float,
    t_max: float,
    seeds: int,
    points: int,
    n_samples: int,
    grid: dict | None = None,
    progress: Progress | None = None,
    label: str = "train",
    observe_more: Callable | None = None,
) -> TrainResult:
    """Train a deep-linear ensemble on the teacher's whitened sample; see the module docstring.

    ``init(net, key, hp)`` builds one member's parameters. ``observe_more(params, params0) -> {name: array}``
    adds observables to ``"modes"`` and ``"singular_values"`` (recorded at every observation point).
    """
    net = DeepLinear(widths, dtype=DTYPE)
    X, Y = teacher.whitened_sample(jax.random.key(10_000 + n_samples), n_samples)
    U, V = teacher.U, teacher.V
    total = max(1, math.ceil(t_max / eta))

    def observe(params, params0):
        W = end_to_end(params)  # (d_out, d_in)
        out = {"modes": mode_strengths(W, U, V), "singular_values": singular_values(W)}
        return out if observe_more is None else {**out, **observe_more(params, params0)}

    report = None if progress is None else (lambda done, tot: progress(label, done, tot))
    return train(
        init=lambda key, hp: init(net, key, hp),
        loss=mse_loss(net.apply),
        data=(X, Y),
        optimizer=OptimizerSpec("sgd", {"learning_rate": eta}),
        seeds=list(range(seeds)),
        grid=grid,
        steps=log_schedule(total, points),
        observe=observe,
        progress=report,
    )


def mode_curves(result: TrainResult, eta: float, *prefix: object, index=()) -> dict[str, Curve]:
    """``{key(*prefix, a): Curve(t, u_a over seeds)}`` from ``result["modes"][index]`` (seeds, T, r).

    ``prefix`` is the parts of the family's name (``"mode"`` when none is given): ``("mode",)``
    gives ``mode/0, mode/1, ...``, ``("L3", "mode")`` gives ``L3/mode/0, ...``.
    """
    t = result.steps * eta
    modes = result["modes"][index]  # (seeds, T, r)
    return {key(*(prefix or ("mode",)), a): Curve(t, modes[:, :, a]) for a in range(modes.shape[-1])}


def loss_curve(result: TrainResult, eta: float, index=()) -> Curve:
    return Curve(result.steps * eta, result["loss"][index])


def horizon(t_half_slowest: float, s_min: float, depth: int, e_folds: float) -> float:
    """Training time: the slowest mode's ``t_half`` plus ``e_folds`` of its final relaxation.

    Near ``u = s`` the mode ODE linearises to ``d(s - u)/dt = -L s^{2-2/L} (s - u)``, so after
    ``t_half`` the remaining gap shrinks by ``e`` every ``1/(L s^{2-2/L})``; ``e_folds = 4``
    leaves about 2% of the slowest mode to learn.
    """
    rate = depth * s_min ** (2.0 - 2.0 / depth)
    return float(t_half_slowest + e_folds / rate)


def rank_curve(result: TrainResult, eta: float, tol: float, index=()) -> Curve:
    """Numerical rank of ``W_L...W_1`` (singular values above ``tol``) over time."""
    sv = result["singular_values"][index]  # (seeds, T, min(d_out, d_in))
    return Curve(result.steps * eta, np.sum(sv > tol, axis=-1))
