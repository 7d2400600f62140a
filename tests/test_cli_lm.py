"""``learnmech lm transfer`` and ``learnmech lm scaling``: bad input refused in one line, tiny real runs.

Every refusal must exit 2 with exactly one stderr line naming the option and leave ``--out`` uncreated.
The real runs train byte-level transformers of width 8-16 for a few steps on a few KB of text written
here; their printed tables are checked against numbers recomputed from the CSV they wrote (numpy).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from learnmech.cli_common import GuardedGroup
from learnmech.cli_lm import lm_app

ROOT = typer.Typer(cls=GuardedGroup, add_completion=False)
ROOT.add_typer(lm_app, name="lm")  # as learnmech.cli mounts it
TINY = ["--layers", "1", "--heads", "2", "--seq-len", "16", "--batch", "4", "--seeds", "1"]


def _text(n_lines: int = 120) -> str:
    """A few KB of varied English-like text (seeded), so that a byte model has something to learn."""
    rng = np.random.default_rng(0)
    words = ["the", "model", "reads", "bytes", "of", "text", "and", "predicts", "next", "one", "a", "loss", "falls"]
    return "".join(" ".join(rng.choice(words, size=8)) + ".\n" for _ in range(n_lines))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    (root / "notes.txt").write_text(_text())
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(b"some text\x00\x01\x02 more" * 50)
    (root / "short.txt").write_text("too short")
    (root / "a-file").write_text("not a folder")
    return root


def invoke(argv: list[str]):
    return CliRunner().invoke(ROOT, argv)


def _refused(folder: Path, argv: list[str], expected: str) -> str:
    """Run ``argv``; assert exit 2, one stderr line starting ``error: expected``, and no ``--out`` folder."""
    out_dir = folder / "never"
    result = invoke([*argv, "--out", str(out_dir)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), lines
    assert not out_dir.exists()
    return lines[0]


TRANSFER_REFUSALS = [
    (["--corpus", "{f}/missing.txt"], "--corpus: file not found: "),
    (["--corpus", "{f}/empty.txt"], "--corpus: "),
    (["--corpus", "{f}/binary.txt"], "--corpus: "),
    (["--corpus", "{f}/short.txt"], "--corpus: "),
    (["--corpus", "{f}/notes.txt", "--widths", "64,32"], "--widths: must be positive and strictly increasing"),
    (["--corpus", "{f}/notes.txt", "--widths", "32"], "--widths: need at least 2 widths"),
    (["--corpus", "{f}/notes.txt", "--parameterization", "ntk"], "--parameterization: must be mup, sp or both"),
    (["--corpus", "{f}/notes.txt", "--seq-len", "0"], "--seq-len: must be an integer from 1 to 2048"),
    (["--corpus", "{f}/notes.txt", "--seq-len", "100000"], "--seq-len: must be an integer from 1 to 2048"),
    (["--corpus", "{f}/notes.txt", "--batch", "0"], "--batch: must be an integer from 1 to 4096"),
    (["--corpus", "{f}/notes.txt", "--batch", "4000"], "--batch: the training text of notes.txt holds "),
    (["--corpus", "{f}/notes.txt", "--heads", "3"], "--heads: 3 heads must divide every width"),
    (["--corpus", "{f}/notes.txt", "--lr-min", "-4", "--lr-max", "-3"], "--lr-max: need at least 3 learning rates"),
    (["--corpus", "{f}/notes.txt", "--lr-step", "1e-9"], "--lr-step: at most 64 learning rates"),
    (["--corpus", "{f}/notes.txt", "--lr-min", "nan"], "--lr-min: log2 of the learning rate"),
    (["--corpus", "{f}/notes.txt", "--steps", "0"], "--steps: must be an integer from 1 to"),
    (["--corpus", "{f}/notes.txt", "--widths", "32,2000000000"], "--widths: width 2000000000 needs about"),
]


@pytest.mark.parametrize("argv, expected", TRANSFER_REFUSALS)
def test_transfer_refuses_bad_input(folder, argv, expected):
    _refused(folder, ["lm", "transfer", *(a.format(f=folder) for a in argv)], expected)


def test_corpus_refusals_say_why(folder):
    """The corpus lines name the problem (texts of learnmech.data.text.CorpusError, prefix --corpus)."""
    for name, why in (("empty.txt", "is empty"), ("binary.txt", "is binary (NUL byte at offset 9)"),
                      ("short.txt", "has 9 bytes; at least 68 are needed")):
        line = _refused(folder, ["lm", "transfer", "--corpus", str(folder / name), "--seq-len", "16"], "--corpus: ")
        assert why in line, line


def test_out_that_is_a_file_is_refused(folder):
    result = invoke(["lm", "transfer", "--corpus", str(folder / "notes.txt"), "--out", str(folder / "a-file")])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: --out: {folder / 'a-file'} exists and is not a folder"


def _parabola_log2_eta(lrs: np.ndarray, mean: np.ndarray) -> tuple[float, bool]:
    """Independent eta*: numpy's quadratic through the grid minimum and its neighbours in (log2 eta, ln L)."""
    x, k = np.log2(lrs), int(np.argmin(np.where(np.isfinite(mean), mean, np.inf)))
    if k in (0, lrs.size - 1):
        return float(x[k]), True
    a, b, _ = np.polyfit(x[k - 1:k + 2], np.log(mean[k - 1:k + 2]), 2)
    return float(-b / (2 * a)), False


