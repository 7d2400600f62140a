"""A one-hidden-layer ReLU MLP in muP (Adam) whose width is a runtime argument: units beyond it are masked.

Network ``d_in -> width -> d_out`` stored at the shape of ``max_width`` hidden units:

    h = relu(x W1 + b1) * mask,        f(x) = (b / m) h V + b2,        mask_j = 1[j < m],

with ``W1 ~ N(0, 1/d_in)`` ``(d_in, M)``, ``V ~ N(0, 1/b)`` ``(M, d_out)`` (``b`` = ``base_width``,
``m`` = ``width``, ``M`` = ``max_width``), biases zero, and the columns of ``W1`` and rows of ``V``
beyond ``m`` zero at initialisation.

Parameterisation. This is muP for Adam (Yang & Hu 2021, arXiv:2011.14522; Yang et al. 2022,
arXiv:2203.03466, Table 3) in the *multiplier gauge*: with one hidden layer muP-Adam keeps the
input layer as in SP and gives the readout initial std ``(1/sqrt(b)) (b/m)`` and learning rate
``eta b / m``. Adam is invariant to rescaling a gradient, so a learning-rate factor ``c`` on a
tensor is the same as a forward multiplier ``c`` with the initialisation divided by ``c`` (the abc
symmetry ``(a, b, c) -> (a + 1, b - 1, c - 1)``, TP-V Section J.2; exact up to Adam's ``eps``).
Here the readout carries the multiplier ``b/m``, ``V ~ N(0, 1/b)``, and every tensor trains at the
same learning rate ``eta``: the network is :class:`learnmech.nets.MLP` ``((d_in, m, d_out), "relu",
"mup-adam", base_width=b)`` with ``W2 = (b/m) V``, step for step under Adam.

Why a mask. The width enters only through the scalar ``b/m`` and the mask, so networks of every
width train in one vectorised program at the widest shape (one compilation; the width can be a
traced hyperparameter). A masked unit is exactly inert: its post-activation is ``0``, so it adds
nothing to the output, and the gradients of its weights (``W1[:, j]``, ``b1[j]``, ``V[j]``) are exactly
zero, hence so are its Adam updates, and its weights stay where they started (zero for ``W1``,
``V``). At ``m = b`` this is the standard parameterisation.

Contract: like every model in :mod:`learnmech.nets` a frozen, hashable description with ``init`` and
``apply`` over a plain pytree ``{"w1", "b1", "v", "b2"}``, except that both take the ``width``;
``forward`` also returns the hidden units ``h`` ``(n, M)`` (the representation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["MaskedMLP"]


@dataclass(frozen=True)
class MaskedMLP:
    """One-hidden-layer ReLU muP-Adam MLP at ``max_width`` units, of which the first ``width`` are live.

    Attributes:
      d_in: input dimension ``d``.
      max_width: stored hidden units ``M`` (the widest width trained).
      d_out: outputs.
      base_width: muP base width ``b`` (at ``width = b``: the standard parameterisation).
      dtype: parameter dtype.
    """

    d_in: int
    max_width: int
    d_out: int
    base_width: int
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("d_in", "max_width", "d_out", "base_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be a positive integer, got {getattr(self, name)}")

    def mask(self, width) -> jax.Array:
        """``1[j < width]`` over the stored units, ``(M,)``."""
        return (jnp.arange(self.max_width) < width).astype(self.dtype)

    def init(self, key: jax.Array, width) -> dict[str, jax.Array]:
        """``W1 ~ N(0, 1/d)`` ``(d, M)``, ``b1 = 0`` ``(M,)``, ``V ~ N(0, 1/b)`` ``(M, d_out)``, ``b2 = 0``;
        units ``>= width`` zero."""
        k1, k2 = jax.random.split(key)
        mask = self.mask(width)  # (M,)
        d, M = self.d_in, self.max_width
        return {
            "w1": jax.random.normal(k1, (d, M), self.dtype) / math.sqrt(d) * mask,
            "b1": jnp.zeros((M,), self.dtype),
            "v": jax.random.normal(k2, (M, self.d_out), self.dtype) / math.sqrt(self.base_width) * mask[:, None],
            "b2": jnp.zeros((self.d_out,), self.dtype),
        }

    def forward(self, params, x: jax.Array, width) -> tuple[jax.Array, jax.Array]:
        """Outputs ``(b/m) h V + b2`` ``(n, d_out)`` and hidden units ``h = relu(x W1 + b1) * mask`` ``(n, M)``."""
        h = jax.nn.relu(x @ params["w1"] + params["b1"]) * self.mask(width)  # (n, M)
        scale = self.base_width / jnp.asarray(width, self.dtype)  # muP-Adam readout in the multiplier gauge
        return scale * (h @ params["v"]) + params["b2"], h

    def apply(self, params, x: jax.Array, width) -> jax.Array:
        """Network outputs, ``(n, d_out)``."""
        return self.forward(params, x, width)[0]
