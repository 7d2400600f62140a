"""Stability of (preconditioned) momentum methods on a quadratic: the edge-of-stability threshold.

Contract: pure functions, no training, no randomness; they vectorise over their arguments
(numpy / jax arrays or python floats).

One recursion covers gradient descent, heavy ball and Adam (Cohen, Kaur, Li, Kolter & Talwalkar
2021, arXiv:2103.00065; Cohen et al. 2022, arXiv:2207.14484):

    m_t = a m_{t-1} + c g_t,    w_t = w_{t-1} - eta P_t^{-1} m_t,    m_0 = 0,

with ``g_t`` the gradient at ``w_{t-1}`` and ``P_t`` diagonal and positive:

- gradient descent: ``a = 0``, ``c = 1``, ``P = I``;
- heavy ball in optax's convention (``optax.sgd(eta, momentum=beta)``: ``v <- g + beta v``,
  ``w <- w - eta v``): ``a = beta``, ``c = 1``, ``P = I``;
- Adam (``optax.adam``): ``a = beta1``, ``c = 1 - beta1`` and ``P_t`` of :func:`adam_preconditioner`.

Derivation of the threshold. Freeze ``P`` and take ``L = w^T H w / 2`` (``g = H w``). In the
eigenbasis of the symmetric ``P^{-1/2} H P^{-1/2}`` (similar to ``P^{-1} H``) every mode with
eigenvalue ``lambda`` evolves on its own; with ``eta m_{t-1} = w_{t-2} - w_{t-1}``,
``w_t = (1 + a - eta c lambda) w_{t-1} - a w_{t-2}``, characteristic polynomial
``z^2 - (1 + a - eta c lambda) z + a``. For ``0 <= a < 1`` both roots lie inside the unit circle
(Schur-Cohn / Jury: ``|a| < 1`` and ``|1 + a - eta c lambda| < 1 + a``) iff
``0 < eta c lambda < 2 + 2a``; at ``eta c lambda = 2 + 2a`` the root ``z = -1`` appears (the
period-two flip along the top eigenvector). Hence the run is stable iff
``lambda_max(P^{-1} H) < (2 + 2a) / (c eta)``. (With the EMA convention ``v <- beta v + (1 - beta) g``
heavy ball would have Adam's ``(2 + 2 beta) / ((1 - beta) eta)`` instead.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["adam_preconditioner", "stability_threshold"]


def stability_threshold(eta, a=0.0, c=1.0):
    """``(2 + 2a) / (c eta)``: the largest stable ``lambda`` of ``P^{-1} H`` for the recursion of the module.

    The recursion: ``m <- a m + c g``, ``w <- w - eta P^{-1} m``.

    GD ``(a, c) = (0, 1)``: ``2 / eta``; optax heavy ball ``(beta, 1)``: ``(2 + 2 beta) / eta``; Adam
    ``(beta1, 1 - beta1)``: ``(2 + 2 beta1) / ((1 - beta1) eta)`` (Cohen et al. 2021, arXiv:2103.00065;
    Cohen et al. 2022, arXiv:2207.14484). Derivation in the module docstring.

    >>> stability_threshold(0.1)  # GD: 2 / eta
    20.0
    >>> round(stability_threshold(0.1, 0.9, 0.1), 9)  # Adam, beta1 = 0.9: 38 / eta
    380.0
    """
    return (2.0 + 2.0 * a) / (c * eta)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def adam_preconditioner(nu, step, b1=0.9, b2=0.999, eps=1e-8):
    """Adam's diagonal preconditioner ``P = (1 - b1^t) (sqrt(nu / (1 - b2^t)) + eps)`` (a pytree like ``nu``).

    Derivation (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", arXiv:2207.14484).
    optax's ``adam`` keeps ``mu_t = b1 mu_{t-1} + (1 - b1) g_t`` and ``nu_t = b2 nu_{t-1} + (1 - b2) g_t^2`` and
    updates ``w <- w - eta mu_hat / (sqrt(nu_hat) + eps)`` with ``mu_hat = mu_t / (1 - b1^t)``,
    ``nu_hat = nu_t / (1 - b2^t)`` (``eps`` outside the square root, optax's default ``eps_root = 0``). Hence
    the update is exactly ``-eta P^{-1} mu_t``: ``P`` is optax's denominator ``sqrt(nu_hat) + eps`` times
    ``(1 - b1^t)``, which moves the momentum bias correction into ``P`` and leaves ``mu_t`` as a plain EMA.
    Freezing ``P`` on a quadratic with Hessian ``H``, the EMA recursion is heavy-ball momentum ``b1`` with step
    ``eta (1 - b1)`` on ``P^{-1} H``, stable iff ``eta (1 - b1) lambda < 2 + 2 b1`` for every eigenvalue
    ``lambda`` of ``P^{-1} H``: the threshold ``lambda_max(P^{-1} H) < (2 + 2 b1) / ((1 - b1) eta)``
    (:func:`stability_threshold` with ``a = b1``, ``c = 1 - b1``).

    Args:
      nu: optax's second moment ``nu_t`` (``ScaleByAdamState.nu``), a pytree.
      step: ``t``, the number of updates taken (``ScaleByAdamState.count`` after the update), ``>= 1``.
      b1, b2: Adam's decay rates, in ``[0, 1)`` (checked when given as python numbers; they may be traced).
      eps: optax's ``eps``, ``>= 0``.

    >>> import jax.numpy as jnp
    >>> float(adam_preconditioner(jnp.asarray(4.0), 1, b1=0.0, b2=0.0, eps=0.0))  # sqrt(nu) at t = 1
    2.0
    """
    for name, value in (("b1", b1), ("b2", b2)):
        if _is_number(value) and not 0 <= value < 1:
            raise ValueError(f"{name}: must be in [0, 1), got {value}")
    if _is_number(eps) and not eps >= 0:
        raise ValueError(f"eps: must be >= 0, got {eps}")
    if _is_number(step) and step < 1:
        raise ValueError(f"step: must be >= 1, got {step}")

    def leaf(n):
        t = jnp.asarray(step, n.dtype)
        return (1 - b1**t) * (jnp.sqrt(n / (1 - b2**t)) + eps)

    return jax.tree_util.tree_map(leaf, nu)
