"""The bad-input matrix of `learnmech sweep` (and of the store it is given), and `learnmech export`/`report`.

Each mistake gives one line naming the field (`error: ...`), exit code 2, and leaves the store
byte-for-byte as it was (or not created).
"""

from __future__ import annotations

import hashlib
import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from learnmech.cli import app
from learnmech.store import Store

runner = CliRunner()
GOOD = 'claim = "dln.modes"\n[grid]\nseeds = [2, 3]\n'


def _digest(path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _store_with_a_run(path):
    with Store.open(path) as db:
        db.begin_run("r1", claim="dln.modes", preset="quick", config={"seeds": 2}, versions={"learnmech": "x"})
        n = 5000
        db.finish_run("r1", series={"source": np.array(["theory"] * n), "name": np.array(["c"] * n),
                                    "member": np.zeros(n, np.int32), "step": np.arange(n, dtype=float),
                                    "value": np.linspace(0, 1, n)},
                      verdict={"verdict": "holds", "metric": "m", "value": 0.5, "threshold": 0.1, "reason": "r",
                               "details": {"a": 1.0}},
                      artifacts=[("figure", "figures/x.png")], seconds=1.5)


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.toml").write_text(GOOD)
    _store_with_a_run(tmp_path / "real.duckdb")
    plain = duckdb.connect(str(tmp_path / "plain.duckdb"))
    plain.execute("CREATE TABLE t (a INTEGER)")
    plain.close()
    shutil.copy(tmp_path / "real.duckdb", tmp_path / "cut.duckdb")
    with open(tmp_path / "cut.duckdb", "r+b") as fh:
        fh.truncate((tmp_path / "cut.duckdb").stat().st_size // 2)
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


CASES = [  # (spec text or None for good.toml, extra arguments, what the one line must say)
    ("claim = [\n", [], "not valid TOML"),
    ('claim = "dln.modes"\n[grid]\nseeds = [2]\n[extra]\na = 1\n', [], "extra: unknown key; allowed: claim, preset"),
    ('claim = "dln.nope"\n[grid]\nseeds = [2]\n', [], "claim: unknown claim 'dln.nope'; allowed: dln.modes"),
    ('claim = "dln.modes"\n[grid]\nnosuch = [1, 2]\n', [], "grid.nosuch (point 1 of 2): dln.modes has no such field"),
    ('claim = "dln.modes"\n[grid]\neta = ["fast"]\n', [], "grid.eta (point 1 of 1): Input should be a valid number"),
    ('claim = "dln.modes"\n[grid]\nseeds = []\n', [], "grid.seeds: must be a non-empty list of values"),
    ('claim = "dln.modes"\n', [], "no grid or zip axes"),
    (None, ["--store", "afile/sub/store.duckdb"], "--store: afile/sub/store.duckdb cannot be created"),
    (None, ["--store", "plain.duckdb"], "--store: plain.duckdb is a DuckDB file but not a learnmech store"),
    (None, ["--store", "cut.duckdb"], "--store: cut.duckdb is damaged or truncated"),
    (None, ["--store", "good.toml"], "--store: good.toml is not a learnmech store (not a DuckDB file)"),
    (None, ["--backend", "spark"], "--backend: must be one of local, ray, got 'spark'"),
    (None, ["--address", "auto"], "--address: only with --backend ray"),
    (None, ["--backend", "ray", "--address", "nohost"], "--address: must be auto or HOST:PORT"),
    (None, ["--workers", "0"], "--workers: must be an integer >= 1, got 0"),
    (None, ["--backend", "ray", "--address", "127.0.0.1:1"], "--address: no Ray cluster answers at 127.0.0.1:1"),
]


@pytest.mark.parametrize("text, extra, needle", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input_matrix(work, text, extra, needle):
    spec = work / "bad.toml"
    if text is not None:
        spec.write_text(text)
    else:
        spec = work / "good.toml"
    before = _tree(work)
    result = runner.invoke(app, ["sweep", str(spec.name), *extra])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert _tree(work) == before  # nothing written, no store created, every store unchanged


def test_missing_spec_file(work):
    result = runner.invoke(app, ["sweep", "nosuch.yaml"])
    assert result.exit_code == 2 and "SPEC nosuch.yaml: no such file" in result.stderr


def test_truncated_store_is_refused_by_every_command(work):
    before = _digest(work / "cut.duckdb")
    for args in (["atlas", "--store", "cut.duckdb"], ["runs", "--store", "cut.duckdb"],
                 ["report", "--store", "cut.duckdb"], ["export", "--parquet", "out", "--store", "cut.duckdb"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "is damaged or truncated" in result.stderr, (args, result.output)
    assert _digest(work / "cut.duckdb") == before and not (work / "out").exists()


def test_export_writes_the_tables_as_parquet(work):
    result = runner.invoke(app, ["export", "--parquet", "exported", "--store", "real.duckdb"])
    assert result.exit_code == 0, result.output
    runs, series = pq.read_table(work / "exported/runs.parquet"), pq.read_table(work / "exported/series.parquet")
    verdicts = pq.read_table(work / "exported/verdicts.parquet").to_pylist()
    assert runs.column("run_id").to_pylist() == ["r1"] and runs.column("status").to_pylist() == ["done"]
    assert series.num_rows == 5000
    np.testing.assert_array_equal(series.column("value").to_numpy(), np.linspace(0, 1, 5000))
    assert verdicts[0]["verdict"] == "holds" and verdicts[0]["value"] == 0.5
    assert pq.read_table(work / "exported/artifacts.parquet").column("path").to_pylist() == ["figures/x.png"]
    assert not list((work / "exported").glob(".*partial"))
    bad = runner.invoke(app, ["export", "--parquet", "afile", "--store", "real.duckdb"])
    assert bad.exit_code == 2 and "--parquet: afile exists and is not a folder" in bad.stderr


def test_report_and_show_reach_the_run_page(work):
    result = runner.invoke(app, ["report", "--store", "real.duckdb"])
    assert result.exit_code == 0 and "report: " in result.stdout
    assert (work / "report/index.html").exists() and (work / "report/runs/r1.html").exists()
    shown = runner.invoke(app, ["show", "r1", "--store", "real.duckdb"])
    assert shown.exit_code == 0 and "page: report/runs/r1.html" in shown.stdout
