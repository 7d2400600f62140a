"""Preregistration: a claim's prediction is in the store before the experiment that tests it runs.

A toy claim's ``measure`` registers a prediction, reads it back through the same Store object
before it "trains", and records both times in its measurement; the tests then compare the stored
``registered_at`` with the run's ``started_at`` / ``finished_at`` and with the time the claim saw.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from learnmech import __version__
from learnmech.atlas.contract import Claim, ClaimConfig
from learnmech.atlas.execute import call_measure, clock_preregister, execute_run, record_from_columns
from learnmech.atlas.rules import Check, Rules
from learnmech.atlas.runner import run_claim
from learnmech.report.html import write_report
from learnmech.store import Store, run_id
from learnmech.store import schema
from learnmech.store import store as store_module
from learnmech.store.preregistrations import unix_time

CLAIM_ID = "test.prereg"


class _Config(ClaimConfig):
    seeds: int = 1
    crash: bool = False


def _toy_claim(predictions: list[float], seen: list, store: Store | None = None) -> Claim:
    """A claim whose measure registers ``{"loss": predictions[i], "alpha": NaN}`` on its i-th call.

    With ``store``, the measure reads the store (same object) right after registering and appends
    what it found to ``seen`` before it "trains".
    """

    def measure(cfg, progress, preregister):
        loss = predictions[len(seen)]
        registered = preregister("largest-budget", {"loss": loss, "alpha": float("nan")})
        rid = run_id(CLAIM_ID, cfg.model_dump(mode="json"), __version__)
        seen.append(store.preregistrations(rid) if store is not None else None)
        started = time.time()  # the largest budget's training starts here
        if cfg.crash:
            raise RuntimeError("training diverged")
        return {"registered": registered, "trained": started, "loss": loss + 0.1}

    return Claim(id=CLAIM_ID, pillar="tests", statement="s", references=("r",), config=_Config,
                 presets={"tiny": {}, "quick": {}, "full": {}}, predict=lambda cfg: {"loss": 1.0},
                 measure=measure, summarize=lambda cfg, p, m: {"gap": m["trained"] - m["registered"]},
                 rules=Rules(checks=(Check("gap", "gap", ">=", 0.0),)),
                 plot=lambda cfg, p, m, s, v: __import__("learnmech.report", fromlist=["new_figure"]).new_figure(1)[0])


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.duckdb") as db:
        yield db


def _same_values(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        (math.isnan(want[k]) and math.isnan(got[k])) or got[k] == want[k] for k in want)


def test_the_prediction_is_stored_before_measure_trains_and_between_start_and_finish(store, tmp_path):
    seen: list = []
    claim = _toy_claim([2.5], seen, store)
    outcome = run_claim(claim, _Config(), preset="quick", store=store)
    assert outcome.state == "done", outcome.error
    (inside,) = seen  # what measure read back before it trained: the row was already there
    assert list(inside) == ["largest-budget"] and _same_values(inside["largest-budget"]["values"],
                                                               {"loss": 2.5, "alpha": float("nan")})
    run, final = store.get_run(outcome.run_id), store.preregistrations(outcome.run_id)
    assert _same_values(final["largest-budget"]["values"], inside["largest-budget"]["values"])
    at = final["largest-budget"]["registered_at"]
    assert at == inside["largest-budget"]["registered_at"]
    assert run.started_at <= at <= run.finished_at
    measured = record_from_columns(store.series(outcome.run_id), "experiment")
    assert measured["registered"] == unix_time(at)  # the time the claim got is the time stored, exactly
    assert measured["registered"] <= measured["trained"]
    exported = store.export_tables(tmp_path / "export")["preregistrations"]
    rows = pq.read_table(exported).to_pylist()
    assert sorted(r["key"] for r in rows) == ["alpha", "loss"] and {r["registered_at"] for r in rows} == {at}
    page = (tmp_path / "report" / "runs" / f"{outcome.run_id}.html")
    write_report(store, [claim], tmp_path / "report")
    html = page.read_text()
    assert "<h2>preregistrations</h2>" in html and f"{at:%Y-%m-%d %H:%M:%S.%f} UTC" in html
    assert "loss = 2.5" in html and "alpha = nan" in html


def test_a_failed_run_keeps_its_preregistration_and_a_retry_appends(store):
    seen: list = []
    claim = _toy_claim([3.0, 4.0], seen, store)
    outcome = run_claim(claim, _Config(crash=True), preset="quick", store=store)
    assert outcome.state == "failed" and "training diverged" in outcome.error
    first = store.preregistrations(outcome.run_id)["largest-budget"]
    assert first["values"]["loss"] == 3.0 and store.status(outcome.run_id) == "failed"
    again = run_claim(claim, _Config(crash=True), preset="quick", store=store)  # a failed run is redone
    assert again.run_id == outcome.run_id and again.state == "failed"
    history = store.preregistrations(outcome.run_id, latest=False)
    assert [h["values"]["loss"] for h in history] == [3.0, 4.0]  # begin_run dropped nothing
    assert history[0]["registered_at"] < history[1]["registered_at"]


def test_a_forced_redo_appends_a_second_registration_and_the_latest_wins(store):
    seen: list = []
    claim = _toy_claim([2.0, 5.0], seen, store)
    first = run_claim(claim, _Config(), preset="quick", store=store)
    redo = run_claim(claim, _Config(), preset="quick", store=store, force=True)
    assert (first.state, redo.state) == ("done", "done") and len(seen) == 2
    history = store.preregistrations(first.run_id, latest=False)
    assert [h["values"]["loss"] for h in history] == [2.0, 5.0]
    latest = store.preregistrations(first.run_id)["largest-budget"]
    assert latest["values"]["loss"] == 5.0 and latest["registered_at"] == history[1]["registered_at"]
    run = store.get_run(first.run_id)  # the redo's start replaced the first start when it finished
    assert history[0]["registered_at"] < run.started_at <= latest["registered_at"] <= run.finished_at


def test_execute_run_without_a_store_still_gives_the_claim_a_time():
    before = time.time()
    payload = execute_run(_toy_claim([1.5], []), "quick", {"seeds": 1, "crash": False})
    after = time.time()
    assert payload.state == "done", payload.error
    measured = record_from_columns(payload.series, "experiment")
    assert before <= measured["registered"] <= measured["trained"] <= after


def test_a_store_without_the_table_reads_read_only_as_empty_and_gains_it_for_writing(store, tmp_path):
    store.begin_run("r1", claim="x.y", preset="quick", config={}, versions={})
    store.preregister("r1", "fit", {"loss": 1.0})
    store.close()
    path = tmp_path / "s.duckdb"
    with duckdb.connect(str(path)) as con:  # as a learnmech before preregistrations wrote it
        con.execute("DROP TABLE preregistrations")
    with Store.open(path, read_only=True) as old:
        assert old.preregistrations("r1") == {} and old.preregistrations("r1", latest=False) == []
        table = pq.read_table(old.export_tables(tmp_path / "export")["preregistrations"])
        assert table.num_rows == 0 and table.column_names == list(schema.table_columns(
            schema.ADDED_TABLES["preregistrations"]))
        assert str(table.schema.field("value").type) == "double"
        write_report(old, [], tmp_path / "report")  # the page of a run renders without the table
    with Store.open(path) as upgraded:
        assert schema.has_table(upgraded._db, "preregistrations")
        upgraded.preregister("r1", "fit", {"loss": 2.0})
        assert upgraded.preregistrations("r1")["fit"]["values"] == {"loss": 2.0}


@pytest.mark.parametrize("name, values, message", [
    ("", {"a": 1.0}, "preregistration name must be a non-empty string, got ''"),
    ("fit", {}, "preregistration 'fit': values must be a non-empty mapping of str to float, got {}"),
    ("fit", [1.0], "preregistration 'fit': values must be a non-empty mapping of str to float, got [1.0]"),
    ("fit", {"a": float("inf")}, "preregistration 'fit': values['a'] must be a finite float or NaN, got inf"),
    ("fit", {"a": True}, "preregistration 'fit': values['a'] must be a finite float or NaN, got True"),
    ("fit", {"a": "1"}, "preregistration 'fit': values['a'] must be a finite float or NaN, got '1'"),
    ("fit", {1: 1.0}, "preregistration 'fit': each key must be a non-empty string, got 1"),
])
def test_bad_values_are_one_line_errors_with_or_without_a_store(store, name, values, message):
    store.begin_run("r1", claim="x.y", preset="quick", config={}, versions={})
    for fn in (lambda n, v: store.preregister("r1", n, v), clock_preregister):
        with pytest.raises(ValueError) as info:
            fn(name, values)
        assert str(info.value) == message
    assert store.preregistrations("r1") == {}


def test_only_a_running_run_may_register(store):
    with pytest.raises(ValueError, match=r"^run_id: no run 'nope' in the store; preregister between"):
        store.preregister("nope", "fit", {"a": 1.0})
    store.begin_run("r1", claim="x.y", preset="quick", config={}, versions={})
    store.finish_run("r1", series=None, verdict=None, seconds=0.0)
    with pytest.raises(ValueError) as info:
        store.preregister("r1", "fit", {"a": 1.0})
    assert str(info.value) == "run_id: run r1 is done, not running; a prediction is registered while its run runs"
    assert store.preregistrations("r1") == {}
    assert store.begin_run("r1", claim="x.y", preset="quick", config={}, versions={}) == "redo"
    assert store.preregister("r1", "fit", {"a": 1.0}) <= store_module._now()  # a running redo may register


def test_registrations_in_the_same_microsecond_stay_ordered(store, monkeypatch):
    store.begin_run("r1", claim="x.y", preset="quick", config={}, versions={})
    frozen = datetime(2030, 1, 1, 12, 0, 0)
    monkeypatch.setattr(store_module, "_now", lambda: frozen)
    times = [store.preregister("r1", "fit", {"a": float(i)}) for i in range(3)]
    other = store.preregister("r1", "other", {"a": 9.0})  # another name keeps the clock's time
    assert times == [frozen + timedelta(microseconds=i) for i in range(3)] and other == frozen
    assert store.preregistrations("r1")["fit"]["values"] == {"a": 2.0}
    assert unix_time(frozen) == 1893499200.0  # 2030-01-01T12:00:00Z, from `date -u -d @1893499200`


def test_measure_gets_preregister_only_when_it_names_the_parameter():
    def plain(cfg, progress):
        return {"n": 2.0}

    def positional(cfg, progress, preregister, /):
        return {"n": 3.0, "t": preregister("p", {"a": 1.0})}

    def wrapped(*args, **kwargs):
        return {"n": float(len(args) + len(kwargs))}

    assert call_measure(plain, None, None, clock_preregister) == {"n": 2.0}
    got = call_measure(positional, None, None, lambda name, values: 7.0)
    assert got == {"n": 3.0, "t": 7.0}
    assert call_measure(wrapped, None, None, clock_preregister) == {"n": 2.0}
    assert np.isfinite(clock_preregister("p", {"a": float("nan")}))
