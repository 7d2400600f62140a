"""`learnmech fit scaling`: a known law recovered through the CLI, CSV and Parquet, and bad input.

The fits here use a small synthetic table (an exact Chinchilla law on a 6 x 6 design) so that the
CLI's plumbing is tested in seconds; the fitter itself is tested against the published tables in
tests/test_theory_scaling.py.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from learnmech.cli import app
from learnmech.theory.scaling_forms import predict

runner = CliRunner()
TRUE = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _table(rows: int = 6) -> dict[str, np.ndarray]:
    """An exact Chinchilla law on a rows x rows (N, FLOP) grid; columns named as a user might."""
    n, c = np.meshgrid(np.geomspace(1e7, 3e9, rows), np.geomspace(1e18, 1e21, rows))
    n, c = n.ravel(), c.ravel()
    return {"params": n, "compute": c, "val_loss": predict("chinchilla", TRUE, n=n, d=c / (6 * n))}


def _write_csv(path, table) -> None:
    cols = list(table)
    lines = [",".join(cols)] + [",".join(repr(float(table[c][i])) for c in cols) for i in range(len(table[cols[0]]))]
    path.write_text("\n".join(lines) + "\n")


ARGS = ["--n", "params", "--flops", "compute", "--loss", "val_loss"]


def test_json_recovers_a_known_law_and_writes_the_figure(workdir):
    _write_csv(workdir / "runs.csv", _table())
    result = runner.invoke(app, ["fit", "scaling", "runs.csv", *ARGS, "--holdout-above", "2e20", "--json",
                                 "--out", "figs"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for name, value in TRUE.items():  # noise-free data: the optimum is the truth (rel. 1e-4)
        assert data["params"][name] == pytest.approx(value, rel=1e-4), name
    assert data["n_points"] == 36 and data["converged"]
    # the frontier's D/N is the closed form G^-2 (C/6)^(b - a) of the true law (Hoffmann et al. eq. 4)
    g = (TRUE["alpha"] * TRUE["A"] / (TRUE["beta"] * TRUE["B"])) ** (1 / (TRUE["alpha"] + TRUE["beta"]))
    row = data["frontier"][0]
    b_minus_a = (TRUE["alpha"] - TRUE["beta"]) / (TRUE["alpha"] + TRUE["beta"])
    assert row["tokens_per_parameter"] == pytest.approx(g**-2 * (row["flops"] / 6) ** b_minus_a, rel=1e-3)
    assert data["holdout"]["n_test"] == 12 and data["holdout"]["max_abs_rel_error"] < 1e-4  # exact law extrapolates
    assert sorted(p.name for p in (workdir / "figs").iterdir()) == ["scaling-chinchilla.png", "scaling-chinchilla.svg"]


def test_parquet_input_and_the_printed_table(workdir):
    table = _table()
    _write_csv(workdir / "runs.csv", table)
    duckdb.sql(f"COPY (SELECT * FROM read_csv_auto('{workdir / 'runs.csv'}')) TO '{workdir / 'runs.parquet'}' "
               "(FORMAT PARQUET)")
    result = runner.invoke(app, ["fit", "scaling", "runs.parquet", *ARGS, "--out", "figs"])
    assert result.exit_code == 0, result.output
    for needle in ("chinchilla fit of runs.parquet (36 points)", "alpha", "compute-optimal allocation",
                   "figure: figs/scaling-chinchilla.png"):
        assert needle in result.stdout, needle


@pytest.mark.parametrize(
    ("args", "table_edit", "needle"),
    [
        (["--form", "chinchila"], None, "--form: unknown form 'chinchila'; allowed: chinchilla"),
        (["--n", "size"], None, "--n: no column 'size' in runs.csv"),
        ([], lambda t: t["val_loss"].__setitem__(3, -1.0), "--loss: column 'val_loss' must be positive and finite"),
        ([], lambda t: t["params"].__setitem__(0, 0.0), "--n: column 'params' must be positive"),
        (["--holdout-above", "1e30"], None, "--holdout-above: 1e+30 leaves 36 points to fit"),
        (["--bootstrap", "-1"], None, "--bootstrap: must be an integer >= 0"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(workdir, args, table_edit, needle):
    table = _table()
    if table_edit:
        table_edit(table)
    _write_csv(workdir / "runs.csv", table)
    base = dict(zip(ARGS[::2], ARGS[1::2]))
    base.update(dict(zip(args[::2], args[1::2])))
    result = runner.invoke(app, ["fit", "scaling", "runs.csv", *[v for kv in base.items() for v in kv],
                                 "--out", "figs"])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (workdir / "figs").exists()


def test_too_few_points_and_missing_inputs(workdir):
    _write_csv(workdir / "small.csv", {k: v[:5] for k, v in _table().items()})
    result = runner.invoke(app, ["fit", "scaling", "small.csv", *ARGS])
    assert result.exit_code == 2 and "FILE: 5 rows; the form chinchilla has 5 parameters and needs at least 6" \
        in result.stderr
    result = runner.invoke(app, ["fit", "scaling", "small.csv", "--n", "params", "--loss", "val_loss"])
    assert result.exit_code == 2 and "--d: the form chinchilla needs --d COL or --flops COL" in result.stderr
    result = runner.invoke(app, ["fit", "scaling", "missing.csv", *ARGS])
    assert result.exit_code == 2 and "FILE: no such file" in result.stderr
    (workdir / "runs.txt").write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["fit", "scaling", "runs.txt", *ARGS])
    assert result.exit_code == 2 and "FILE: expected a .csv or .parquet file" in result.stderr
