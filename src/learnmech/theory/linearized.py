"""Linearised training: the output trajectory of a network that trains like its first-order Taylor expansion.

Contract: every function here is a pure prediction in float64 numpy, vectorised over times (any
shape ``T``; results have shape ``T + f0.shape``), with no training, I/O or randomness. One
symmetric eigendecomposition of the train kernel serves every time point.

Setting (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720).
Replace the network by its linearisation around the initial parameters ``w_0``,

    f^lin(x; w) = f_0(x) + J(x) (w - w_0),      J(x) = d f(x; w_0) / d w,

and train it on ``n`` examples ``X`` with the loss ``L = (1/2n) sum_i ||f(x_i) - y_i||^2``. Let
``Theta = J(X) J(X)^T`` (``n x n``, the NTK on the training set) and ``Theta(x, X) = J(x) J(X)^T``.

Gradient flow ``dw/dt = -grad L`` in time ``t = eta * steps``. The gradient is
``grad L = (1/n) J(X)^T (f - y)`` — the ``1/n`` comes from the loss normalisation; a loss summed
over examples (no ``1/n``) would give ``exp(-Theta t)`` below — so

    d f_t / dt = J(X) dw/dt = -(1/n) Theta (f_t - y)
    =>  f_t = y + exp(-Theta t / n) (f_0 - y)                                        (train)

and, integrating ``d f_t(x)/dt = -(1/n) Theta(x, X) (f_t - y)`` with the train solution,

    f_t(x) = f_0(x) + Theta(x, X) Theta^{-1} (I - exp(-Theta t / n)) (y - f_0)          (test).

Gradient descent ``w <- w - eta grad L`` makes the train residual obey
``r_{k+1} = (I - eta Theta / n) r_k`` exactly for the linearised model, so ``exp(-Theta t / n)``
becomes ``(I - eta Theta / n)^steps``, and summing the test increments
``(eta/n) Theta(x, X) (I - eta Theta/n)^k (y - f_0)`` over ``k < steps`` gives the same test
formula with this replacement. For a model that is linear in its parameters both are exact.

Numerics. In the eigenbasis ``Theta = V diag(lambda) V^T`` every mode carries a *decay*
``e^{-lambda t/n}`` (flow) or ``(1 - eta lambda/n)^steps`` (GD) and a *gain*
``(1 - decay) / lambda``. The gain is evaluated without dividing by a small ``lambda``:
``(t/n) (1 - e^{-x}) / x`` with ``x = lambda t / n`` (series near ``x = 0``, so a zero or tiny
eigenvalue gives its exact limit ``t/n``), and the analogous form ``steps eta/n ...`` for GD.
Several outputs (``f0``, ``y`` of shape ``(n, O)``) share the kernel, as the infinite-width NTK
of an MLP is ``Theta (x) I_O``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "linearized_loss",
    "linearized_loss_gd",
    "linearized_test_outputs",
    "linearized_test_outputs_gd",
    "linearized_train_outputs",
    "linearized_train_outputs_gd",
]

_SERIES = 1e-6  # below this |argument| the two-term series is exact to ~1e-19 relative
_SYMMETRY_RTOL = 1e-4  # float32 empirical kernels are symmetric to ~1e-7 relative


# ---------------------------------------------------------------------------------------------
# Spectral filters: decay and gain of each eigenmode at each time.


def _one_minus_exp_over(z: np.ndarray) -> np.ndarray:
    """``(1 - e^{-z}) / z``, equal to 1 at ``z = 0`` (series ``1 - z/2 + z^2/6`` near 0)."""
    small = np.abs(z) < _SERIES
    safe = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):
        return np.where(small, 1.0 - z / 2.0 + z * z / 6.0, -np.expm1(-safe) / safe)


def _log1m_over(a: np.ndarray) -> np.ndarray:
    """``-log(1 - a) / a`` for ``a < 1``, equal to 1 at ``a = 0`` (series ``1 + a/2 + a^2/3``)."""
    small = np.abs(a) < _SERIES
    safe = np.where(small, 0.5, a)
    return np.where(small, 1.0 + a / 2.0 + a * a / 3.0, -np.log1p(-safe) / safe)


def _flow_filters(lam: np.ndarray, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``e^{-lambda t/n}`` and gain ``(1 - decay)/lambda``, both ``t.shape + (n,)``."""
    tn = t[..., None] / n  # (*T, 1)
    x = lam * tn  # (*T, n)
    with np.errstate(over="ignore"):
        decay = np.exp(-x)
    return decay, tn * _one_minus_exp_over(x)


