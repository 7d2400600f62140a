"""Bad input at the command line: one clear line, exit code 2, nothing written."""

from __future__ import annotations

import hashlib

import duckdb
import pytest
from typer.testing import CliRunner

from learnmech.cli import app

runner = CliRunner()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "args, needle",
    [
        (["check", "nosuch"], "claim: unknown claim 'nosuch'; allowed: dln.modes"),
        (["check", "dln.modes", "--set", "eta=-1"], "--set eta: Input should be greater than 0 (got -1)"),
        (["check", "dln.modes", "--set", "nosuchfield=3"], "--set nosuchfield: dln.modes has no such field; allowed: seeds"),
        (["check", "dln.modes", "--set", "s=[1,2]"], "--set s: must be positive and strictly decreasing"),
        (["check", "dln.modes", "--set", "eta"], "--set: expected field=value, got 'eta'"),
        (["check", "dln.depth", "--set", "depths=[2,2]"], "--set depths: must be distinct integers"),
        (["check", "dln.modes", "--seeds", "0"], "--set seeds: Input should be greater than or equal to 1"),
        (["atlas", "--only", "zzz"], "--only: no claim matches 'zzz'"),
        (["show", "abc"], "--store: learnmech-results/learnmech.duckdb does not exist"),
        (["runs"], "--store: learnmech-results/learnmech.duckdb does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(workdir, args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert list(workdir.iterdir()) == []  # no store, no figures, nothing


def test_store_that_is_not_a_learnmech_file_is_refused_untouched(workdir):
    text = workdir / "notes.db"
    text.write_text("not a database\n")
    plain = workdir / "plain.duckdb"
    con = duckdb.connect(str(plain))
    con.execute("CREATE TABLE t (a INTEGER)")
    con.close()
    before = {p.name: _digest(p) for p in (text, plain)}
    for path, needle in ((text, "not a DuckDB file"), (plain, "not a learnmech store")):
        for args in (["check", "dln.modes", "--store", str(path)], ["atlas", "--store", str(path)]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2
            assert result.stderr.startswith(f"error: --store: {path}") and needle in result.stderr
    assert {p.name: _digest(p) for p in (text, plain)} == before
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.db", "plain.duckdb"]


def test_list_names_every_claim(workdir):
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for claim_id in ("dln.modes", "dln.depth", "dln.saddle-to-saddle"):
        assert claim_id in result.stdout
