"""The Ray executor: sweep runs as Ray tasks, on a cluster or on a local one it starts.

Contract (see :mod:`learnmech.sweep.executors` for what every executor does). ``address=None``
starts a local Ray instance on this machine sized to ``num_cpus`` (default: all cores) and shuts
it down when the map ends; ``"auto"`` joins the cluster this machine belongs to (``ray start``);
``"HOST:PORT"`` joins the cluster whose head listens there. A joined cluster is left running; only
this driver disconnects. ``start()`` connects ahead of time (so that a wrong address is reported
before anything is written) and ``close()`` ends what ``start()`` began; ``map_unordered`` calls both. Each item is one task of ``num_cpus_per_task`` CPUs, retried up to
``max_retries`` times by Ray when its worker process dies; the task itself never raises (the
function returns failed payloads), so application errors are not retried. Workers import ``fn``
by module and name: learnmech must be installed on every node.

Ray is an optional dependency (``pip install 'learnmech[ray]'``); :func:`ray_available` tells.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from learnmech.sweep.executors import ExecutorError, TaskLost, default_workers

__all__ = ["RayExecutor", "ray_available"]


def ray_available() -> bool:
    """Whether Ray can be imported."""
    return importlib.util.find_spec("ray") is not None


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once a ``HOST:PORT`` where nothing listens (``ray.init`` would wait a long time)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ExecutorError(f"--address: no Ray cluster answers at {address} ({' '.join(str(exc).split())})") from None


class RayExecutor:
    """Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 3, num_cpus: int | None = None,
                 num_cpus_per_task: float = 1.0) -> None:
        self.address = address
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.num_cpus_per_task = num_cpus_per_task
        self._owns: bool | None = None  # None: not connected; True: this executor started the instance

    def start(self) -> None:
        """Start or join Ray now; ``ExecutorError`` in one line when the cluster cannot be reached."""
        import ray

        if self._owns is not None:
            return
        if ray.is_initialized():
            self._owns = False
            return
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
        if self.address not in (None, "auto"):
            _reachable(self.address)
        try:
            if self.address is None:
                ray.init(num_cpus=self.num_cpus or default_workers(), **options)
            else:
                ray.init(address=self.address, **options)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError from ray.init
            where = f"at {self.address}" if self.address else "(a new local instance)"
            raise ExecutorError(f"--address: cannot start or reach a Ray cluster {where}: "
                                f"{' '.join(str(exc).split())[:300]}") from None
        self._owns = True

    def close(self) -> None:
        """Shut down the Ray instance if this executor started it; disconnect from a joined one."""
        import ray

        if self._owns:
            ray.shutdown()
        self._owns = None

    def map_unordered(self, fn: Callable[..., Any], items: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        import ray

        self.start()
        try:
            task = ray.remote(max_retries=self.max_retries, retry_exceptions=False,
                              num_cpus=self.num_cpus_per_task)(fn)
            pending = {task.remote(*item): i for i, item in enumerate(items)}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        yield i, ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        yield i, TaskLost(f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
                                          self.max_retries + 1)
        finally:
            self.close()
