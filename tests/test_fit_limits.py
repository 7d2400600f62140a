"""Bounds of the scaling-law fitter and its table reader: memory per solver call, large tables,
chunked bootstrap counts, literal file names, one-line parse errors, degenerate laws in the figure.

References used below:
- the full objective's optimum: scipy's BFGS on an independent numpy Huber objective (the one of
  tests/test_fit_scaling.py) with a gradient derived by hand;
- the bootstrap counts: numpy's ``Generator.multinomial`` drawn in one ``(n_boot, points)`` call;
- the published tables: DuckDB's ``read_csv_auto``, the reader learnmech used before.
Everything is seeded; tolerances are stated on the line that uses them.
"""

from __future__ import annotations

import os
import threading
import warnings

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.optimize

from learnmech.data.tables import read_table, tables_dir
from learnmech.report.figures import figure_bytes
from learnmech.report.scaling import MAX_DRAWN, plot_scaling_fit
from learnmech.fit import ScalingLaw
from learnmech.fit import scaling_solver as sf  # the solver calls the fits make
from learnmech.fit.scaling_fit import (
    ELEMENT_BUDGET,
    SUBSAMPLE_ROWS,
    SUBSAMPLE_SEED,
    bootstrap_fit,
    fit_batch,
    fit_form,
    lanes_per_call,
)
from learnmech.theory.scaling_forms import get_form, predict
from learnmech.theory.scaling_frontier import compute_optimal, frontier_problem

TRUE = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}
# 16 starts of the Hoffmann grid around the basin (a, b in {5, 10}, e in {0, 0.5}, alpha = beta in {0.5, 1}):
# the default 4,500 would cost a minute; the subsample and polish logic is the same.
FEW_STARTS = np.array([[a, b, e, s, s] for a in (5.0, 10.0) for b in (5.0, 10.0)
                       for e in (0.0, 0.5) for s in (0.5, 1.0)])  # (16, 5)


def _numpy_objective(n, d, loss, delta=1e-3):
    """Independent numpy Huber objective of Besiroglu et al. (log-sum-exp, Huber on log-loss, summed)."""
    ln, ld, ly = np.log(n), np.log(d), np.log(loss)

    def j(p):
        a, b, e, alpha, beta = p
        r = np.logaddexp(np.logaddexp(a - alpha * ln, b - beta * ld), e) - ly
        ab = np.abs(r)
        return float(np.sum(np.where(ab <= delta, 0.5 * r * r, delta * (ab - 0.5 * delta))))

    def grad(p):  # by hand: Huber' = clip(r, +-delta); d lse / d t_k = softmax weight of term k
        a, b, e, alpha, beta = p
        terms = np.stack([a - alpha * ln, b - beta * ld, np.full_like(ln, e)])  # (3, points)
        lse = np.logaddexp(np.logaddexp(terms[0], terms[1]), terms[2])
        psi, w = np.clip(lse - ly, -delta, delta), np.exp(terms - lse)
        return np.array([psi @ w[0], psi @ w[1], psi @ w[2], -psi @ (w[0] * ln), -psi @ (w[1] * ld)])

    j.grad = grad
    return j


def _spy_solver(monkeypatch):
    """Record the (lanes, padded points) of every solver call, then run the real solver."""
    shapes, real = [], sf.lane_solver

    def recording(form, reduction):
        solver = real(form, reduction)

        def call(theta0, logs, log_y, w, delta, n_iter):
            shapes.append(tuple(log_y.shape))
            return solver(theta0, logs, log_y, w, delta, n_iter)

        return call

    monkeypatch.setattr(sf, "lane_solver", recording)
    return shapes


# ---------------------------------------------------------------- memory per solver call


@pytest.mark.parametrize("rows", [36, 240, 4096, 8192, 20_000, 10**5, 10**6, 10**7])
@pytest.mark.parametrize("lanes", [1, 16, 256, 4500])
def test_lanes_per_call_keeps_lanes_times_points_under_the_budget(rows, lanes):
    bucket = max(sf.MIN_POINTS, 1 << (rows - 1).bit_length())  # points padded to a power of two
    chunk = lanes_per_call(lanes, rows)
    assert chunk & (chunk - 1) == 0  # a power of two: a handful of compiled shapes
    assert chunk * bucket <= max(ELEMENT_BUDGET, bucket)  # one lane of a >budget table is the floor
    if bucket <= ELEMENT_BUDGET // sf.LANE_CHUNK:  # small tables: the chunk of before (bit-identical fits)
        assert chunk == min(sf.LANE_CHUNK, max(8, 1 << (lanes - 1).bit_length()))