def _gd_filters(lam: np.ndarray, steps: np.ndarray, eta: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``(1 - a)^s`` and gain ``(1 - decay)/lambda`` with ``a = eta lambda / n``, ``s = steps``.

    For ``a < 1/2``: ``(1 - a)^s = e^{-z}`` with ``z = -s log(1 - a)``, and
    ``(1 - e^{-z}) / lambda = (eta s / n) * [(1 - e^{-z})/z] * [-log(1 - a)/a]`` (no small
    divisor). For ``a >= 1/2`` (large steps, possibly oscillating or unstable when ``a > 2``) the
    power and the quotient are taken directly.
    """
    s = steps[..., None]  # (*T, 1)
    a = eta * lam / n  # (n,)
    low = a < 0.5
    a_low, a_high = np.where(low, a, 0.0), np.where(low, 1.0, a)
    z = -s * np.log1p(-a_low)  # (*T, n), >= 0 for 0 <= a < 1/2
    with np.errstate(over="ignore"):
        decay_low = np.exp(-z)
        decay_high = np.power(1.0 - a_high, s)
    gain_low = (eta * s / n) * _one_minus_exp_over(z) * _log1m_over(a_low)
    gain_high = (eta / n) * (1.0 - decay_high) / a_high
    return np.where(low, decay_low, decay_high), np.where(low, gain_low, gain_high)


# ---------------------------------------------------------------------------------------------
# Validation and the shared evaluation in the eigenbasis.


def _eigh(theta) -> tuple[np.ndarray, np.ndarray]:
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[0] != theta.shape[1]:
        raise ValueError(f"theta: must be a square (n, n) train kernel, got shape {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta: must be finite")
    scale = np.max(np.abs(theta), initial=0.0)
    if np.max(np.abs(theta - theta.T), initial=0.0) > _SYMMETRY_RTOL * scale:
        raise ValueError("theta: must be symmetric (a kernel on the training set)")
    return np.linalg.eigh((theta + theta.T) / 2.0)  # (n,), (n, n)


def _targets(f0, y, n: int) -> tuple[np.ndarray, np.ndarray]:
    f0 = np.asarray(f0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if f0.ndim not in (1, 2) or f0.shape[0] != n:
        raise ValueError(f"f0: must be ({n},) or ({n}, O) to match theta, got shape {f0.shape}")
    if y.shape != f0.shape:
        raise ValueError(f"y: must have the shape of f0 {f0.shape}, got {y.shape}")
    return f0, y


def _times(t) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("t: must be finite and >= 0")
    return t


def _steps_eta(steps, eta) -> tuple[np.ndarray, float]:
    s = np.asarray(steps)
    integral = s.dtype.kind in "iu" or (s.dtype.kind == "f" and bool(np.all(np.isfinite(s) & (s == np.round(s)))))
    if not integral or np.any(s < 0):
        raise ValueError(f"steps: must be non-negative integers, got {steps!r}")
    eta = float(eta)
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta: must be > 0, got {eta}")
    return s.astype(np.float64), eta


def _coefficients(vecs: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """``V^T r`` with outputs on a trailing axis: ``(n, O)``."""
    return vecs.T @ residual.reshape(residual.shape[0], -1)


def _train(vecs, decay, f0, y) -> np.ndarray:
    c = _coefficients(vecs, f0 - y)  # (n, O)
    out = y.reshape(y.shape[0], -1) + np.einsum("ik,...ko->...io", vecs, decay[..., None] * c)  # (*T, n, O)
    return out.reshape(decay.shape[:-1] + f0.shape)


def _test(vecs, gain, theta_test_train, f0, f0_test, y) -> np.ndarray:
    n = f0.shape[0]
    k = np.asarray(theta_test_train, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != n:
        raise ValueError(f"theta_test_train: must be (m, {n}), got shape {k.shape}")
    f0_test = np.asarray(f0_test, dtype=np.float64)
    if f0_test.shape != (k.shape[0],) + f0.shape[1:]:
        raise ValueError(f"f0_test: must be {(k.shape[0],) + f0.shape[1:]}, got shape {f0_test.shape}")
    c = _coefficients(vecs, y - f0)  # (n, O)
    kv = k @ vecs  # (m, n)
    out = f0_test.reshape(k.shape[0], -1) + np.einsum("ik,...ko->...io", kv, gain[..., None] * c)  # (*T, m, O)
    return out.reshape(gain.shape[:-1] + f0_test.shape)


def _loss(vecs, decay, f0, y) -> np.ndarray:
    c2 = np.sum(_coefficients(vecs, f0 - y) ** 2, axis=1)  # (n,): squared residual per eigenmode
    return np.sum(decay**2 * c2, axis=-1) / (2.0 * f0.shape[0])


# ---------------------------------------------------------------------------------------------
# Public predictions.


def linearized_train_outputs(theta, f0, y, t) -> np.ndarray:
    """Train outputs of the linearised network under gradient flow: ``f_t = y + exp(-Theta t/n)(f_0 - y)``.

    Args:
      theta: ``Theta``, the ``(n, n)`` NTK on the training inputs (symmetric).
      f0: ``f_0``, outputs at initialisation, ``(n,)`` or ``(n, O)``.
      y: targets, the shape of ``f0``.
      t: gradient-flow times ``t = eta * steps`` (any shape ``T``, finite, ``>= 0``).

    Returns:
      ``T + f0.shape``. Loss ``(1/2n) sum_i ||f(x_i) - y_i||^2``; Jacot et al. 2018,
      arXiv:1806.07572, Lee et al. 2019, arXiv:1902.06720 (see the module docstring).

    >>> linearized_train_outputs([[2.0]], [0.0], [1.0], [0.0, 0.5]).round(6).tolist()
    [[0.0], [0.632121]]
    """
    lam, vecs = _eigh(theta)
    f0, y = _targets(f0, y, lam.size)
    decay, _ = _flow_filters(lam, _times(t), lam.size)
    return _train(vecs, decay, f0, y)


def linearized_test_outputs(theta, theta_test_train, f0, f0_test, y, t) -> np.ndarray:
    """Test outputs under gradient flow: ``f_t(x) = f_0(x) + Theta(x,X) Theta^{-1} (I - exp(-Theta t/n)) (y - f_0)``.

    Args:
      theta: ``Theta``, the ``(n, n)`` NTK on the training inputs.
      theta_test_train: ``Theta(x, X)``, the ``(m, n)`` NTK between test and training inputs.
      f0: ``f_0`` on the training inputs, ``(n,)`` or ``(n, O)``.
      f0_test: ``f_0(x)`` on the test inputs, ``(m,)`` or ``(m, O)``.
      y: training targets, the shape of ``f0``.
      t: gradient-flow times ``t = eta * steps`` (any shape ``T``).

    Returns:
      ``T + f0_test.shape``. ``Theta^{-1}(I - e^{-Theta t/n})`` is evaluated in the eigenbasis with
      its exact limit ``t/n`` on zero eigenvalues, so a singular ``Theta`` is allowed; as
      ``t -> infinity`` with ``Theta`` positive definite this is kernel regression
      ``f_0(x) + Theta(x,X) Theta^{-1} (y - f_0)``.

    >>> linearized_test_outputs([[2.0]], [[1.0]], [0.0], [0.0], [1.0], 50.0).round(6).tolist()
    [0.5]
    """
    lam, vecs = _eigh(theta)
    f0, y = _targets(f0, y, lam.size)
    _, gain = _flow_filters(lam, _times(t), lam.size)
    return _test(vecs, gain, theta_test_train, f0, f0_test, y)


def linearized_loss(theta, f0, y, t) -> np.ndarray:
    """Training loss of the linearised network under gradient flow.

    ``L_t = (1/2n) ||exp(-Theta t/n)(f_0 - y)||^2 = (1/2n) sum_k e^{-2 lambda_k t/n} ||v_k^T (f_0 - y)||^2``
    with ``Theta = sum_k lambda_k v_k v_k^T`` (arguments as in :func:`linearized_train_outputs`;
    the squared norm sums over outputs too). Returns shape ``T``.

    >>> round(float(linearized_loss([[2.0]], [0.0], [1.0], 0.0)), 6)
    0.5
    """
    lam, vecs = _eigh(theta)
    f0, y = _targets(f0, y, lam.size)
    decay, _ = _flow_filters(lam, _times(t), lam.size)
    return _loss(vecs, decay, f0, y)


def linearized_train_outputs_gd(theta, f0, y, steps, eta: float) -> np.ndarray:
    """Train outputs under full-batch gradient descent: ``f_k = y + (I - eta Theta/n)^k (f_0 - y)``.

    Arguments as in :func:`linearized_train_outputs`, with ``steps`` the number of GD steps
    ``k`` (non-negative integers, any shape ``T``) and ``eta`` the learning rate (time
    ``t = eta * steps``). Exact for a model linear in its parameters; stable iff
    ``eta lambda_max / n < 2``.

    >>> linearized_train_outputs_gd([[2.0]], [0.0], [1.0], [0, 1, 2], eta=0.25).tolist()
    [[0.0], [0.5], [0.75]]
    """
    lam, vecs = _eigh(theta)
    f0, y = _targets(f0, y, lam.size)
    s, eta = _steps_eta(steps, eta)
    decay, _ = _gd_filters(lam, s, eta, lam.size)
    return _train(vecs, decay, f0, y)


def linearized_test_outputs_gd(theta, theta_test_train, f0, f0_test, y, steps, eta: float) -> np.ndarray:
    """Test outputs under gradient descent: ``f_0(x) + Theta(x,X) Theta^{-1} (I - (I - eta Theta/n)^k) (y - f_0)``.

    Arguments as in :func:`linearized_test_outputs` and :func:`linearized_train_outputs_gd`.
    A zero eigenvalue contributes its exact limit ``k eta / n``.

    >>> linearized_test_outputs_gd([[2.0]], [[1.0]], [0.0], [0.0], [1.0], [1, 2], eta=0.25).tolist()
    [[0.25], [0.375]]
    """
    lam, vecs = _eigh(theta)
    f0, y = _targets(f0, y, lam.size)
    s, eta = _steps_eta(steps, eta)
    _, gain = _gd_filters(lam, s, eta, lam.size)
    return _test(vecs, gain, theta_test_train, f0, f0_test, y)


def linearized_loss_gd(theta, f0, y, steps, eta: float) -> np.ndarray:
    """Training loss under gradient descent: ``(1/2n) ||(I - eta Theta/n)^k (f_0 - y)||^2``, shape ``T``.

    >>> linearized_loss_gd([[2.0]], [0.0], [1.0], [0, 1], eta=0.25).tolist()
    [0.5, 0.125]
    """
    lam, vecs = _eigh(theta)
    f0, y = _targets(f0, y, lam.size)
    s, eta = _steps_eta(steps, eta)
    decay, _ = _gd_filters(lam, s, eta, lam.size)
    return _loss(vecs, decay, f0, y)
