"""How the optimal SGD learning rate scales with the richness ``gamma`` (the output multiplier ``1/gamma``).

Statement (Atanasov, Meterez, Simon & Pehlevan 2024, arXiv:2410.04642). A network whose output is
down-scaled by ``gamma``, ``f = g / gamma`` (muP / mean-field readout, the loss *not* rescaled), trained
by SGD with a raw learning rate ``eta`` on ``L = (1/2n) sum_i ||f(x_i) - y_i||^2``, has its
loss-minimising learning rate at

- ``eta* ~ gamma^2`` for ``gamma << 1`` (lazy), and
- ``eta* ~ gamma^{2/L}`` for ``gamma >> 1`` (rich, "ultra-rich" in the paper), ``L`` the depth.

Convention (where papers differ): ``eta`` is the step of ``w <- w - eta grad_w L`` on the unscaled
loss. The paper's code writes ``eta = eta_0 gamma^2 N`` (lazy side) with ``N`` the width; at a fixed
width the factor ``N`` is a constant and does not change either exponent. Rescaling the loss by
``gamma^2`` (as :mod:`learnmech.theory.lazy_rich` does for Chizat et al.) would shift both exponents
by ``-2``: the lazy one would be ``0``.

Why, in one line each. ``eta*`` sits just below the stability edge ``2 / lambda_max`` of the loss
Hessian, so it scales as one over the sharpness. *Lazy*: the weights stay at initialisation, the
Hessian is the tangent kernel of ``f = g / gamma``, ``J^T J / (n gamma^2)``: sharpness ``~ gamma^-2``.
*Rich*: for a network positively homogeneous of degree ``L`` in its ``L`` weight matrices (ReLU or
linear, no biases), ``g(c W_1, ..., c W_L) = c^L g(W)``; to fit an ``O(1)`` target ``f = g / gamma``
every layer must grow by ``c ~ gamma^{1/L}`` (gradient flow keeps the layers balanced), and the
Hessian at the fitted point, ``sum_l |df/dW_l|^2 ~ L c^{2(L-1)} / gamma^2``, is ``~ gamma^{-2/L}``.
So ``L`` counts the **weight layers** (the factors of the homogeneous product), readout included: an
MLP with one hidden layer has ``L = 2`` (rich exponent 1), two hidden layers ``L = 3`` (2/3); a
linear model (``L = 1``) is lazy at every ``gamma`` and both exponents are 2.

The scalar toy (our own form of the paper's deep-linear toy model): ``f(w) = (prod_l w_l - a^L) / gamma``,
``L`` scalar weights started at ``w_l = a`` (so ``f = 0`` at start, as a centred network), fitted to a
target ``y`` with ``(1/2)(f - y)^2``. Gradient flow conserves ``w_l^2 - w_k^2``, so every weight
ends at ``s = (a^L + gamma y)^{1/L}`` and the Hessian there is ``grad f grad f^T`` with
``lambda_max = |grad f|^2 = L s^{2(L-1)} / gamma^2`` (:func:`toy_sharpness`). Its two limits are the
two exponents above, and its crossover is ``gamma_c = a^L / |y|`` (:func:`crossover_gamma`): the
richness at which the target needs as much output as the initial weights carry.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crossover_gamma", "lazy_edge_coefficient", "lr_exponents", "predicted_optimal_lr", "toy_optimal_lr",
           "toy_sharpness"]


def _depth(depth) -> int:
    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth: must be a positive integer (the number of weight layers), got {depth!r}")
    return int(depth)


def _gammas(gamma) -> np.ndarray:
    g = np.asarray(gamma, np.float64)
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError("gamma: must be finite and positive")
    return g


def lr_exponents(depth: int) -> tuple[float, float]:
    """The exponents ``(lazy, rich)`` of ``eta* ~ gamma^exponent``: ``(2, 2/L)``, ``L = depth`` weight layers.

    Atanasov, Meterez, Simon & Pehlevan 2024, arXiv:2410.04642 (module docstring for the convention).

    >>> lr_exponents(2), lr_exponents(3)[1] == 2 / 3
    ((2.0, 1.0), True)
    """
    return 2.0, 2.0 / _depth(depth)


def toy_sharpness(gamma, depth: int, target: float = 1.0, init: float = 1.0):
    """Top Hessian eigenvalue of the scalar toy at the minimum gradient flow reaches from ``w_l = init``.

    ``lambda_max = L s^{2(L-1)} / gamma^2`` with ``s = (init^L + gamma target)^{1/L}`` (module
    docstring): ``~ L init^{2(L-1)} / gamma^2`` as ``gamma -> 0`` and ``~ L target^{2 - 2/L}
    gamma^{-2/L}`` as ``gamma -> infinity``.

    Args:
      gamma: richness, ``> 0`` (scalar or array). depth: ``L``, the number of scalar weights.
      target: ``y > 0``. init: ``a > 0``, every weight's initial value.

    >>> float(toy_sharpness(1.0, 2, 1.0, 1.0))  # s = sqrt(2): 2 * 2 / 1
    4.0
    """
    L, g = _depth(depth), _gammas(gamma)
    if not (target > 0 and init > 0):
        raise ValueError(f"target, init: must be positive, got {target}, {init}")
    s2 = (init**L + g * target) ** (2.0 / L)  # s^2
    return L * s2 ** (L - 1) / g**2


def toy_optimal_lr(gamma, depth: int, target: float = 1.0, init: float = 1.0):
    """The stability edge ``2 / lambda_max`` of the scalar toy, :func:`toy_sharpness`: ``eta*`` up to a constant.

    >>> float(toy_optimal_lr(1.0, 2))
    0.5
    """
    return 2.0 / toy_sharpness(gamma, depth, target, init)


def crossover_gamma(depth: int, target: float = 1.0, init: float = 1.0) -> float:
    """``gamma_c = init^L / |target|``, where the toy's lazy and rich asymptotes of ``lambda_max`` meet.

    Lazy ``L a^{2(L-1)} / gamma^2`` equals rich ``L |y|^{2-2/L} gamma^{-2/L}`` at
    ``gamma^{2-2/L} = a^{2(L-1)} / |y|^{2-2/L}``, i.e. ``gamma = a^L / |y|`` (``L >= 2``; a linear
    model, ``L = 1``, has one regime and no crossover).

    >>> crossover_gamma(3, 2.0, 2.0)
    4.0
    """
    L = _depth(depth)
    if L < 2:
        raise ValueError("depth: a crossover needs depth >= 2 (a linear model is lazy at every gamma)")
    if not (target != 0 and np.isfinite(target) and init > 0):
        raise ValueError(f"target, init: need target != 0 and init > 0, got {target}, {init}")
    return float(init**L / abs(target))


def predicted_optimal_lr(gamma, depth: int, lazy_coefficient: float, crossover: float = 1.0):
    """``eta*(gamma) = A gamma^2 / (1 + gamma / gamma_c)^{2 - 2/L}``: the toy's shape with a measured scale.

    This is :func:`toy_optimal_lr` rescaled so that its lazy limit is ``A gamma^2`` and its
    crossover is ``gamma_c``; its rich limit is ``A gamma_c^{2 - 2/L} gamma^{2/L}``. With
    ``gamma_c = 1`` (where muP / mean-field networks change regime, Atanasov et al. 2024) it is
    within a factor ``2^{2-2/L}`` of the paper's piecewise rule ``A min(gamma^2, gamma^{2/L})``.

    Args:
      gamma: ``> 0``. depth: ``L``. lazy_coefficient: ``A > 0``, e.g. :func:`lazy_edge_coefficient`.
      crossover: ``gamma_c > 0``.

    >>> round(float(predicted_optimal_lr(1e-4, 2, 3.0) / 3e-8), 3)  # lazy: A gamma^2
    1.0
    >>> round(float(predicted_optimal_lr(1e6, 3, 1.0) / 1e4), 3)  # rich: gamma^{2/3}
    1.0
    """
    L, g = _depth(depth), _gammas(gamma)
    if not (lazy_coefficient > 0 and crossover > 0):
        raise ValueError(f"lazy_coefficient, crossover: must be positive, got {lazy_coefficient}, {crossover}")
    return lazy_coefficient * g**2 / (1.0 + g / crossover) ** (2.0 - 2.0 / L)


def lazy_edge_coefficient(top_eigenvalue: float, width: int) -> float:
    """``A = 2 N / lambda_max``: the lazy GD stability edge is ``eta_edge = A gamma^2``.

    For ``f = g_ntk / (gamma sqrt(N))`` (a mean-field readout on an NTK-parameterised network of
    width ``N``) the lazy Hessian of ``(1/2n) sum_i ||f(x_i) - y_i||^2`` is the tangent kernel
    ``Theta / (gamma^2 N)`` divided by ``n``; ``top_eigenvalue`` is ``lambda_max(Theta / n)``
    (``Theta`` the analytic NTK of ``g_ntk``, one output), so GD is stable for
    ``eta < 2 gamma^2 N / lambda_max`` (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572; the
    ``2 / lambda`` edge of a quadratic).

    >>> lazy_edge_coefficient(0.5, 32)
    128.0
    """
    if not (np.isfinite(top_eigenvalue) and top_eigenvalue > 0):
        raise ValueError(f"top_eigenvalue: must be finite and positive, got {top_eigenvalue}")
    if int(width) != width or width < 1:
        raise ValueError(f"width: must be a positive integer, got {width!r}")
    return 2.0 * float(width) / float(top_eigenvalue)