def test_a_million_rows_runs_two_lanes_per_call():
    # 10^6 points pad to 2^20; 2^21 elements leave 2 lanes: 2 x 2^20 per call instead of 256 x 2^20
    # (the 2^28 elements x ~230 bytes of the old fixed LANE_CHUNK = 256: the reported 33.5 GiB ask)
    assert lanes_per_call(4500, 10**6) == 2
    assert ELEMENT_BUDGET == 2**21


# ---------------------------------------------------------------- large tables: subsample, then all points


@pytest.fixture(scope="module")
def large_table():
    """20,000 runs of a Chinchilla law with 2% log-normal noise (seed 0)."""
    rng = np.random.default_rng(0)
    rows = 20_000
    n, c = 10 ** rng.uniform(7, 10, rows), 10 ** rng.uniform(18, 22, rows)
    d = c / (6 * n)
    loss = predict("chinchilla", TRUE, n=n, d=d) * np.exp(0.02 * rng.standard_normal(rows))
    return n, d, loss


def test_large_table_is_screened_on_a_subsample_and_polished_on_all_points(large_table, monkeypatch):
    n, d, loss = large_table
    shapes = _spy_solver(monkeypatch)
    calls = []
    fit = fit_form("chinchilla", {"n": n, "d": d}, loss, starts=FEW_STARTS,
                   progress=lambda label, done, total: calls.append((label, done, total)))
    # every solver call ran on the subsample's SUBSAMPLE_ROWS points, within the element budget
    assert shapes and all(points == SUBSAMPLE_ROWS and lanes * points <= ELEMENT_BUDGET for lanes, points in shapes)
    assert fit.n_points == 20_000 and fit.converged
    # reference: scipy BFGS on the independent numpy objective of all points, from the truth
    j = _numpy_objective(n, d, loss)
    ref = scipy.optimize.minimize(j, get_form("chinchilla").from_natural(TRUE), jac=j.grad, method="BFGS",
                                  options={"gtol": 1e-10, "maxiter": 10_000})
    assert np.max(np.abs(j.grad(ref.x))) < 1e-8  # the reference itself converged
    assert fit.objective == pytest.approx(ref.fun, rel=1e-10)
    for name, value in get_form("chinchilla").to_natural(ref.x).items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6), name  # same optimum
    # the full objective is stationary at the result, not at the subsample's optimum; that optimum
    # from the same independent reference (scipy BFGS on the numpy objective of the subsample, started
    # at the full optimum; it agrees with fit_form's on the subsample to 1e-10 in the coordinates, checked once)
    keep = np.sort(np.random.default_rng(SUBSAMPLE_SEED).choice(n.size, SUBSAMPLE_ROWS, replace=False))
    j_sub = _numpy_objective(n[keep], d[keep], loss[keep])
    sub = scipy.optimize.minimize(j_sub, ref.x, jac=j_sub.grad, method="BFGS",
                                  options={"gtol": 1e-10, "maxiter": 10_000})
    assert np.max(np.abs(j_sub.grad(sub.x))) < 1e-8  # the subsample's optimum itself
    g_fit, g_sub = (np.max(np.abs(j.grad(np.asarray(x)))) for x in (fit.coords, sub.x))
    assert g_fit < 1e-7 < 1e-1 < g_sub  # the subsample's own optimum is far from the full one
    # 2% noise on 20,000 runs: the known law is recovered to about a percent
    assert fit.params["alpha"] == pytest.approx(TRUE["alpha"], abs=0.01)
    assert fit.params["beta"] == pytest.approx(TRUE["beta"], abs=0.01)
    assert fit.params["E"] == pytest.approx(TRUE["E"], rel=0.01)
    # progress: each stage ends at its total; 16 starts, 13 still distinct after 75 iterations (3 had
    # joined a better lane's descent), then the polish of the 4 distinct ones left after the refine
    ends = {label: (done, total) for label, done, total in calls}
    assert all(done == total for done, total in ends.values())
    assert [total for label, (_, total) in ends.items() if label.startswith("screening")] == [16, 16, 13]
    assert ends["polishing the best 4 on all 20000 points"] == (4, 4)


def test_small_tables_keep_the_whole_table_in_every_stage(monkeypatch):
    shapes = _spy_solver(monkeypatch)
    n, d = np.meshgrid(np.geomspace(1e7, 3e9, 6), np.geomspace(1e9, 1e12, 6))
    fit = fit_form("chinchilla", {"n": n.ravel(), "d": d.ravel()},
                   predict("chinchilla", TRUE, n=n.ravel(), d=d.ravel()), starts=FEW_STARTS)
    assert {points for _, points in shapes} == {64}  # 36 points padded to MIN_POINTS, no subsample
    assert fit.params["alpha"] == pytest.approx(TRUE["alpha"], rel=1e-6)  # exact data: the truth


