#!/usr/bin/env python
"""Benchmark: the empirical NTK of the 1.6M-parameter transformer on 16 sequences, per strategy.

The model is the user's flax nnx decoder-only transformer of ``tests/models_transformer.py``
(2 layers, 4 heads, d_model 256, vocabulary 96, 32 positions: 1,637,472 parameters, float32),
as a pure function through its ``as_pure``; the inputs are 16 windows of Python source. Its
outputs are ``(n, 32, 96)``. The kernel timed is ``empirical_ntk(..., extra_axes="mean")``, the
NTK of the position-averaged logits (an ``(n, 96)`` model, the reduction a user had to write by
hand before ``extra_axes`` existed), ``outputs="mean"``: ``(16, 16)``.

Rows, all in one process (compilation excluded and printed apart):

- ``auto``: the strategy ``select_ntk_strategy`` picks, at ``n = 16``, with the default memory
  budget (2 GiB of Jacobian rows) and with ``jacobian_bytes=6 GiB`` (larger chunks of outputs);
- ``jacobian, former plan``: the plan ``empirical_ntk`` used before outputs were chunked (blocks
  of one example holding all 96 output rows, column blocks recomputed per row block:
  ``96 (n + n^2)`` Jacobian rows instead of ``96 n``), reproduced by ``block_size=1``;
- ``ntvp``: NTK-vector products (``96 n`` pullbacks, each pushed forward through all ``n``).

The last two would take many minutes at ``n = 16`` on the shared 2-core machine, so they run on
``--small`` sequences and are scaled to 16 by their own cost laws, printed on their line: the
former plan by its row count ``96 (n + n^2)`` (``96 n`` for ``n <= 2``, which fits one block pair), ntvp by ``n (3 + 2 n)`` (pullbacks plus push-forwards,
in forward passes; both grow as ``n^2``, like the number of kernel entries). Memory: the bytes of
XLA's temporary buffers for each compiled kernel (``memory_analysis``) and the process's peak
resident size after the ``auto`` row (it runs first). ``--fold`` adds the default
``extra_axes="outputs"`` kernel (32 x 96 = 3,072 outputs per sequence folded) on ``--fold-n``
sequences, scaled by rows (linear in ``n``). Ratios against the slowest are printed LAST.

Usage: ``python bench/ntk_transformer.py [--n 16] [--small 3] [--d-model 256] [--fold]``
(``--d-model 64 --n 4 --small 2``: a smoke run).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from timing import machine_line  # noqa: E402

from learnmech.observe.ntk import empirical_ntk, select_ntk_strategy  # noqa: E402
from learnmech.observe.ntk_strategies import JACOBIAN_BUDGET_BYTES, jacobian_plan  # noqa: E402


def transformer(d_model: int):
    """``(params, apply, x16)``: H3's nnx transformer as a pure function and 16 source windows."""
    from flax import nnx

    import models_transformer as mt

    model = mt.Transformer(mt.Config(d_model=d_model), rngs=nnx.Rngs(0))
    params, apply = mt.as_pure(model)
    return params, apply, jnp.asarray(mt.sequences(16)[0])


def timed(apply, params, x, **kwargs) -> tuple[float, float, float, jax.Array]:
    """``(compile s, run s, XLA temporary GiB, kernel)`` of one jitted ``empirical_ntk`` call."""
    fn = jax.jit(lambda p, x: empirical_ntk(apply, p, x, **kwargs))
    start = time.perf_counter()
    compiled = fn.lower(params, x).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    temp = (memory.temp_size_in_bytes if memory is not None else 0) / 2**30
    start = time.perf_counter()
    kernel = jax.block_until_ready(compiled(params, x))
    return compile_s, time.perf_counter() - start, temp, kernel


