"""The empirical neural tangent kernel and NNGP of any JAX model ``apply(params, x)``.

Contract. ``apply(params, x) -> (n, ..., O)`` over any parameter pytree, treating examples
independently (slice ``i`` of the output depends on ``x[i]`` only: no batch statistics). The
empirical NTK (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572) with per-parameter learning-rate
multipliers ``m_p`` is

    Theta(x, x')_{o o'} = sum_p m_p (d f_o(x) / d p) (d f_o'(x') / d p),

summed over every scalar parameter ``p``. It is the kernel that gradient descent with per-parameter
rates ``eta m_p`` follows in function space: with ``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` and time
``t = eta * steps``, ``d f(x)/dt = -(1/n) sum_i Theta(x, x_i) (f(x_i) - y_i)``. ``outputs="mean"``
returns ``(1/O) sum_o Theta_{oo}``, shape ``(n1, n2)``; ``outputs="full"`` returns ``(n1, n2, O, O)``.

Outputs with middle axes ``S`` (``(n, *S, O)``, e.g. a sequence model's ``(n, T, vocab)``), with
``G = prod(S)``, by ``extra_axes``:

- ``"outputs"`` (default): folded into the output axis, ``f(x)`` read as one vector of
  ``K = G O`` outputs (C order: output ``k = s * O + o``, ``s`` the flat index of ``S``). The kernel
  of the MSE dynamics above with ``||.||`` over all of them. ``"mean"``: ``(n1, n2)``, the average
  of ``Theta_kk`` over all ``K``; ``"full"``: ``(n1, n2, K, K)``. Costs ``G`` times an ``(n, O)``
  model's pullbacks.
- ``"examples"``: each position an example of its own (the positions of one input still share
  that input): ``"mean"``: ``(n1 G, n2 G)``, row ``i G + s``, the average over ``o`` of
  ``Theta_{(s, o), (s', o)}``; ``"full"``: ``(n1 G, n2 G, O, O)``. Costs as ``"outputs"`` with
  ``outputs="full"`` (every position meets every position).
- ``"mean"``: the outputs averaged over the middle axes first, ``fbar_o(x) = (1/G) sum_s f_{s o}(x)``,
  then as an ``(n, O)`` model: ``(n1, n2)`` or ``(n1, n2, O, O)``. The cheapest (one pullback per
  output unit, as for ``(n, O)``).

Strategies (after Novak, Sohl-Dickstein & Schoenholz 2022, "Fast finite width neural tangent
kernel", arXiv:2206.08720), all exact, differing only in cost:

- ``"jacobian"``: per-example Jacobian rows leaf by leaf (``vmap`` of ``jacrev`` over examples),
  each leaf contracted with its partner and the leaves summed; never ravels the parameter vector.
  At most ``JACOBIAN_BUDGET_BYTES`` of rows live at once: for ``outputs="mean"`` the outputs are
  taken in chunks whose Grams add up, so each row is computed once however many outputs there are;
  otherwise rows go in blocks of examples and whole chunks of outputs, column blocks recomputed
  (:mod:`.ntk_strategies`).
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

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from learnmech.nets.mlp import MLP
from learnmech.observe import ntk_strategies as _engines
from learnmech.observe.ntk_strategies import JACOBIAN_BUDGET_BYTES, NTVP_CHUNK_BYTES

__all__ = [
    "EXTRA_AXES",
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
EXTRA_AXES = ("outputs", "examples", "mean")  # what the middle axes of (n, ..., O) outputs become
NTVP_MARGIN = 1.5  # "ntvp" only when predicted cheaper than "jacobian" by this factor (near ties keep "jacobian")


# ----------------------------------------------------------------------------------------- checks


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: must be one of {list(choices)}, got {value!r}")


def _check_inputs(x1, x2) -> None:
    if jnp.ndim(x1) < 1:
        raise ValueError(f"x1: must have a leading example axis, got shape {jnp.shape(x1)}")
    if x2 is not None and jnp.shape(x2)[1:] != jnp.shape(x1)[1:]:
        raise ValueError(f"x2: must have the per-example shape of x1 {jnp.shape(x1)[1:]}, got {jnp.shape(x2)[1:]}")


def _check_bytes(jacobian_bytes) -> int | None:
    if jacobian_bytes is not None and not (isinstance(jacobian_bytes, (int, float)) and jacobian_bytes >= 1):
        raise ValueError(f"jacobian_bytes: must be a number of bytes >= 1 or None, got {jacobian_bytes!r}")
    return None if jacobian_bytes is None else int(jacobian_bytes)


def _output_shape(apply: Apply, params, x1) -> tuple[int, ...]:
    """The output shape ``(n, ..., O)`` of ``apply`` on ``x1``, checked on one and two examples."""
    for n in sorted({1, min(2, x1.shape[0])} - {0}):
        shape = tuple(jax.eval_shape(apply, params, x1[:n]).shape)
        if len(shape) < 2 or shape[0] != n or 0 in shape:
            raise ValueError(f"apply: must return outputs of shape (n, ..., O) with the n examples first and "
                             f"at least one output, got {shape} for n = {n}")
    return (x1.shape[0],) + shape[1:]


@dataclasses.dataclass(frozen=True)
class _Flat:
    """``apply`` with its ``(n, *S, O)`` outputs made ``(n, G O)`` (folded) or ``(n, O)`` (averaged)."""

    apply: Callable
    average: bool

    def __call__(self, params, x):
        out = self.apply(params, x)  # (n, *S, O)
        if self.average:
            return jnp.mean(out.reshape(out.shape[0], -1, out.shape[-1]), axis=1)  # (n, O)
        return out.reshape(out.shape[0], -1)  # (n, G O)


def _layout(apply: Apply, params, x1, extra_axes: str, outputs: str):
    """``(flat_apply, units, width, examples)``: the unit-Gram view of :mod:`.ntk_strategies`, with
    ``examples`` the middle-axis size ``G`` that ``extra_axes="examples"`` turns into rows (else 1)."""
    shape = _output_shape(apply, params, x1)
    n_out, extra = shape[-1], math.prod(shape[1:-1])
    flat = apply if len(shape) == 2 else _Flat(apply, extra_axes == "mean")
    rows = extra if extra_axes == "examples" else 1  # kernel rows per example
    width = n_out if extra_axes != "outputs" else extra * n_out  # outputs per row
    if outputs == "full":  # every output its own unit
        return flat, rows * width, 1, rows
    return flat, rows, width, rows


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


def _sizes(params) -> tuple[int, int]:
    leaves = jax.tree.leaves(params)
    return sum(int(jnp.size(a)) for a in leaves), max(jnp.result_type(a).itemsize for a in leaves)


def select_ntk_strategy(apply: Apply, params, x1: jax.Array, x2: jax.Array | None = None, *, outputs: str = "mean",
                        extra_axes: str = "outputs", jacobian_bytes: int | None = None) -> str:
    """The strategy ``empirical_ntk(..., strategy="auto")`` uses; deterministic in the shapes.

    ``"structured"`` for a bound :meth:`learnmech.nets.MLP.apply`. Otherwise a flop model with
    ``F`` the forward flops of one example (XLA cost analysis), ``P`` parameters, the outputs read
    as ``G`` kernel units of ``Q`` outputs (``outputs="mean"``: ``G = 1, Q = K``, the ``K`` flat
    outputs; ``"full"``: ``G = K, Q = 1``; ``extra_axes="examples"`` multiplies ``G`` by the
    positions), ``R`` the Jacobian rows computed (``(n1 + n2) K`` when they fit
    ``JACOBIAN_BUDGET_BYTES`` or ``outputs="mean"`` with ``G = 1``; more when column blocks are
    recomputed, see :func:`learnmech.observe.ntk_strategies.jacobian_plan`):

        jacobian: 3 F R + 2 * 2 n1 n2 G K P   (the factor 2 is the measured memory-bound penalty
                  of the contraction, see ntk_strategies.CONTRACT_PENALTY)
        ntvp:     n2 K (3 F + 2 F n1) + F n1

    and ``"ntvp"`` only when it is cheaper by more than ``NTVP_MARGIN``. For a dense network
    (``F ~ 2P``) the two tie for ``outputs="mean"`` (jacobian is kept) and ntvp wins for
    ``outputs="full"`` with ``O >= 2``; the Jacobian wins when a parameter is used many times per
    example (weight sharing, ``F >> P``: convolutions, transformers over a sequence). Measured on
    the 2-core CPU machine (float32, choice in brackets): dense O = 1 mean, n = 200 [jacobian]:
    jacobian 2.9 s, ntvp 4.2 s, baseline 13.6 s; dense O = 8 full, n = 100 [ntvp]: ntvp 8.2 s,
    jacobian 15 s, baseline 21 s; 1-d conv, n = 200 [jacobian]: jacobian 0.07 s, ntvp 12.5 s,
    baseline 5.9 s; the 1.6M-parameter transformer (``bench/ntk_transformer.py``, outputs averaged
    over the 32 positions, n = 16, load average 8 to 13) [jacobian, chunks of 20 outputs]: 43 to 85 s,
    the former plan (blocks of one example, columns recomputed) 414 to 505 s, ntvp 207 to 304 s (the
    last two measured on 3 sequences and scaled).
    """
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_choice("extra_axes", extra_axes, EXTRA_AXES)
    _check_inputs(x1, x2)
    if _bound_mlp(apply) is not None:
        return "structured"
    flat, units, width, _ = _layout(apply, params, x1, extra_axes, outputs)
    n_params, itemsize = _sizes(params)
    flops = _forward_flops(flat, params, x1) or 2.0 * n_params
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    jacobian, ntvp = _engines.strategy_costs(x1.shape[0], n2, x2 is None, units, width, n_params, itemsize, flops,
                                             _check_bytes(jacobian_bytes))
    return "ntvp" if NTVP_MARGIN * ntvp < jacobian else "jacobian"


# --------------------------------------------------------------------------------- public kernels


def empirical_ntk(
    apply: Apply,
    params,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    strategy: str = "auto",
    outputs: str = "mean",
    extra_axes: str = "outputs",
    lr_multipliers=None,
    block_size: int | None = None,
    jacobian_bytes: int | None = None,
) -> jax.Array:
    """The empirical NTK ``Theta(x1, x2)_{oo'} = sum_p m_p (d f_o(x1)/d p)(d f_o'(x2)/d p)``.

    Jacot, Gabriel & Hongler 2018 (arXiv:1806.07572); strategies after Novak et al. 2022
    (arXiv:2206.08720), see the module docstring. Conventions: gradient descent on
    ``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` with per-parameter rates ``eta m_p`` follows
    ``d f/dt = -(1/n) Theta (f - y)`` in ``t = eta * steps``.

    Args:
      apply: ``apply(params, x) -> (n, ..., O)``, examples treated independently.
      params: any pytree of arrays (the ``p``).
      x1: inputs ``(n1, ...)`` (any dtype: token ids are fine).
      x2: inputs ``(n2, ...)``; ``None`` means ``x1`` (each Jacobian or factor computed once and the
        result symmetrised exactly).
      strategy: one of ``STRATEGIES``.
      outputs: ``"mean"`` -> ``(n1, n2)``, the average of ``Theta_oo`` over output units;
        ``"full"`` -> ``(n1, n2, O, O)``.
      extra_axes: for outputs ``(n, *S, O)`` with ``G = prod(S)`` (ignored for ``(n, O)``):
        ``"outputs"`` folds ``S`` into the output axis (``O -> G O``, C order); ``"examples"`` makes
        each position a row, ``(n1 G, n2 G[, O, O])``; ``"mean"`` averages the outputs over ``S``
        first, ``(n1, n2[, O, O])``. Shapes and costs in the module docstring.
      lr_multipliers: the ``m_p``, a pytree shaped like ``params`` (e.g. ``MLP.lr_multipliers()``)
        of scalars, or for the generic strategies arrays broadcastable to their leaf; default 1.
      block_size: examples per block. ``"jacobian"``: when given, Jacobian rows of two blocks of
        examples are held at once (outputs chunked to fit ``JACOBIAN_BUDGET_BYTES``), column blocks
        recomputed per row block (default: the plan of :mod:`.ntk_strategies`); ``"ntvp"``: examples
        of ``x2`` per chunk of cotangent basis vectors; unused by ``"structured"``.
      jacobian_bytes: the Jacobian rows ``"jacobian"`` may hold at once, in bytes (default
        ``JACOBIAN_BUDGET_BYTES``, 2 GiB). More can be faster per row when outputs are chunked (the
        1.6M-parameter transformer, 16 sequences: 2 GiB -> chunks of 20 outputs, XLA temporaries
        0.75 GiB; 6 GiB -> chunks of 48, 1.75 GiB; 1.0x to 1.55x faster on the shared 2-core machine).
    """
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_choice("extra_axes", extra_axes, EXTRA_AXES)
    _check_inputs(x1, x2)
    if block_size is not None and int(block_size) < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size}")
    model = _bound_mlp(apply)
    if strategy == "auto":
        strategy = select_ntk_strategy(apply, params, x1, x2, outputs=outputs, extra_axes=extra_axes,
                                       jacobian_bytes=jacobian_bytes)
    if strategy == "structured":
        if model is None:
            raise ValueError("strategy: 'structured' needs the bound apply of a learnmech.nets.MLP, e.g. model.apply")
        return mlp_ntk(model, params, x1, x2, outputs=outputs, lr_multipliers=lr_multipliers)
    mults = _leaf_multipliers(params, lr_multipliers)
    flat, units, width, rows = _layout(apply, params, x1, extra_axes, outputs)
    n_params, itemsize = _sizes(params)
    n1, n2 = x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0]
    block = None if block_size is None else int(block_size)
    second = x1 if x2 is None else x2
    if strategy == "ntvp":
        chunk = _engines.ntvp_chunk(units, width, n_params, itemsize, n1)
        block = block or _engines.ntvp_block(n_params, chunk, itemsize, n1, n2)
        gram = _engines.ntvp_ntk(flat, params, x1, second, mults, units, width, chunk, block)
    else:
        plan = _engines.jacobian_plan(n1, n2, x2 is None, units, width, n_params, itemsize, block,
                                      _check_bytes(jacobian_bytes))
        gram = _engines.jacobian_ntk(flat, params, x1, second, mults, plan, x2 is None)
    gram = _symmetrize(gram, "mean") if x2 is None else gram  # (n1 G, n2 G), G units per example
    if outputs == "mean":
        return gram  # (n1 rows, n2 rows)
    n_out = units // rows  # every output its own unit: (n1 rows O, n2 rows O) -> (n1 rows, n2 rows, O, O)
    return gram.reshape(n1 * rows, n_out, n2 * rows, n_out).transpose(0, 2, 1, 3)


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
    ``(n, O, P)`` by ``vmap`` over examples of ``jax.jacrev`` (outputs ``(n, ..., O)`` folded into
    ``K`` outputs as ``extra_axes="outputs"`` does) (one pullback per example and output;
    ``jacrev`` of the whole batch would instead pull every cotangent back through all ``n``
    examples, ``n`` times the work), then one contraction. No multipliers; see
    :func:`empirical_ntk` for the definition and the faster strategies.
    """
    _check_choice("outputs", outputs, OUTPUT_MODES)
    _check_inputs(x1, x2)
    flat, _, _, _ = _layout(apply, params, x1, "outputs", "mean")
    return _full_jacobian_ntk(flat, params, x1, x1 if x2 is None else x2, outputs, x2 is None)


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
