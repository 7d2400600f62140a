"""Timing shared by the bench scripts (run as ``python bench/<name>.py``, so this imports as ``timing``)."""

from __future__ import annotations

import math
import time

import jax


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (compilation excluded)."""
    jax.block_until_ready(fn())
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def machine_line() -> str:
    """One line naming the jax version, the processor and the devices the timings were taken on."""
    import platform

    return (f"jax {jax.__version__} on {platform.processor() or platform.machine()}, "
            f"{jax.device_count()} {jax.devices()[0].platform} device(s)")