@pytest.fixture(scope="module")
def transfer_run(folder):
    out_dir = folder / "transfer"
    result = invoke(["lm", "transfer", "--corpus", str(folder / "notes.txt"), "--widths", "8,16", "--lr-min", "-9",
                     "--lr-max", "-3", "--lr-step", "2", "--steps", "8", *TINY, "--out", str(out_dir)])
    assert result.exit_code == 0, result.output
    with open(out_dir / "lm-transfer.csv") as fh:
        rows = list(csv.DictReader(fh))
    return result, out_dir, rows


def test_transfer_writes_figure_and_csv(transfer_run):
    result, out_dir, rows = transfer_run
    assert {p.name for p in out_dir.iterdir()} == {"lm-transfer.png", "lm-transfer.svg", "lm-transfer.csv"}
    assert len(rows) == 2 * 2 * 4  # parameterisations x widths x learning rates (2^-9, -7, -5, -3) x 1 seed
    loss = np.array([float(r["val_loss_nats"]) for r in rows])
    assert np.all(np.isfinite(loss)) and np.all(loss < 1.2 * math.log(256))  # near or below the uniform 5.545 nats
    bpb = np.array([float(r["val_bits_per_byte"]) for r in rows])
    np.testing.assert_allclose(bpb, loss / math.log(2), rtol=1e-12)
    base = {(r["learning_rate"], r["seed"]): r["val_loss_nats"] for r in rows if r["width"] == "8"
            and r["parameterization"] == "sp"}
    reused = {(r["learning_rate"], r["seed"]): r["val_loss_nats"] for r in rows if r["width"] == "8"
              and r["parameterization"] == "mup"}
    assert base == reused  # muP at its base width is the SP network: trained once, the same numbers


def test_transfer_table_matches_the_csv(transfer_run):
    """The printed log2 eta* per width (2 decimals) and slope (3 decimals) against numpy from the CSV."""
    result, _, rows = transfer_run
    text = result.stdout
    for p, column in (("sp", 0), ("mup", 1)):
        found = {}
        for w in (8, 16):
            sel = [r for r in rows if r["parameterization"] == p and r["width"] == str(w)]
            lrs = np.array([float(r["learning_rate"]) for r in sel])
            found[w] = _parabola_log2_eta(lrs, np.array([float(r["val_loss_nats"]) for r in sel]))
            line = next(line for line in text.splitlines() if f"width {w} " in line)
            shown, edge = re.findall(r"2\^(-?\d+\.\d+)\)( \[grid edge\])?", line)[column]
            assert abs(float(shown) - found[w][0]) <= 0.006 and bool(edge) == found[w][1], (p, w, line, found[w])
        slope_line = next(line for line in text.splitlines() if "slope of log2 eta*" in line)
        slope = float(re.findall(r"(-?\d+\.\d{3}|nan)", slope_line)[column])
        if found[8][1] or found[16][1]:  # a width at the grid edge is left out: one point, no line
            assert math.isnan(slope)
        else:  # two points one octave apart: the line's slope is their difference in log2 eta*
            assert abs(slope - (found[16][0] - found[8][0])) <= 6e-4, (slope, found)


