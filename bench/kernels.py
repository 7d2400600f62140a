#!/usr/bin/env python
"""Benchmark: analytic and empirical kernels, as ratios taken in one run.

1. **Analytic NTK** (``learnmech.theory.kernels.nngp_ntk``): both Gram matrices (NNGP and NTK)
   of a depth-3 ReLU network on ``n`` inputs of dimension ``d = 100`` (float32, ``x2 = None``),
   at ``n = 2,000`` and ``5,000``, against the time of one ``n x n x d`` matmul (``x @ x.T``,
   jitted). The ratio is the kernel's cost in *matmul-equivalents*.
2. **Empirical NTK of learnmech's MLP** (``MLP((100, 512, 512, 512, 1), "relu", "ntk")``,
   float32, ``n = 500``): the layer-structured product (``learnmech.observe.ntk.mlp_ntk``) against
   the plain baseline that builds the full Jacobian (``ravel_pytree`` + ``jax.jacrev``) and
   contracts it (``ntk_full_jacobian``).
3. **Empirical NTK of any other pytree model**: ``empirical_ntk(..., strategy="auto")`` on a model
   written here as a plain dict (a residual tanh network with a shared projection, about the
   size of the MLP above), against the same baseline.

Every time is the best of ``--repeats`` runs after a warm-up call (compilation excluded), and
the matmul reference is timed before and after the kernel so that the machine's drift shows.
Both the kernel and the reference write fresh ``n x n`` outputs, and on a shared machine the
first touch of those pages varies from run to run: take ``--repeats 7`` or more for numbers to
compare. The ratios are printed LAST::

    ratio analytic ntk n=2000 matmul-equivalents: 5.9
    ratio analytic ntk n=5000 matmul-equivalents: 3.0
    ratio empirical ntk mlp structured speedup: 120
    ratio empirical ntk pytree auto speedup: 1.3

Usage: ``python bench/kernels.py [--repeats 3] [--quick] [--only analytic|empirical]`` (``--quick``:
smaller sizes, a smoke run).
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.nets import MLP
from timing import best_time, machine_line
from learnmech.observe.ntk import empirical_ntk, mlp_ntk, ntk_full_jacobian
from learnmech.theory.kernels import nngp_ntk


def analytic(n: int, d: int, repeats: int) -> float:
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    xj = jnp.asarray(x)
    product = jax.jit(lambda a: a @ a.T)
    before = best_time(lambda: product(xj), repeats)
    kernel = best_time(lambda: nngp_ntk(x, depth=3, activation="relu", weight_var=2.0), repeats)
    after = best_time(lambda: product(xj), repeats)
    matmul = min(before, after)
    print(f"analytic n={n:>5} d={d}: kernels {kernel * 1e3:8.1f} ms   matmul {before * 1e3:6.1f} / {after * 1e3:6.1f} ms"
          f"   {2 * n * n * d / matmul / 1e9:6.1f} GFLOP/s")
    return kernel / matmul


def residual_model(d: int, width: int, depth: int):
    """A model that is not learnmech's: tanh blocks with skips and one projection shared by all blocks."""

    def init(key):
        keys = jax.random.split(key, depth + 2)
        return {
            "embed": jax.random.normal(keys[0], (d, width)) / math.sqrt(d),
            "blocks": [jax.random.normal(k, (width, width)) / math.sqrt(width) for k in keys[1:-1]],
            "shared": jnp.eye(width) + 0.01 * jax.random.normal(keys[-1], (width, width)),
            "head": jnp.ones((width, 1)) / math.sqrt(width),
        }

    def apply(params, x):
        h = jnp.tanh(x @ params["embed"])
        for w in params["blocks"]:
            h = h + jnp.tanh(h @ w) @ params["shared"] / math.sqrt(width)
        return h @ params["head"]

    return init, apply


def empirical(n: int, d: int, width: int, repeats: int) -> tuple[float, float]:
    x = jax.random.normal(jax.random.key(1), (n, d), jnp.float32)
    net = MLP((d, width, width, width, 1), "relu", "ntk", dtype="float32")
    params = net.init(jax.random.key(0))
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    structured = jax.jit(lambda p, x: mlp_ntk(net, p, x))
    baseline = jax.jit(lambda p, x: ntk_full_jacobian(net.apply, p, x))
    t_struct = best_time(lambda: structured(params, x), repeats)
    t_base = best_time(lambda: baseline(params, x), repeats)
    err = float(jnp.max(jnp.abs(structured(params, x) - baseline(params, x))) / jnp.max(jnp.abs(baseline(params, x))))
    print(f"empirical MLP {n_params:,} params, n={n}: structured {t_struct * 1e3:8.1f} ms   "
          f"full Jacobian {t_base * 1e3:8.1f} ms   max rel. difference {err:.1e}")

    init, apply = residual_model(d, width, depth=2)
    rparams = init(jax.random.key(2))
    r_params = sum(p.size for p in jax.tree_util.tree_leaves(rparams))
    auto = jax.jit(lambda p, x: empirical_ntk(apply, p, x, strategy="auto"))
    rbase = jax.jit(lambda p, x: ntk_full_jacobian(apply, p, x))
    t_auto = best_time(lambda: auto(rparams, x), repeats)
    t_rbase = best_time(lambda: rbase(rparams, x), repeats)
    print(f"empirical pytree model {r_params:,} params, n={n}: auto {t_auto * 1e3:8.1f} ms   "
          f"full Jacobian {t_rbase * 1e3:8.1f} ms")
    return t_base / t_struct, t_rbase / t_auto


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=("analytic", "empirical"), help="run one half of the bench")
    args = parser.parse_args()
    print(machine_line())
    sizes = (500, 1000) if args.quick else (2000, 5000)
    ratios = {n: analytic(n, 100, args.repeats) for n in sizes} if args.only != "empirical" else {}
    if args.only != "analytic":
        n_emp, width = (100, 128) if args.quick else (500, 512)
        speed_mlp, speed_auto = empirical(n_emp, 100, width, args.repeats)
    for n, r in ratios.items():
        print(f"ratio analytic ntk n={n} matmul-equivalents: {r:.2f}")
    if args.only != "analytic":
        print(f"ratio empirical ntk mlp structured speedup: {speed_mlp:.1f}")
        print(f"ratio empirical ntk pytree auto speedup: {speed_auto:.2f}")


if __name__ == "__main__":
    main()
