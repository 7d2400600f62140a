"""Executors: run one function over many argument tuples in other processes, yielding results as they finish.

Contract
--------
Every executor has ``name``, ``start()`` and ``close()`` (connect ahead of time, or raise
:class:`ExecutorError`; end what ``start`` began) and ``map_unordered(fn, items)``, a generator of ``(index, result)``
pairs in completion order, one per item. ``fn`` must be importable by module and name (workers
import it) and should not raise: an exception or a worker that dies more than ``max_retries``
times is yielded as a :class:`TaskLost` carrying the reason, never raised. Leaving the generator
(normally, by an exception or by ``close()``) stops the workers this executor started.

* :class:`LocalExecutor` — a pool of ``workers`` processes on this machine (default: the number
  of cores), started with ``spawn`` so that no worker inherits the driver's threads (JAX and
  fork do not mix). If a worker process dies (killed, out of memory), the pool breaks; the
  executor starts a new pool and resubmits every unfinished item, counting one attempt for each.
* ``RayExecutor`` (in :mod:`learnmech.sweep.ray_executor`) — tasks on a Ray cluster, retried by
  Ray when their worker dies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Protocol

__all__ = ["Executor", "ExecutorError", "LocalExecutor", "TaskLost", "default_workers"]


class ExecutorError(RuntimeError):
    """The executor cannot start (e.g. no Ray cluster at the address); one line naming the option."""


@dataclass(frozen=True)
class TaskLost:
    """An item whose function raised, or whose worker died more often than the retries allow."""

    reason: str
    attempts: int


class Executor(Protocol):
    name: str

    def start(self) -> None:
        ...

    def close(self) -> None:
        ...

    def map_unordered(self, fn: Callable[..., Any], items: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        ...


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor:
    """A process pool on this machine (see the module docstring)."""

    name = "local"

    def __init__(self, workers: int | None = None, max_retries: int = 3) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {workers}")
        self.workers = workers or default_workers()
        self.max_retries = max_retries

    def start(self) -> None:
        """Nothing to do ahead of time: each map starts its own pool."""

    def close(self) -> None:
        """Nothing to end: each map shuts its pool down."""

    def _pool(self, size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=max(1, min(self.workers, size)), mp_context=get_context("spawn"))

    def map_unordered(self, fn: Callable[..., Any], items: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        attempts = [0] * len(items)
        todo = list(range(len(items)))
        while todo:
            pool = self._pool(len(todo))
            try:
                futures: dict[Future, int] = {}
                for i in todo:
                    attempts[i] += 1
                    futures[pool.submit(fn, *items[i])] = i
                todo = []
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in finished:
                        i = futures.pop(future)
                        try:
                            yield i, future.result()
                        except BrokenProcessPool:
                            todo.append(i)
                        except Exception as exc:  # fn raised: the item is lost, the others go on
                            yield i, TaskLost(f"{type(exc).__name__}: {exc}", attempts[i])
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            for i in [i for i in todo if attempts[i] > self.max_retries]:
                todo.remove(i)
                yield i, TaskLost(f"its worker process died {attempts[i]} times", attempts[i])
