#!/usr/bin/env python
"""Benchmark: curvature probes, as ratios taken in one run.

1. **Hessian-vector product vs gradient**: one ``learnmech.observe.hvp`` (forward-over-reverse)
   against one ``jax.grad`` of the same loss, a tanh MLP ``32 -> 256 -> 256 -> 256 -> 1`` on
   ``n = 512`` examples (float32, MSE ``(1/2n) sum ||f - y||^2``). Both jitted; compilation excluded;
   best of ``--repeats``. Forward-over-reverse costs a gradient plus the tangent of every
   intermediate, so about 2-3 gradients.
2. **Ensemble sharpness, vectorised vs looped**: the top Hessian eigenvalue (power iteration,
   fixed tolerance) of ``--members`` small MLPs (``16 -> 32 -> 32 -> 1``, ``n = 128``), once as
   ``jit(vmap(sharpness))`` over the stacked parameters and once as a Python loop over members of
   the jitted single-member ``sharpness``. A vmapped while-loop runs until its slowest member has
   converged, so the vectorised version does at least as many HVPs per member as the loop.

The ratios are printed LAST::

    ratio hvp/gradient time: 2.3
    ratio ensemble sharpness vectorised/looped speed: 4.1

Usage: ``python bench/curvature.py [--repeats 5] [--members 32]``.
"""

from __future__ import annotations

import argparse
import math
import platform

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.nets import MLP
from timing import best_time
from learnmech.observe import hvp, mse_loss, sharpness


def task(widths, n: int, seed: int = 0):
    net = MLP(widths, "tanh", "sp", dtype="float32")
    x = jax.random.normal(jax.random.key(seed), (n, widths[0]), jnp.float32)
    y = jnp.sin(x[:, :1])
    return net, (x, y), mse_loss(net.apply)


def hvp_vs_gradient(repeats: int) -> float:
    net, batch, loss = task((32, 256, 256, 256, 1), 512)
    params = net.init(jax.random.key(1))
    v = jax.tree_util.tree_map(lambda p: jnp.ones_like(p) / math.sqrt(p.size), params)
    grad = jax.jit(jax.grad(loss))
    product = jax.jit(lambda p, b, v: hvp(loss, p, b, v))
    t_grad = best_time(lambda: grad(params, batch), repeats)
    t_hvp = best_time(lambda: product(params, batch, v), repeats)
    t_grad = min(t_grad, best_time(lambda: grad(params, batch), repeats))  # before and after: drift
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    print(f"MLP {n_params:,} params, n=512: gradient {t_grad * 1e3:7.2f} ms   hvp {t_hvp * 1e3:7.2f} ms")
    return t_hvp / t_grad


def ensemble_sharpness(members: int, repeats: int) -> float:
    net, batch, loss = task((16, 32, 32, 1), 128)
    params = [net.init(jax.random.key(s)) for s in range(members)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params)

    def probe(p):
        return sharpness(loss, p, batch, method="power", iterations=500, tol=1e-5).eigenvalue

    single = jax.jit(probe)
    batched = jax.jit(jax.vmap(probe))
    t_vec = best_time(lambda: batched(stacked), repeats)
    t_loop = best_time(lambda: [single(p) for p in params], repeats)
    diff = np.max(np.abs(np.asarray(batched(stacked)) - np.array([single(p) for p in params])))
    print(f"sharpness of {members} members: vectorised {t_vec * 1e3:8.1f} ms   looped {t_loop * 1e3:8.1f} ms   "
          f"max |difference| {diff:.1e}")
    return t_loop / t_vec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--members", type=int, default=32)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {platform.processor() or platform.machine()}, "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s)")
    ratio_hvp = hvp_vs_gradient(args.repeats)
    ratio_ens = ensemble_sharpness(args.members, args.repeats)
    print(f"ratio hvp/gradient time: {ratio_hvp:.2f}")
    print(f"ratio ensemble sharpness vectorised/looped speed: {ratio_ens:.2f}")


if __name__ == "__main__":
    main()