def load() -> float:
    """The 1-minute load average (the machine is shared: timings scale with it)."""
    return os.getloadavg()[0]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n", type=int, default=16, help="sequences for the auto strategy")
    parser.add_argument("--small", type=int, default=3, help="sequences for the slow strategies (scaled to --n)")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--fold", action="store_true", help="also time extra_axes='outputs' (3,072 outputs)")
    parser.add_argument("--fold-n", type=int, default=1)
    args = parser.parse_args()
    print(machine_line(), f"({os.cpu_count()} cores, load average {load():.1f})")
    params, apply, x = transformer(args.d_model)
    n_params = sum(int(a.size) for a in jax.tree.leaves(params))
    n, m = args.n, args.small
    out_shape = jax.eval_shape(apply, params, x[:n]).shape
    choice = select_ntk_strategy(apply, params, x[:n], extra_axes="mean")
    plan = jacobian_plan(n, n, True, 1, out_shape[-1], n_params, 4)
    print(f"transformer: {n_params:,} parameters, outputs {tuple(out_shape)}, float32; kernel (n, n) with "
          f"extra_axes='mean'; auto picks {choice!r}; jacobian plan: chunks of {plan.chunk} outputs x "
          f"{plan.n_chunks}, all {n} sequences at once, {plan.rows} Jacobian rows "
          f"(budget {JACOBIAN_BUDGET_BYTES / 2**30:.0f} GiB of rows)")

    rows = []  # (label, n measured, seconds measured, scale to n, law)
    c, t, temp, reference = timed(apply, params, x[:n], extra_axes="mean")
    peak = peak_gib()
    rows.append((f"auto ({choice})", n, t, 1.0, f"measured; load {load():.1f}", c, temp))
    big = 6 * 2**30
    c, t, temp, _ = timed(apply, params, x[:n], extra_axes="mean", jacobian_bytes=big)
    chunks = jacobian_plan(n, n, True, 1, out_shape[-1], n_params, 4, budget_bytes=big)
    rows.append((f"auto, jacobian_bytes=6 GiB (chunks of {chunks.chunk})", n, t, 1.0, f"measured; load {load():.1f}", c, temp))
    c, t, temp, small = timed(apply, params, x[:m], extra_axes="mean", strategy="jacobian", block_size=1)
    former = [jacobian_plan(k, k, True, 1, out_shape[-1], n_params, 4, block_size=1).rows for k in (n, m)]
    rows.append(("jacobian, former plan", m, t, former[0] / former[1], f"rows 96 (n + n^2): {former[1]} -> {former[0]}; load {load():.1f}", c, temp))
    err = float(jnp.max(jnp.abs(small - reference[:m, :m])) / jnp.max(jnp.abs(reference)))
    c, t, temp, _ = timed(apply, params, x[:m], extra_axes="mean", strategy="ntvp")
    rows.append(("ntvp", m, t, n * (3 + 2 * n) / (m * (3 + 2 * m)), f"passes n (3 + 2 n); load {load():.1f}", c, temp))
    if args.fold:
        k = args.fold_n
        c, t, temp, _ = timed(apply, params, x[:k], extra_axes="outputs")
        rows.append((f"auto, extra_axes='outputs' ({out_shape[1] * out_shape[2]} outputs)", k, t, n / k, f"rows n; load {load():.1f}", c, temp))

    print(f"\n{'strategy':<52} {'n':>3} {'measured s':>11} {'compile s':>10} {'XLA temp GiB':>13}"
          f" {'scaled to n=' + str(n):>14}  law")
    for label, k, t, scale, law, c, temp in rows:
        print(f"{label:<52} {k:>3} {t:>11.1f} {c:>10.1f} {temp:>13.2f} {t * scale:>14.1f}  {law}")
    print(f"peak resident memory after the auto row: {peak:.2f} GiB; former plan vs auto on the "
          f"first {m} sequences: max relative difference {err:.1e}")
    slowest = max(t * scale for _, _, t, scale, *_ in rows)
    for label, _, t, scale, *_ in rows:
        print(f"ratio {label} vs slowest: {slowest / (t * scale):.1f}x faster")


if __name__ == "__main__":
    main()
