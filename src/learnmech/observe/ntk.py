"""The empirical neural tangent kernel and NNGP of any JAX model ``apply(params, x)``.

Contract. ``apply(params, x) -> (n, O)`` over any parameter pytree, treating examples independently
(row ``i`` of the output depends on ``x[i]`` only: no batch statistics). The empirical NTK (Jacot,
Gabriel & Hongler 2018, arXiv:1806.07572) with per-parameter learning-rate multipliers ``m_p`` is

    Theta(x, x')_{o o'} = sum_p m_p (d f_o(x) / d p) (d f_o'(x') / d p),

summed over every scalar parameter ``p``. It is the kernel that gradient descent with per-parameter
rates ``eta m_p`` follows in function space: with ``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` and time
``t = eta * steps``, ``d f(x)/dt = -(1/n) sum_i Theta(x, x_i) (f(x_i) - y_i)``. ``outputs="mean"``
returns ``(1/O) sum_o Theta_{oo}``, shape ``(n1, n2)``; ``outputs="full"`` returns ``(n1, n2, O, O)``.

Strategies (after Novak, Sohl-Dickstein & Schoenholz 2022, "Fast finite width neural tangent
kernel", arXiv:2206.08720), all exact, differing only in cost:

- ``"jacobian"``: per-example Jacobians leaf by leaf (``vmap`` of ``jacrev`` over examples), each
  leaf contracted with its partner and the leaves summed; never ravels the whole parameter vector.
  Examples are processed in blocks so that at most ``JACOBIAN_BUDGET_BYTES`` of Jacobians live at once.
- ``"ntvp"``: NTK-vector products ``Theta e = J1 (M J2^T e)``: a chunk of cotangent basis vectors
  ``e`` is pulled back through ``x2`` one example at a time (``vjp``) and pushed forward through all
  of ``x1`` (``jvp``); only the chunk's gradients are ever held, never a Jacobian of ``x1``.
- ``"structured"``: for :class:`learnmech.nets.MLP`. A dense layer ``h = c (z @ w) + b`` has
  ``d f_o / d w_ij = c z_i delta_oj`` with ``delta_o = d f_o / d h``, so the layer contributes
  ``c^2 m_w (Z1 Z2^T) * (D1_o D2_o'^T) + m_b (D1_o D2_o'^T)`` (elementwise products of ``n1 x n2``
  Gram matrices). ``Z`` are the layer inputs and ``D`` the backpropagated signals, all examples at
  once: one ``vjp`` per output unit of the sum over examples, taken with respect to zero "taps"
  added to every pre-activation (:meth:`learnmech.nets.MLP.forward_with_taps`).
- ``"auto"``: ``"structured"`` for a bound ``MLP.apply``; otherwise the cheaper of ``"jacobian"``
  and ``"ntvp"`` by the flop model of :func:`select_ntk_strategy`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from learnmech.nets.mlp import MLP

__all__ = [
    "JACOBIAN_BUDGET_BYTES",
    "NTVP_CHUNK_BYTES",
    "STRATEGIES",
    "empirical_ntk",
    "mlp_ntk",
    "ntk_full_jacobian",
    "select_ntk_strategy",
]

Apply = Callable[[Any, jax.Array], jax.Array]

STRATEGIES = ("auto", "jacobian", "ntvp", "structured")
OUTPUT_MODES = ("mean", "full")
JACOBIAN_BUDGET_BYTES = 2 * 2**30  # per-example Jacobians held at once by "jacobian"
NTVP_CHUNK_BYTES = 2**28  # gradients (one chunk of cotangent basis vectors) held at once by "ntvp"
NTVP_MAX_CHUNK = 64  # cotangent basis vectors per chunk, at most
NTVP_ROWS = 4096  # ... and about this many (basis vector, x1 example) rows per pushed-forward batch

# Cost model of select_ntk_strategy, in flops with F = forward flops of one example (XLA's cost
# analysis) and P parameters. A per-example pullback (vjp / jacrev row) costs ~3F; a jvp's tangent
# part ~2F per example of x1; the Jacobian contraction 2 P per pair of rows, which ran at about half
# the speed of ntvp's batched matmuls (a skinny, memory-bound (n, P) @ (P, n) product; measured on
# the 2-core CPU machine, float32, width-512 residual tanh net, n = 500: jacobian 11.0 s, ntvp 11.6 s,
# model ratio 1.0), hence CONTRACT_PENALTY. NTVP_MARGIN keeps "jacobian" on near ties.
PULLBACK_COST = 3.0
PUSHFORWARD_COST = 2.0
CONTRACT_PENALTY = 2.0
NTVP_MARGIN = 1.5


# ----------------------------------------------------------------------------------------- checks


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: must be one of {list(choices)}, got {value!r}")


def _check_inputs(x1, x2) -> None:
    if jnp.ndim(x1) < 1:
        raise ValueError(f"x1: must have a leading example axis, got shape {jnp.shape(x1)}")
    if x2 is not None and jnp.shape(x2)[1:] != jnp.shape(x1)[1:]:
        raise ValueError(f"x2: must have the per-example shape of x1 {jnp.shape(x1)[1:]}, got {jnp.shape(x2)[1:]}")


def _output_dim(apply: Apply, params, x1) -> int:
    out = jax.eval_shape(apply, params, x1[:1])
    if len(out.shape) != 2 or out.shape[0] != 1:
        raise ValueError(f"apply: must return outputs of shape (n, O), got {out.shape} for n = 1")
    return int(out.shape[1])


def _leaf_multipliers(params, lr_multipliers, *, scalar: bool = False) -> list[jax.Array] | None:
    """Multipliers as a list in leaf order: scalars stay 0-d, arrays are broadcast and flattened."""
    if lr_multipliers is None:
        return None
    leaves, treedef = jax.tree.flatten(params)
    m_leaves, m_treedef = jax.tree.flatten(lr_multipliers)
    if m_treedef != treedef:
        raise ValueError(f"lr_multipliers: must have the tree structure of params {treedef}, got {m_treedef}")
    out = []
    for m, leaf in zip(m_leaves, leaves):
        m = jnp.asarray(m, dtype=leaf.dtype)
        if scalar and m.ndim:
            raise ValueError(f"lr_multipliers: the structured NTK needs one scalar per leaf, got shape {m.shape}")
        if m.ndim:
            try:
                m = jnp.broadcast_to(m, leaf.shape).reshape(-1)  # (size,)
            except ValueError:
                raise ValueError(f"lr_multipliers: shape {m.shape} does not broadcast to its leaf {leaf.shape}") from None
        out.append(m)
    return out


def _bound_mlp(apply) -> MLP | None:
    """The MLP whose own ``apply`` this is, or ``None`` (subclasses overriding ``apply`` do not count)."""
    owner = getattr(apply, "__self__", None)
    if isinstance(owner, MLP) and getattr(apply, "__func__", None) is MLP.apply:
        return owner
    return None


def _symmetrize(kernel: jax.Array, outputs: str) -> jax.Array:
    """Exactly symmetric copy, the upper triangle mirrored (``K[i, j, o, o'] = K[j, i, o', o]`` for "full").

    A selection rather than ``(K + K^T) / 2``: XLA may fuse that average into fused multiply-adds,
    which are not commutative, and leave round-off asymmetries.
    """
    if outputs == "mean":
        n = kernel.shape[0]
        upper = jnp.arange(n)[:, None] <= jnp.arange(n)[None, :]
        return jnp.where(upper, kernel, kernel.T)
    n, _, n_out, _ = kernel.shape
    flat = kernel.transpose(0, 2, 1, 3).reshape(n * n_out, n * n_out)  # rows (i, o), columns (j, o')
    return _symmetrize(flat, "mean").reshape(n, n_out, n, n_out).transpose(0, 2, 1, 3)


def _blocks(x: jax.Array, size: int) -> jax.Array:
    """``(n, ...) -> (ceil(n / size), size, ...)``, padding by repeating the last example."""
    n = x.shape[0]
    n_blocks = -(-n // size)
    pad = [(0, n_blocks * size - n)] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad, mode="edge").reshape((n_blocks, size) + x.shape[1:])


# ----------------------------------------------------------------------------- generic strategies


def _per_example_jacobian(apply: Apply, params, x: jax.Array) -> list[jax.Array]:
    """``d f_o(x_i) / d p`` per leaf, each ``(n, O, leaf_size)``; the parameter vector is never raveled."""

    def single(p, xi):
        return apply(p, xi[None])[0]  # (O,)

    jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x)  # leaves (n, O, *leaf_shape)
    return [j.reshape(j.shape[:2] + (-1,)) for j in jax.tree.leaves(jac)]


def _contract(jac1: list, jac2: list, mults: list | None, outputs: str) -> jax.Array:
    """``sum_leaves J1 M J2^T``: ``(n1, n2)`` (mean over outputs) or ``(n1, n2, O, O)``.

    Each leaf is one 2-d matmul (2.3x faster on CPU than an einsum contracting two axes, measured).
    """
    n1, n_out = jac1[0].shape[:2]
    n2 = jac2[0].shape[0]
    rows1, rows2 = (n1, n2) if outputs == "mean" else (n1 * n_out, n2 * n_out)
    total = 0.0
    for k, (a, b) in enumerate(zip(jac1, jac2)):
        m = None if mults is None else mults[k]
        if m is not None and m.ndim:
            a = a * m  # elementwise multipliers, (n1, O, size)
        # mean: (n1, O size) @ (O size, n2) sums Theta_oo over o; full: (n1 O, size) @ (size, n2 O)
        term = a.reshape(rows1, -1) @ b.reshape(rows2, -1).T
        total = total + (term if m is None or m.ndim else m * term)
    if outputs == "mean":
        return total / n_out
    return total.reshape(n1, n_out, n2, n_out).transpose(0, 2, 1, 3)


@functools.partial(jax.jit, static_argnames=("apply", "outputs", "block_size", "symmetric"))
def _jacobian_ntk(apply, params, x1, x2, mults, outputs, block_size, symmetric):
    n1, n2 = x1.shape[0], x2.shape[0]
    jacobian = functools.partial(_per_example_jacobian, apply, params)
    if _fits_once(n1, n2, symmetric, block_size):  # each Jacobian computed once
        jac1 = jacobian(x1)
        k = _contract(jac1, jac1 if symmetric else jacobian(x2), mults, outputs)
        return _symmetrize(k, outputs) if symmetric else k

    def row(xa):  # (B, ...) -> (n_blocks2, B, B[, O, O]); column blocks are recomputed per row block
        jac_a = jacobian(xa)
        return jax.lax.map(lambda xb: _contract(jac_a, jacobian(xb), mults, outputs), _blocks(x2, block_size))

    k = jax.lax.map(row, _blocks(x1, block_size))  # (nb1, nb2, B, B[, O, O])
    k = jnp.swapaxes(k, 1, 2)
    k = k.reshape((k.shape[0] * block_size, k.shape[2] * block_size) + k.shape[4:])[:n1, :n2]
    return _symmetrize(k, outputs) if symmetric else k


def _fits_once(n1: int, n2: int, symmetric: bool, block_size: int) -> bool:
    """Whether all Jacobians fit in the two blocks' worth of memory that blocking would use."""
    return n1 + (0 if symmetric else n2) <= 2 * block_size


