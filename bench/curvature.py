#!/usr/bin/env python
"""Benchmark: curvature probes, as ratios taken in one run.

1. **Hessian-vector product vs gradient**: one ``learnmech.observe.hvp`` (forward-over-reverse)
   against one ``jax.grad`` of the same loss, a tanh MLP ``32 -> 256 -> 256 -> 256 -> 1`` on
   ``n = 512`` examples (float32, MSE ``(1/2n) sum ||f - y||^2``). Both jitted; compilation excluded;
   best of ``--repeats``. Forward-over-reverse costs a gradient plus the tangent of every
   intermediate, so about 2-3 gradients.
2. **Ensemble sharpness, vectorised vs looped**: the top Hessian eigenvalue (power iteration) of
   every member of an ensemble, four ways: *looped* (a Python loop over members of the jitted
   single-member ``sharpness``) and ``ensemble_sharpness`` with ``layout="vmap"`` (members batched
   into every HVP), ``"map"`` (members in sequence inside one compiled program) and ``"auto"``
   (the layout the library picks by parameters per member). Three cases, float32:

   - *large*: the 140,289-parameter MLP of part 1, ``n = 64``, x ``--members`` (32), tol ``1e-3``;
   - *small*: ``16 -> 32 -> 32 -> 1`` (1,633 parameters), ``n = 128``, x ``2 * --members`` (64),
     tol ``1e-5``;
   - *tiny*: ``4 -> 8 -> 8 -> 1`` (121 parameters), ``n = 32``, x ``2 * --members`` (64), tol ``1e-5``.

   A vmapped while-loop runs until its slowest member has converged (finished members keep doing
   masked HVPs), so "vmap" costs ``M * max_m(iterations_m)`` member-HVPs against
   ``sum_m iterations_m`` looped; the iteration counts are printed. Timings of the four variants
   are interleaved over ``--rounds`` rounds, in reversed order every other round (best of
   ``--repeats`` each, three times as many in the cheap small and tiny cases; minimum over
   rounds), so that a load change on a shared machine hits all of them. "auto" picks "map" for
   power iteration at every size (see ``_AUTO_MAP_PARAMETERS`` in ``learnmech.observe.ensemble_curvature``),
   so "auto" and "map" run the same compiled program: their difference shows the machine's noise.
   A fifth variant, *driver*, is the same measurement as a probe of the ensemble driver
   (:func:`learnmech.observe.probes.sharpness_probe` in :func:`learnmech.train.train`, members given as
   ``params0``, learning rate 0 so every probe sees the same parameters): the fastest of
   ``--repeats`` chunks of one step followed by the probe, the layout chosen by the probe's rule.

The ratios are printed LAST, the worst case of the auto layout on the final line::

    ratio hvp/gradient time: 2.43
    ratio ensemble sharpness vmap/looped speed, large (140,289 params x 32): 0.45
    ...
    ratio ensemble sharpness auto/looped speed, tiny (121 params x 64): 1.18
    ratio ensemble sharpness driver/looped speed, tiny (121 params x 64): 1.15
    ratio ensemble sharpness auto/looped speed, worst case: 1.18
    ratio ensemble sharpness driver/looped speed, worst case: 1.15

Usage: ``python bench/curvature.py [--repeats 3] [--rounds 3] [--members 32]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.nets import MLP
from timing import best_time
from learnmech.observe import hvp, mse_loss, sharpness
from learnmech.observe.ensemble_curvature import _AUTO_MAP_PARAMETERS, _auto_layout, ensemble_sharpness
from learnmech.observe.probes import sharpness_probe
from learnmech.train import OptimizerSpec, train


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


def driver_probe(loss, stacked, batch, opts: dict, repeats: int) -> float:
    """Fastest chunk of ``train``: one step at learning rate 0, then the sharpness probe of every member."""
    marks: list[float] = []
    train(params0=stacked, loss=loss, data=batch, optimizer=OptimizerSpec("sgd", {"learning_rate": 0.0}),
          seeds=list(range(jax.tree_util.tree_leaves(stacked)[0].shape[0])), steps=list(range(repeats + 2)),
          probes=[sharpness_probe(loss, every=1, **opts)],
          progress=lambda done, total: marks.append(time.perf_counter()))
    return min(b - a for a, b in zip(marks[1:-1], marks[2:]))  # the first chunk (step 0) compiles


def ensemble_case(label: str, widths, n: int, members: int, tol: float, repeats: int, rounds: int):
    """Times looped / vmap / map / auto ensemble sharpness; returns ``{variant: looped time / its time}``."""
    net, batch, loss = task(widths, n)
    params = [net.init(jax.random.key(s)) for s in range(members)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params)
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params[0]))
    opts = dict(method="power", iterations=500, tol=tol)

    single = jax.jit(lambda p: sharpness(loss, p, batch, **opts))
    variants = {"looped": lambda: jnp.stack([single(p).eigenvalue for p in params])}
    for layout in ("vmap", "map", "auto"):
        variants[layout] = (lambda lay: lambda: ensemble_sharpness(loss, stacked, batch, layout=lay, **opts)
                            .eigenvalue)(layout)

    times = {name: math.inf for name in variants}
    for r in range(rounds):  # interleaved, order reversed every other round: load drift hits every variant
        for name in list(variants)[:: 1 if r % 2 == 0 else -1]:
            times[name] = min(times[name], best_time(variants[name], repeats))

    times["driver"] = driver_probe(loss, stacked, batch, opts, repeats)
    iters = np.array([int(single(p).iterations) for p in params])
    looped = np.asarray(variants["looped"]())
    diff = max(float(np.max(np.abs(np.asarray(fn()) - looped) / np.abs(looped))) for fn in variants.values())
    label = f"{label} ({n_params:,} params x {members})"
    print(f"{label}, n={n}, tol={tol:g}: HVPs per member mean {iters.mean():.1f} max {iters.max()} "
          f"(vmap does {iters.max() / iters.mean():.1f}x the HVPs), auto -> {_auto_layout('power', n_params)}, "
          f"max relative difference to looped {diff:.1e}")
    print("   " + "   ".join(f"{name} {t * 1e3:9.1f} ms" for name, t in times.items()))
    return label, {name: times["looped"] / t for name, t in times.items() if name != "looped"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=32)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {platform.processor() or platform.machine()}, "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s); "
          f"auto layout: map from {_AUTO_MAP_PARAMETERS['power']} params per member (power)")
    ratio_hvp = hvp_vs_gradient(args.repeats)
    r, m = args.repeats, args.members
    cases = [
        ensemble_case("large", (32, 256, 256, 256, 1), 64, m, 1e-3, r, args.rounds),
        ensemble_case("small", (16, 32, 32, 1), 128, 2 * m, 1e-5, 3 * r, args.rounds),  # cheap: more samples
        ensemble_case("tiny", (4, 8, 8, 1), 32, 2 * m, 1e-5, 3 * r, args.rounds),
    ]
    print(f"ratio hvp/gradient time: {ratio_hvp:.2f}")
    for label, ratios in cases:
        for name, ratio in ratios.items():
            print(f"ratio ensemble sharpness {name}/looped speed, {label}: {ratio:.2f}")
    print(f"ratio ensemble sharpness auto/looped speed, worst case: {min(r['auto'] for _, r in cases):.2f}")
    print(f"ratio ensemble sharpness driver/looped speed, worst case: {min(r['driver'] for _, r in cases):.2f}")


if __name__ == "__main__":
    main()
