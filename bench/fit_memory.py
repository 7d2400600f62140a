#!/usr/bin/env python
"""Benchmark: peak memory and wall time of ``learnmech fit scaling`` on 10^5 and 10^6 rows.

Each table is a Chinchilla law (Hoffmann et al. 2022, arXiv:2203.15556, with the round values
E = 1.7, A = 400, B = 1500, alpha = 0.34, beta = 0.36) with 1% log-normal noise, N log-uniform
on 1e7..1e10 and C on 1e18..1e22 (seed 0), written as a CSV with columns ``n``, ``flops``,
``loss``. The CLI runs in a child process (``python -m learnmech.cli fit scaling FILE --json``);
its peak resident set size is the child's own ``ru_maxrss`` (``os.wait4``), its time the wall
time of the whole command (start-up, reading, fitting, the figure). The fitter keeps memory at
``O(rows)`` plus a constant (``learnmech.fit.scaling_fit``: ELEMENT_BUDGET, SUBSAMPLE_ROWS);
before that, 10^5 rows passed 8 GB and 10^6 rows asked for 33.5 GiB.

Printed, one line per table, the ratio last::

    rows  peak RSS (MiB)  seconds  converged  alpha  KiB of peak RSS per row

Usage: ``python bench/fit_memory.py [--rows 100000 1000000] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRUE = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` noisy runs of the law above as ``n,flops,loss`` (17 significant digits)."""
    rng = np.random.default_rng(seed)
    n, c = 10 ** rng.uniform(7, 10, rows), 10 ** rng.uniform(18, 22, rows)  # (rows,) each
    d = c / (6 * n)
    loss = (TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]) \
        * np.exp(0.01 * rng.standard_normal(rows))
    np.savetxt(path, np.stack([n, c, loss], axis=1), delimiter=",", header="n,flops,loss", comments="",
               fmt="%.17g")


def run_cli(path: Path, out_dir: Path) -> tuple[float, float, dict]:
    """Peak RSS (MiB) and wall seconds of one ``fit scaling`` child, and its JSON result."""
    command = [sys.executable, "-m", "learnmech.cli", "fit", "scaling", str(path), "--n", "n", "--flops", "flops",
               "--loss", "loss", "--json", "--out", str(out_dir)]
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: nothing can fill up and stall the child
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage, not the sum over children
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"fit scaling failed (exit {child.returncode}): {stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds, json.loads(stdout)  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, nargs="+", default=[10**5, 10**6])
    parser.add_argument("--keep", type=Path, default=None, help="folder for the tables and figures (else a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'rows':>9} {'peak RSS (MiB)':>15} {'seconds':>8} {'converged':>10} {'alpha':>8} "
              f"{'KiB of peak RSS per row':>24}")
        for rows in args.rows:
            table = folder / f"chinchilla-{rows}.csv"
            write_table(table, rows)
            peak, seconds, result = run_cli(table, folder / f"figs-{rows}")
            print(f"{rows:>9} {peak:>15.0f} {seconds:>8.1f} {str(result['converged']):>10} "
                  f"{result['params']['alpha']:>8.4f} {peak * 1024 / rows:>24.2f}", flush=True)


if __name__ == "__main__":
    main()
