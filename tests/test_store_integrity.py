"""No result lost, no healthy store refused: the store's integrity, redos, export and I/O failures.

Each test reproduces a defect found by a user on the previous release and checks the behaviour that
replaced it:
* a healthy store was refused as "truncated" after a few runs (a file-length heuristic; DuckDB trims
  free blocks at checkpoints) -- now DuckDB judges, by reading every table;
* an interrupted ``--force`` redo deleted the finished run -- now the redo is written beside it and
  swapped in when it finishes (SIGINT and SIGKILL sent to the redo running in a real subprocess; the runs
  before and after it, which test nothing about a process, run in this one);
* ``export`` replaced each Parquet file on its own -- now the set is swapped in whole (a kill injected
  at every step of it);
* a FIFO given as the store hung; a store with a dropped column gave a BinderException; rich markup
  in a path raised MarkupError; a full disk gave tracebacks.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from learnmech.cli import app
from learnmech.store import Store, files
from learnmech.store import store as store_module
from test_kill_resume import _slow_claim_module

runner = CliRunner()
HERE = Path(__file__).parent


def _series(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"source": np.full(n, "experiment"), "name": np.full(n, "loss"), "member": np.zeros(n, np.int32),
            "step": np.arange(n, dtype=np.float64), "value": rng.standard_normal(n)}


def _write_run(path: Path, rid: str, n: int, seed: int, value: float = 1.0) -> None:
    with Store.open(path) as store:
        store.begin_run(rid, claim="x.y", preset="quick", config={"seed": seed}, versions={})
        store.finish_run(rid, series=_series(n, seed), verdict={"verdict": "holds", "value": value}, seconds=1.0)


def test_a_store_whose_file_duckdb_trimmed_is_still_opened(tmp_path):
    """Runs of very different sizes, one process each in turn: DuckDB's checkpoints shrink the file.

    Before: the second or third reopen was refused ("truncated: N bytes where its header promises M").
    """
    path = tmp_path / "s.duckdb"
    sizes = [1_000, 150_000, 2_000, 90_000, 500, 120_000, 3_000, 60_000, 10_000, 200_000, 700, 40_000]
    shrunk = 0
    for i, n in enumerate(sizes):
        before = path.stat().st_size if path.exists() else 0
        _write_run(path, f"r{i}", n, seed=i)
        with Store.open(path) as store:  # a redo of the biggest run frees its blocks
            store.begin_run("r1", claim="x.y", preset="quick", config={"seed": 1}, versions={})
            store.finish_run("r1", series=_series(10, 1), verdict={"verdict": "holds"}, seconds=1.0)
        shrunk += path.stat().st_size < before
    with duckdb.connect(str(path), read_only=True) as con:  # the condition the old heuristic misjudged
        (block, total), = con.execute("SELECT block_size, total_blocks FROM pragma_database_size()").fetchall()
    assert path.stat().st_size < 3 * 4096 + block * total  # the header counts blocks the file no longer has
    with Store.open(path, read_only=True) as store:
        assert len(store.runs()) == len(sizes) and {r.status for r in store.runs()} == {"done"}
        assert len(store.series("r9")["value"]) == 200_000
    result = runner.invoke(app, ["runs", "--store", str(path)])
    assert result.exit_code == 0 and result.stdout.count(" x.y ") == len(sizes), result.output


def test_four_checks_in_a_row_on_one_store(tmp_path, monkeypatch):
    """The user's repro: four ``check dln.modes --set teacher_seed=N`` on one store, then ``runs``."""
    monkeypatch.chdir(tmp_path)
    for seed in (0, 1, 7, 8):
        result = runner.invoke(app, ["check", "dln.modes", "--store", "s.duckdb", "--seeds", "1", "--set", "points=20",
                                     "--set", f"teacher_seed={seed}"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["runs", "--store", "s.duckdb"])
    assert result.exit_code == 0 and result.stdout.count("dln.modes") == 4, result.output


# -- an interrupted --force redo ----------------------------------------------------------------
def _slow_claim(store: Path, seconds: float, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "slow_claim.py"), str(store), str(seconds), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _slow_claim_here(capsys, store: Path, seconds: float, force: bool = False) -> list[str]:
    """``python tests/slow_claim.py STORE SECONDS [--force]`` run in this process; the lines it printed."""
    module = sys.modules.get("learnmech_test_slow_claim") or _slow_claim_module()
    capsys.readouterr()
    module.main(str(store), seconds, force)
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_redo_keeps_the_finished_result(tmp_path, capsys, sig):
    """Only the interrupted redo needs a process of its own (to be sent ``sig``); the store it leaves is then
    read, skipped and redone here, through the same ``slow_claim.main`` as the subprocess runs."""
    path = tmp_path / "s.duckdb"
    assert _slow_claim_here(capsys, path, 0.0)[-1] == "done 1.0"
    with Store.open(path, read_only=True) as store:
        (rec,) = store.runs()
        verdict, series, figures = store.verdict(rec.run_id), store.series(rec.run_id), store.artifacts(rec.run_id)
    redo = _slow_claim(path, 60.0, "--force")
    assert redo.stdout.readline().strip() == "measuring"  # the redo is under way: interrupt it
    redo.send_signal(sig)
    redo.communicate(timeout=60)
    assert redo.returncode != 0
    with Store.open(path, read_only=True) as store:
        (after,) = store.runs()
        assert after.status == "done" and after.redo["status"] == "running"
        assert store.verdict(rec.run_id) == verdict and verdict["value"] == 1.0
        got = store.series(rec.run_id)
        assert all(np.array_equal(got[k], series[k], equal_nan=got[k].dtype.kind == "f") for k in series)  # NaN: a scalar's step
        assert store.artifacts(rec.run_id) == figures and all(Path(p).exists() for _, p in figures)
    result = runner.invoke(app, ["runs", "--store", str(path)])
    assert "done (redo unfinished)" in result.stdout, result.output
    # without --force: skipped, and the earlier result kept
    assert _slow_claim_here(capsys, path, 0.0)[-1] == "skipped 1.0"
    # a redo that finishes replaces the result in one step (0.25: exact in binary, so the printed value is 1.25)
    assert _slow_claim_here(capsys, path, 0.25, force=True)[-1] == "done 1.25"
    with Store.open(path, read_only=True) as store:
        (final,) = store.runs()
        assert final.redo is None and store.verdict(rec.run_id)["value"] == 1.25
        arts = store.artifacts(rec.run_id)
        assert arts != figures and all(Path(p).exists() for _, p in arts)
    assert not any(Path(p).exists() for _, p in figures)  # the replaced figures are gone
    print(f"{sig.name}: redo exited with {redo.returncode}")  # after the runs here, whose output capsys reads


# -- export swapped in whole ---------------------------------------------------------------------
class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs, no ``except Exception`` catches it."""


def _export_set(folder: Path) -> dict[str, list] | None:
    if not folder.exists():
        return None
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.parquet" for t in store_module.EXPORT_TABLES)
    return {t: pq.read_table(folder / f"{t}.parquet").to_pylist() for t in ("runs", "verdicts")}


def _kill_at(monkeypatch, step: int) -> list[str]:
    """Make the ``step``-th file operation of an export raise Killed; return the names of the operations seen."""
    seen: list[str] = []
    for owner, name in ((pq, "write_table"), (files.os, "rename"), (files, "_exchange"), (files.shutil, "rmtree")):
        real = getattr(owner, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            seen.append(_name)
            if len(seen) == step:
                raise Killed(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)
    return seen


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_kill_at_any_step_of_export_leaves_the_old_set_or_the_new(tmp_path, monkeypatch, exchange):
    path, target = tmp_path / "s.duckdb", tmp_path / "out"
    _write_run(path, "r1", 100, seed=1, value=1.0)
    with Store.open(path, read_only=True) as store:
        store.export_tables(target)
    old = _export_set(target)
    shutil.copytree(target, tmp_path / "old-copy")
    _write_run(path, "r2", 100, seed=2, value=2.0)
    with Store.open(path, read_only=True) as store:
        store.export_tables(tmp_path / "reference")
    new = _export_set(tmp_path / "reference")
    assert old != new
    if not exchange:
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    step, outcomes = 1, []
    while True:
        with monkeypatch.context() as m:
            seen = _kill_at(m, step)
            try:
                with Store.open(path, read_only=True) as store:
                    store.export_tables(target)
                finished = True
            except Killed:
                finished = False
        state = _export_set(target)
        # with the exchange target always holds a whole set; with two renames it may be missing between them
        assert state in ((old, new) if exchange else (old, new, None)), (step, seen)
        outcomes.append((seen[-1], "old" if state == old else "new" if state == new else "missing"))
        if state is None:  # the old set waits beside, whole; the next export puts a whole set back
            (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.old-")]
            assert _export_set(aside) == old
        if finished:
            break
        with Store.open(path, read_only=True) as store:  # the next export cleans up and completes
            store.export_tables(target)
        assert _export_set(target) == new
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
        shutil.rmtree(target)  # back to the old set for the next kill point
        shutil.copytree(tmp_path / "old-copy", target)
        step += 1
    print("kill points and what out/ held after each:", outcomes)
    assert step >= 6  # four tables written, the swap, the clean-up


def test_export_refuses_a_folder_with_other_files(tmp_path):
    path, target = tmp_path / "s.duckdb", tmp_path / "mine"
    _write_run(path, "r1", 10, seed=1)
    target.mkdir()
    (target / "notes.txt").write_text("keep me\n")
    result = runner.invoke(app, ["export", "--parquet", str(target), "--store", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: --parquet: {target} holds other files (notes.txt)")
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


# -- stores that are not healthy, and paths that are not files -------------------------------------------
def test_a_fifo_as_store_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.duckdb"
    os.mkfifo(fifo)
    box = {}
    worker = threading.Thread(target=lambda: box.update(r=runner.invoke(app, ["runs", "--store", str(fifo)])),
                              daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader so that the test process can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO as the store blocked")
    result = box["r"]
    assert result.exit_code == 2 and "is not a regular file (a FIFO, socket or device)" in result.stderr


def test_a_store_with_a_dropped_column_is_one_line(tmp_path):
    path = tmp_path / "s.duckdb"
    _write_run(path, "r1", 10, seed=1)
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE verdicts DROP COLUMN reason")
    for args in (["runs"], ["show", "r1"], ["report"], ["check", "dln.modes"]):
        result = runner.invoke(app, [*args, "--store", str(path)])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.strip() == f"error: --store: {path} has a verdicts table without the column(s) reason " \
                                         "(a damaged store)", result.stderr


def test_a_store_of_the_earlier_schema_is_read_and_upgraded(tmp_path):
    path = tmp_path / "s.duckdb"
    _write_run(path, "r1", 10, seed=1)
    with duckdb.connect(str(path)) as con:  # as learnmech 0.2.0 wrote it: no redos table
        con.execute("DROP TABLE redos")
    with Store.open(path, read_only=True) as store:
        assert [r.redo for r in store.runs()] == [None] and store.redo("r1") is None
    with Store.open(path) as store:
        assert store.begin_run("r1", claim="x.y", preset="quick", config={"seed": 1}, versions={}) == "redo"


def test_markup_and_control_characters_in_paths_are_printed_as_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = "a[/]b[red]/x.duckdb"
    result = runner.invoke(app, ["check", "dln.modes", "--store", store, "--seeds", "1", "--set", "points=20"])
    assert result.exit_code == 0, result.output
    assert "report: a[/]b[red]/report/index.html" in result.stdout
    result = runner.invoke(app, ["runs", "--store", "evil\x1b[2J\nname.duckdb"])
    assert result.exit_code == 2
    assert result.stderr == "error: --store: evil\\x1b[2J\\nname.duckdb does not exist (run `learnmech atlas " \
                            "--quick` first)\n"


# -- the machine fails: no space, no permission ----------------------------------------------------
def test_no_space_while_writing_a_run_is_one_line_and_the_run_stays_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("learnmech.store.files.write_atomic", full)
    result = runner.invoke(app, ["check", "dln.modes", "--store", "s.duckdb", "--seeds", "1", "--set", "points=20"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: learnmech-results/figures/") or line.startswith("error: figures/"), line
    assert "running dln.modes and storing its results failed: No space left on device [ENOSPC]" in line
    with Store.open("s.duckdb", read_only=True) as store:
        assert [r.status for r in store.runs()] == ["running"] and store.verdict(store.runs()[0].run_id) is None


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_disk_in_check_report_and_export(tmp_path, monkeypatch):
    """A 2 MB tmpfs (needs root and mount; skipped elsewhere): every command says one line, nothing lies."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        monkeypatch.chdir(disk)
        with open("filler", "wb") as fh:  # leave about 100 kB free
            fh.write(b"\0" * (2 * 1024 * 1024 - 100 * 1024))
        outcomes = {}
        for args in (["check", "dln.modes", "--store", "s.duckdb", "--seeds", "1", "--set", "points=20"],
                     ["report", "--store", "s.duckdb"], ["export", "--parquet", "out", "--store", "s.duckdb"]):
            result = runner.invoke(app, args)
            lines = result.stderr.strip().splitlines()
            outcomes[args[0]] = (result.exit_code, lines[-1] if lines else "")
            assert result.exit_code == 2 and lines[-1].startswith("error: "), (args, result.output)
            assert "Traceback" not in result.output
        print(outcomes)
        if Path("s.duckdb").exists() and Path("s.duckdb").stat().st_size:
            os.remove("filler")
            with Store.open("s.duckdb", read_only=True) as store:  # never falsely done
                assert all(r.status != "done" for r in store.runs())
    finally:
        monkeypatch.chdir(tmp_path)
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def test_show_in_a_folder_that_cannot_be_written_still_shows_the_run(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    _write_run(path, "r1", 10, seed=1)

    def denied(path, data):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("learnmech.report.html.write_atomic", denied)
    result = runner.invoke(app, ["show", "r1", "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert "page: not written (Permission denied while writing" in result.stdout
    result = runner.invoke(app, ["report", "--store", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("writing the atlas page failed: Permission denied [EACCES]"), result.stderr
