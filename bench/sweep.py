"""Sweep executors: the same runs serially in this process, on the local pool and on a local Ray cluster.

Prints the wall time of each and, last, the ratios: the pool's and Ray's speed-up over the serial
loop (on 2 cores a single JAX process already uses both, so this measures the executors' overhead
as much as their parallelism), and the share of the pool sweep's wall time the driver spent writing
results (store transaction plus figure files). No compilation cache: every way compiles alike.

    python bench/sweep.py [--points 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

from timing import machine_line  # noqa: E402

from learnmech.atlas.execute import execute_run, versions  # noqa: E402
from learnmech.atlas.sweep_points import sweep_points  # noqa: E402
from learnmech.store import Store  # noqa: E402
import learnmech.sweep.driver as driver_module  # noqa: E402
from learnmech.sweep import LocalExecutor, RayExecutor, parse_spec, ray_available, run_sweep  # noqa: E402


def spec(points: int):
    return parse_spec({"claim": "dln.modes", "set": {"seeds": 2, "points": 40, "random_init": False},
                       "grid": {"u0": [0.001 * 1.5 ** k for k in range(points)]}}, "bench")


def serial(points) -> float:
    start = time.perf_counter()
    for p in points:
        assert execute_run(p.claim, p.preset, p.config).state == "done"
    return time.perf_counter() - start


def swept(points, executor, folder: Path) -> tuple[float, float]:
    """Wall time of the sweep and the time the driver spent in record_payload."""
    spent = [0.0]
    original = driver_module.record_payload  # the driver's writer, wrapped to time it

    def timed(store, payload):
        t = time.perf_counter()
        out = original(store, payload)
        spent[0] += time.perf_counter() - t
        return out

    driver_module.record_payload = timed
    try:
        with Store.open(folder / f"{executor.name}.duckdb") as store:
            start = time.perf_counter()
            summary = run_sweep(points, store, executor, execute_run, versions=versions())
            wall = time.perf_counter() - start
    finally:
        driver_module.record_payload = original
    assert summary.done == len(points), summary
    return wall, spent[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=8)
    args = parser.parse_args()
    points = sweep_points(spec(args.points))
    print(machine_line(), f"; {os.cpu_count()} cores; {len(points)} runs of dln.modes (tiny configs)")
    t_serial = serial(points)
    print(f"serial in this process: {t_serial:.1f} s ({t_serial / len(points):.2f} s per run)")
    with tempfile.TemporaryDirectory() as tmp:
        t_pool, t_write = swept(points, LocalExecutor(), Path(tmp))
        print(f"local pool ({LocalExecutor().workers} workers): {t_pool:.1f} s, of which the driver wrote "
              f"results for {t_write:.2f} s")
        t_ray = None
        if ray_available():
            t_ray, _ = swept(points, RayExecutor(), Path(tmp))
            print(f"local Ray cluster (started and stopped inside): {t_ray:.1f} s")
    print(f"ratio serial/pool {t_serial / t_pool:.2f}; serial/ray "
          f"{'n/a' if t_ray is None else f'{t_serial / t_ray:.2f}'}; driver write share {t_write / t_pool:.3f}")


if __name__ == "__main__":
    sys.exit(main())
