"""The empirical NNGP of any JAX model: Monte Carlo over initialisations, and exactly over a readout.

The NNGP kernel (Neal 1996; Lee et al. 2018, arXiv:1711.00165) is the covariance of the outputs
over random initialisations, ``K(x, x') = E_init[(1/O) sum_o f_o(x) f_o(x')]``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from learnmech.nets.mlp import MLP
from learnmech.observe.ntk import Apply, _check_inputs, _symmetrize

__all__ = ["empirical_nngp", "readout_nngp"]


def empirical_nngp(
    apply: Apply,
    init: Callable[[jax.Array], Any],
    keys: jax.Array,
    x1: jax.Array,
    x2: jax.Array | None = None,
) -> jax.Array:
    """Monte Carlo NNGP kernel ``K(x1, x2) = E_init[(1/O) sum_o f_o(x1) f_o(x2)]``, ``(n1, n2)``.

    The output covariance over random initialisations (Neal 1996; Lee et al. 2018,
    arXiv:1711.00165; Matthews et al. 2018, arXiv:1804.11271), estimated as the average over
    ``keys`` (``init(key) -> params``; a key array with a leading axis) and over output units.
    Initialisations are drawn one at a time in a ``lax.scan`` that accumulates the sum, so memory
    does not grow with the number of keys and ``jax.random.normal`` is never vmapped (which compiles
    slowly on CPU).
    """
    _check_inputs(x1, x2)
    if jnp.shape(keys)[:1] in ((), (0,)):
        raise ValueError(f"keys: need a leading axis with at least one key, got shape {jnp.shape(keys)}")
    return _nngp(apply, init, keys, x1, x1 if x2 is None else x2, x2 is None)


@functools.partial(jax.jit, static_argnames=("apply", "init", "symmetric"))
def _nngp(apply, init, keys, x1, x2, symmetric):
    def accumulate(acc, key):  # acc + sum_o f_o(x1) f_o(x2)
        params = init(key)
        f1 = apply(params, x1)  # (n1, O)
        return acc + f1 @ (f1 if symmetric else apply(params, x2)).T, None

    out = jax.eval_shape(lambda k: apply(init(k), x1), keys[0])  # (n1, O)
    acc, _ = jax.lax.scan(accumulate, jnp.zeros((x1.shape[0], x2.shape[0]), out.dtype), keys)
    acc = acc / (keys.shape[0] * out.shape[1])
    return _symmetrize(acc, "mean") if symmetric else acc


def readout_nngp(model: MLP, params, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    """Exact output covariance over the readout layer's initialisation, given the hidden layers.

    ``K(x1, x2) = E_{w_L, b_L}[f_o(x1) f_o(x2)] = c_L^2 s_L^2 Z1 Z2^T (+ var(b_L) = 0)``, ``(n1, n2)``,
    with ``Z`` the last hidden post-activations ``(n, width)`` (the inputs for a one-layer model),
    ``c_L`` the readout's forward multiplier and ``s_L`` its init std (biases start at zero). The
    readout weights are independent ``N(0, s_L^2)``, so conditional on the features the outputs are
    exactly Gaussian with this covariance. Averaged over the hidden layers' initialisation too it is
    the NNGP kernel (Lee et al. 2018, arXiv:1711.00165); one draw of the hidden layers fluctuates
    around the infinite-width NNGP by ``O(width^{-1/2})``, so this is a one-network, noise-free
    estimate of the NNGP with that much error, and at later times it is the kernel of the learned
    features under a fresh readout.
    """
    if not isinstance(model, MLP):
        raise ValueError(f"model: must be a learnmech.nets.MLP, got {type(model).__name__}")
    _check_inputs(x1, x2)
    return _readout_nngp(model, params, x1, x1 if x2 is None else x2)


@functools.partial(jax.jit, static_argnames=("model",))
def _readout_nngp(model, params, x1, x2):
    readout = model.scalings[-1]
    z1 = model.forward_with_taps(params, x1)[1][-1]  # (n1, width): input of the readout layer
    z2 = model.forward_with_taps(params, x2)[1][-1]  # (n2, width)
    return (readout.multiplier * readout.init_std) ** 2 * (z1 @ z2.T)


