#!/usr/bin/env python
"""Benchmark: the Chinchilla scaling-law fit and its bootstrap, against fixed time targets.

1. **Full-grid fit** (``learnmech.fit.fit_form``): the 240-point Chinchilla table
   (Besiroglu et al. 2024, arXiv:2404.10102; the 5 highest losses dropped, ``D = C / (6 N)``)
   from Hoffmann et al.'s 4,500 starts, float64. Target: < 10 s.
2. **Bootstrap** (``bootstrap_fit``): 1,000 resamples refitted from the full-data optimum, one
   vmap. Target: < 60 s (on 2 cores).

The first call of each is timed separately (it includes jax compilation); the reported times
are the best of ``--repeats`` later calls. Ratios to the targets (< 1 is within) and the
throughput are printed LAST::

    ratio fit / 10 s target: 0.45
    ratio bootstrap / 60 s target: 0.20
    points per second (bootstrap refits x points / s): 25000

Usage: ``python bench/scaling.py [--repeats 2] [--quick]`` (``--quick``: 100 refits, a smoke run).
The table is read from ``../shared/data`` beside the checkout (never copied into the project).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from learnmech.data.tables import load_chinchilla
from learnmech.fit import bootstrap_fit, fit_form
from timing import machine_line

FIT_TARGET_S, BOOT_TARGET_S = 10.0, 60.0


def chinchilla_table() -> tuple[dict[str, np.ndarray], np.ndarray]:
    table = load_chinchilla()  # read from ../shared/data beside the checkout
    return {"n": table["n"], "d": table["d"]}, table["loss"]


def timed(fn, repeats: int):
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, first, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="100 bootstrap refits: a smoke run")
    args = parser.parse_args()
    print(machine_line())
    inputs, loss = chinchilla_table()
    fit, fit_first, fit_best = timed(lambda: fit_form("chinchilla", inputs, loss), args.repeats)
    p = fit.params
    print(f"fit: {fit.n_starts} starts, {fit.n_points} points: first call {fit_first:.2f} s (with compilation), "
          f"best {fit_best:.2f} s; E={p['E']:.4f} A={p['A']:.2f} B={p['B']:.2f} alpha={p['alpha']:.4f} "
          f"beta={p['beta']:.4f} objective={fit.objective:.10f} |grad|={fit.grad_norm:.1e} converged={fit.converged}")
    n_boot = 100 if args.quick else 1000
    boot, boot_first, boot_best = timed(lambda: bootstrap_fit("chinchilla", inputs, loss, n_boot=n_boot, fit=fit),
                                        args.repeats)
    ci = ", ".join(f"{k} [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in boot.ci.items())
    print(f"bootstrap: {n_boot} refits: first call {boot_first:.2f} s (with compilation), best {boot_best:.2f} s; "
          f"failed {boot.n_failed}; 95% CI {ci}")
    print(f"ratio fit / {FIT_TARGET_S:.0f} s target: {fit_best / FIT_TARGET_S:.2f}")
    print(f"ratio bootstrap / {BOOT_TARGET_S:.0f} s target: {boot_best * (1000 / n_boot) / BOOT_TARGET_S:.2f}")
    print(f"points per second (bootstrap refits x points / s): {n_boot * fit.n_points / boot_best:.0f}")


if __name__ == "__main__":
    main()
