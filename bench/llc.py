#!/usr/bin/env python
"""Benchmark: the SGLD estimator of the local learning coefficient, vectorised chains vs a loop over chains.

The same work two ways, on a small tanh MLP ``d_in -> width -> width -> 1`` (float32, MSE
``(1/2n) sum (f - y)^2``, ``n`` examples, parameters at initialisation), full-batch SGLD
(:func:`learnmech.observe.llc.estimate_llc`: ``gamma = 100``, ``step = 1e-4``):

- *vectorised*: one jitted ``estimate_llc(..., chains=C)`` (chains ``vmap`` ed, steps a ``lax.scan``);
- *looped*: a Python loop of ``C`` calls of the jitted single-chain ``estimate_llc(..., chains=1)``
  (the same scan, one chain at a time), each chain with its own key.

Both compiled before timing; the variants are timed in turns over ``--repeats`` rounds (reversed every
other round so that a load change on a shared machine hits both), fastest kept. Rates are chains x draws
per second of wall time and of process CPU time (``time.process_time``: on a machine shared with other
jobs the wall rate drops with their load, the CPU rate much less). The ratio vectorised/looped is
printed LAST. Measured with the defaults on the 2-core reference machine under load 8 (other jobs running),
December 2026, 1,377 parameters::

    vectorised:       11,130 chain-draws/s wall,       11,283 chain-draws/s CPU
    looped:            7,775 chain-draws/s wall,        8,271 chain-draws/s CPU
    ratio vectorised/looped speed (wall, CPU): 1.43, 1.36

Usage: ``python bench/llc.py [--chains 8] [--draws 1000] [--width 32] [--n 256] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import jax
import jax.numpy as jnp

from learnmech.nets import MLP
from learnmech.observe.llc import estimate_llc

D_IN = 8
GAMMA, STEP = 100.0, 1e-4  # the estimator's defaults


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def task(width: int, n: int):
    """``(loss, params, data)``: a tanh MLP at initialisation and a smooth target on Gaussian inputs."""
    net = MLP((D_IN, width, width, 1), activation="tanh", dtype="float32")
    x = jax.random.normal(jax.random.key(0), (n, D_IN), jnp.float32)  # (n, d_in)
    data = (x, jnp.sin(x[:, :1]))  # (n, d_in), (n, 1)

    def loss(params, batch):
        return 0.5 * jnp.mean(jnp.sum((net.apply(params, batch[0]) - batch[1]) ** 2, axis=-1))

    return loss, net.init(jax.random.key(1)), data


def timed(fn) -> tuple[float, float]:
    """Wall and process CPU seconds of ``fn()`` (its results made ready)."""
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chains", type=int, default=8, help="SGLD chains (default 8, the estimator's)")
    ap.add_argument("--draws", type=int, default=1000, help="draws (steps) per chain (default 1000)")
    ap.add_argument("--width", type=int, default=32, help="hidden width of the MLP (default 32)")
    ap.add_argument("--n", type=int, default=256, help="examples, full batch (default 256)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds, fastest kept (default 3)")
    args = ap.parse_args(argv)
    C, T = args.chains, args.draws

    loss, params, data = task(args.width, args.n)
    n_params = sum(p.size for p in jax.tree.leaves(params))
    print(f"bench/llc.py: {C} chains x {T} draws, full-batch SGLD (gamma {GAMMA}, step {STEP}), tanh MLP "
          f"{D_IN}->{args.width}->{args.width}->1 ({n_params:,} parameters), n = {args.n}, float32")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device), "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}, load average {loadavg()}")

    settings = dict(gamma=GAMMA, step=STEP, draws=T)
    vectorised = jax.jit(lambda p, d, k: estimate_llc(loss, p, d, key=k, chains=C, **settings))
    one_chain = jax.jit(lambda p, d, k: estimate_llc(loss, p, d, key=k, chains=1, **settings))
    keys = jax.random.split(jax.random.key(2), C)
    variants = {"vectorised": lambda: vectorised(params, data, keys[0]).llc,
                "looped": lambda: [one_chain(params, data, k).llc for k in keys]}
    for fn in variants.values():  # compile
        jax.block_until_ready(fn())

    best = {name: (math.inf, math.inf) for name in variants}
    for r in range(max(1, args.repeats)):
        for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            wall, cpu = timed(variants[name])
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))

    rates = {name: (C * T / wall, C * T / cpu) for name, (wall, cpu) in best.items()}
    for name, (wall_rate, cpu_rate) in rates.items():
        print(f"{name + ':':11} {wall_rate:12,.0f} chain-draws/s wall, {cpu_rate:12,.0f} chain-draws/s CPU "
              f"(best of {args.repeats}: {best[name][0]:.3f} s wall, {best[name][1]:.3f} s CPU)")
    print(f"load average at the end: {loadavg()}")
    print(f"ratio vectorised/looped speed (wall, CPU): {rates['vectorised'][0] / rates['looped'][0]:.2f}, "
          f"{rates['vectorised'][1] / rates['looped'][1]:.2f}")


if __name__ == "__main__":
    main()
