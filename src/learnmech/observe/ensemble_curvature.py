"""Sharpness of every member of an ensemble in one compiled program.

Parameters carry a leading member axis; member ``m`` gets what
:func:`learnmech.observe.curvature.sharpness` gives for ``params[m]`` (the same start vector for every
member). Members run batched (``vmap``) or one after another inside the program (``lax.map``); ``auto``
chooses by the work per member, as the trainer does (the measurements are below).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from learnmech.observe.curvature import (
    _STATIC,
    Loss,
    SharpnessEstimate,
    _check_top_args,
    _lanczos_steps,
    _flat_hvp,
    _top,
    _start_vector,
)

__all__ = ["LAYOUTS", "ensemble_sharpness"]

LAYOUTS = ("vmap", "map", "auto")  # members batched, in sequence, or chosen by size

# "auto" layout of ensemble_sharpness: members in sequence ("map") once a member has this many parameters,
# batched ("vmap") below. Measured on the shared 2-core machine (64 tanh MLPs, float32, n = 32 and 128,
# P = 37 .. 5313 parameters, process CPU time, best of 9, because the wall time under a load of 4-11 swung
# 2x between repeats). Lanczos (30 steps, the same for every member): vmap 1.0-1.6x cheaper than map at
# P <= 121, 1.05-1.1x dearer at P = 277, 1.3-1.5x at P = 433 and 2.2-3.6x at P >= 937: what loses is
# XLA:CPU's batched matmul. Power iteration (tol 1e-5): a vmapped while-loop stops with its slowest
# member, and the spread max/mean of the members' HVP counts was 2.0-6.8 on these ensembles; vmap won
# once (1.5x, P = 121, n = 32) and lost 1.6-8x in the 13 other cases, down to P = 37. Hence power always
# maps. Two cheaper vmaps were tried (wall time under load, P = 433 .. 5313, 64 members): a convergence
# test every 4 unrolled steps took 0.76-1.02x vmap's time (the masked HVPs of finished members are the
# cost, not the test); a queue of 4-16 vmapped slots, each refilled with the next member when its own
# converges (no wasted HVPs), was 2-11x faster than vmap but took 0.8-1.5x map's time, so neither is kept.
# bench/curvature.py measures the layouts; 3 runs at a load of 1.5 gave vmap/looped speed 0.44-0.46 (140k
# parameters x 32), 0.53-0.59 (1,633 x 64), 1.16-1.43 (121 x 64); map and auto (the same program) over
# looped 1.10-1.32, 0.95-1.66, 0.77-1.82 (the spread of one program is the machine's noise).
_AUTO_MAP_PARAMETERS = {"power": 0, "lanczos": 2**8}


def _members(params) -> int:
    """Size ``M`` of the leading member axis shared by every leaf of ``params``."""
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(params)}
    if not sizes or None in sizes or len(sizes) > 1 or 0 in sizes:
        raise ValueError(f"params: every leaf needs the same leading member axis of size >= 1, got sizes {sizes}")
    return sizes.pop()


def _member_batch(batch, batch_axis: int | None, members: int):
    """``batch`` with its member axis moved to the front (``batch_axis = None``: one batch shared by all)."""
    if batch_axis is None:
        return batch
    if isinstance(batch_axis, bool) or not isinstance(batch_axis, int):
        raise ValueError(f"batch_axis: must be None or an int, got {batch_axis!r}")
    for leaf in jax.tree_util.tree_leaves(batch):
        shape = jnp.shape(leaf)
        if not -len(shape) <= batch_axis < len(shape) or shape[batch_axis] != members:
            raise ValueError(f"batch_axis: every batch leaf needs axis {batch_axis} of size {members} (the "
                             f"members of params), got shape {shape}")
    return jax.tree_util.tree_map(lambda leaf: jnp.moveaxis(leaf, batch_axis, 0), batch)


def _auto_layout(method: str, parameters_per_member: int) -> str:
    """``"map"`` from ``_AUTO_MAP_PARAMETERS[method]`` parameters per member on, ``"vmap"`` below."""
    return "map" if parameters_per_member >= _AUTO_MAP_PARAMETERS[method] else "vmap"


@functools.partial(jax.jit, static_argnames=_STATIC + ("layout", "member_batch"))
def _ensemble(loss, params, batch, v0, iterations, tol, method, steps, layout, member_batch):
    # params: leaves (M, ...); batch: leaves (M, ...) if member_batch else shared; v0: (P,) shared start
    def member(p, b):
        _, matvec = _flat_hvp(loss, p, b)
        return _top(matvec, v0, method, steps, iterations, tol)

    if layout == "vmap":
        return jax.vmap(member, in_axes=(0, 0 if member_batch else None))(params, batch)
    if member_batch:
        return lax.map(lambda pb: member(*pb), (params, batch))
    return lax.map(lambda p: member(p, batch), params)


def ensemble_sharpness(
    loss: Loss,
    params,
    batch,
    *,
    method: str = "power",
    iterations: int = 100,
    tol: float = 1e-4,
    key=None,
    layout: str = "auto",
    batch_axis: int | None = None,
) -> SharpnessEstimate:
    """:func:`sharpness` ``lambda_max(H_m)`` of every member ``m`` of an ensemble, in one compiled program.

    Member ``m`` has parameters ``params[m]`` (every leaf carries a leading member axis of size ``M``) and
    loss Hessian ``H_m`` at its batch; the estimate is the one of :func:`sharpness` (shifted power iteration
    or Lanczos on Hessian-vector products, Golub & Van Loan 2013, sections 8.2 and 10.1; the edge-of-
    stability quantity of Cohen et al. 2021, arXiv:2103.00065), from the same start vector for every
    member, so member ``m`` gets ``sharpness(loss, params[m], batch_m, key=key, ...)`` up to rounding (a
    Rayleigh-quotient test that flips at rounding level can move a power-iteration stop by a step).

    Layouts (the result does not depend on them):

    - ``"vmap"``: members batched into every HVP. A batched ``while_loop`` runs until its *slowest* member
      has converged and the finished members keep computing (masked) HVPs, so power iteration costs
      ``M * max_m(iterations_m)`` member-HVPs against ``sum_m iterations_m`` in sequence; on XLA:CPU the
      batched matmuls are also no faster per member than unbatched ones beyond tiny networks. Lanczos runs a
      fixed step count and loses only the latter.
    - ``"map"``: members one after another inside the same program (``lax.map``): each member stops at its
      own convergence and keeps its matmuls at full size; what it saves over a Python loop of
      :func:`sharpness` is the per-call dispatch.
    - ``"auto"``: ``"map"`` from ``_AUTO_MAP_PARAMETERS[method]`` parameters per member on, ``"vmap"``
      below (thresholds measured by ``bench/curvature.py``; see the comment at the constant).

    Args:
      loss: ``loss(params_m, batch_m) -> scalar`` for one member.
      params: pytree whose leaves are ``(M, ...)``: member ``m`` is ``tree_map(lambda a: a[m], params)``.
      batch: one batch shared by every member (``batch_axis=None``), or a pytree whose leaves carry the
        member axis at position ``batch_axis`` (size ``M``).
      method, iterations, tol: as in :func:`sharpness`.
      key: PRNG key of the start vector, shared by all members (``None``: ``PRNGKey(0)``, as in
        :func:`sharpness`).
      layout: ``"vmap" | "map" | "auto"``.
      batch_axis: ``None`` or the member axis of every batch leaf.

    Returns:
      :class:`SharpnessEstimate` with fields of shape ``(M,)``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: must be one of {list(LAYOUTS)}, got {layout!r}")
    _check_top_args(method, iterations, tol)
    members = _members(params)
    batch = _member_batch(batch, batch_axis, members)
    first = jax.tree_util.tree_map(lambda leaf: leaf[0], params)  # one member's shapes, for P and v0
    steps = _lanczos_steps(method, iterations, first)
    if layout == "auto":
        layout = _auto_layout(method, sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(first)))
    v0 = _start_vector(first, key)
    return _ensemble(loss, params, batch, v0, iterations, tol, method=method, steps=steps, layout=layout,
                     member_batch=batch_axis is not None)