SCALING_REFUSALS = [
    (["--corpus", "{f}/missing.txt"], "--corpus: file not found: "),
    (["--budgets", "1e3,3e3,1e4"], "--budgets: 1000 FLOPs gives the largest size (d_model 24, N = 13,200) 0 steps"),
    (["--budgets", "6e7,2e7,1.8e8"], "--budgets: expected positive, strictly increasing, finite numbers"),
    (["--budgets", "2e7,6e7,inf"], "--budgets: expected positive, strictly increasing, finite numbers"),
    (["--sizes", "16,8,24"], "--sizes: expected positive, strictly increasing, finite integers"),
    (["--sizes", "8,16"], "--sizes: must be at least 3 positive, strictly increasing widths"),
    (["--sizes", "8,16,25"], "--heads: 2 heads must divide every size"),
    (["--lr", "abc"], "--lr: expected a positive learning rate"),
    (["--lr", "2^-8..2^-7"], "--lr: need at least 3 learning rates"),
    (["--seq-len", "4096"], "--seq-len: must be an integer from 1 to 2048"),
    (["--batch", "5000"], "--batch: must be an integer from 1 to 4096"),
    (["--bootstrap", "-1"], "--bootstrap: must be an integer from 0 to 10000"),
]
SCALING_TINY = ["--sizes", "8,16,24", "--budgets", "2e7,6e7,1.8e8", "--layers", "1", "--heads", "2", "--seq-len", "16",
                "--batch", "4"]


@pytest.mark.parametrize("argv, expected", SCALING_REFUSALS)
def test_scaling_refuses_bad_input(folder, argv, expected):
    argv = [a.format(f=folder) for a in argv]
    corpus = [] if "--corpus" in argv else ["--corpus", str(folder / "notes.txt")]
    _refused(folder, ["lm", "scaling", *SCALING_TINY, *corpus, *argv], expected)  # later options win


@pytest.fixture(scope="module")
def scaling_run(folder):
    out_dir = folder / "scaling"
    result = invoke(["lm", "scaling", "--corpus", str(folder / "notes.txt"), *SCALING_TINY, "--lr", "2^-6",
                     "--bootstrap", "20", "--target-budgets", "1e9", "--out", str(out_dir)])
    assert result.exit_code == 0, result.output
    with open(out_dir / "lm-scaling.csv") as fh:
        rows = list(csv.DictReader(fh))
    return result, out_dir, rows


def test_scaling_plan_in_the_csv(scaling_run):
    """Steps = round(C / (6 N batch seq_len)) with N non-embedding (Kaplan et al. 2020), recomputed here."""
    _, out_dir, rows = scaling_run
    assert {p.name for p in out_dir.iterdir()} == {"lm-scaling.png", "lm-scaling.svg", "lm-scaling.csv"}
    assert len(rows) == 3 * 3  # budgets x sizes x 1 seed
    for r in rows:
        assert int(r["steps"]) == round(float(r["budget"]) / (6 * int(r["n_params"]) * 4 * 16))
        assert int(r["tokens"]) == int(r["steps"]) * 4 * 16
        assert float(r["compute_6nd"]) == pytest.approx(6 * int(r["n_params"]) * int(r["tokens"]), rel=1e-12)
    assert [int(r["n_params"]) for r in rows[:3]] == [2864, 7264, 13200]  # 12 L d^2 + 256 d + 2 L (2 d) + ... at L=1
    assert [r["phase"] for r in rows].count("largest") == 3


def test_scaling_output_matches_the_csv(scaling_run):
    """The printed best measured loss at the largest budget and its size, from the CSV by numpy."""
    result, _, rows = scaling_run
    largest = [r for r in rows if r["phase"] == "largest"]
    loss = np.array([float(r["val_loss_nats"]) for r in largest])
    best = int(np.argmin(loss))
    line = next(line for line in result.stdout.splitlines() if line.startswith("largest budget C = 1.8e+08"))
    assert f"measured best L {loss[best]:.4f}" in line and f"(d_model {largest[best]['d_model']})" in line
    assert re.search(r"isoFLOP slope a \(N\* ~ C\^a\) = (-?\d+\.\d{3}|nan)", result.stdout)
    assert "learning rate 0.01562 (2^-6.00)" in result.stdout
    for name in ("E", "A", "B", "alpha", "beta"):  # the law's parameter table
        assert re.search(rf"^\W*{name}\s", result.stdout, re.M), name
