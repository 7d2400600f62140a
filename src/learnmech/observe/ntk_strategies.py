"""The generic empirical-NTK engines ("jacobian", "ntvp"), their memory plans and their flop model.

Internal to :mod:`learnmech.observe.ntk`, which states the contract. Here every model is already
*normalised*: ``apply(params, x) -> (n, K)`` with the ``K = G * Q`` flat outputs of an example read
as ``G`` *units* of ``Q`` outputs each, and the kernel wanted is the unit Gram

    Theta[(i, g), (j, h)] = (1/Q) sum_q sum_p m_p (d f_{g q}(x_i) / d p) (d f_{h q}(x_j) / d p),

shape ``(n1 G, n2 G)``, row ``i G + g``. :mod:`.ntk` maps each user layout onto it: ``outputs="mean"``
is ``G = 1, Q = K``; ``outputs="full"`` is ``G = K, Q = 1`` (a reshape of the unit Gram); sequences
read "as examples" are ``G`` positions of ``Q`` outputs. Novak, Sohl-Dickstein & Schoenholz 2022
(arXiv:2206.08720) for the Jacobian-contraction and NTK-vector-product strategies.

Memory. A Jacobian row (one flat output of one example) holds ``P`` numbers; at most
``JACOBIAN_BUDGET_BYTES`` of rows are held at once. Rows are taken in blocks of ``B`` examples x
``C`` flat outputs (a *chunk*). With ``G = 1`` only equal outputs pair up, so chunks of outputs
are summed and every row is computed exactly once; with ``G > 1`` a chunk holds whole units and
every row block meets every column block (column blocks recomputed per row block).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

__all__ = [
    "JACOBIAN_BUDGET_BYTES",
    "NTVP_CHUNK_BYTES",
    "JacobianPlan",
    "jacobian_plan",
    "jacobian_ntk",
    "ntvp_block",
    "ntvp_chunk",
    "ntvp_ntk",
    "strategy_costs",
]

JACOBIAN_BUDGET_BYTES = 2 * 2**30  # Jacobian rows held at once by "jacobian"
NTVP_CHUNK_BYTES = 2**28  # gradients (one chunk of cotangent basis vectors) held at once by "ntvp"
NTVP_MAX_CHUNK = 64  # cotangent basis vectors per chunk, at most
NTVP_ROWS = 4096  # ... and about this many (basis vector, x1 example) rows per pushed-forward batch

# Flop model (F = forward flops of one example, P parameters): a per-example pullback (vjp /
# jacrev row) costs ~3F; a jvp's tangent part ~2F per example of x1; the Jacobian contraction
# 2P per pair of rows, which ran at about half the speed of ntvp's batched matmuls (a skinny,
# memory-bound (n, P) @ (P, n) product; 2-core CPU, float32, width-512 residual tanh net, n = 500:
# jacobian 11.0 s, ntvp 11.6 s, model ratio 1.0), hence CONTRACT_PENALTY.
PULLBACK_COST = 3.0
PUSHFORWARD_COST = 2.0
CONTRACT_PENALTY = 2.0


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def blocks(x: jax.Array, size: int) -> jax.Array:
    """``(n, ...) -> (ceil(n / size), size, ...)``, padding by repeating the last example."""
    n = x.shape[0]
    pad = [(0, _ceil(n, size) * size - n)] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad, mode="edge").reshape((_ceil(n, size), size) + x.shape[1:])


# ------------------------------------------------------------------------------------------ plans


@dataclasses.dataclass(frozen=True)
class JacobianPlan:
    """How "jacobian" walks the rows: ``units`` (G) of ``width`` (Q) outputs per example, chunks of
    ``chunk`` flat outputs (whole units when ``units > 1``), ``block`` examples per block (``None``:
    all examples at once); ``rows`` is the number of Jacobian rows computed, recomputation included."""

    units: int
    width: int
    chunk: int
    block: int | None
    rows: int

    @property
    def n_chunks(self) -> int:
        return _ceil(self.units * self.width, self.chunk)


def jacobian_plan(n1: int, n2: int, symmetric: bool, units: int, width: int, n_params: int, itemsize: int,
                  block_size: int | None = None, budget_bytes: int | None = None) -> JacobianPlan:
    """The blocks that keep at most ``budget_bytes`` (default ``JACOBIAN_BUDGET_BYTES``) of Jacobian
    rows alive (see module doc). Larger chunks can run faster per row (more cotangents share one
    forward pass): on the 1.6M-parameter transformer, chunks of 48 outputs ran 1.0x to 1.55x as
    fast as chunks of 20 on the shared 2-core machine (bench/ntk_transformer.py)."""
    flat = units * width
    budget_bytes = JACOBIAN_BUDGET_BYTES if budget_bytes is None else budget_bytes
    budget = max(1, budget_bytes // max(1, n_params * itemsize))  # rows held at once
    held = n1 + (0 if symmetric else n2)
    if block_size is None and held * flat <= budget:
        return JacobianPlan(units, width, flat, None, held * flat)
    if units == 1:  # chunks of outputs, summed: each row once unless even one output of all examples overflows
        block = block_size or (None if held <= budget else max(1, budget // 2))
        block = None if block is not None and held <= 2 * block else block
        chunk = min(flat, max(1, budget // (held if block is None else 2 * block)))
        chunk = _ceil(flat, _ceil(flat, chunk))  # the same number of chunks, the least padding
        return JacobianPlan(1, width, chunk, block, _rows(n1, n2, symmetric, chunk * _ceil(flat, chunk), block, 1))
    # units > 1: row blocks of `block` examples x `per` whole units, as large as the budget allows
    block = block_size or max(1, budget // (2 * flat))
    per = min(units, max(1, budget // (2 * block * width)))
    if per == units and held <= 2 * block:  # everything at once after all (a given block_size)
        return JacobianPlan(units, width, flat, None, held * flat)
    n_chunks = _ceil(units, per)
    return JacobianPlan(units, width, per * width, block, _rows(n1, n2, False, per * width * n_chunks, block, n_chunks))


def _rows(n1: int, n2: int, symmetric: bool, flat: int, block: int | None, n_chunks: int) -> int:
    """Rows computed: the columns' rows once per row block (of ``block`` examples x one chunk)."""
    if block is None:
        return flat * (n1 + (0 if symmetric else n2)) if n_chunks == 1 else flat * (n1 + n_chunks * n2)
    row_blocks = _ceil(n1, block) * n_chunks
    return flat * (n1 + row_blocks * n2)


