"""The bad-input matrix of the README: every row is a command a user might type, run here for real.

``python tests/bad_input_matrix.py`` runs every case in a fresh folder and prints the README's
table (input, exit code, the line printed); tests/test_bad_input_matrix.py runs the same cases and
checks that each row printed is in the README as it stands, so the table cannot go stale.

Each case is ``(input as shown, argv, line)``: the command runs in a folder prepared by
:func:`prepare` (the files the inputs name), must exit with code 2, print exactly one line on
stderr -- ``line``, or a line starting with ``line[:-1]`` when ``line`` ends in an ellipsis (for
messages that quote DuckDB's text, which names absolute paths) -- and write nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import duckdb
import numpy as np

ELLIPSIS = "…"


def _alias_bomb() -> str:
    """The "billion laughs" in 605 bytes of YAML: 9 levels of 10 aliases each."""
    lines = ["claim: dln.modes", "l0: &l0 [" + ", ".join(['"lol"'] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join(lines + ["grid: {s: *l8, seeds: *l8, eta: *l8}"]) + "\n"


def _store(path: Path) -> None:
    from learnmech.store import Store

    with Store.open(path) as store:
        store.begin_run("r1", claim="dln.modes", preset="quick", config={}, versions={})
        n = 20_000
        store.finish_run("r1", series={"source": np.full(n, "experiment"), "name": np.full(n, "loss"),
                                       "member": np.zeros(n, np.int32), "step": np.arange(n, dtype=float),
                                       "value": np.linspace(0, 1, n)},
                         verdict={"verdict": "holds"}, seconds=1.0)


def _runs_csv(path: Path, loss=None) -> None:
    n, c = np.meshgrid(np.geomspace(1e7, 3e9, 6), np.geomspace(1e18, 1e21, 6))
    n, c = n.ravel(), c.ravel()
    d = c / (6 * n)
    loss = 1.7 + 400.0 / n**0.34 + 1500.0 / d**0.36 if loss is None else loss
    path.write_text("n,flops,loss\n" + "".join(f"{a!r},{b!r},{v!r}\n" for a, b, v in zip(n, c, loss)))


def prepare(folder: Path) -> None:
    """Write the files the cases name into ``folder``."""
    (folder / "notes.txt").write_text("not a database\n")
    with duckdb.connect(str(folder / "plain.duckdb")) as con:
        con.execute("CREATE TABLE t (a INTEGER)")
    _store(folder / "real.duckdb")
    shutil.copy(folder / "real.duckdb", folder / "cut.duckdb")
    with open(folder / "cut.duckdb", "r+b") as fh:
        fh.truncate((folder / "cut.duckdb").stat().st_size // 2)
    shutil.copy(folder / "real.duckdb", folder / "dropped.duckdb")
    with duckdb.connect(str(folder / "dropped.duckdb")) as con:
        con.execute("ALTER TABLE verdicts DROP COLUMN reason")
    os.mkfifo(folder / "pipe.duckdb")
    (folder / "export").mkdir()
    (folder / "export" / "mine.txt").write_text("a file of the user's\n")
    (folder / "nan.toml").write_text('claim = "dln.modes"\n[grid]\neta = [0.01, nan]\n')
    (folder / "inf.yaml").write_text("claim: dln.modes\nzip: {eta: [0.01, .inf], u0: [0.001, 0.002]}\n")
    (folder / "bomb.yaml").write_text(_alias_bomb())
    axes = ["teacher_seed", "seeds", "points", "n_samples", "hidden", "d_in", "d_out"]
    (folder / "big.toml").write_text('claim = "dln.modes"\n[grid]\n'
                                     + "".join(f"{a} = {list(range(20, 30))}\n" for a in axes))
    (folder / "deep.toml").write_text('claim = "dln.modes"\n[grid]\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n")
    _runs_csv(folder / "runs.csv")
    (folder / "glob[ab].csv").write_text("n,flops,loss\n1,2\n")
    (folder / "ragged.csv").write_text("n,flops,loss\n1e8,1e19,3.0\n2e8,2e19\n")
    (folder / "latin1.csv").write_bytes("n,flops,loss\n1e8,1e19,3.0 \xe9\n".encode("latin-1"))
    (folder / "dup.csv").write_text("n,flops,loss,loss\n1e8,1e19,3.0,3.1\n")
    os.mkfifo(folder / "fifo.csv")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 40)
    (folder / "huge.csv").write_text("n,d,loss\n" + "".join(f"{float(n)!r},1e10,3.0\n"
                                                              for n in np.geomspace(1e300, 1e305, 36)))


CASES: list[tuple[str, list[str], str]] = [
    # claims and their configs
    ("check nosuch", ["check", "nosuch"],
     "error: claim: unknown claim 'nosuch'; allowed: " + ELLIPSIS),
    ("check dln.modes --set eta=-1", ["check", "dln.modes", "--set", "eta=-1"],
     "error: --set eta: Input should be greater than 0 (got -1)"),
    ("check dln.modes --set 's=[NaN]'", ["check", "dln.modes", "--set", "s=[NaN]"],
     "error: --set s: must be finite numbers (got [NaN])"),
    ("check dln.modes --set eta=Infinity", ["check", "dln.modes", "--set", "eta=Infinity"],
     "error: --set eta: must be finite numbers (got Infinity)"),
    ("check dln.modes --set teacher_seed=18446744073709551616",
     ["check", "dln.modes", "--set", "teacher_seed=18446744073709551616"],
     "error: --set teacher_seed: a seed must be an integer from 0 to 2**32 - 1 = 4294967295 "
     "(got 18446744073709551616)"),
    ("check dln.modes --set 'x=[[[...100,000 levels...]]]'",
     ["check", "dln.modes", "--set", "x=" + "[" * 100_000 + "]" * 100_000],
     "error: --set x: nested too deeply, at most 32 levels of lists and tables (got " + ELLIPSIS),
    ("check dln.modes --set nosuch=3", ["check", "dln.modes", "--set", "nosuch=3"],
     "error: --set nosuch: dln.modes has no such field; allowed: " + ELLIPSIS),
    ("check dln.modes --seed -1", ["check", "dln.modes", "--seed", "-1"],
     "error: No such option: --seed (Possible options: --seeds, --set, --store) (see learnmech check --help)"),
    ("check", ["check"], "error: Missing argument 'CLAIM'. (see learnmech check --help)"),
    # stores
    ("runs --store notes.txt", ["runs", "--store", "notes.txt"],
     "error: --store: notes.txt is not a learnmech store (not a DuckDB file)"),
    ("runs --store plain.duckdb", ["runs", "--store", "plain.duckdb"],
     "error: --store: plain.duckdb is a DuckDB file but not a learnmech store (no learnmech_meta marker)"),
    ("runs --store cut.duckdb (cut to half its length)", ["runs", "--store", "cut.duckdb"],
     "error: --store: cut.duckdb is damaged or truncated: DuckDB cannot read it (IO Error: Could not read enough "
     "bytes from file " + ELLIPSIS),
    ("runs --store dropped.duckdb (a column dropped)", ["runs", "--store", "dropped.duckdb"],
     "error: --store: dropped.duckdb has a verdicts table without the column(s) reason (a damaged store)"),
    ("runs --store pipe.duckdb (a FIFO)", ["runs", "--store", "pipe.duckdb"],
     "error: --store: pipe.duckdb is not a regular file (a FIFO, socket or device), not a learnmech store"),
    ("runs --store $'evil\\x1b[2J.duckdb'", ["runs", "--store", "evil\x1b[2J.duckdb"],
     "error: --store: evil\\x1b[2J.duckdb does not exist (run `learnmech atlas --quick` first)"),
    ("export --parquet export --store real.duckdb (export/ holds mine.txt)",
     ["export", "--parquet", "export", "--store", "real.duckdb"],
     "error: --parquet: export holds other files (mine.txt); choose a new or empty folder"),
    # sweeps
    ("sweep nan.toml (eta = [0.01, nan])", ["sweep", "nan.toml"],
     "error: grid.eta (point 2 of 2): must be finite numbers (got nan)"),
    ("sweep inf.yaml (eta: [0.01, .inf])", ["sweep", "inf.yaml"],
     "error: zip.eta (point 2 of 2): must be finite numbers (got inf)"),
    ("sweep bomb.yaml (605-byte alias bomb)", ["sweep", "bomb.yaml"],
     "error: SPEC bomb.yaml: line 3: YAML aliases (*l0) are not allowed; write the values out"),
    ("sweep big.toml (7 axes of 10 values)", ["sweep", "big.toml"],
     "error: SPEC big.toml: grid: 10,000,000 points (10 x 10 x 10 x 10 x 10 x 10 x 10) exceed the limit of "
     "10,000 points per sweep (MAX_POINTS); split the sweep"),
    ("sweep deep.toml (100,000 nested lists)", ["sweep", "deep.toml"],
     "error: SPEC deep.toml: nested too deeply, at most 32 levels of lists and tables"),
    # fit scaling
    ("fit scaling dup.csv ... (two columns named loss)", ["fit", "scaling", "dup.csv", "--n", "n", "--flops", "flops"],
     "error: FILE: dup.csv has two columns named 'loss' (columns 3 and 4); every column needs its own name"),
    ("fit scaling ragged.csv ... (a row with 2 fields)", ["fit", "scaling", "ragged.csv", "--n", "n", "--flops", "flops"],
     "error: FILE: ragged.csv could not be read: row 2: expected 3 comma-separated fields, got 2: '2e8,2e19'"),
    ("fit scaling latin1.csv ... (a Latin-1 byte)", ["fit", "scaling", "latin1.csv", "--n", "n", "--flops", "flops"],
     "error: FILE: latin1.csv could not be read: row 1, column 'loss': expected UTF-8 text, got the bytes "
     "b'3.0 \\xe9'"),
    ("fit scaling 'glob[ab].csv' ... (read as named, not as a pattern)",
     ["fit", "scaling", "glob[ab].csv", "--n", "n", "--flops", "flops"],
     "error: FILE: glob[ab].csv could not be read: row 1: expected 3 comma-separated fields, got 2: '1,2'"),
    ("fit scaling fifo.csv ... (a FIFO)", ["fit", "scaling", "fifo.csv", "--n", "n", "--flops", "flops"],
     "error: FILE: fifo.csv is not a regular file (a FIFO); give a .csv or .parquet file"),
    ("fit scaling huge.csv --n n --d d (N up to 1e305)", ["fit", "scaling", "huge.csv", "--n", "n", "--d", "d"],
     "error: --d: the compute C = 6 N D must be positive and finite in float64; 36 row(s) are not (first at "
     "row 1: N = 1e+300, D = 1e+10 give inf)"),
    ("fit scaling runs.csv ... --bootstrap 1e8", ["fit", "scaling", "runs.csv", "--n", "n", "--flops", "flops",
                                                  "--bootstrap", "1e8"],
     "error: --bootstrap: must be 0 (no intervals) or an integer from 2 to 10000, got '1e8'"),
    ("fit scaling runs.csv ... --seed -1", ["fit", "scaling", "runs.csv", "--n", "n", "--flops", "flops",
                                            "--seed", "-1"],
     "error: --seed: must be an integer from 0 to 4294967295, got -1"),
    # transfer
    ("transfer --widths 32,1000000000", ["transfer", "--widths", "32,1000000000"],
     "error: --widths: width 1000000000 needs about 1.49e+12 GiB for 2 hidden layers x 40 members "
     "(10 learning rates x 4 seeds); this machine has " + ELLIPSIS),
    ("transfer --lrs 2^-12..2^-3:1e-9", ["transfer", "--lrs", "2^-12..2^-3:1e-9"],
     "error: --lrs: at most 64 learning rates (MAX_LEARNING_RATES), got 9000000001 from '2^-12..2^-3:1e-9'"),
    ("transfer --steps abc", ["transfer", "--steps", "abc"],
     "error: Invalid value for '--steps': Input should be a valid integer, unable to parse string as an integer "
     "(see learnmech transfer --help)"),
    # lm: a missing, empty, binary or too-small corpus; a budget too small for one step
    ("lm transfer --corpus missing.txt", ["lm", "transfer", "--corpus", "missing.txt"],
     "error: --corpus: file not found: " + ELLIPSIS),
    ("lm transfer --corpus empty.txt", ["lm", "transfer", "--corpus", "empty.txt"], "error: --corpus: " + ELLIPSIS),
    ("lm scaling --corpus image.bin", ["lm", "scaling", "--corpus", "image.bin"], "error: --corpus: " + ELLIPSIS),
    ("lm transfer --corpus notes.txt (15 bytes)", ["lm", "transfer", "--corpus", "notes.txt"],
     "error: --corpus: " + ELLIPSIS),
    ("lm transfer --widths 64,32", ["lm", "transfer", "--widths", "64,32"],
     "error: --widths: must be positive and strictly increasing, got '64,32'"),
    ("lm transfer --parameterization ntk", ["lm", "transfer", "--parameterization", "ntk"],
     "error: --parameterization: must be mup, sp or both, got 'ntk'"),
    ("lm transfer --seq-len 0", ["lm", "transfer", "--seq-len", "0"],
     "error: --seq-len: must be an integer from 1 to 2048 (MAX_SEQ_LEN), got 0"),
    ("lm scaling --budgets 1e3,3e3,1e4", ["lm", "scaling", "--budgets", "1e3,3e3,1e4"],
     "error: --budgets: " + ELLIPSIS),
]


def run_case(argv: list[str]):
    """Run one case in the current folder; return (exit code, stderr lines, stdout)."""
    from typer.testing import CliRunner

    from learnmech.cli import app

    result = CliRunner().invoke(app, argv)
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()], result.stdout


def matches(line: str, expected: str) -> bool:
    """``line`` is ``expected``, or starts with it when it ends in an ellipsis."""
    return line.startswith(expected[:-1]) if expected.endswith(ELLIPSIS) else line == expected


def _code(text: str) -> str:
    """``text`` as a Markdown code span (double backticks when it holds one; pipes escaped for a table)."""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def row(shown: str, code: int, line: str) -> str:
    """One README table row: the input, the exit code, the line printed."""
    return f"| {_code(shown)} | {code} | {_code(line)} |"


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        prepare(Path(folder))
        print("| input | exit code | the line printed |\n|---|---|---|")
        for shown, argv, expected in CASES:
            code, lines, _ = run_case(argv)
            line = lines[0] if len(lines) == 1 else " / ".join(lines)
            if expected.endswith(ELLIPSIS) and matches(line, expected):
                line = expected  # the stable part, as the README shows it
            print(row(shown, code, line))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
