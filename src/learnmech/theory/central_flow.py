"""The central flow: the time-averaged trajectory of gradient descent at the edge of stability.

Statement (Cohen, Damian, Talwalkar, Kolter & Lee 2024, "Understanding Optimization in Deep Learning with
Central Flows", arXiv:2410.24206, Section 3). Gradient descent ``w <- w - eta grad L(w)`` whose sharpness
``S(w) = lambda_max(grad^2 L(w))`` has reached ``2 / eta`` oscillates along the top Hessian eigenvectors
while its time average ``w_bar`` follows the ODE

    dw/dt = -eta [grad L(w) + (1/2) grad_w <Sigma(t), grad^2 L(w)>],                       (central flow)

with ``t`` in units of steps and ``Sigma`` the covariance of the oscillation, supported on the critical
eigenspace. The expected loss of the oscillating iterate is, to second order,

    E L(w_bar + delta) = L(w_bar) + (1/2) <Sigma, grad^2 L(w_bar)>                        (predicted loss)

(the quadratic term of the Taylor expansion averaged over ``delta`` with covariance ``Sigma``; the
reference code alex-damian/central_flows_jax computes the same ``L + 0.5 <U^T H U, X>``).

One critical eigenvalue (the paper's Section 3.1). With ``Sigma = sigma^2 u u^T`` (``u`` the top unit
eigenvector) and Danskin's rule ``grad S = grad_w (u^T grad^2 L(w) u) = D^3 L(w)[u, u, .]``, holding
``dS/dt = 0`` at ``S = 2/eta`` gives the closed form

    sigma^2 = max(0, 2 <-grad L, grad S> / ||grad S||^2),                                   (sigma^2)

and the flow becomes the gradient flow projected orthogonally to ``grad S``:
``dw/dt = -eta Pi_{grad S}^perp grad L`` (while sharpening would push ``S`` up; else ``sigma^2 = 0``).
The predicted loss is then ``L(w) + (1/2) sigma^2 S(w) = L(w) + sigma^2 / eta``.

Several critical eigenvalues (the paper's Section 3.2). ``Sigma`` solves a complementarity problem that
keeps the top eigenvalues at or below ``2 / eta``: ``Sigma >= 0``, ``2/eta - lambda_i >= 0`` and
``d lambda_i/dt <= 0`` where ``lambda_i = 2/eta``, with ``sigma_i^2 (d lambda_i / dt) = 0``. The paper
poses it over positive semidefinite ``Sigma`` on the critical eigenspace (an SDCP, solved in the reference
code with cvxpy/CVXOPT, not installed here). We restrict ``Sigma = sum_i x_i u_i u_i^T`` to the
eigenbasis of the ``k`` tracked eigenvectors, which turns it into a linear complementarity problem (LCP)
over ``x >= 0``; with simple (distinct) eigenvalues the first-order change of ``lambda_i`` only sees the
diagonal of ``U^T dH U``, so the two problems agree; in a degenerate critical eigenspace the LCP leaves
the off-diagonal coupling out (a departure from the paper; the stabilising term below pulls any
eigenvalue that escapes back to ``2/eta`` within a substep). With ``G`` the ``(k, P)`` matrix of rows
``grad lambda_i`` and ``g = grad L``, the velocity is ``v(x) = -eta (g + (1/2) G^T x)`` and
``d lambda / dt = G v(x)``.

Discretisation (as the reference code does). Over a substep ``dt`` (in steps) the eigenvalues move to
first order to ``lambda + dt G v(x)``; we ask the *next* eigenvalues to satisfy the complementarity:

    s(x) = a + B x >= 0,  x >= 0,  x . s(x) = 0,   a = 2/eta - lambda - dt G v(0),  B = (eta dt / 2) G G^T,

which for ``lambda = 2/eta`` is the continuous LCP times ``dt`` and otherwise also pulls an eigenvalue that
overshot ``2/eta`` back to it (a self-correcting constraint). ``B`` is positive semidefinite, so the LCP is
the KKT system of the convex QP ``min_{x >= 0} (1/2) x^T B x + a^T x``; with ``B = C^T C`` (Cholesky) that
QP is the nonnegative least-squares problem ``min_{x >= 0} ||C x + C^{-T} a||^2``, solved by
:func:`scipy.optimize.nnls` (Lawson & Hanson's active-set method: exact in finitely many steps, no
tolerance to tune, a well-kept solver for the ``k <= 8`` variables here).

Integrator: explicit Euler substeps ``w <- w + dt v(x)`` (first order in ``dt``; the central flow holds
``eta lambda_1 <= 2``, so ``dt = 1/4`` keeps ``eta lambda dt <= 1/2``; gradient flow adapts ``dt``), the
Hessian quantities by Hessian-vector products (Pearlmutter 1994, forward-over-reverse) and the top
eigenvectors by LOBPCG
(``jax.experimental.sparse.linalg.lobpcg_standard``) warm-started from the previous substep's (a few
HVP blocks per substep), or by the dense Hessian for tiny models. This module imports nothing from
:mod:`learnmech.observe` (``observe.curvature`` imports ``theory``); its one-line HVP is the same
forward-over-reverse product as :func:`learnmech.observe.curvature.hvp`.

Conventions: ``loss_fn(w) -> scalar`` on a flat parameter vector ``w`` ``(P,)`` (e.g. after
``jax.flatten_util.ravel_pytree``); time in GD steps (one step = ``dt = 1``); float64 recommended.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.sparse.linalg import lobpcg_standard
from scipy.linalg import cho_factor, solve_triangular
from scipy.optimize import nnls

__all__ = [
    "EIGENSOLVERS",
    "FlowPath",
    "central_flow",
    "central_velocity",
    "complementarity",
    "critical_system",
    "eigenvalue_gradients",
    "gradient_flow",
    "one_eigenvalue_sigma2",
    "start_directions",
    "predicted_loss",
    "top_eigenpairs",
]

FlatLoss = Callable[[jax.Array], jax.Array]
EIGENSOLVERS = ("dense", "lobpcg")
RIDGE = 1e-12  # relative ridge on B before its Cholesky factor: B is singular when two rows of G coincide


class FlowPath(NamedTuple):
    """A flow sampled once per step, at ``t = 0, 1, ..., steps - 1`` (the start of each step).

    Attributes:
      loss: ``L(w(t))`` ``(steps,)``.
      predicted: ``L(w) + (1/2) sum_i x_i lambda_i`` ``(steps,)`` (equals ``loss`` for gradient flow).
      eigenvalues: the ``k`` tracked top Hessian eigenvalues, descending ``(steps, k)`` (gradient flow:
        its sharpness, ``k = 1``).
      sigma2: the oscillation variances ``x_i`` along them ``(steps, k)``, from the first substep of the step.
      w: the parameters at ``t = steps`` ``(P,)``.
    """

    loss: jax.Array
    predicted: jax.Array
    eigenvalues: jax.Array
    sigma2: jax.Array
    w: jax.Array


# ------------------------------------------------------------------------------------------ closed forms


def one_eigenvalue_sigma2(grad_loss, grad_sharpness):
    """``sigma^2 = max(0, -2 <grad S, grad L> / ||grad S||^2)``, the one-eigenvalue closed form.

    Holds ``dS/dt = <grad S, -eta (grad L + (1/2) sigma^2 grad S)> = 0`` at ``S = 2/eta`` (Cohen et al. 2024,
    arXiv:2410.24206, Section 3.1); ``sigma^2`` is the variance of GD's oscillation along the top eigenvector.
    ``grad_loss``, ``grad_sharpness``: ``(P,)``. Zero when gradient flow would lower ``S`` by itself.

    >>> float(one_eigenvalue_sigma2(jnp.array([0.0, -1.0]), jnp.array([0.0, 2.0])))
    1.0
    """
    g, gs = jnp.asarray(grad_loss), jnp.asarray(grad_sharpness)
    return jnp.maximum(0.0, -2.0 * jnp.vdot(gs, g) / jnp.vdot(gs, gs))


def central_velocity(grad_loss, eigen_grads, sigma2, eta: float):
    """``dw/dt = -eta (grad L + (1/2) sum_i x_i grad lambda_i)`` ``(P,)``: the central flow with
    ``Sigma = sum_i x_i u_i u_i^T``, since ``grad_w <u u^T, grad^2 L> = grad lambda`` (Danskin).

    ``grad_loss`` ``(P,)``, ``eigen_grads`` ``G`` ``(k, P)``, ``sigma2`` ``x`` ``(k,)``, ``eta`` the GD step.
    """
    return -eta * (grad_loss + 0.5 * eigen_grads.T @ sigma2)


def predicted_loss(loss, eigenvalues, sigma2):
    """``L(w) + (1/2) <Sigma, H> = L(w) + (1/2) sum_i x_i lambda_i``: GD's time-averaged loss.

    Cohen et al. 2024 (arXiv:2410.24206), the expected loss over an oscillation of covariance ``Sigma``.
    """
    return loss + 0.5 * jnp.sum(sigma2 * eigenvalues, axis=-1)


def critical_system(eigenvalues, eigen_grads, grad_loss, eta: float, dt: float):
    """``(a, B)`` of the substep's LCP (module docstring): ``a = 2/eta - lambda + eta dt G g`` ``(k,)``,
    ``B = (eta dt / 2) G G^T`` ``(k, k)``, so that ``a + B x`` is ``2/eta`` minus the eigenvalues after a
    substep ``dt`` of the central flow with variances ``x``. ``G`` ``(k, P)``: rows ``grad lambda_i``."""
    G = eigen_grads
    a = 2.0 / eta - eigenvalues + eta * dt * (G @ grad_loss)
    return a, 0.5 * eta * dt * (G @ G.T)


def complementarity(a, B) -> np.ndarray:
    """The ``x`` of the LCP ``x >= 0``, ``a + B x >= 0``, ``x . (a + B x) = 0`` for positive semidefinite ``B``.

    It is the minimiser of the convex QP ``(1/2) x^T B x + a^T x`` over ``x >= 0`` (its KKT conditions);
    with ``B + r I = C^T C`` (Cholesky, ridge ``r = RIDGE tr B`` for a singular ``B``) the QP is
    ``min_{x >= 0} (1/2) ||C x + C^{-T} a||^2`` up to a constant, solved by :func:`scipy.optimize.nnls`
    (Lawson & Hanson 1974, "Solving Least Squares Problems", ch. 23: an active-set method exact in finitely
    many steps). ``a`` ``(k,)``, ``B`` ``(k, k)``; returns ``x`` ``(k,)`` float64. ``a >= 0`` gives ``x = 0``.
    """
    a, B = np.asarray(a, np.float64), np.asarray(B, np.float64)
    if a.ndim != 1 or B.shape != (a.size, a.size):
        raise ValueError(f"B: must be ({a.size}, {a.size}) for a of shape {a.shape}, got {B.shape}")
    if a.size == 0 or np.all(a >= 0):
        return np.zeros_like(a)
    B = 0.5 * (B + B.T)
    scale = max(np.trace(B), np.finfo(np.float64).tiny)
    C = cho_factor(B / scale + RIDGE * np.eye(a.size), lower=False)[0]
    C = np.triu(C)  # (k, k) upper: B / scale ~ C^T C
    target = -solve_triangular(C, a / scale, trans="T", lower=False)  # -C^{-T} a / scale
    return nnls(C, target)[0]


# ------------------------------------------------------------------------------------- Hessian quantities


def _hvp(loss_fn: FlatLoss, w, v):
    """``grad^2 L(w) v`` by forward-over-reverse differentiation (Pearlmutter 1994)."""
    return jax.jvp(jax.grad(loss_fn), (w,), (v,))[1]


def eigenvalue_gradients(loss_fn: FlatLoss, w, U):
    """``G`` ``(k, P)``: rows ``grad lambda_i = grad_w (u_i^T grad^2 L(w) u_i) = D^3 L(w)[u_i, u_i, .]``.

    Danskin / Hellmann-Feynman for a simple eigenvalue with unit eigenvector ``u_i`` (columns of ``U``
    ``(P, k)``), the third derivative by reverse mode over the HVP.
    """
    return jax.vmap(lambda u: jax.grad(lambda x: jnp.vdot(u, _hvp(loss_fn, x, u)))(w), in_axes=1)(U)


def top_eigenpairs(loss_fn: FlatLoss, w, U0, method: str = "lobpcg", tol: float = 1e-5):
    """The ``k`` largest Hessian eigenvalues ``(k,)`` descending and unit eigenvectors ``(P, k)``.

    ``U0`` ``(P, k)``: start directions (the previous eigenvectors for a warm start). ``method``:
    ``"dense"`` (``jax.hessian`` and ``eigh``: tiny models) or ``"lobpcg"`` (LOBPCG on HVPs, needs
    ``5 k < P``; Knyazev 2001, SIAM J. Sci. Comput. 23(2)) until every residual ``||H u - lambda u||`` is
    below about ``tol (|lambda| + ||H u||)`` (jax's criterion divided by its ``10 P`` worst-case factor, as
    the reference code does) or 100 iterations; a warm start ``U0`` converges in a few.
    """
    if method not in EIGENSOLVERS:
        raise ValueError(f"method: must be one of {list(EIGENSOLVERS)}, got {method!r}")
    k = U0.shape[1]
    if method == "dense":
        lam, V = jnp.linalg.eigh(jax.hessian(loss_fn)(w))
        return lam[::-1][:k], V[:, ::-1][:, :k]
    if not 0 < 5 * k < w.shape[0]:
        raise ValueError(f"k: lobpcg needs 0 < 5 k < P = {w.shape[0]}, got k = {k}")
    matvec = jax.vmap(lambda v: _hvp(loss_fn, w, v), 1, 1)
    lam, U, _ = lobpcg_standard(matvec, U0, tol=tol / (10 * w.shape[0]))
    return lam, U


# -------------------------------------------------------------------------------------------- integrator


@functools.partial(jax.jit, static_argnames=("loss_fn", "method"))
def _critical(loss_fn, w, U, eta, dt, method):
    """A substep's Hessian quantities at ``w``: loss, ``g``, eigenpairs, ``G`` and the LCP's ``(a, B)``."""
    loss, g = jax.value_and_grad(loss_fn)(w)
    lam, U = top_eigenpairs(loss_fn, w, U, method)
    G = eigenvalue_gradients(loss_fn, w, U)  # (k, P)
    return (loss, g, lam, U, G) + critical_system(lam, G, g, eta, dt)


@jax.jit
def _advance(w, g, G, x, eta, dt):
    return w + dt * central_velocity(g, G, x, eta)


def _check_flow_args(eta, steps, substeps):
    if not eta > 0:
        raise ValueError(f"eta: must be > 0, got {eta}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: must be an int >= 1, got {steps!r}")
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps: must be an int >= 1, got {substeps!r}")


def start_directions(n: int, k: int, dtype=jnp.float64) -> jax.Array:
    """``(n, k)`` deterministic start directions for the eigensolver: a Weyl sequence, column ``j`` the
    fractional parts of ``(i + 1) sqrt(p_j)`` minus 1/2 (``p_j`` the ``j``-th prime). The columns are
    equidistributed and linearly independent, so generic (no eigenvector is orthogonal to them but by a
    coincidence of measure zero), with no randomness in theory/.
    """
    primes, c = [], 2
    while len(primes) < k:
        if all(c % p for p in primes):
            primes.append(c)
        c += 1
    i = np.arange(1, n + 1, dtype=np.float64)[:, None]  # (n, 1)
    return jnp.asarray(np.mod(i * np.sqrt(np.asarray(primes, np.float64))[None, :], 1.0) - 0.5, dtype)  # (n, k)


def central_flow(loss_fn: FlatLoss, w0, eta: float, steps: int, *, k: int = 1, substeps: int = 4,
                 method: str = "lobpcg") -> FlowPath:
    """Integrate the central flow from ``w0`` ``(P,)`` for ``steps`` GD steps (``steps * substeps`` Euler
    substeps of ``dt = 1 / substeps``), tracking the top ``k`` Hessian eigenvalues.

    Each substep: the top-``k`` eigenpairs (:func:`top_eigenpairs`, warm-started), their gradients
    (:func:`eigenvalue_gradients`), the LCP of :func:`critical_system` solved by :func:`complementarity`,
    and ``w <- w + dt v(x)`` (:func:`central_velocity`). Below ``2/eta`` every ``x_i = 0`` and the step is
    gradient flow's. The substeps are a host loop around two compiled functions (the LCP is solved by scipy
    between them; a ``pure_callback`` inside a compiled loop loses float64 when the caller's x64 mode is a
    thread-local context). ``loss_fn`` is a static argument: reuse one function object.
    The eigensolver starts from :func:`start_directions`. Returns a :class:`FlowPath`. Reference: Cohen et al. 2024, arXiv:2410.24206.
    """
    _check_flow_args(eta, steps, substeps)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: must be an int >= 1, got {k!r}")
    w0 = jnp.asarray(w0)
    U = start_directions(w0.shape[0], k, w0.dtype)  # (P, k)
    eta_, dt, w = jnp.asarray(eta, w0.dtype), jnp.asarray(1.0 / substeps, w0.dtype), w0
    rows = []
    for i in range(steps * substeps):
        loss, g, lam, U, G, a, B = _critical(loss_fn, w, U, eta_, dt, method)
        x = jnp.asarray(complementarity(a, B), w0.dtype)  # (k,)
        if i % substeps == 0:
            rows.append((loss, predicted_loss(loss, lam, x), lam, x))
        w = _advance(w, g, G, x, eta_, dt)
    loss, pred, lam, x = (jnp.stack(c) for c in zip(*rows))
    return FlowPath(loss, pred, lam, x, w)


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps", "substeps", "method"))
def _gradient(loss_fn, w0, U0, eta, steps, substeps, max_step, method):
    def step(carry, _):
        w, U = carry
        loss = loss_fn(w)
        lam, U = top_eigenpairs(loss_fn, w, U, method)
        n = jnp.maximum(substeps, jnp.ceil(eta * lam[0] / max_step)).astype(jnp.int32)  # Euler substeps
        dt = 1.0 / n.astype(w.dtype)
        w = lax.fori_loop(0, n, lambda _, v: v - dt * eta * jax.grad(loss_fn)(v), w)
        return (w, U), (loss, lam[:1])

    (w, _), (loss, sharp) = lax.scan(step, (w0, U0), None, length=steps)  # sharp (steps, 1)
    return FlowPath(loss, loss, sharp, jnp.zeros_like(sharp), w)


def gradient_flow(loss_fn: FlatLoss, w0, eta: float, steps: int, *, substeps: int = 4, max_step: float = 0.5,
                  method: str = "lobpcg") -> FlowPath:
    """Gradient flow ``dw/dt = -eta grad L(w)`` (time in steps) by explicit Euler substeps: the central flow
    with ``Sigma = 0``, for contrast. Returns a :class:`FlowPath` whose ``eigenvalues`` ``(steps, 1)`` are
    the sharpness ``S`` at the start of each step (``sigma2`` zeros, ``predicted`` = ``loss``).

    Each step takes ``n = max(substeps, ceil(eta S / max_step))`` substeps of ``dt = 1/n`` with ``S`` the
    top Hessian eigenvalue at the step's start (:func:`top_eigenpairs`, ``method`` as there, warm-started
    from :func:`start_directions`), so that ``eta S dt <= max_step``. Gradient
    flow is free to sharpen far past ``2/eta``; a fixed ``dt`` would turn its Euler scheme unstable once
    ``eta S dt > 2`` (it oscillates instead of descending). The reference code's ``stable`` flow
    (alex-damian/central_flows_jax, Cohen et al. 2024, arXiv:2410.24206) chooses its substeps the same way,
    with ``max_step = 0.5``.
    """
    _check_flow_args(eta, steps, substeps)
    if not 0 < max_step <= 2:
        raise ValueError(f"max_step: must be in (0, 2] (Euler is unstable beyond 2), got {max_step}")
    if method not in EIGENSOLVERS:
        raise ValueError(f"method: must be one of {list(EIGENSOLVERS)}, got {method!r}")
    w0 = jnp.asarray(w0)
    U0 = start_directions(w0.shape[0], 1, w0.dtype)  # (P, 1)
    return _gradient(loss_fn, w0, U0, jnp.asarray(eta, w0.dtype), steps, substeps,
                     jnp.asarray(max_step, w0.dtype), method)