@functools.partial(jax.jit, static_argnames=("apply", "outputs", "block_size", "symmetric"))
def _ntvp_ntk(apply, params, x1, x2, mults, outputs, block_size, symmetric):
    n1, n2 = x1.shape[0], x2.shape[0]
    leaves, treedef = jax.tree.flatten(params)

    def single(p, xi):
        return apply(p, xi[None])[0]  # (O,)

    def push_forward(tangent):  # J1 t, (n1, O)
        return jax.jvp(lambda p: apply(p, x1), (params,), (tangent,))[1]

    def columns(xb):  # a block of x2 examples -> Theta[:, block]
        pulled = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, xb)  # M J^T e, leaves (B, O, *leaf)
        pulled = jax.tree.leaves(pulled)
        if mults is not None:
            pulled = [g * (m if m.ndim == 0 else m.reshape(leaf.shape)) for g, m, leaf in zip(pulled, mults, leaves)]
        n_out = pulled[0].shape[1]
        tangents = jax.tree.unflatten(treedef, [g.reshape((-1,) + g.shape[2:]) for g in pulled])  # (B*O, *leaf)
        col = jax.vmap(push_forward)(tangents)  # (B*O, n1, O): [(j, q), i, o]
        col = col.reshape(xb.shape[0], n_out, n1, n_out)  # [j, q, i, o]
        if outputs == "mean":
            return jnp.trace(col, axis1=1, axis2=3).T / n_out  # (n1, B)
        return col.transpose(2, 0, 3, 1)  # (n1, B, O, O): [i, j, o, q]

    k = jax.lax.map(columns, _blocks(x2, block_size))  # (nb, n1, B[, O, O])
    k = jnp.moveaxis(k, 0, 1)
    k = k.reshape((n1, k.shape[1] * block_size) + k.shape[3:])[:, :n2]
    return _symmetrize(k, outputs) if symmetric else k


