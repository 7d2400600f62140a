"""The regression task of the learning-rate transfer experiments (``hparams.mup-transfer``, ``learnmech transfer``).

Inputs ``(N, d_in) ~ N(0, I)``; targets ``(N, 1)`` of a random tanh teacher MLP of width 64 and
depth 3 (:data:`TEACHER`, :func:`learnmech.data.teacher_mlp_regression`), no label noise; float32.
Its scale is the zero-function loss ``L_0 = (1/2N) sum_i ||y_i||^2``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.data.teacher_mlp import teacher_mlp_regression

__all__ = ["TEACHER", "transfer_task", "zero_function_loss"]

TEACHER = {"width": 64, "depth": 3, "activation": "tanh"}  # the task's teacher


def transfer_task(n_samples: int = 512, d_in: int = 16, data_seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """The regression pool: inputs ``(N, d_in) ~ N(0, I)``, targets ``(N, 1)`` of a random tanh teacher.

    The teacher is :data:`TEACHER` (``learnmech.data.teacher_mlp_regression``), drawn from
    ``data_seed``; float32.
    """
    X, Y, _ = teacher_mlp_regression(jax.random.key(data_seed), n_samples, d_in, dtype=jnp.float32, **TEACHER)
    return X, Y


def zero_function_loss(data) -> float:
    """``L_0 = (1/2N) sum_i ||y_i||^2``: the loss of predicting 0, the scale of "trained"."""
    _, Y = data
    return float(0.5 * np.sum(np.asarray(Y, np.float64) ** 2) / Y.shape[0])