# ---------------------------------------------------------------- bootstrap counts per call


def test_bootstrap_counts_per_call_are_one_multinomial_draw(monkeypatch):
    n, d = (v.ravel() for v in np.meshgrid(np.geomspace(1e7, 3e9, 6), np.geomspace(1e9, 1e12, 6)))
    rng = np.random.default_rng(5)
    loss = predict("chinchilla", TRUE, n=n, d=d) * np.exp(0.02 * rng.standard_normal(36))
    fit = fit_form("chinchilla", {"n": n, "d": d}, loss, starts=FEW_STARTS)
    # under a budget of 8 lanes x 64 points, 8 resamples per call (8, 8, 4 + 4 padding lanes)
    monkeypatch.setattr(sf, "ELEMENT_BUDGET", 8 * 64)
    # reference: all 20 count vectors drawn at once (the whole (20, 36) matrix), then refitted
    counts = np.random.default_rng(11).multinomial(36, np.full(36, 1 / 36), size=20)  # (20, 36)
    ref = fit_batch("chinchilla", {"n": n, "d": d}, loss, np.asarray(fit.coords), weights=counts, n_iter=300)
    shapes = _spy_solver(monkeypatch)
    boot = bootstrap_fit("chinchilla", {"n": n, "d": d}, loss, n_boot=20, seed=11, fit=fit)
    assert shapes == [(8, 64)] * 3  # never more than one call's counts at a time
    assert boot.n_failed == 0
    for name in TRUE:  # the same resamples, hence the same refits, bit for bit
        np.testing.assert_array_equal(boot.samples[name], ref[name], err_msg=name)


# ---------------------------------------------------------------- frontier of degenerate laws


@pytest.mark.parametrize(("params", "reason"), [
    ({"A": 400.0, "B": 1500.0, "alpha": -0.2, "beta": 0.36}, "alpha = -0.2 is not > 0"),  # loss rising in N
    ({"A": 0.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}, "A = 0 is not > 0"),  # loss flat in N
    ({"A": 400.0, "B": float("nan"), "alpha": 0.34, "beta": 0.36}, "B = nan is not > 0"),
    ({"A": 400.0, "B": float("inf"), "alpha": 0.34, "beta": 0.36}, "B = inf is not > 0"),
])
def test_a_law_without_a_frontier_says_why(params, reason):
    assert frontier_problem(params).startswith(reason)
    with pytest.raises(ValueError, match=f"^params: {reason}"):
        compute_optimal(params, 1e21)
    assert frontier_problem(TRUE) == ""


def _law(params):
    law = ScalingLaw()
    law.params_, law.bootstrap_ = dict(params), None  # a fitted state without fitting: the figure only reads it
    return law


def _scatter_sizes(fig) -> list[int]:
    return [len(c.get_offsets()) for ax in fig.axes for c in ax.collections if hasattr(c, "get_offsets")]


def test_figure_of_a_law_without_frontier_and_of_data_near_the_largest_double():
    n, d = (v.ravel() for v in np.meshgrid(np.geomspace(1e7, 3e9, 6), np.geomspace(1e9, 1e12, 6)))
    rising = TRUE | {"alpha": -0.2, "A": 1e-3}
    loss = predict("chinchilla", rising, n=n, d=d)
    fig = plot_scaling_fit(_law(rising), {"n": n, "d": d}, loss)
    assert "no compute-optimal frontier" in fig.axes[2].texts[0].get_text()
    assert figure_bytes(fig)["png"][:8] == b"\x89PNG\r\n\x1a\n"
    # N up to 1e305, D up to 100, 6 N D up to 6e307 (finite, as the CLI requires): the frontier's grid
    # (two decades beyond the data) and the log axes' margins would leave float64
    big_n, small_d = (v.ravel() for v in np.meshgrid(np.geomspace(1e290, 1e305, 6), np.geomspace(1, 100, 6)))
    loss = 1.7 + 1.5 / small_d**0.36 + 400 * np.exp(-0.34 * np.log(big_n))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning either, let alone a traceback
        fig = plot_scaling_fit(_law(TRUE), {"n": big_n, "d": small_d}, loss)
        assert figure_bytes(fig)["svg"].startswith(b"<?xml")


