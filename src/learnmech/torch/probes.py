"""Sharpness and gradient noise scale of a PyTorch model, through ``torch.func``.

Contract: ``loss_fn(model, batch) -> scalar`` averages over the examples of ``batch`` (see
:mod:`learnmech.torch._functional`); the Hessian ``H`` and the gradients are taken with respect
to every trainable parameter, raveled in ``named_parameters`` order. The definitions and
estimators are those of the JAX probes, so the two agree on twin models:

- :func:`sharpness`: ``lambda_max(H)`` (Cohen et al. 2021, arXiv:2103.00065) from Hessian-vector
  products by forward-over-reverse differentiation (``torch.func.jvp`` of ``torch.func.grad``;
  Pearlmutter 1994), by Lanczos with full reorthogonalisation or by shifted power iteration as in
  :func:`learnmech.observe.sharpness` (Golub & Van Loan 2013, sections 8.2 and 10.1);
- :func:`noise_scale`: ``B_simple = tr(Sigma) / |G|^2`` (McCandlish et al. 2018, arXiv:1812.06162),
  per batch the unbiased estimators of :func:`learnmech.observe.gradient_noise_scale` from
  per-example gradients (``torch.func.vmap`` of ``torch.func.grad``), pooled over batches as
  :func:`learnmech.observe.average_noise_scale` pools them (ratio of the means).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch
from torch import nn

from learnmech.observe.curvature import SharpnessEstimate
from learnmech.observe.noise import NoiseScale
from learnmech.torch._functional import LossFn, batch_size, flatten, loss_of, parameters, tree_map, unflatten

__all__ = ["hvp", "noise_scale", "per_example_gradients", "sharpness"]

METHODS = ("lanczos", "power")
DOMINANT_SLACK = 4.0  # power: accept phase 1 when rho >= (1 - DOMINANT_SLACK tol) ||H v|| (as the JAX probe)


def _flat_hvp(model: nn.Module, loss_fn: LossFn, batch) -> tuple[torch.Tensor, Callable]:
    """``(p0, v -> H v)`` on the raveled parameters ``p0`` ``(P,)``."""
    params = parameters(model)
    f = loss_of(model, loss_fn)
    flat0 = flatten(params)

    def grad_flat(flat):
        return flatten(torch.func.grad(f)(unflatten(flat, params), batch))

    def matvec(v: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # torch scripts its own jvp decompositions on first use and warns about it
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=DeprecationWarning)
            return torch.func.jvp(grad_flat, (flat0,), (v,))[1]

    return flat0, matvec


def hvp(model: nn.Module, loss_fn: LossFn, batch, v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``H v`` for a direction ``v`` given as ``{name: tensor}`` like the trainable parameters."""
    params = parameters(model)
    if list(v) != list(params) or any(v[k].shape != params[k].shape for k in params):
        raise ValueError(f"v: must have the trainable parameters' names and shapes {[(k, tuple(p.shape)) for k, p in params.items()]}")
    _, matvec = _flat_hvp(model, loss_fn, batch)
    return unflatten(matvec(flatten(v)), params)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v).clamp_min(torch.finfo(v.dtype).tiny)


def _lanczos_top(matvec: Callable, v0: torch.Tensor, steps: int, tol: float) -> SharpnessEstimate:
    """Top Ritz value of ``steps`` Lanczos steps with full reorthogonalisation (G & VL 2013, 10.1).

    Stops early on breakdown (an invariant subspace: its Ritz values are exact eigenvalues).
    ``converged``: the residual bound ``|beta_m s_m| <= tol |theta|`` of the top Ritz pair.
    """
    eps = torch.finfo(v0.dtype).eps
    basis, alphas, betas = [_unit(v0)], [], []
    for _ in range(steps):
        v = basis[-1]
        av = matvec(v)
        alphas.append(torch.dot(v, av))
        stacked = torch.stack(basis)  # (j + 1, P)
        w = av - stacked.T @ (stacked @ av)
        w = w - stacked.T @ (stacked @ w)  # twice, for stability
        beta = torch.linalg.vector_norm(w)
        betas.append(beta)
        if beta <= 100 * eps * torch.linalg.vector_norm(av):
            break
        basis.append(w / beta)
    alpha = torch.stack(alphas)
    off = torch.stack(betas[:-1]) if len(betas) > 1 else alpha.new_zeros(0)
    tri = torch.diag(alpha) + torch.diag(off, 1) + torch.diag(off, -1)  # (m, m)
    theta, s = torch.linalg.eigh(tri)
    residual = abs(float(betas[-1] * s[-1, -1]))
    top = float(theta[-1])
    return SharpnessEstimate(top, len(alphas), residual <= tol * abs(top))


def _power_phase(matvec: Callable, v: torch.Tensor, shift: float, iterations: int, tol: float):
    rho, norm, converged, used = float("inf"), 0.0, False, 0
    for used in range(1, iterations + 1):
        av = matvec(v) + shift * v
        new_rho, norm = float(torch.dot(v, av)), float(torch.linalg.vector_norm(av))
        converged = abs(new_rho - rho) <= tol * abs(new_rho)
        rho, v = new_rho, _unit(av)
        if converged:
            break
    return rho, norm, converged, used, v


