"""The sweep driver on the local process pool, with stand-in workers: resume, failures, lost workers.

The stand-in worker lives in tests/sweep_workers.py, which imports little, so that each spawned
process starts quickly; the real
claim worker, ``execute_run``, is exercised in-process at the end and end to end in
tests/test_sweep_faults.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learnmech import __version__
from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.rules import Check, Rules
from learnmech.atlas.execute import execute_run
from learnmech.store import Store, run_id
from learnmech.sweep import LocalExecutor, SweepPoint, TaskLost, run_sweep
from sweep_workers import fake_worker

CLAIM = "fake.claim"


def _points(configs):
    return [SweepPoint(i, run_id(CLAIM, c, __version__), CLAIM, "quick", c, {"x": c["x"]})
            for i, c in enumerate(configs)]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.duckdb") as db:
        yield db


def test_every_point_once_then_resume_skips_all(store):
    points = _points([{"x": float(x)} for x in range(6)])
    events = []
    summary = run_sweep(points, store, LocalExecutor(2), fake_worker, on_event=events.append)
    assert (summary.done, summary.failed, summary.skipped, summary.duplicates) == (6, 0, 0, 0)
    assert sorted(e.point.index for e in events) == list(range(6)) and events[-1].summary.remaining == 0
    for p in points:
        assert store.status(p.run_id) == "done"
        assert store.series(p.run_id)["value"].tolist() == [p.config["x"] * s for s in range(4)]
        (kind, path), = store.artifacts(p.run_id)
        assert kind == "figure" and Path(path).read_bytes() == b"\x89PNG stand-in"
    assert len({o["pid"] for o in summary.outcomes.values()}) >= 1
    again = run_sweep(points, store, LocalExecutor(2), fake_worker)
    assert (again.done, again.skipped) == (0, 6)


def test_a_crash_is_recorded_and_the_sweep_goes_on(store):
    points = _points([{"x": 1.0}, {"x": 2.0, "mode": "raise"}, {"x": 3.0}])
    summary = run_sweep(points, store, LocalExecutor(2), fake_worker)
    assert (summary.done, summary.failed) == (2, 1)
    bad = store.get_run(points[1].run_id)
    assert bad.status == "failed" and "the worker function itself raised" in bad.error
    # resume: the failed run is tried again, the done ones are not
    assert run_sweep(points, store, LocalExecutor(2), fake_worker).skipped == 2


def test_a_killed_worker_process_is_replaced_and_its_run_retried(store, tmp_path):
    configs = [{"x": float(x)} for x in range(5)]
    configs[2] = {"x": 2.0, "mode": "die-once", "marker": str(tmp_path / "died")}
    points = _points(configs)
    summary = run_sweep(points, store, LocalExecutor(2), fake_worker)
    assert (tmp_path / "died").exists()  # the worker really died once
    assert (summary.done, summary.failed, summary.duplicates) == (5, 0, 0)
    assert all(store.status(p.run_id) == "done" for p in points)


def test_a_run_that_always_kills_its_worker_is_lost_after_the_retries(store):
    points = _points([{"x": 1.0}, {"x": 2.0, "mode": "die-always"}])
    summary = run_sweep(points, store, LocalExecutor(1, max_retries=1), fake_worker)
    assert (summary.done, summary.failed) == (1, 1)
    assert "worker process died 2 times" in store.get_run(points[1].run_id).error


def test_points_must_be_distinct_runs(store):
    points = _points([{"x": 1.0}, {"x": 1.0}])
    with pytest.raises(ValueError, match="are the same run"):
        run_sweep(points, store, LocalExecutor(1), fake_worker)
    assert store.runs() == []


class _Config(ClaimConfig):
    crash: bool = False


def _measure(cfg, progress):
    if cfg.crash:
        raise ZeroDivisionError("measured nothing")
    return {"y": Curve(np.arange(3.0), np.ones(3))}


BROKEN = Claim(id="test.broken", pillar="tests", statement="s", references=("r",), config=_Config,
               presets={"tiny": {}, "quick": {}, "full": {}},
               predict=lambda cfg: {"y": Curve(np.arange(3.0), np.ones(3))}, measure=_measure,
               summarize=lambda cfg, p, m: {"m": 1.0}, rules=Rules(checks=(Check("m", "m", ">=", 0.0),)),
               plot=lambda cfg, p, m, s, v: __import__("learnmech.report", fromlist=["new_figure"]).new_figure(1)[0])


def test_execute_run_returns_a_crash_as_a_failed_payload():
    payload = execute_run(BROKEN, "quick", {"seeds": 4, "crash": True})
    assert payload.state == "failed" and "ZeroDivisionError: measured nothing" in payload.error
    assert payload.run_id == run_id("test.broken", {"seeds": 4, "crash": True}, __version__)
    ok = execute_run(BROKEN, "quick", {"seeds": 4, "crash": False})
    assert ok.state == "done" and ok.verdict["verdict"] == "holds" and set(ok.figures) == {"png", "svg"}
    assert ok.figures["png"][:8] == b"\x89PNG\r\n\x1a\n" and ok.series["source"].tolist().count("theory") == 3


def test_task_lost_is_data():
    lost = TaskLost("gone", 2)
    assert lost.attempts == 2 and lost.reason == "gone"