def test_figure_draws_a_bounded_sample_of_a_large_table():
    rng = np.random.default_rng(3)
    n, d = 10 ** rng.uniform(7, 10, 50_000), 10 ** rng.uniform(9, 12, 50_000)
    loss = predict("chinchilla", TRUE, n=n, d=d)
    fig = plot_scaling_fit(_law(TRUE), {"n": n, "d": d}, loss)
    assert max(_scatter_sizes(fig)) == MAX_DRAWN < n.size
    assert f"{MAX_DRAWN:,} of {n.size:,} points drawn" in fig._suptitle.get_text()
    figure_bytes(fig)  # closes it


# ---------------------------------------------------------------- read_table: literal names, one-line errors


def _csv(path, header, rows):
    path.write_text(header + "\n" + "".join(rows))
    return path


def test_names_are_literal_paths(tmp_path):
    _csv(tmp_path / "glob1.csv", "n,loss", ["1,2\n"])
    _csv(tmp_path / "glob2.csv", "n,loss", ["3,4\n", "5,6\n"])
    _csv(tmp_path / "glob*.csv", "n,loss", ["7,8\n"])  # DuckDB read all three files (4 rows)
    assert read_table(tmp_path / "glob*.csv")["n"].tolist() == [7]
    _csv(tmp_path / "a$b\\c[1].csv", "n,loss", ["9,10\n"])  # DuckDB: a traceback
    assert read_table(tmp_path / "a$b\\c[1].csv")["loss"].tolist() == [10]
    pq.write_table(pa.table({"n": [1.5, 2.5]}), tmp_path / "r$n*.parquet")
    assert read_table(tmp_path / "r$n*.parquet")["n"].tolist() == [1.5, 2.5]


def test_a_fifo_or_folder_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():  # blocked in open(): unblock it with a writer before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_table blocked on a FIFO")
    assert outcome == [f"file: {fifo} is not a regular file (a FIFO); give a .csv or .parquet file"]
    (tmp_path / "dir.csv").mkdir()
    assert "is not a regular file (a folder)" in _error_of(tmp_path / "dir.csv")


def _error_of(path) -> str:
    with pytest.raises(ValueError) as info:
        read_table(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def _rows(count, bad_at, bad_row):
    return [bad_row if i == bad_at else f"{i},{0.5 + i}\n" for i in range(count)]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("ragged.csv", _rows(60_000, 50_000, "7,1.5,9\n"),
     "could not be read: row 50001: expected 2 comma-separated fields, got 3: '7,1.5,9'"),
    ("short.csv", _rows(10, 3, "7\n"), "could not be read: row 4: expected 2 comma-separated fields, got 1: '7'"),
    ("dup.csv", "n,n\n1,2\n", "has two columns named 'n' (columns 1 and 2); every column needs its own name"),
    ("empty.csv", "", "is empty; expected a header line and one row per line"),
])
def test_parse_errors_are_one_line_naming_row_and_what_was_expected(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else "n,loss\n" + "".join(content))
    assert _error_of(path) == f"file: {path} {expected}"


def test_bytes_that_are_not_utf8_name_row_and_column(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"n,name\n" + b"".join(b"%d,x\n" % i for i in range(50_000)) + b"3,caf\xe9\n")
    assert _error_of(path) == (f"file: {path} could not be read: row 50001, column 'name': expected UTF-8 text, "
                               "got the bytes b'caf\\xe9'")


def test_text_late_in_a_numeric_column_makes_it_text(tmp_path):
    # Arrow types a CSV column from all of its values: one word at row 50,001 makes the column text,
    # which the CLI then refuses naming that row (tests/test_cli_fit.py)
    path = _csv(tmp_path / "late.csv", "n,loss", _rows(60_000, 50_000, "7,abc\n"))
    table = read_table(path)
    assert table["n"].dtype == np.int64 and table["loss"].dtype == object and table["loss"][50_000] == "abc"


def test_published_tables_read_as_duckdb_read_them():
    for name in ("chinchilla_svg_extracted_data.csv", "datablations_c4_runs_182.csv",
                 "porian2024_isoflop_points.csv"):
        path = tables_dir() / name
        con = duckdb.connect()
        try:
            ref = con.execute("SELECT * FROM read_csv_auto(?)", [str(path)]).fetchnumpy()
        finally:
            con.close()
        ours = read_table(path)
        assert list(ours) == list(ref), name
        for column, values in ref.items():
            mine = ours[column]
            if isinstance(values, np.ma.MaskedArray):  # NULL: NaN in numbers, None in text (read_table's contract)
                values = values.astype(np.float64).filled(np.nan) if values.dtype.kind in "fiu" \
                    else np.asarray(values.astype(object).filled(None))
            assert mine.dtype == values.dtype, (name, column)
            if mine.dtype == object:
                assert mine.tolist() == values.tolist(), (name, column)
            else:
                np.testing.assert_array_equal(mine, values, err_msg=f"{name}:{column}")
