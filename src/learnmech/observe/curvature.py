"""Curvature of a loss: Hessian-vector products, sharpness, top Hessian eigenvalues, preconditioned sharpness.

Contract. ``loss(params, batch) -> scalar`` over any parameter pytree ``params``; ``H`` is the Hessian of
``loss`` with respect to ``params`` at fixed ``batch``, seen as a symmetric ``(P, P)`` matrix on the raveled
parameter vector (``jax.flatten_util.ravel_pytree``; ``P`` = number of scalar parameters). Nothing here
forms ``H``: every method only multiplies it with vectors (HVPs), one HVP costing a few gradients.

- :func:`hvp`: ``H v`` by forward-over-reverse differentiation (``jax.jvp`` of ``jax.grad``), Pearlmutter
  1994, "Fast exact multiplication by the Hessian", Neural Computation 6(1).
- :func:`sharpness`: ``lambda_max(H)``, the algebraically largest eigenvalue, the quantity that edge-of-
  stability training drives to ``2 / eta`` (Cohen, Kaur, Li, Kolter & Talwalkar 2021, arXiv:2103.00065).
  By shifted power iteration (``"power"``) or by Lanczos (``"lanczos"``); Golub & Van Loan, "Matrix
  Computations", 4th ed. 2013, sections 8.2 (power method) and 10.1 (Lanczos).
- :func:`learnmech.observe.ensemble_curvature.ensemble_sharpness`: the same for every member of an
  ensemble in one compiled program (its own module).
- :func:`top_eigenvalues`: the ``k`` largest Ritz values of Lanczos with full reorthogonalisation.
- :func:`preconditioned_sharpness`: ``lambda_max(P^{-1} H)`` for a diagonal positive ``P``, e.g. the ``P``
  of Adam (:func:`learnmech.theory.stability.adam_preconditioner`, re-exported here; Cohen et al. 2022,
  arXiv:2207.14484).
- :func:`dense_hessian` and :func:`noise_curvature`: for small models only (``P`` up to a few thousand),
  ``H`` formed column by column from ``P`` HVPs, and with the per-example gradients the curvature the
  gradient noise sees, ``tr(H Sigma)``, beside ``lambda_max`` (Lanczos), ``tr(Sigma)``, ``|G|^2`` and
  ``G^T H G``.

Everything is jittable and vmappable over ``params`` (e.g. over the members of an ensemble): loops are
``lax.while_loop`` / ``lax.fori_loop`` with static bounds, and the arguments checked in Python (``method``,
``iterations``, ``k``, ``tol``) are static. Works in float32 and float64 (the dtype of the raveled params).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from learnmech.observe.noise import per_example_gradients
from learnmech.theory.stability import adam_preconditioner

__all__ = [
    "METHODS",
    "NoiseCurvature",
    "SharpnessEstimate",
    "adam_preconditioner",
    "dense_hessian",
    "hvp",
    "noise_curvature",
    "noise_curvature_along",
    "preconditioned_sharpness",
    "sharpness",
    "top_eigenvalues",
]

Loss = Callable[[Any, Any], jax.Array]
MatVec = Callable[[jax.Array], jax.Array]

METHODS = ("power", "lanczos")
DOMINANT_SLACK = 4.0  # power: accept the unshifted run when rho >= (1 - DOMINANT_SLACK * tol) * ||H v||


class SharpnessEstimate(NamedTuple):
    """Top eigenvalue estimate (a pytree, so it batches under ``vmap``).

    Attributes:
      eigenvalue: the estimate of ``lambda_max``.
      iterations: Hessian-vector products used (power: both phases together; Lanczos: the step count).
      converged: power: the Rayleigh quotient's relative change fell below ``tol`` in both phases;
        Lanczos: the residual bound ``|beta_m s_m| <= tol * |theta|`` of the top Ritz pair holds.
    """

    eigenvalue: jax.Array
    iterations: jax.Array
    converged: jax.Array


# ----------------------------------------------------------------------------------------- checks


def _check_same_tree(name: str, tree, params) -> None:
    if jax.tree_util.tree_structure(tree) != jax.tree_util.tree_structure(params):
        raise ValueError(f"{name}: must have the pytree structure of params")
    for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(params)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"{name}: leaf shapes must match params, got {jnp.shape(a)} for {jnp.shape(b)}")


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: must be {bound}, got {value}")


def _check_tol(tol) -> None:
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol > 0:
        raise ValueError(f"tol: must be a number > 0, got {tol!r}")


def _check_method(method) -> None:
    if method not in METHODS:
        raise ValueError(f"method: must be one of {list(METHODS)}, got {method!r}")


# ------------------------------------------------------------------------------------------- HVPs


def hvp(loss: Loss, params, batch, v):
    """Hessian-vector product ``H v = d/de grad_params loss(params + e v, batch) |_{e=0}``.

    Forward-over-reverse (Pearlmutter 1994): a ``jax.jvp`` through ``jax.grad``, about the cost of 2-3
    gradients and the memory of one. ``v`` is a pytree like ``params``; the result is too.
    """
    _check_same_tree("v", v, params)
    return jax.jvp(lambda p: jax.grad(loss)(p, batch), (params,), (v,))[1]


def _flat_hvp(loss: Loss, params, batch) -> tuple[jax.Array, MatVec]:
    """The raveled parameter vector ``(P,)`` and ``v -> H v`` on raveled vectors."""
    flat, unravel = ravel_pytree(params)

    def flat_grad(x):
        return ravel_pytree(jax.grad(loss)(unravel(x), batch))[0]

    return flat, lambda v: jax.jvp(flat_grad, (flat,), (v.astype(flat.dtype),))[1]


# ------------------------------------------------------------------------------- power iteration


def _unit(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(v.dtype).tiny)


class _PowerState(NamedTuple):
    phase: jax.Array  # 0: on A; 1: on A + shift I
    step: jax.Array  # products in the current phase
    total: jax.Array  # products in both phases
    v: jax.Array  # current unit vector, (P,)
    rho: jax.Array  # Rayleigh quotient of the operator of the current phase
    shift: jax.Array
    converged_first: jax.Array
    converged: jax.Array
    finished: jax.Array


def _power_top(matvec: MatVec, v0: jax.Array, iterations, tol) -> SharpnessEstimate:
    """Algebraically largest eigenvalue of a symmetric ``A`` by power iteration with a shift.

    Power iteration ``v <- A v / ||A v||`` converges to the eigenvalue of largest *magnitude*; each phase
    stops when its Rayleigh quotient ``rho = v^T A v`` changes by ``<= tol |rho|`` or after ``iterations``
    products. Phase 1 runs on ``A`` and gives ``rho_1`` and ``r = ||A v||``, the spectral-radius estimate.
    If ``rho_1 >= (1 - DOMINANT_SLACK tol) r`` the dominant eigenvalue is positive, hence the top one, and
    phase 2 merely continues on ``A`` from phase 1's vector (shift ``s = 0``: a couple of products).
    Otherwise (a negative dominant eigenvalue, or an oscillation between ``+-lambda`` of nearly equal
    magnitude, where ``rho_1`` stalls strictly inside the spectrum) phase 2 restarts from ``v0`` on
    ``A + r I``, whose eigenvalues ``lambda + r`` are all ``>= 0`` up to the error of ``r``, so its
    dominant one is ``lambda_max + r`` (Golub & Van Loan 2013, section 8.2, shifts). The estimate is
    ``rho_2 - s``; phase 2's tolerance is relative to ``rho_2``, i.e. to the spread ``lambda_max + r``.
    Both phases share one ``lax.while_loop`` (one HVP in the compiled program).
    """
    dtype = v0.dtype
    tiny, inf = jnp.finfo(dtype).tiny, jnp.asarray(jnp.inf, dtype)
    start = _unit(v0)

    def body(st: _PowerState) -> _PowerState:
        av = matvec(st.v) + st.shift * st.v
        rho, norm = jnp.vdot(st.v, av), jnp.linalg.norm(av)
        converged = jnp.abs(rho - st.rho) <= tol * jnp.abs(rho)
        step, v = st.step + 1, av / jnp.maximum(norm, tiny)
        phase_done = converged | (step >= iterations)
        switch = phase_done & (st.phase == 0)  # end of phase 1: pick the shift, restart
        positive = rho >= (1 - DOMINANT_SLACK * tol) * norm
        return _PowerState(
            phase=jnp.where(switch, 1, st.phase),
            step=jnp.where(switch, 0, step),
            total=st.total + 1,
            v=jnp.where(switch & ~positive, start, v),
            rho=jnp.where(switch, inf, rho),
            shift=jnp.where(switch & ~positive, norm, st.shift),
            converged_first=jnp.where(switch, converged, st.converged_first),
            converged=converged,
            finished=phase_done & (st.phase == 1),
        )

    zero, false = jnp.zeros((), dtype), jnp.asarray(False)
    init = _PowerState(jnp.asarray(0), jnp.asarray(0), jnp.asarray(0), start, inf, zero, false, false, false)
    out = lax.while_loop(lambda st: ~st.finished, body, init)
    # out.rho was reset to inf only at a switch; the final state ended phase 2, so it holds rho_2
    return SharpnessEstimate(out.rho - out.shift, out.total, out.converged_first & out.converged)


# ----------------------------------------------------------------------------------------- Lanczos


def _orthogonalise(w: jax.Array, basis: jax.Array) -> jax.Array:
    """``w`` minus its projection on the rows of ``basis`` (orthonormal or zero), twice for stability."""
    w = w - basis.T @ (basis @ w)
    return w - basis.T @ (basis @ w)


def _lanczos(matvec: MatVec, v0: jax.Array, iterations: int) -> tuple[jax.Array, jax.Array]:
    """Lanczos tridiagonalisation with full reorthogonalisation, ``m = iterations`` steps.

    Builds ``A V_m^T = V_m^T T_m + beta_m v_{m+1} e_m^T`` (Golub & Van Loan 2013, section 10.1) with the
    Lanczos vectors as rows of ``V`` ``(m + 1, P)``. Each new vector is orthogonalised against all previous
    ones (this subtracts ``alpha_j v_j + beta_{j-1} v_{j-1}`` and the rounding drift). On breakdown
    (``beta_j ~ 0``: an invariant subspace was found) ``beta_j`` is set to 0 and the iteration restarts from
    ``roll(v0, j + 1)`` (a cyclic shift of the random start: outside the span of ``V`` for a generic ``v0``)
    orthogonalised against ``V``, so ``T`` becomes block diagonal and its Ritz values stay exact.
    Returns ``(T (m, m), beta_m)``; ``beta_m`` enters the residual bound of the Ritz pairs.
    """
    n, dtype = v0.shape[0], v0.dtype
    eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny
    basis = jnp.zeros((iterations + 1, n), dtype).at[0].set(_unit(v0))  # (m + 1, P)

    def fresh(j, basis):
        return _unit(_orthogonalise(jnp.roll(v0, j + 1), basis))

    def body(j, state):
        basis, alphas, betas = state
        v = basis[j]
        av = matvec(v)
        alpha = jnp.vdot(v, av)
        w = _orthogonalise(av, basis)
        beta = jnp.linalg.norm(w)
        broke = beta <= 100 * eps * jnp.maximum(jnp.linalg.norm(av), tiny)
        nxt = lax.cond(broke, fresh, lambda j, b: w / jnp.maximum(beta, tiny), j, basis)
        beta = jnp.where(broke, 0.0, beta).astype(dtype)
        return basis.at[j + 1].set(nxt), alphas.at[j].set(alpha), betas.at[j].set(beta)

    init = (basis, jnp.zeros(iterations, dtype), jnp.zeros(iterations, dtype))
    _, alphas, betas = lax.fori_loop(0, iterations, body, init)
    off = betas[: iterations - 1]
    tri = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)  # (m, m)
    return tri, betas[iterations - 1]


def _lanczos_top(matvec: MatVec, v0: jax.Array, iterations: int, tol) -> SharpnessEstimate:
    tri, beta = _lanczos(matvec, v0, iterations)
    theta, s = jnp.linalg.eigh(tri)  # ascending Ritz values, eigenvectors in columns
    residual = jnp.abs(beta * s[-1, -1])  # ||A y - theta y|| for the top Ritz pair (G & VL 2013, 10.1.4)
    return SharpnessEstimate(theta[-1], jnp.asarray(iterations), residual <= tol * jnp.abs(theta[-1]))


def _check_top_args(method: str, iterations: int, tol: float) -> None:
    _check_method(method)
    _check_int("iterations", iterations, 1)
    _check_tol(tol)


def _top(matvec: MatVec, v0: jax.Array, method: str, steps: int | None, iterations, tol) -> SharpnessEstimate:
    tol = jnp.asarray(tol, v0.dtype)
    if method == "power":
        return _power_top(matvec, v0, iterations, tol)
    return _lanczos_top(matvec, v0, steps, tol)


def _start_vector(params, key) -> jax.Array:
    """Gaussian start vector ``(P,)`` in the dtype of the raveled params (drawn outside the compiled loops)."""
    leaves = jax.tree_util.tree_leaves(params)
    n = sum(jnp.size(leaf) for leaf in leaves)
    key = jax.random.PRNGKey(0) if key is None else key
    return jax.random.normal(key, (n,), jnp.result_type(*leaves))


def _lanczos_steps(method: str, iterations: int, params) -> int | None:
    """Static Lanczos step count ``min(iterations, P)``; ``None`` for power iteration, whose budget is traced."""
    n = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(params))
    return min(iterations, n) if method == "lanczos" else None


# Compiled once per (loss, method, Lanczos step count): a probe called repeatedly with the same loss function
# during training reuses the compiled loop; the power budget and tol are traced, so changing them does not
# recompile. Inside a caller's jit / vmap these simply inline.
_STATIC = ("loss", "method", "steps")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _sharpness(loss, params, batch, v0, iterations, tol, method, steps):
    _, matvec = _flat_hvp(loss, params, batch)
    return _top(matvec, v0, method, steps, iterations, tol)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _preconditioned(loss, params, batch, preconditioner, v0, iterations, tol, method, steps):
    flat, matvec = _flat_hvp(loss, params, batch)
    scale = 1 / jnp.sqrt(ravel_pytree(preconditioner)[0].astype(flat.dtype))  # diag of P^{-1/2}, (P,)
    return _top(lambda v: scale * matvec(scale * v), v0, method, steps, iterations, tol)


@functools.partial(jax.jit, static_argnames=("loss", "k", "iterations"))
def _top_k(loss, params, batch, v0, k, iterations):
    _, matvec = _flat_hvp(loss, params, batch)
    tri, _ = _lanczos(matvec, v0, iterations)
    return jnp.linalg.eigvalsh(tri)[::-1][:k]


# ---------------------------------------------------------------------------------------- public


def sharpness(
    loss: Loss,
    params,
    batch,
    *,
    method: str = "power",
    iterations: int = 100,
    tol: float = 1e-4,
    key=None,
) -> SharpnessEstimate:
    """Sharpness ``lambda_max(H)``, the largest (algebraic) eigenvalue of the loss Hessian.

    Gradient descent with step ``eta`` on a quadratic is stable iff ``lambda_max(H) < 2 / eta``; full-batch
    training raises ``lambda_max`` to that threshold and then hovers there, the edge of stability (Cohen,
    Kaur, Li, Kolter & Talwalkar 2021, arXiv:2103.00065). The loss convention is the caller's (ours:
    ``L = (1/2n) sum_i ||f(x_i) - y_i||^2``, for which ``H`` is the Gauss-Newton matrix ``J^T J / n`` plus
    the residual term).

    Args:
      loss: ``loss(params, batch) -> scalar``.
      params: any pytree of arrays (the point where ``H`` is taken).
      batch: passed unchanged to ``loss``; a pytree of arrays (it is a traced argument of the compiled loop;
        ``loss`` itself is a static argument, so reusing one loss function object reuses the compilation).
      method: ``"power"``: power iteration on HVPs, made to return the *top* eigenvalue, not the largest in
        magnitude, by a shift (two phases; see ``_power_top``); at most ``iterations`` HVPs per phase, each
        stopping when the Rayleigh quotient changes by ``<= tol`` relative. ``"lanczos"``: ``min(iterations,
        P)`` Lanczos steps with full reorthogonalisation (memory ``(iterations + 1) * P`` numbers); returns the
        top Ritz value, ``converged`` from its residual bound. Lanczos is the better choice when the
        top eigenvalues cluster (power iteration converges at rate ``lambda_2 / lambda_1``).
      iterations: see ``method``.
      tol: relative tolerance, ``> 0``.
      key: PRNG key for the random start vector (keyword only; ``None``: ``PRNGKey(0)``).

    Returns:
      :class:`SharpnessEstimate` ``(eigenvalue, iterations, converged)``.
    """
    _check_top_args(method, iterations, tol)
    steps = _lanczos_steps(method, iterations, params)
    return _sharpness(loss, params, batch, _start_vector(params, key), iterations, tol, method=method, steps=steps)


def top_eigenvalues(loss: Loss, params, batch, k: int, *, iterations: int, key=None) -> jax.Array:
    """The ``k`` largest eigenvalues of ``H``, descending, ``(k,)``: the top Ritz values of Lanczos.

    ``iterations`` Lanczos steps with full reorthogonalisation on the raveled parameters (Golub & Van Loan
    2013, section 10.1); the Ritz values are the eigenvalues of the ``(iterations, iterations)``
    tridiagonal matrix (``jnp.linalg.eigh``). Needs ``1 <= k <= iterations <= P``; ``iterations = P``
    gives the exact spectrum up to rounding; extremal eigenvalues converge first, so a few times ``k``
    steps usually suffice. Memory: ``(iterations + 1) * P`` numbers. ``key``: PRNG key of the start vector.
    """
    n = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(params))
    _check_int("iterations", iterations, 1, n)
    _check_int("k", k, 1, iterations)
    return _top_k(loss, params, batch, _start_vector(params, key), k, iterations)


def preconditioned_sharpness(
    loss: Loss,
    params,
    batch,
    preconditioner,
    *,
    method: str = "power",
    iterations: int = 100,
    tol: float = 1e-4,
    key=None,
) -> SharpnessEstimate:
    """Preconditioned sharpness ``lambda_max(P^{-1} H)`` for a diagonal positive ``P``.

    ``P^{-1} H`` is similar to the symmetric ``P^{-1/2} H P^{-1/2}`` (conjugate by ``P^{1/2}``), so they share
    eigenvalues; the latter is what the symmetric methods of :func:`sharpness` iterate on. For a
    preconditioned method ``w <- w - eta P^{-1} g`` the stability threshold is ``2 / eta``; for Adam, with
    ``P`` from :func:`adam_preconditioner`, it is ``(2 + 2 b1) / ((1 - b1) eta)`` (``38 / eta`` at
    ``b1 = 0.9``; Cohen et al. 2022, arXiv:2207.14484).

    Args:
      preconditioner: the diagonal of ``P``, a pytree like ``params`` with entries ``> 0`` (not checked:
        the values may be traced).
      loss, params, batch, method, iterations, tol, key: as in :func:`sharpness`.
    """
    _check_same_tree("preconditioner", preconditioner, params)
    _check_top_args(method, iterations, tol)
    steps = _lanczos_steps(method, iterations, params)
    v0 = _start_vector(params, key)
    return _preconditioned(loss, params, batch, preconditioner, v0, iterations, tol, method=method, steps=steps)


# ------------------------------------------------------------------------------ dense (small models)


@functools.partial(jax.jit, static_argnames=("loss",))
def dense_hessian(loss: Loss, params, batch) -> jax.Array:
    """``H`` of ``loss`` at ``params`` on ``batch`` as a dense symmetric ``(P, P)`` matrix on the raveled parameters.

    Column ``j`` is the HVP ``H e_j`` (Pearlmutter 1994), all ``P`` of them in one ``vmap``; the result is
    symmetrised, ``(H + H^T) / 2``, against rounding. Memory ``P^2`` numbers and ``P`` HVPs of work: for small
    models (a few thousand parameters at most). Compiled once per ``loss`` (a static argument).
    """
    flat, matvec = _flat_hvp(loss, params, batch)
    columns = jax.vmap(matvec)(jnp.eye(flat.size, dtype=flat.dtype))  # (P, P), row j = H e_j
    return (columns + columns.T) / 2


class NoiseCurvature(NamedTuple):
    """Curvature and gradient noise at one point (:func:`noise_curvature`); a pytree, so it batches under ``vmap``.

    Attributes:
      sharpness: ``lambda_max(H)``.
      trace_h: ``tr(H)``.
      trace_h_sigma: ``tr(H Sigma)``.
      trace_sigma: ``tr(Sigma)``.
      g_h_g: ``G^T H G``.
      grad_sq_norm: ``|G|^2``.
    """

    sharpness: jax.Array
    trace_h: jax.Array
    trace_h_sigma: jax.Array
    trace_sigma: jax.Array
    g_h_g: jax.Array
    grad_sq_norm: jax.Array

    @property
    def noise_weighted_curvature(self) -> jax.Array:
        """``tr(H Sigma) / tr(Sigma)``: the curvature averaged over the directions of the gradient noise."""
        return self.trace_h_sigma / self.trace_sigma

    @property
    def b_noise(self) -> jax.Array:
        """``B_noise = tr(H Sigma) / G^T H G`` (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2)."""
        return self.trace_h_sigma / self.g_h_g

    @property
    def b_simple(self) -> jax.Array:
        """``B_simple = tr(Sigma) / |G|^2`` (the same paper)."""
        return self.trace_sigma / self.grad_sq_norm


@functools.partial(jax.jit, static_argnames=("loss", "iterations"))
def noise_curvature(loss: Loss, params, population, hessian_batch, noise_batch=None, *,
                    iterations: int = 32) -> NoiseCurvature:
    """``lambda_max(H)``, ``tr(H)``, ``tr(H Sigma)``, ``tr(Sigma)``, ``G^T H G`` and ``|G|^2`` at ``params``.

    ``population`` is the whole finite set of examples the gradient noise is drawn from (e.g. a training set
    that minibatches sample with replacement); ``H`` and ``G`` are its Hessian and gradient. Exact on the
    population: ``G`` (one gradient), ``G^T H G`` (one HVP) and ``lambda_max(H)`` (Lanczos with full
    reorthogonalisation, ``min(iterations, P)`` HVPs, as :func:`sharpness`). ``Sigma`` is the covariance of
    one example's gradient drawn from the population (:func:`learnmech.observe.noise.per_example_gradients`;
    the convention of McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2: a batch of ``B``
    i.i.d. draws has ``Cov G_B = Sigma / B``): over the whole population without ``noise_batch``, else the
    unbiased estimate (``1 / (n - 1)``) from the ``n`` examples of ``noise_batch``, drawn i.i.d. from it.
    The traces use the dense Hessian (:func:`dense_hessian`) on ``hessian_batch``, e.g. a subset of the
    population disjoint from ``noise_batch``, an unbiased estimate of ``H``: ``tr(H Sigma) =
    sum_jk H_jk Sigma_jk``. Costs ``P`` HVPs on ``hessian_batch``, ``iterations + 1`` on the population,
    ``n`` per-example gradients and ``n P^2`` multiply-adds; memory ``n P + P^2``. Small models only.
    Compiled once per ``loss`` and ``iterations`` (static).
    """
    flat, matvec = _flat_hvp(loss, params, population)  # population H
    steps = min(iterations, flat.size)
    top = _lanczos_top(matvec, _start_vector(params, None), steps, jnp.asarray(1e-4, flat.dtype)).eigenvalue
    G = ravel_pytree(jax.grad(loss)(params, population))[0]  # (P,), ravel order like H
    H = dense_hessian(loss, params, hessian_batch)  # (P, P)
    sample = population if noise_batch is None else noise_batch
    g = jax.vmap(lambda tree: ravel_pytree(tree)[0])(per_example_gradients(loss, params, sample))  # (n, P)
    d = g - jnp.mean(g, axis=0)  # (n, P)
    dof = g.shape[0] if noise_batch is None else g.shape[0] - 1  # population covariance, or unbiased estimate
    sigma = d.T @ d / dof  # (P, P)
    return NoiseCurvature(top, jnp.trace(H), jnp.sum(H * sigma), jnp.trace(sigma), G @ matvec(G), G @ G)


def noise_curvature_along(loss: Loss, unravel: Callable, snapshots, population, hessian_batch, noise_batch=None, *,
                          iterations: int = 32) -> dict[str, np.ndarray]:
    """:func:`noise_curvature` at every raveled parameter vector of ``snapshots`` ``(..., P)`` (e.g. a probe's
    record of the members' parameters along training); ``unravel`` turns one into the parameter pytree.

    Returns each :class:`NoiseCurvature` field as a float64 array shaped like ``snapshots`` without its last
    axis. One compiled program for all of them (one point at a time: memory ``n P + P^2``).
    """
    flat = np.asarray(snapshots)
    rows = [noise_curvature(loss, unravel(jnp.asarray(v)), population, hessian_batch, noise_batch,
                            iterations=iterations) for v in flat.reshape(-1, flat.shape[-1])]
    return {name: np.array([float(getattr(r, name)) for r in rows]).reshape(flat.shape[:-1])
            for name in NoiseCurvature._fields}