def _power_top(matvec: Callable, v0: torch.Tensor, iterations: int, tol: float) -> SharpnessEstimate:
    """Largest algebraic eigenvalue by power iteration, shifted by the spectral radius when the
    dominant eigenvalue is not the top one (the two phases of :func:`learnmech.observe.sharpness`)."""
    start = _unit(v0)
    rho, norm, first, used1, v = _power_phase(matvec, start, 0.0, iterations, tol)
    if rho >= (1 - DOMINANT_SLACK * tol) * norm:  # positive dominant eigenvalue: continue on H
        rho, _, second, used2, _ = _power_phase(matvec, v, 0.0, iterations, tol)
        return SharpnessEstimate(rho, used1 + used2, first and second)
    rho, _, second, used2, _ = _power_phase(matvec, start, norm, iterations, tol)  # on H + r I
    return SharpnessEstimate(rho - norm, used1 + used2, first and second)


def sharpness(model: nn.Module, loss_fn: LossFn, batch, *, iterations: int = 20, method: str = "lanczos",
              tol: float = 1e-4, seed: int = 0) -> SharpnessEstimate:
    """``lambda_max`` of the Hessian of ``loss_fn(model, batch)`` in the trainable parameters.

    Args:
      model: any ``nn.Module``; its parameters are not modified.
      loss_fn: ``loss_fn(model, batch) -> scalar``.
      batch: passed to ``loss_fn`` unchanged.
      iterations: Lanczos steps (at most the parameter count), or the power-iteration budget
        per phase.
      method: ``"lanczos"`` (the better choice when top eigenvalues cluster) or ``"power"``.
      tol: relative tolerance of the convergence test, ``> 0``.
      seed: seed of the Gaussian start vector (a ``torch.Generator``; the global RNG is untouched).

    Returns:
      :class:`learnmech.observe.curvature.SharpnessEstimate` of Python numbers.
    """
    if method not in METHODS:
        raise ValueError(f"method: must be one of {list(METHODS)}, got {method!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: must be an int >= 1, got {iterations!r}")
    if not tol > 0:
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    flat0, matvec = _flat_hvp(model, loss_fn, batch)
    gen = torch.Generator(device=flat0.device).manual_seed(int(seed))
    v0 = torch.randn(flat0.shape, generator=gen, dtype=flat0.dtype, device=flat0.device)
    if method == "lanczos":
        return _lanczos_top(matvec, v0, min(iterations, flat0.numel()), tol)
    return _power_top(matvec, v0, iterations, tol)


def per_example_gradients(model: nn.Module, loss_fn: LossFn, batch) -> dict[str, torch.Tensor]:
    """``g_i = grad loss_fn(model, {example_i})``, each leaf ``(B, *shape)`` (``vmap`` of ``grad``).

    Each example is passed to ``loss_fn`` as a batch of one, so the batch gradient is the mean of
    the ``g_i`` (as :func:`learnmech.observe.per_example_gradients`). Examples must be
    independent in the forward pass (no batch statistics).
    """
    batch_size(batch)
    f = loss_of(model, loss_fn)

    def one(params, example):
        return torch.func.grad(f)(params, tree_map(lambda t: t.unsqueeze(0), example))

    return torch.func.vmap(one, in_dims=(None, 0))(parameters(model), batch)


def _batch_estimate(grads: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Unbiased ``(tr(Sigma), |G|^2)`` of one batch from its ``B`` per-example gradients.

    With ``S = sum_i g_i`` and ``Q = sum_i |g_i|^2``: ``|G|^2 = (|S|^2 - Q) / (B (B - 1))`` and
    ``tr(Sigma) = (Q - |S|^2 / B) / (B - 1)`` (McCandlish et al. 2018, arXiv:1812.06162, App. A.1;
    the estimator of :func:`learnmech.observe.gradient_noise_scale`), accumulated in float64.
    """
    g = torch.cat([t.reshape(t.shape[0], -1).double() for t in grads.values()], dim=1)  # (B, P)
    b = g.shape[0]
    sum_sq = float(torch.sum(g * g))
    sq_sum = float(torch.sum(g.sum(dim=0) ** 2))
    return (sum_sq - sq_sum / b) / (b - 1), (sq_sum - sum_sq) / (b * (b - 1))


def noise_scale(model: nn.Module, loss_fn: LossFn, batches: Sequence[Any]) -> NoiseScale:
    """The simple gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` over one or more batches.

    Each batch (at least 2 examples) gives unbiased estimates of ``tr(Sigma)`` and ``|G|^2`` from
    its per-example gradients; these are averaged over the batches before the ratio is taken
    (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2 and App. A.1), exactly as
    ``average_noise_scale(vmap(gradient_noise_scale))`` does on the JAX side.

    Args:
      model, loss_fn: as in :func:`sharpness` (``loss_fn`` averages over the batch).
      batches: a list of batches (each a tensor or a tuple / list / dict of tensors).

    Returns:
      :class:`learnmech.observe.noise.NoiseScale` ``(b_simple, trace_cov, grad_sq_norm)`` of floats.
    """
    if not isinstance(batches, list) or not batches:  # a tuple would be ambiguous with one (x, y) batch
        raise ValueError(f"batches: must be a non-empty list of batches, got {type(batches).__name__}")
    traces, norms = [], []
    for i, batch in enumerate(batches):
        if batch_size(batch, f"batches[{i}]") < 2:
            raise ValueError(f"batches[{i}]: needs at least 2 examples")
        tr, sq = _batch_estimate(per_example_gradients(model, loss_fn, batch))
        traces.append(tr)
        norms.append(sq)
    trace_cov, grad_sq_norm = sum(traces) / len(traces), sum(norms) / len(norms)
    return NoiseScale(trace_cov / grad_sq_norm, trace_cov, grad_sq_norm)
