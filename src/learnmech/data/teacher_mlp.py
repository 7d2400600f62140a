"""Regression on the outputs of a random teacher MLP.

Teacher: ``depth`` weight matrices ``W_1 (d_in, width), ..., W_depth (width, d_out)`` (a single
(d_in, d_out) matrix when depth = 1), no biases, standard parameterisation with entries
``W_l[i, j] ~ N(0, 1 / fan_in_l)``. Forward pass on a row-vector input x (rows are examples):

    h_0 = x,   h_l = phi(h_{l-1} W_l)  for l < depth,   f(x) = h_{depth-1} W_depth.

The readout is linear. With this scaling the pre-activation variances follow
``q_1 = tr(Sigma_x) / d_in`` and ``q_{l+1} = E[phi(z)^2], z ~ N(0, q_l)``, so that
``E[y^2] = q_depth``: exactly on average over teachers for linear and ReLU (whose
``E[phi(z)^2]`` is linear in q: unchanged, resp. halved per layer), and in the wide limit
otherwise.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.theory.dual import ACTIVATIONS, named_activation

from .gaussian import _float_dtype, _typed_key, gaussian_inputs

__all__ = ["ACTIVATIONS", "teacher_mlp_init", "teacher_mlp_apply", "teacher_mlp_regression"]


def _activation(name: str):
    """The jax function of the activation table's entry ``name`` (:data:`learnmech.theory.dual.ACTIVATIONS`)."""
    try:
        return named_activation(name).fn
    except ValueError:
        raise ValueError(
            f"unknown activation {name!r}; allowed: {', '.join(sorted(ACTIVATIONS))}, leaky_relu:<slope>"
        ) from None


def teacher_mlp_init(key, d_in: int, *, width: int = 64, depth: int = 2, d_out: int = 1,
                     dtype=jnp.float32) -> list:
    """Random teacher weights: a list of ``depth`` arrays of shape (fan_in, fan_out).

    Layer sizes are ``[d_in] + [width] * (depth - 1) + [d_out]``; entries are
    ``N(0, 1 / fan_in)`` (standard parameterisation, no biases).
    """
    dt = _float_dtype(dtype)
    if int(depth) < 1 or int(width) < 1 or int(d_in) < 1 or int(d_out) < 1:
        raise ValueError(
            f"need depth, width, d_in, d_out >= 1, got {depth}, {width}, {d_in}, {d_out}"
        )
    sizes = (int(d_in),) + (int(width),) * (int(depth) - 1) + (int(d_out),)
    return _init(_typed_key(key), sizes, dt)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init(key, sizes: tuple, dt) -> list:
    # One Gaussian draw for all layers, cut into matrices (one threefry call: cheaper to
    # compile than one per layer).
    shapes = list(zip(sizes[:-1], sizes[1:]))  # [(fan_in, fan_out), ...]
    z = jax.random.normal(key, (sum(a * b for a, b in shapes),), dt)  # (n_params,)
    params, start = [], 0
    for fan_in, fan_out in shapes:
        w = z[start:start + fan_in * fan_out].reshape(fan_in, fan_out)  # (fan_in, fan_out)
        params.append(w / jnp.sqrt(jnp.asarray(fan_in, dt)))  # entries N(0, 1/fan_in)
        start += fan_in * fan_out
    return params


def teacher_mlp_apply(params: list, x, activation: str = "relu"):
    """Teacher output ``f(x)``: phi after every layer but the last (linear readout).

    Args:
      params: list of (fan_in, fan_out) weight matrices from :func:`teacher_mlp_init`.
      x: (n, d_in) inputs.
      activation: a name of the activation table ``ACTIVATIONS`` ("relu", "tanh", "erf", "linear", ...).

    Returns:
      (n, d_out) outputs.
    """
    phi = _activation(activation)
    h = x  # (n, d_in)
    for w in params[:-1]:
        h = phi(h @ w)  # (n, width)
    return h @ params[-1]  # (n, d_out)


def teacher_mlp_regression(key, n: int, d_in: int, *, width: int = 64, depth: int = 2,
                           d_out: int = 1, activation: str = "relu", noise: float = 0.0,
                           input_spectrum=None, dtype=jnp.float32):
    """Inputs, noisy teacher-MLP targets, and the teacher itself.

    ``X ~ N(0, I)`` (or ``N(0, diag(input_spectrum))``), ``Y = f(X) + noise * Xi`` with
    ``Xi`` standard Gaussian and ``f`` a fresh random teacher (see :func:`teacher_mlp_init`).
    ``noise`` is the standard deviation of the label noise.

    Args:
      key: jax PRNG key (split into teacher, inputs and noise keys).
      n: number of examples.
      d_in: input dimension.
      width, depth, d_out: teacher architecture (``depth`` weight matrices).
      activation: a name of ``ACTIVATIONS`` ("relu", "tanh", "erf", "linear", ...).
      noise: label-noise standard deviation.
      input_spectrum: optional (d_in,) covariance eigenvalues of the inputs.
      dtype: floating dtype of all arrays.

    Returns:
      X: (n, d_in), Y: (n, d_out), teacher_params: list of (fan_in, fan_out) arrays.
    """
    dt = _float_dtype(dtype)
    _activation(activation)  # fail early on a bad name
    spectrum = jnp.ones((int(d_in),), dt) if input_spectrum is None else input_spectrum
    if jnp.shape(spectrum) != (int(d_in),):
        raise ValueError(f"input_spectrum must have shape ({d_in},), got {jnp.shape(spectrum)}")
    k_teacher, k_x, k_noise = jax.random.split(_typed_key(key), 3)
    params = teacher_mlp_init(k_teacher, d_in, width=width, depth=depth, d_out=d_out, dtype=dt)
    x = gaussian_inputs(k_x, n, spectrum, dtype=dt)  # (n, d_in)
    y = _outputs(k_noise, params, x, noise, activation, not _is_zero(noise))  # (n, d_out)
    return x, y, params


def _is_zero(noise) -> bool:
    """True when ``noise`` is concretely zero, so no noise needs to be drawn."""
    return not isinstance(noise, jax.core.Tracer) and bool(np.all(np.asarray(noise) == 0))


@functools.partial(jax.jit, static_argnums=(4, 5))
def _outputs(key, params, x, noise, activation: str, noisy: bool):
    y = teacher_mlp_apply(params, x, activation)  # (n, d_out)
    if noisy:
        y = y + noise * jax.random.normal(key, y.shape, y.dtype)  # (n, d_out)
    return y
