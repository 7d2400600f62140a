"""The sweep driver: resume, fan out to an executor, and be the only writer of the store.

Contract
--------
``run_sweep(points, store, executor, worker)`` runs every :class:`SweepPoint` whose run is not
already ``done`` in ``store`` (all of them with ``force``):

* Resume: a ``done`` run is skipped; a run left ``running`` (a killed driver) or ``failed`` is
  run again. Points must have distinct run ids.
* Before anything is computed every pending run is marked ``running`` (``Store.begin_run``), so a
  driver killed at any moment leaves each run either ``done`` with all of its results or not
  done, and the next ``run_sweep`` completes the rest.
* ``worker(claim, preset, config)`` runs in the executor's processes and returns a
  :class:`~learnmech.sweep.payload.RunPayload`; results stream back in completion order and the
  driver writes each at once (one transaction per run). A run that raised is recorded ``failed``
  with its traceback, and so is a run whose worker died more often than the executor retries;
  the sweep goes on. A second result for a run already recorded in this sweep is counted in
  ``duplicates`` and not written.
* ``on_event(event)`` is called once per skipped point and once per result, with the running
  counts, for progress bars and logs.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from learnmech.store import Store
from learnmech.sweep.executors import Executor, TaskLost
from learnmech.sweep.payload import RunPayload, record_payload

__all__ = ["SweepEvent", "SweepPoint", "SweepSummary", "run_sweep"]


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of a sweep: its run id, claim, preset, canonical config and varied fields."""

    index: int
    run_id: str
    claim: str
    preset: str
    config: Mapping[str, Any]
    label: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SweepSummary:
    """Counts and per-point outcomes of one ``run_sweep`` call."""

    points: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    duplicates: int = 0
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return self.points - self.skipped - self.done - self.failed


@dataclass(frozen=True)
class SweepEvent:
    """One point skipped or finished, with the counts after it."""

    point: SweepPoint
    state: str  # "skipped" | "done" | "failed"
    summary: SweepSummary
    payload: RunPayload | None = None


def _lost(point: SweepPoint, lost: TaskLost) -> RunPayload:
    return RunPayload(point.run_id, point.claim, point.preset, "failed", 0.0,
                      error=f"the run was lost after {lost.attempts} attempt(s): {lost.reason}")


def _check_points(points: Sequence[SweepPoint]) -> None:
    seen: dict[str, int] = {}
    for p in points:
        if p.run_id in seen:
            raise ValueError(f"points {seen[p.run_id]} and {p.index} are the same run {p.run_id}")
        seen[p.run_id] = p.index


def run_sweep(points: Sequence[SweepPoint], store: Store, executor: Executor,
              worker: Callable[[str, str, Mapping], RunPayload], *, force: bool = False,
              versions: Mapping[str, str] | None = None,
              on_event: Callable[[SweepEvent], None] | None = None) -> SweepSummary:
    """Run the points not yet done (see the module docstring) and return the summary."""
    _check_points(points)
    summary = SweepSummary(points=len(points))
    emit = on_event or (lambda event: None)
    pending = []
    for p in points:
        if not force and store.status(p.run_id) == "done":
            summary.skipped += 1
            summary.outcomes[p.index] = {"state": "skipped", "run_id": p.run_id}
            emit(SweepEvent(p, "skipped", summary))
        else:
            pending.append(p)
    for p in pending:
        store.begin_run(p.run_id, claim=p.claim, preset=p.preset, config=p.config,
                        versions=dict(versions or {}), host=platform.node())
    items = [(p.claim, p.preset, dict(p.config)) for p in pending]
    recorded: set[str] = set()
    for i, result in executor.map_unordered(worker, items):
        point = pending[i]
        payload = _lost(point, result) if isinstance(result, TaskLost) else result
        if payload.run_id != point.run_id:
            payload = _lost(point, TaskLost(f"the worker returned run {payload.run_id}, not {point.run_id} "
                                            "(is the same learnmech version installed there?)", 1))
        if point.run_id in recorded:
            summary.duplicates += 1
            continue
        record_payload(store, payload)
        recorded.add(point.run_id)
        setattr(summary, payload.state, getattr(summary, payload.state) + 1)
        summary.outcomes[point.index] = {"state": payload.state, "run_id": point.run_id, "pid": payload.pid,
                                         "host": payload.host, "seconds": payload.seconds}
        emit(SweepEvent(point, payload.state, summary, payload))
    return summary