# ------------------------------------------------------------------------------ strategy choice


@functools.lru_cache(maxsize=256)
def _cached_forward_flops(apply, specs) -> float:
    params_spec, x_spec = specs
    try:
        cost = jax.jit(apply).lower(jax.tree.unflatten(*params_spec), x_spec).cost_analysis()
        if isinstance(cost, (list, tuple)):  # older JAX returned one dict per device
            cost = cost[0]
        return float(cost.get("flops", 0.0)) if cost else 0.0
    except Exception:  # cost analysis is advisory: any failure falls back to the parameter count
        return 0.0


def _forward_flops(apply: Apply, params, x1) -> float:
    """Forward flops of one example from XLA's cost analysis (0 when unavailable)."""
    spec = lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))  # noqa: E731
    leaves, treedef = jax.tree.flatten(params)
    specs = ((treedef, tuple(spec(a) for a in leaves)), spec(x1[:1]))
    try:
        return _cached_forward_flops(apply, specs)
    except TypeError:  # an unhashable apply: no caching
        return _cached_forward_flops.__wrapped__(apply, specs)


def _jacobian_block(n_params: int, n_out: int, itemsize: int) -> int:
    """Examples per block: two blocks of Jacobians fit in ``JACOBIAN_BUDGET_BYTES``."""
    return max(1, JACOBIAN_BUDGET_BYTES // (2 * max(1, n_out * n_params * itemsize)))


def _ntvp_block(n_params: int, n_out: int, itemsize: int, n1: int, n2: int) -> int:
    """Examples of ``x2`` per chunk: ``NTVP_ROWS / n1`` basis vectors, at most ``NTVP_MAX_CHUNK`` and
    ``NTVP_CHUNK_BYTES`` of gradients."""
    vectors = min(NTVP_MAX_CHUNK, NTVP_ROWS // max(1, n1), NTVP_CHUNK_BYTES // max(1, n_params * itemsize))
    return int(max(1, min(n2, vectors // n_out)))


def _strategy_costs(apply: Apply, params, x1, x2, outputs: str) -> tuple[float, float]:
    leaves = jax.tree.leaves(params)
    n_params = sum(int(jnp.size(a)) for a in leaves)
    itemsize = max(jnp.result_type(a).itemsize for a in leaves)
    n_out = _output_dim(apply, params, x1)
    flops = _forward_flops(apply, params, x1) or 2.0 * n_params
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    block = _jacobian_block(n_params, n_out, itemsize)
    jacobians = n1 + (0 if x2 is None else n2)
    if not _fits_once(n1, n2, x2 is None, block):  # blocked: column blocks recomputed per row block
        jacobians = n1 + -(-n1 // block) * n2
    outer = n_out if outputs == "mean" else n_out * n_out
    jacobian_cost = jacobians * n_out * PULLBACK_COST * flops + CONTRACT_PENALTY * 2.0 * n1 * n2 * n_params * outer
    ntvp_cost = n2 * n_out * (PULLBACK_COST * flops + PUSHFORWARD_COST * flops * n1) + flops * n1
    return jacobian_cost, ntvp_cost


def select_ntk_strategy(apply: Apply, params, x1: jax.Array, x2: jax.Array | None = None, *, outputs: str = "mean") -> str:
    """The strategy ``empirical_ntk(..., strategy="auto")`` uses.

    ``"structured"`` for a bound :meth:`learnmech.nets.MLP.apply`. Otherwise a flop model with
    ``F`` the forward flops of one example (XLA cost analysis), ``P`` parameters, ``O`` outputs:

        jacobian: 3 F O (n1 + n2) + 2 * 2 n1 n2 P O   (O^2 for outputs="full"; the factor 2 is
                  the measured memory-bound penalty of the contraction, see CONTRACT_PENALTY)
        ntvp:     n2 O (3 F + 2 F n1) + F n1

    and ``"ntvp"`` only when it is cheaper by more than ``NTVP_MARGIN``. For a dense network
    (``F ~ 2P``) the two tie for ``outputs="mean"`` (jacobian is kept) and ntvp wins for
    ``outputs="full"`` with ``O >= 2``; the Jacobian wins when a parameter is used many times per
    example (weight sharing, ``F >> P``). "jacobian" does the contraction of
    :func:`ntk_full_jacobian` but builds its Jacobians per example (the baseline's whole-batch
    ``jacrev`` costs ``~3 F n O`` per example), and "ntvp" is only chosen when predicted cheaper
    still, so "auto" is not slower than the baseline. Measured on the 2-core CPU machine (float32,
    choice in brackets): dense O = 1 mean, n = 200 [jacobian]: jacobian 2.9 s, ntvp 4.2 s, baseline
    13.6 s; dense O = 8 full, n = 100 [ntvp]: ntvp 8.2 s, jacobian 15 s, baseline 21 s; 1-d conv,
    n = 200 [jacobian]: jacobian 0.07 s, ntvp 12.5 s, baseline 5.9 s.
    """
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_inputs(x1, x2)
    if _bound_mlp(apply) is not None:
        return "structured"
    jacobian_cost, ntvp_cost = _strategy_costs(apply, params, x1, x2, outputs)
    return "ntvp" if NTVP_MARGIN * ntvp_cost < jacobian_cost else "jacobian"


# --------------------------------------------------------------------------------- public kernels


def empirical_ntk(
    apply: Apply,
    params,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    strategy: str = "auto",
    outputs: str = "mean",
    lr_multipliers=None,
    block_size: int | None = None,
) -> jax.Array:
    """The empirical NTK ``Theta(x1, x2)_{oo'} = sum_p m_p (d f_o(x1)/d p)(d f_o'(x2)/d p)``.

    Jacot, Gabriel & Hongler 2018 (arXiv:1806.07572); strategies after Novak et al. 2022
    (arXiv:2206.08720), see the module docstring. Conventions: gradient descent on
    ``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` with per-parameter rates ``eta m_p`` follows
    ``d f/dt = -(1/n) Theta (f - y)`` in ``t = eta * steps``.

    Args:
      apply: ``apply(params, x) -> (n, O)``, examples treated independently.
      params: any pytree of arrays (the ``p``).
      x1: inputs ``(n1, ...)``.
      x2: inputs ``(n2, ...)``; ``None`` means ``x1`` (each Jacobian or factor computed once and the
        result symmetrised exactly).
      strategy: one of ``STRATEGIES``.
      outputs: ``"mean"`` -> ``(n1, n2)``, the average of ``Theta_oo`` over output units;
        ``"full"`` -> ``(n1, n2, O, O)``.
      lr_multipliers: the ``m_p``, a pytree shaped like ``params`` (e.g. ``MLP.lr_multipliers()``)
        of scalars, or for the generic strategies arrays broadcastable to their leaf; default 1.
      block_size: examples per block. ``"jacobian"``: Jacobians of two blocks are held at once and
        when ``x1`` and ``x2`` fit in them each Jacobian is computed once (default: two blocks fill
        ``JACOBIAN_BUDGET_BYTES``); ``"ntvp"``: examples of ``x2`` per chunk of cotangent basis
        vectors; unused by ``"structured"``.
    """
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_inputs(x1, x2)
    if block_size is not None and int(block_size) < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size}")
    model = _bound_mlp(apply)
    if strategy == "auto":
        strategy = select_ntk_strategy(apply, params, x1, x2, outputs=outputs)
    if strategy == "structured":
        if model is None:
            raise ValueError("strategy: 'structured' needs the bound apply of a learnmech.nets.MLP, e.g. model.apply")
        return mlp_ntk(model, params, x1, x2, outputs=outputs, lr_multipliers=lr_multipliers)
    mults = _leaf_multipliers(params, lr_multipliers)
    leaves = jax.tree.leaves(params)
    n_params = sum(int(jnp.size(a)) for a in leaves)
    itemsize = max(jnp.result_type(a).itemsize for a in leaves)
    n_out = _output_dim(apply, params, x1)
    if strategy == "ntvp":
        n2 = x1.shape[0] if x2 is None else x2.shape[0]
        block = int(block_size) if block_size else _ntvp_block(n_params, n_out, itemsize, x1.shape[0], n2)
        return _ntvp_ntk(apply, params, x1, x1 if x2 is None else x2, mults, outputs, block, x2 is None)
    block = int(block_size) if block_size else _jacobian_block(n_params, n_out, itemsize)
    return _jacobian_ntk(apply, params, x1, x1 if x2 is None else x2, mults, outputs, block, x2 is None)


def _mlp_factors(model: MLP, params, x: jax.Array) -> tuple[list[jax.Array], list[jax.Array]]:
    """Layer inputs ``Z_l`` ``(n, fan_in)`` and backpropagated signals ``D_l`` ``(O, n, fan_out)``.

    ``D_l[o, i] = d f_o(x_i) / d h_l(x_i)``: the gradient of ``sum_i f_o(x_i)`` with respect to a zero
    tap on ``h_l``, since example ``i``'s tap reaches only example ``i``'s output.
    """
    shapes = jax.eval_shape(model.activations, params, x)  # pre-activations share these shapes
    taps = [jnp.zeros(s.shape, s.dtype) for s in shapes]
    outputs, pullback, layer_inputs = jax.vjp(lambda t: model.forward_with_taps(params, x, t), taps, has_aux=True)
    basis = jnp.eye(outputs.shape[1], dtype=outputs.dtype)  # (O, O): output unit o of every example
    deltas = jax.vmap(lambda e: pullback(jnp.broadcast_to(e, outputs.shape))[0])(basis)  # [(O, n, fan_out)]
    return layer_inputs, deltas


@functools.partial(jax.jit, static_argnames=("model", "outputs", "symmetric"))
def _structured_ntk(model, params, x1, x2, mults, outputs, symmetric):
    z1, d1 = _mlp_factors(model, params, x1)
    z2, d2 = (z1, d1) if symmetric else _mlp_factors(model, params, x2)
    total = 0.0
    for layer, sc in enumerate(model.scalings):
        m_w, m_b = mults[layer]
        gram_z = (sc.multiplier**2 * m_w) * (z1[layer] @ z2[layer].T)  # (n1, n2)
        if model.bias:
            gram_z = gram_z + m_b  # d h / d b = 1
        if outputs == "mean":
            total = total + gram_z * jnp.einsum("oif,ojf->ij", d1[layer], d2[layer])
        else:
            total = total + gram_z[:, :, None, None] * jnp.einsum("oif,pjf->ijop", d1[layer], d2[layer])
    kernel = total / d1[0].shape[0] if outputs == "mean" else total
    return _symmetrize(kernel, outputs) if symmetric else kernel


def mlp_ntk(
    model: MLP,
    params,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    outputs: str = "mean",
    lr_multipliers=None,
) -> jax.Array:
    """Layer-structured empirical NTK of a :class:`learnmech.nets.MLP` (same value as :func:`empirical_ntk`).

    Layer ``l`` (``h_l = c_l z_{l-1} w_l + b_l``) contributes

        c_l^2 m_w,l (Z1_l Z2_l^T) * (D1_l,o D2_l,o'^T) + m_b,l (D1_l,o D2_l,o'^T),

    ``*`` elementwise, with ``Z_l`` the layer inputs ``(n, fan_in)``, ``D_l,o`` the signals
    ``d f_o / d h_l`` ``(n, fan_out)``, ``c_l`` the forward multiplier and ``m`` the learning-rate
    multipliers (default 1; pass ``model.lr_multipliers()`` for the kernel that the model's own
    per-layer rates follow). Jacot et al. 2018 (arXiv:1806.07572); Novak et al. 2022
    (arXiv:2206.08720) for the structured product. Cost: a few ``n1 x n2 x width`` matmuls per layer.
    """
    if not isinstance(model, MLP):
        raise ValueError(f"model: must be a learnmech.nets.MLP, got {type(model).__name__}")
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_inputs(x1, x2)
    if len(params) != model.depth:
        raise ValueError(f"params: must hold {model.depth} layers for this MLP, got {len(params)}")
    leaf_mults = _leaf_multipliers(params, lr_multipliers, scalar=True)
    one = jnp.ones((), params[0]["w"].dtype)
    if leaf_mults is None:
        mults = [(one, one)] * model.depth
    else:
        tree = jax.tree.unflatten(jax.tree.structure(params), leaf_mults)  # [{"w": m_w, "b": m_b}, ...]
        mults = [(layer["w"], layer.get("b", one)) for layer in tree]
    return _structured_ntk(model, params, x1, x1 if x2 is None else x2, mults, outputs, x2 is None)


def ntk_full_jacobian(
    apply: Apply, params, x1: jax.Array, x2: jax.Array | None = None, *, outputs: str = "mean"
) -> jax.Array:
    """The plain empirical NTK, for reference: ``J1 J2^T`` from full per-example Jacobians.

    ``ravel_pytree`` the parameters into one vector ``p`` (length ``P``), ``J = d f(x_i) / d p``
    ``(n, O, P)`` by ``vmap`` over examples of ``jax.jacrev`` (one pullback per example and output;
    ``jacrev`` of the whole batch would instead pull every cotangent back through all ``n``
    examples, ``n`` times the work), then one contraction. No multipliers; see
    :func:`empirical_ntk` for the definition and the faster strategies.
    """
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_inputs(x1, x2)
    _output_dim(apply, params, x1)
    return _full_jacobian_ntk(apply, params, x1, x1 if x2 is None else x2, outputs, x2 is None)


@functools.partial(jax.jit, static_argnames=("apply", "outputs", "symmetric"))
def _full_jacobian_ntk(apply, params, x1, x2, outputs, symmetric):
    flat, unravel = ravel_pytree(params)

    def single(xi):  # (P,) -> (O, P) for one example
        return jax.jacrev(lambda p: apply(unravel(p), xi[None])[0])(flat)

    def jacobian(x):
        return jax.vmap(single)(x)  # (n, O, P)

    jac1 = jacobian(x1)
    jac2 = jac1 if symmetric else jacobian(x2)
    (n1, n_out, _), n2 = jac1.shape, jac2.shape[0]
    if outputs == "mean":  # (n1, O P) @ (O P, n2) sums Theta_oo over o
        return jac1.reshape(n1, -1) @ jac2.reshape(n2, -1).T / n_out
    full = jac1.reshape(n1 * n_out, -1) @ jac2.reshape(n2 * n_out, -1).T  # (n1 O, n2 O)
    return full.reshape(n1, n_out, n2, n_out).transpose(0, 2, 1, 3)
