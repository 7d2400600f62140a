"""Sweeps: specs and their grids, executors (local process pool, Ray), and the driver that alone writes the store."""

from learnmech.sweep.driver import SweepEvent, SweepPoint, SweepSummary, run_sweep
from learnmech.sweep.executors import Executor, ExecutorError, LocalExecutor, TaskLost, default_workers
from learnmech.sweep.grid import expand_grid
from learnmech.sweep.payload import RunPayload, record_payload
from learnmech.sweep.ray_executor import RayExecutor, ray_available
from learnmech.sweep.spec import SpecError, SweepSpec, load_spec, parse_spec

__all__ = ["Executor", "ExecutorError", "LocalExecutor", "RayExecutor", "RunPayload", "SpecError", "SweepEvent", "SweepPoint",
           "SweepSpec", "SweepSummary", "TaskLost", "default_workers", "expand_grid", "load_spec", "parse_spec",
           "ray_available", "record_payload", "run_sweep"]