def ntvp_block(n_params: int, chunk: int, itemsize: int, n1: int, n2: int) -> int:
    """Examples of ``x2`` per chunk of cotangents (``chunk`` outputs each): ``NTVP_ROWS / n1`` basis
    vectors, at most ``NTVP_MAX_CHUNK`` and ``NTVP_CHUNK_BYTES`` of gradients."""
    vectors = min(NTVP_MAX_CHUNK, NTVP_ROWS // max(1, n1), NTVP_CHUNK_BYTES // max(1, n_params * itemsize))
    return int(max(1, min(n2, vectors // chunk)))


def ntvp_chunk(units: int, width: int, n_params: int, itemsize: int, n1: int) -> int:
    """Flat outputs of one ``x2`` example pulled back together (whole units when ``units > 1``)."""
    vectors = max(1, min(NTVP_MAX_CHUNK, NTVP_ROWS // max(1, n1), NTVP_CHUNK_BYTES // max(1, n_params * itemsize)))
    if units == 1:
        return min(width, vectors)
    return width * min(units, max(1, vectors // width))


def strategy_costs(n1: int, n2: int, symmetric: bool, units: int, width: int, n_params: int, itemsize: int,
                   flops: float, budget_bytes: int | None = None) -> tuple[float, float]:
    """Predicted flops of ``("jacobian", "ntvp")`` (see ``select_ntk_strategy``)."""
    flat = units * width
    plan = jacobian_plan(n1, n2, symmetric, units, width, n_params, itemsize, budget_bytes=budget_bytes)
    pairs = n1 * n2 * units * flat  # (row, column) pairs of the contraction: same output within a unit
    jacobian = plan.rows * PULLBACK_COST * flops + CONTRACT_PENALTY * 2.0 * pairs * n_params
    ntvp = n2 * flat * (PULLBACK_COST * flops + PUSHFORWARD_COST * flops * n1) + flops * n1
    return jacobian, ntvp


# ---------------------------------------------------------------------------------------- jacobian


def _chunk_jacobian(apply, params, x, c, plan: JacobianPlan) -> list[jax.Array]:
    """Rows for flat outputs ``[c C, (c + 1) C)`` of each example, per leaf ``(n u, Q, leaf_size)``
    with ``u = C / Q`` units per chunk (rows past ``K`` are zero: they pad the last chunk)."""
    flat, size = plan.units * plan.width, plan.chunk

    def single(p, xi):  # (C,)
        out = apply(p, xi[None])[0]  # (K,)
        if size == flat:
            return out
        out = jnp.pad(out, (0, plan.n_chunks * size - flat))
        return jax.lax.dynamic_slice_in_dim(out, c * size, size)

    jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x)  # leaves (n, C, *leaf_shape)
    width = plan.width if plan.units > 1 else size
    return [j.reshape((-1, width, j[0, 0].size)) for j in jax.tree.leaves(jac)]


def _contract(jac1: list, jac2: list, mults: list | None) -> jax.Array:
    """``sum_leaves sum_q J1_q M J2_q^T``, ``(rows1, rows2)``: each leaf one 2-d matmul of
    ``(rows, Q size)`` operands (2.3x faster on CPU than an einsum contracting two axes, measured)."""
    total = 0.0
    for k, (a, b) in enumerate(zip(jac1, jac2)):
        m = None if mults is None else mults[k]
        if m is not None and m.ndim:
            a = a * m  # elementwise multipliers, (rows, Q, size)
        term = a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
        total = total + (term if m is None or m.ndim else m * term)
    return total


def _example_gram(jacobian, x1, x2, mults, block, symmetric):
    """``(n1 u, n2 u)`` from a rows function ``x -> (n u, Q, size)`` leaves, blocked by examples."""
    if block is None:
        jac1 = jacobian(x1)
        return _contract(jac1, jac1 if symmetric else jacobian(x2), mults)

    def row(xa):  # column blocks recomputed per row block
        jac_a = jacobian(xa)
        return jax.lax.map(lambda xb: _contract(jac_a, jacobian(xb), mults), blocks(x2, block))

    k = jax.lax.map(row, blocks(x1, block))  # (nb1, nb2, B u, B u)
    k = jnp.swapaxes(k, 1, 2)
    k = k.reshape(k.shape[0] * k.shape[1], k.shape[2] * k.shape[3])
    per = k.shape[0] // (_ceil(x1.shape[0], block) * block)  # units per example in a chunk
    return k[: x1.shape[0] * per, : x2.shape[0] * per]


def _cross_gram(rows, x1, x2, mults, plan: JacobianPlan) -> jax.Array:
    """``(n1 G, n2 G)`` when chunks hold whole units: every row unit (example block x chunk) is
    computed once and meets every column unit, recomputed per row unit."""
    n1, n2, n_chunks, per = x1.shape[0], x2.shape[0], plan.n_chunks, plan.chunk // plan.width
    b1 = x1[None] if plan.block is None else blocks(x1, plan.block)  # (nb1, B1, ...)
    b2 = x2[None] if plan.block is None else blocks(x2, plan.block)  # (nb2, B2, ...)
    chunks = jnp.arange(n_chunks)

    def row_unit(c1, xa):  # -> (nC, nb2, B1 u, B2 u)
        jac_a = rows(xa, c1)
        return jax.lax.map(lambda c2: jax.lax.map(lambda xb: _contract(jac_a, rows(xb, c2), mults), b2), chunks)

    k = jax.lax.map(lambda c1: jax.lax.map(lambda xa: row_unit(c1, xa), b1), chunks)  # (nC, nb1, nC, nb2, ., .)
    (nb1, big1), (nb2, big2) = b1.shape[:2], b2.shape[:2]
    k = k.reshape(n_chunks, nb1, n_chunks, nb2, big1, per, big2, per).transpose(1, 4, 0, 5, 3, 6, 2, 7)
    k = k.reshape(nb1 * big1, n_chunks * per, nb2 * big2, n_chunks * per)[:n1, : plan.units, :n2, : plan.units]
    return k.reshape(n1 * plan.units, n2 * plan.units)


@functools.partial(jax.jit, static_argnames=("apply", "plan", "symmetric"))
def jacobian_ntk(apply, params, x1, x2, mults, plan: JacobianPlan, symmetric: bool) -> jax.Array:
    """The unit Gram ``(n1 G, n2 G)`` by contracting per-example Jacobian rows (module doc)."""

    def rows(x, c):
        return _chunk_jacobian(apply, params, x, c, plan)

    if plan.n_chunks == 1:
        kernel = _example_gram(lambda x: rows(x, 0), x1, x2, mults, plan.block, symmetric)
    elif plan.units == 1:  # equal outputs only: the chunks' Grams add up, each row computed once
        gram = lambda c: _example_gram(lambda x: rows(x, c), x1, x2, mults, plan.block, symmetric)  # noqa: E731
        kernel = jnp.sum(jax.lax.map(gram, jnp.arange(plan.n_chunks)), axis=0)
    else:
        kernel = _cross_gram(rows, x1, x2, mults, plan)
    return kernel / plan.width


# -------------------------------------------------------------------------------------------- ntvp


@functools.partial(jax.jit, static_argnames=("apply", "units", "width", "chunk", "block"))
def ntvp_ntk(apply, params, x1, x2, mults, units: int, width: int, chunk: int, block: int) -> jax.Array:
    """The unit Gram ``(n1 G, n2 G)`` by NTK-vector products ``Theta e = J1 (M J2^T e)``.

    A chunk of cotangent basis vectors (``block`` examples of ``x2`` x ``chunk`` flat outputs) is
    pulled back example by example (``vjp``) and pushed forward through all of ``x1`` (``jvp``);
    only the chunk's gradients are ever held, never a Jacobian of ``x1``.
    """
    n1, flat = x1.shape[0], units * width
    n_chunks = _ceil(flat, chunk)
    leaves, treedef = jax.tree.flatten(params)

    def pulled_back(xb, c):  # (B, C, *leaf) leaves: M J^T e for basis vectors e of chunk c
        def single(p, xi):
            out = jnp.pad(apply(p, xi[None])[0], (0, n_chunks * chunk - flat))
            return jax.lax.dynamic_slice_in_dim(out, c * chunk, chunk)

        pulled = jax.tree.leaves(jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, xb))
        if mults is not None:
            pulled = [g * (m if m.ndim == 0 else m.reshape(leaf.shape)) for g, m, leaf in zip(pulled, mults, leaves)]
        return jax.tree.unflatten(treedef, [g.reshape((-1,) + g.shape[2:]) for g in pulled])  # (B C, *leaf)

    def push_forward(tangent):  # J1 t, (n1, K)
        return jax.jvp(lambda p: apply(p, x1), (params,), (tangent,))[1]

    def columns(xb, c):  # Theta[:, columns of (block, chunk c)], times width
        col = jax.vmap(push_forward)(pulled_back(xb, c))  # (B C, n1, K)
        b = xb.shape[0]
        if units == 1:  # equal outputs: the chunk's slice of K, diagonal
            col = jnp.pad(col, ((0, 0), (0, 0), (0, n_chunks * chunk - flat)))
            col = jax.lax.dynamic_slice_in_dim(col, c * chunk, chunk, axis=2)  # (B C, n1, C)
            return jnp.trace(col.reshape(b, chunk, n1, chunk), axis1=1, axis2=3).T  # (n1, B)
        per = chunk // width
        col = col.reshape(b, per, width, n1, units, width)  # [j, a, q, i, g, q']
        return jnp.einsum("jaqigq->igja", col).reshape(n1 * units, b * per)

    def block_columns(xb):
        if units == 1:
            return jnp.sum(jax.lax.map(lambda c: columns(xb, c), jnp.arange(n_chunks)), axis=0)  # (n1, B)
        k = jax.lax.map(lambda c: columns(xb, c), jnp.arange(n_chunks))  # (nC, n1 G, B u)
        per = chunk // width
        k = k.reshape(n_chunks, n1 * units, block, per).transpose(1, 2, 0, 3)  # [(i, g), j, c, a]
        return k.reshape(n1 * units, block, n_chunks * per)[:, :, :units].reshape(n1 * units, block * units)

    k = jax.lax.map(block_columns, blocks(x2, block))  # (nb, n1 G, B G)
    k = jnp.moveaxis(k, 0, 1).reshape(n1 * units, -1)[:, : x2.shape[0] * units]
    return k / width
