"""Tests of learnmech.store: run ids, opening rules, transactions and round trips."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.store import (
    SCHEMA_VERSION,
    NotAStoreError,
    RunRecord,
    Store,
    StoreBusyError,
    StoreError,
    UnknownRunError,
    canonical_json,
    run_id,
)

CONFIG = {"width": 64, "lr": 0.1, "seeds": (0, 1)}


def _series(n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "source": np.array(["theory", "experiment"] * (n // 2)),
        "name": np.array(["loss", "acc", "loss"] * (n // 3)),
        "member": np.arange(n) % 2,
        "step": rng.integers(0, 100, n).astype(float),
        "value": rng.normal(size=n),
    }


def _begin(store: Store, rid: str = "r1", claim: str = "c1") -> str:
    return store.begin_run(rid, claim=claim, preset="quick", config=CONFIG, versions={"numpy": "2"})


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _sorted(series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.lexsort((series["step"], series["member"], series["name"], series["source"]))
    return {key: np.asarray(col)[order] for key, col in series.items()}


# -- ids ---------------------------------------------------------------------------------
def test_run_id_matches_its_definition() -> None:
    text = 'c1\n{"lr":0.1,"seeds":[0,1],"width":64}\n0.1.0'
    assert run_id("c1", CONFIG, "0.1.0") == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_run_id_ignores_key_order_and_tracks_inputs() -> None:
    base = run_id("c1", {"a": 1, "b": {"x": 1, "y": 2}}, "1.0")
    assert base == run_id("c1", {"b": {"y": 2, "x": 1}, "a": 1}, "1.0")
    assert base != run_id("c1", {"a": 2, "b": {"x": 1, "y": 2}}, "1.0")
    assert base != run_id("c2", {"a": 1, "b": {"x": 1, "y": 2}}, "1.0")
    assert base != run_id("c1", {"a": 1, "b": {"x": 1, "y": 2}}, "1.1")
    assert len(base) == 16 and int(base, 16) >= 0


def test_canonical_json_of_tuples_and_numpy() -> None:
    config = {"t": (1, 2.5), "f": np.float64(0.1), "i": np.int32(3), "b": np.bool_(True),
              "a": np.arange(3), "m": np.eye(2, dtype=np.float32), "s": np.str_("x"), "n": None}
    text = canonical_json(config)
    assert text == ('{"a":[0,1,2],"b":true,"f":0.1,"i":3,"m":[[1.0,0.0],[0.0,1.0]],'
                    '"n":null,"s":"x","t":[1,2.5]}')
    assert canonical_json({"x": 0.1}) == '{"x":0.1}'
    assert canonical_json({"x": (1,)}) == canonical_json({"x": [1]})


@pytest.mark.parametrize("bad", [{"s": {1, 2}}, {"o": object()}, {1: "int key"}, {"p": Path(".")}])
def test_canonical_json_rejects_unsupported(bad: dict) -> None:
    with pytest.raises(TypeError):
        canonical_json(bad)


def test_canonical_json_rejects_nan_unless_asked() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert canonical_json({"x": np.inf}, nonfinite_as_null=True) == '{"x":null}'


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _json, max_size=5))
def test_canonical_json_round_trips_and_ignores_order(config: dict) -> None:
    text = canonical_json(config)
    assert json.loads(text) == config
    assert canonical_json(dict(reversed(list(config.items())))) == text


# -- opening -----------------------------------------------------------------------------
def test_duckdb_files_carry_magic_at_offset_8(tmp_path: Path) -> None:
    path = tmp_path / "plain.duckdb"
    duckdb.connect(str(path)).close()
    assert path.read_bytes()[8:12] == b"DUCK"


def test_create_makes_parents_and_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.duckdb"
    with Store.open(path) as store:
        assert store.directory == path.parent
        _begin(store)
        store.finish_run("r1", series=_series(), verdict={"verdict": "holds"}, seconds=1.0)
    with Store.open(path, create=False) as store:
        assert store.status("r1") == "done"
        assert store.verdict("r1")["verdict"] == "holds"
        assert len(store.series("r1")["value"]) == 6
    con = duckdb.connect(str(path), read_only=True)
    meta = dict(con.execute("SELECT key, value FROM learnmech_meta").fetchall())
    con.close()
    assert meta["format"] == "learnmech-store"
    assert meta["schema_version"] == str(SCHEMA_VERSION) == "1"


def test_missing_path_without_create_is_refused_and_not_made(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "none.duckdb"
    for kwargs in ({"create": False}, {"read_only": True}):
        with pytest.raises(NotAStoreError, match="does not exist"):
            Store.open(path, **kwargs)
    Store.check(path)  # a missing path is not an error for check
    assert not path.parent.exists()


@pytest.mark.parametrize("content", [b"name,loss\n1,0.5\n" * 10, b""])
def test_non_duckdb_file_is_refused_and_unchanged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "results.csv"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(path)
    for attempt in (Store.open, Store.check):
        with pytest.raises(NotAStoreError) as info:
            attempt(path)
        message = str(info.value)
        assert message.startswith(f"--store: {path} ") and "\n" not in message
        assert "not a learnmech store" in message
    assert _snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_plain_duckdb_file_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT 42 AS x")
    con.close()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(path)
    for attempt in (Store.open, Store.check):
        with pytest.raises(NotAStoreError, match="DuckDB file but not a learnmech store"):
            attempt(path)
    assert _snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.duckdb"]


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAStoreError, match=r"^--store: .* is a directory"):
        Store.open(tmp_path)


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE learnmech_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(path)


def test_busy_store_names_path_and_pid(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    Store.open(path).close()
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for attempt in (Store.open, Store.check):
            with pytest.raises(StoreBusyError) as info:
                attempt(path)
            message = str(info.value)
            assert message.startswith(f"--store: {path} ") and "\n" not in message
            assert "another learnmech process" in message
            assert f"pid {holder.pid}" in message
    finally:
        holder.kill()
        holder.wait()
    Store.open(path).close()  # usable again once the holder is gone


# -- writing and reading -----------------------------------------------------------------
@pytest.fixture()
def store(tmp_path: Path):
    with Store.open(tmp_path / "store.duckdb") as s:
        yield s


def test_finish_run_round_trips_exactly(store: Store) -> None:
    series = _series(12)
    series["value"][:3] = [np.nan, np.inf, -0.0]  # a diverged run is data
    verdict = {"verdict": "fails", "metric": "rel_err", "value": np.float64(0.25),
               "threshold": 0.1, "reason": "too far", "details": {"k": (1, 2), "v": np.nan}}
    _begin(store)
    assert store.status("r1") == "running" and store.verdict("r1") is None
    store.finish_run("r1", series=series, verdict=verdict, seconds=2.5,
                     artifacts=[("figure", "fig/r1.png"), ("kernel", "arrays/r1.npz")])
    got, want = store.series("r1"), _sorted(series)
    for key in want:
        assert np.array_equal(got[key], want[key], equal_nan=key in ("step", "value")), key
    assert got["source"].dtype.kind == "U" and got["member"].dtype.kind == "i"
    assert store.verdict("r1") == {"verdict": "fails", "metric": "rel_err", "value": 0.25,
                                   "threshold": 0.1, "reason": "too far",
                                   "details": {"k": [1, 2], "v": None}}
    assert store.artifacts("r1") == [("figure", "fig/r1.png"), ("kernel", "arrays/r1.npz")]
    record = store.get_run("r1")
    assert isinstance(record, RunRecord) and record.status == "done" and record.seconds == 2.5
    assert record.config == {"lr": 0.1, "seeds": [0, 1], "width": 64}
    assert record.versions == {"numpy": "2"} and record.finished_at >= record.started_at


def test_series_filters(store: Store) -> None:
    _begin(store)
    store.finish_run("r1", series=_series(12), verdict=None, seconds=1)
    theory = store.series("r1", source="theory")
    assert set(theory["source"]) == {"theory"} and len(theory["value"]) == 6
    loss = store.series("r1", source="experiment", name="loss")
    assert set(loss["name"]) == {"loss"} and set(loss["source"]) == {"experiment"}
    assert np.all(np.diff(loss["member"]) >= 0)
    assert len(store.series("nope")["value"]) == 0


def test_begin_run_clears_an_unfinished_attempt(store: Store) -> None:
    assert _begin(store) == "new"
    store._db.execute("INSERT INTO verdicts (run_id, verdict) VALUES ('r1', 'holds')")  # a half-written attempt
    first = store.get_run("r1").started_at
    assert _begin(store) == "new"
    assert store.status("r1") == "running" and store.verdict("r1") is None
    record = store.get_run("r1")
    assert record.finished_at is None and record.seconds is None and record.started_at >= first


def test_redo_of_a_done_run_keeps_it_until_the_new_result_replaces_it(store: Store) -> None:
    _begin(store)
    store.finish_run("r1", series=_series(), verdict={"verdict": "holds", "value": 1.0},
                     artifacts=[("figure", "a.png")], seconds=1)
    assert _begin(store) == "redo"  # --force: the finished result stays readable while the redo runs
    assert store.status("r1") == "done" and store.verdict("r1")["value"] == 1.0
    assert len(store.series("r1")["value"]) == 6 and store.artifacts("r1") == [("figure", "a.png")]
    assert store.get_run("r1").redo["status"] == "running"
    store.finish_run("r1", series=_series(12), verdict={"verdict": "fails", "value": 2.0},
                     artifacts=[("figure", "b.png")], seconds=2)
    record = store.get_run("r1")
    assert record.status == "done" and record.redo is None and record.seconds == 2
    assert store.verdict("r1")["value"] == 2.0 and len(store.series("r1")["value"]) == 12
    assert store.artifacts("r1") == [("figure", "b.png")]
    _begin(store)
    store.fail_run("r1", error="Traceback: boom", seconds=3)  # a failed redo keeps the earlier result
    record = store.get_run("r1")
    assert record.status == "done" and store.verdict("r1")["value"] == 2.0
    assert record.redo["status"] == "failed" and "boom" in record.redo["error"]


def test_run_left_running_is_reported_running(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store.open(path) as store:
        _begin(store)
    with Store.open(path) as store:
        assert store.status("r1") == "running"
        assert store.get_run("r1").finished_at is None


def test_finish_run_rolls_back_on_failure(store: Store, monkeypatch) -> None:
    _begin(store)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Store, "_insert_verdict", staticmethod(boom))
    with pytest.raises(RuntimeError, match="disk full"):
        store.finish_run("r1", series=_series(), verdict={"verdict": "holds"},
                         artifacts=[("figure", "a.png")], seconds=1)
    assert store.status("r1") == "running"
    assert len(store.series("r1")["value"]) == 0 and store.artifacts("r1") == []
    monkeypatch.undo()
    store.finish_run("r1", series=_series(), verdict={"verdict": "holds"}, seconds=1)
    assert store.status("r1") == "done" and len(store.series("r1")["value"]) == 6


@pytest.mark.parametrize("change, match", [
    (lambda s: s.pop("step"), "series keys"),
    (lambda s: s.update(extra=s["step"]), "series keys"),
    (lambda s: s.update(step=s["step"][:-1]), "equal lengths"),
    (lambda s: s.update(source=np.array(["theory", "exp"] * 3)), "one of theory, experiment"),
    (lambda s: s.update(value=s["value"].reshape(2, 3)), "1-D"),
    (lambda s: s.update(member=np.full(6, 0.5)), "member"),
    (lambda s: s.update(step=np.array(["a"] * 6)), "step"),
    (lambda s: s.update(name=np.array(["x", None] * 3, dtype=object)), "None"),
])
def test_bad_series_is_refused_before_writing(store: Store, change, match: str) -> None:
    series = _series()
    change(series)
    _begin(store)
    with pytest.raises(ValueError, match=match):
        store.finish_run("r1", series=series, verdict={"verdict": "holds"}, seconds=1)
    assert store.status("r1") == "running" and store.verdict("r1") is None


@pytest.mark.parametrize("verdict", [{"verdict": "maybe"}, {"metric": "x"},
                                     {"verdict": "holds", "color": "red"},
                                     {"verdict": "holds", "value": "high"},
                                     {"verdict": "holds", "details": [1]},
                                     {"verdict": "holds", "details": {"o": object()}}])
def test_bad_verdict_is_refused_before_writing(store: Store, verdict: dict) -> None:
    _begin(store)
    with pytest.raises(ValueError):
        store.finish_run("r1", series=_series(), verdict=verdict, seconds=1)
    assert store.status("r1") == "running" and len(store.series("r1")["value"]) == 0


def test_finish_and_fail_need_a_running_run(store: Store) -> None:
    with pytest.raises(KeyError):
        store.finish_run("ghost", series=None, verdict=None, seconds=0)
    _begin(store)
    store.fail_run("r1", error="Traceback: boom", seconds=0.5)
    record = store.get_run("r1")
    assert (record.status, record.error, record.seconds) == ("failed", "Traceback: boom", 0.5)
    with pytest.raises(StoreError, match="not running"):
        store.finish_run("r1", series=None, verdict=None, seconds=0)
    with pytest.raises(ValueError):
        store.begin_run("../evil", claim="c", preset=None, config={}, versions={})


def test_runs_newest_first_and_by_claim(store: Store) -> None:
    for rid, claim in (("a1", "c1"), ("b2", "c2"), ("c3", "c1")):
        _begin(store, rid, claim)
        time.sleep(0.002)
    assert [r.run_id for r in store.runs()] == ["c3", "b2", "a1"]
    assert [r.run_id for r in store.runs("c1")] == ["c3", "a1"]
    assert store.runs("none") == []


def test_get_run_by_prefix(store: Store) -> None:
    for rid in ("abc123", "abc456", "abd789", "ab"):
        _begin(store, rid)
    assert store.get_run("abd").run_id == "abd789"
    assert store.get_run("ab").run_id == "ab"  # an exact id wins over longer ones
    with pytest.raises(UnknownRunError, match="ambiguous.*abc123, abc456") as info:
        store.get_run("abc")
    assert isinstance(info.value, KeyError)
    for missing in ("zzz", ""):
        with pytest.raises(KeyError):
            store.get_run(missing)


def test_export_parquet(store: Store, tmp_path: Path) -> None:
    _begin(store)
    store.finish_run("r1", series=_series(), verdict=None, seconds=1)
    out = store.export_parquet("r1", tmp_path / "export")
    assert out == tmp_path / "export" / "r1-series.parquet"
    table = pq.read_table(out)
    assert table.column_names == ["source", "name", "member", "step", "value"]
    assert np.array_equal(table.column("value").to_numpy(), store.series("r1")["value"])
    with pytest.raises(KeyError):
        store.export_parquet("ghost", tmp_path)


def test_read_only_and_closed_store(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store.open(path) as store:
        _begin(store)
    with Store.open(path, read_only=True) as ro:
        assert ro.status("r1") == "running"
        with pytest.raises(StoreError, match="read-only"):
            _begin(ro, "r2")
    with pytest.raises(StoreError, match="closed"):
        ro.status("r1")


def test_large_series_insert(store: Store) -> None:
    n = 200_000
    series = {"source": np.where(np.arange(n) < n // 2, "theory", "experiment"),
              "name": np.array(["loss"] * n), "member": np.arange(n) % 8,
              "step": np.arange(n, dtype=float) // 8, "value": np.linspace(0, 1, n)}
    _begin(store)
    store.finish_run("r1", series=series, verdict={"verdict": "holds"}, seconds=1)
    got = store.series("r1", source="theory")
    assert len(got["value"]) == n // 2
    assert np.array_equal(np.sort(got["value"]), series["value"][: n // 2])
