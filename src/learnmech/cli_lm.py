"""``learnmech lm``: learning-rate transfer and isoFLOP sweeps of a byte-level transformer on a user's own text.

Two commands, one corpus convention. ``--corpus PATH`` names a UTF-8 text file (its last tenth is held
out, :func:`learnmech.data.text.text_corpus`); without it the bundled corpus, the running interpreter's
standard-library sources (:func:`learnmech.data.text.stdlib_corpus`). Tokens are bytes, so every loss is
in nats per byte (bits per byte = nats / ln 2) on held-out text.

- ``learnmech lm transfer``: :func:`learnmech.lm_transfer.lr_sweep` per parameterisation (muP with its
  base width the narrowest, and/or SP) over a log2 grid of AdamW learning rates; prints ``eta*`` per width
  and the slope of ``log2 eta*`` against ``log2 width``; writes the transfer figure
  (:func:`learnmech.report.plot_transfer`) and ``lm-transfer.csv`` (one row per member).
- ``learnmech lm scaling``: :mod:`learnmech.lm_scaling` (isoFLOP plan, runs, Chinchilla fit); prints the
  fitted law with its intervals, the compute-optimal table and the isoFLOP slope ``a``; writes the figure
  and ``lm-scaling.csv`` (one row per run).

Bad input (exit code 2, one line naming the option, nothing written): every option, the corpus file
(missing, empty, binary, too small for two windows each side, too few windows for one batch), the
learning-rate grid, the memory a request would plan to use and the ``--out`` folder are checked before
any training starts and before ``--out`` is created.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from learnmech.cli_common import BadInput, doing, err, fail_input, finite_or_none, out, progress_bar
from learnmech.cli_fit import _check_out  # --out: a folder that exists or can be made, and is writable

__all__ = ["MAX_BATCH", "MAX_LAYERS", "MAX_SEQ_LEN", "lm_app"]

MAX_SEQ_LEN = 2048  # context length: attention memory grows as T^2 per layer (lm_train.lm_memory_bytes)
MAX_BATCH = 4096  # windows per step
MAX_LAYERS = 128  # transformer blocks
LOG2_LR_RANGE = (-64.0, 16.0)  # log2 of a peak AdamW learning rate: 5e-20 .. 65536 (finite in float32)
UNIFORM_LOSS = math.log(256.0)  # nats per byte of the uniform prediction (zero logits): the figure's unit

lm_app = typer.Typer(no_args_is_help=True,
                     help="Language-model sweeps (byte-level transformer) on your own text file or the bundled "
                          "corpus: learning-rate transfer across widths, isoFLOP scaling.")

CORPUS_OPT = typer.Option(None, "--corpus", help="UTF-8 text file (its last tenth is held out); default: the bundled "
                                                 "corpus (the Python standard library's sources)")
LAYERS_OPT = typer.Option(2, "--layers", help=f"transformer blocks (1 to {MAX_LAYERS})")
HEADS_OPT = typer.Option(4, "--heads", help="attention heads (must divide every width)")
SEQ_LEN_OPT = typer.Option(64, "--seq-len", help=f"context length in bytes (1 to {MAX_SEQ_LEN})")
BATCH_OPT = typer.Option(16, "--batch", help=f"windows per step (1 to {MAX_BATCH})")
SEEDS_OPT = typer.Option(1, "--seeds", help="seeds per point (initialisation and data order)")
JSON_OPT = typer.Option(False, "--json", help="print the result as JSON")


def _whole(value: int, option: str, low: int, high: int, limit: str = "") -> int:
    """``value`` when ``low <= value <= high``; ``BadInput`` naming ``option`` otherwise."""
    if not low <= value <= high:
        raise BadInput(f"{option}: must be an integer from {low} to {high}{f' ({limit})' if limit else ''}, "
                       f"got {value}")
    return value


def _shape_options(layers: int, seq_len: int, batch: int) -> None:
    _whole(layers, "--layers", 1, MAX_LAYERS, "MAX_LAYERS")
    _whole(seq_len, "--seq-len", 1, MAX_SEQ_LEN, "MAX_SEQ_LEN")
    _whole(batch, "--batch", 1, MAX_BATCH, "MAX_BATCH")


def load_text(path: Optional[Path], seq_len: int, batch: int):
    """The corpus (``--corpus`` or the bundled one), checked to hold one batch of training windows."""
    from learnmech.data.text import CorpusError, load_corpus

    try:
        corpus = load_corpus(path, seq_len=seq_len)
    except CorpusError as exc:
        raise BadInput(f"--corpus: {str(exc).removeprefix('corpus: ')}") from None
    except ValueError as exc:  # a seq_len longer than the bundled corpus allows
        raise BadInput(f"--seq-len: {exc}") from None
    n_windows = corpus.train.size // (seq_len + 1)
    if n_windows < batch:
        raise BadInput(f"--batch: the training text of {corpus.name} holds {n_windows} windows of --seq-len + 1 = "
                       f"{seq_len + 1} bytes, fewer than one batch of {batch}; lower --batch or --seq-len")
    return corpus


def corpus_record(corpus) -> dict:
    """The corpus's ``describe()`` without its file lists (thousands of names for the bundled corpus)."""
    return {k: v for k, v in corpus.describe().items() if k not in ("files", "validation_files")}


def learning_rates(lr_min: float, lr_max: float, lr_step: float) -> list[float]:
    """``2^k`` for ``k = lr_min, lr_min + lr_step, ...`` up to ``lr_max``: 3 to ``MAX_LEARNING_RATES`` of them."""
    from learnmech.transfer_budget import MAX_LEARNING_RATES, grid_size
    from learnmech.width_transfer import log2_grid

    low, high = LOG2_LR_RANGE
    for option, value in (("--lr-min", lr_min), ("--lr-max", lr_max)):
        if not (math.isfinite(value) and low <= value <= high):
            raise BadInput(f"{option}: log2 of the learning rate, must be from {low:g} to {high:g}, got {value}")
    if not (math.isfinite(lr_step) and lr_step > 0):
        raise BadInput(f"--lr-step: must be a positive number of octaves, got {lr_step}")
    count = grid_size(lr_min, lr_max, lr_step)
    if count > MAX_LEARNING_RATES:
        raise BadInput(f"--lr-step: at most {MAX_LEARNING_RATES} learning rates (MAX_LEARNING_RATES), got "
                       f"{count:.3g} from {lr_min:g}..{lr_max:g} in steps of {lr_step:g}")
    if count < 3:
        raise BadInput(f"--lr-max: need at least 3 learning rates (a parabola is fitted), got {count} from "
                       f"--lr-min {lr_min:g} to --lr-max {lr_max:g} in steps of {lr_step:g}")
    return log2_grid(lr_min, lr_max, lr_step).tolist()


def check_memory(cfg, recipe, members: int, option: str, what: str) -> None:
    """Refuse (naming ``option``) a request whose ensemble would not fit (:func:`learnmech.lm_train.lm_memory_bytes`)."""
    from learnmech.lm_train import lm_memory_bytes
    from learnmech.transfer_budget import memory_refusal

    refusal = memory_refusal(cfg.d_model, lm_memory_bytes(cfg, recipe, members), what)
    if refusal is not None:
        raise BadInput(f"{option}: {refusal}")


def _configs(widths: list[int], parameterization: str, layers: int, heads: int, seq_len: int) -> dict:
    """``{width: TransformerConfig}``; muP's base width is the narrowest (where muP and SP are one network)."""
    from learnmech.nets.transformer import TransformerConfig

    return {w: TransformerConfig(d_model=w, n_layers=layers, n_heads=heads, seq_len=seq_len, base_d_model=widths[0],
                                 parameterization=parameterization) for w in widths}


def _transfer_plan(widths: str, parameterization: str, layers: int, heads: int, seq_len: int, batch: int,
                   steps: int, seeds: int, lrs: list[float], target_width: int) -> tuple[list[int], list[str]]:
    """The widths and parameterisations of ``lm transfer``, every option checked (``BadInput`` otherwise)."""
    from learnmech.cli_transfer import _parse_widths
    from learnmech.lm_train import MAX_MEMBERS, MAX_STEPS, LMRecipe
    from learnmech.transfer_budget import MAX_TARGET_WIDTH

    if parameterization not in ("mup", "sp", "both"):
        raise BadInput(f"--parameterization: must be mup, sp or both, got {parameterization!r}")
    _shape_options(layers, seq_len, batch)
    _whole(steps, "--steps", 1, MAX_STEPS, "MAX_STEPS")
    _whole(target_width, "--target-width", 1, MAX_TARGET_WIDTH, "MAX_TARGET_WIDTH")
    _whole(seeds, "--seeds", 1, MAX_MEMBERS // len(lrs), f"MAX_MEMBERS = {MAX_MEMBERS} learning rates x seeds")
    width_list = _parse_widths(widths)
    _whole(heads, "--heads", 1, width_list[0])
    if any(w % heads for w in width_list):
        raise BadInput(f"--heads: {heads} heads must divide every width, got --widths {widths}")
    cfg = _configs(width_list, "sp", layers, heads, seq_len)[width_list[-1]]
    members = len(lrs) * seeds
    check_memory(cfg, LMRecipe(seq_len=seq_len, batch_size=batch), members, "--widths",
                 f"{layers} layers x {members} members ({len(lrs)} learning rates x {seeds} seeds)")
    return width_list, ["sp", "mup"] if parameterization == "both" else [parameterization]


def write_outputs(fig, out_dir: Path, stem: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    """The figure ``stem.{png,svg}`` and the table ``stem.csv`` in ``out_dir``, each written whole or not at all."""
    import csv

    from learnmech.cli_fit import _write_figure
    from learnmech.store.files import write_atomic

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    paths = _write_figure(fig, out_dir, stem)
    with doing("writing the CSV"):
        paths.append(str(write_atomic(out_dir / f"{stem}.csv", text.getvalue().encode())))
    return paths


def _progress_callback(bar):
    """``progress(label, done, total)`` drawing one bar per label on ``bar``."""
    tasks: dict[str, Any] = {}

    def progress(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return progress


def _sweep(corpus, width_list, names, lrs, steps, seeds, layers, heads, recipe) -> dict:
    """``{parameterization: LRSweep}``; muP reuses SP's losses at the base width (the same network there)."""
    from learnmech.lm_transfer import lr_sweep

    sweeps: dict[str, Any] = {}
    with progress_bar() as bar:
        progress = _progress_callback(bar)
        for p in names:
            known = {width_list[0]: sweeps["sp"].losses(width_list[0])} if "sp" in sweeps else None
            sweeps[p] = lr_sweep(_configs(width_list, p, layers, heads, recipe.seq_len), corpus, learning_rates=lrs,
                                 steps=steps, seeds=seeds, recipe=recipe, known=known,
                                 label=f"learning-rate sweep ({p})", progress=progress)
    return sweeps


def _loss_rows(sweeps: dict) -> list[list[Any]]:
    """One CSV row per member: parameterisation, width, learning rate, seed, held-out loss (nats, bits per byte)."""
    rows = []
    for p, sweep in sweeps.items():
        t = sweep.transfer
        for i, w in enumerate(t.widths.tolist()):
            for k, lr in enumerate(t.learning_rates.tolist()):
                for s, loss in enumerate(t.losses[i, k].tolist()):
                    rows.append([p, w, repr(lr), math.log2(lr), s, repr(loss), repr(loss / math.log(2.0)),
                                 int(not math.isfinite(loss))])
    return rows


LOSS_HEADER = ["parameterization", "width", "learning_rate", "log2_learning_rate", "seed", "val_loss_nats",
               "val_bits_per_byte", "diverged"]


@lm_app.command("transfer")
def lm_transfer(
    corpus_path: Optional[Path] = CORPUS_OPT,
    widths: str = typer.Option("32,64,128", "--widths", help="d_model per size, comma-separated, increasing; the "
                                                              "first is muP's base width"),
    lr_min: float = typer.Option(-12.0, "--lr-min", help="log2 of the smallest peak AdamW learning rate"),
    lr_max: float = typer.Option(-4.0, "--lr-max", help="log2 of the largest peak AdamW learning rate"),
    lr_step: float = typer.Option(1.0, "--lr-step", help="grid step in octaves (log2 units)"),
    steps: int = typer.Option(200, "--steps", help="AdamW steps per run (cosine schedule, 5% warmup)"),
    seeds: int = SEEDS_OPT,
    parameterization: str = typer.Option("both", "--parameterization", help="mup, sp or both"),
    layers: int = LAYERS_OPT,
    heads: int = HEADS_OPT,
    seq_len: int = SEQ_LEN_OPT,
    batch: int = BATCH_OPT,
    target_width: int = typer.Option(1024, "--target-width", help="width to extrapolate eta* to"),
    out_dir: Path = typer.Option(Path("learnmech-results/lm-transfer"), "--out", help="folder for the figure and CSV"),
    as_json: bool = JSON_OPT,
) -> None:
    """Learning-rate sweep of a byte-level transformer across widths, muP and/or SP: eta* per width and its slope.

    Every width trains the whole grid 2^lr-min, 2^(lr-min + lr-step), ... up to
    2^lr-max, x --seeds, for --steps AdamW steps of --batch windows of
    --seq-len bytes; eta* is the vertex of a parabola through the lowest
    seed-mean held-out loss and its neighbours (a minimum at the grid edge is
    flagged and left out of the slope). Under muP (Yang et al. 2022,
    arXiv:2203.03466) eta* should not move with width (slope 0); under SP
    with Adam it falls about as 1/width (slope -1).

    Writes OUT/lm-transfer.png, .svg and .csv (one row per member: the
    held-out loss in nats and bits per byte).

    Example: learnmech lm transfer --corpus notes.txt --widths 32,64,128
    --lr-min -12 --lr-max -4 --steps 300 --seeds 2 --out results
    """
    from learnmech.cli_transfer import _print_transfer_table, _transfer_summary
    from learnmech.lm_train import LMRecipe

    try:
        lrs = learning_rates(lr_min, lr_max, lr_step)
        width_list, names = _transfer_plan(widths, parameterization, layers, heads, seq_len, batch, steps, seeds,
                                           lrs, target_width)
        _check_out(out_dir)
        corpus = load_text(corpus_path, seq_len, batch)
    except BadInput as exc:
        fail_input(str(exc))

    from learnmech.atlas.hparams.mup_transfer import MUP_SHIFT_MAX, SP_SLOPE_MAX
    from learnmech.report import plot_transfer

    sweeps = _sweep(corpus, width_list, names, lrs, steps, seeds, layers, heads,
                    LMRecipe(seq_len=seq_len, batch_size=batch))
    results = {p: s.transfer for p, s in sweeps.items()}
    summary = _transfer_summary(results, target_width)
    fig = plot_transfer(results, UNIFORM_LOSS, mup_band=MUP_SHIFT_MAX, sp_slope=SP_SLOPE_MAX,
                        title=f"learnmech lm transfer: {corpus.name}, {layers} layers, {steps} AdamW steps "
                              f"(loss unit: ln 256, the uniform prediction)")
    paths = write_outputs(fig, out_dir, "lm-transfer", LOSS_HEADER, _loss_rows(sweeps))
    _warn_runs([run for s in sweeps.values() for run in s.runs.values()], summary, width_list)
    if as_json:
        payload = {"corpus": corpus_record(corpus), "widths": width_list, "learning_rates": lrs,
                   "steps": steps, "seeds": seeds, "layers": layers, "heads": heads, "seq_len": seq_len,
                   "batch": batch, "base_width": width_list[0], "target_width": target_width, "files": paths,
                   **{p: {k: finite_or_none(v) for k, v in s.items()} for p, s in summary.items()}}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    out.print(f"corpus {corpus.name}: {corpus.train.size:,} training bytes, {corpus.validation.size:,} held out "
              f"(sha256 {corpus.sha256[:12]})", highlight=False)
    _print_transfer_table(width_list, summary, target_width)
    for path in paths:
        out.print(f"wrote {path}", highlight=False)


def _warn_runs(runs, summary: dict, width_list: list[int]) -> None:
    """The runs' notes (text read more than once) and the widths whose eta* sits at the grid edge, on stderr."""
    for note in dict.fromkeys(n for run in runs for n in run.notes):
        err.print(f"note: {note}", markup=False, highlight=False)
    edges = [f"{p} width {w}" for p, s in summary.items() for w, e in zip(width_list, s["at_edge"]) if e]
    if edges:
        err.print(f"warning: eta* is at the edge of the learning-rate grid for {', '.join(edges)} (left out of the "
                  "slope); widen --lr-min/--lr-max", markup=False, highlight=False)


def _numbers(text: str, option: str, kind=float) -> list:
    """A comma list of finite positive numbers (``kind`` int or float), strictly increasing; ``BadInput`` otherwise."""
    from learnmech.increasing import increasing
    from learnmech.transfer_budget import MAX_WIDTHS
    from learnmech.value_bounds import echo

    if text.count(",") + 1 > MAX_WIDTHS:
        raise BadInput(f"{option}: at most {MAX_WIDTHS} values, got {text.count(',') + 1}")
    try:
        values = [kind(t) for t in text.split(",")]
        increasing(values, at_least=1, name=option, what="values")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(text)
    except ValueError:
        what = "integers such as 16,24,32" if kind is int else "numbers such as 1e9,3e9,1e10"
        raise BadInput(f"{option}: expected positive, strictly increasing, finite {what}, got {echo(text)}") from None
    return values


def _scaling_rates(text: str) -> list[float]:
    """``--lr``: one learning rate (``2^-8``, ``0.004``) or a grid (``A..B[:STEP]`` or a list of >= 3) to tune on."""
    from learnmech.cli_transfer import _parse_learning_rates, _parse_positive_number

    if ".." in text or "," in text:
        try:
            return _parse_learning_rates(text)
        except BadInput as exc:
            raise BadInput(f"--lr: {str(exc).removeprefix('--lrs: ')}") from None
    try:
        value = _parse_positive_number(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise BadInput(f"--lr: expected a positive learning rate (2^-8, 0.004) or a grid 2^-12..2^-4[:STEP], got "
                       f"{text!r}")
    return [value]


def _scaling_plan(budgets: str, sizes: str, layers: int, heads: int, seq_len: int, batch: int, seeds: int,
                  rates: list[float], target_budgets: Optional[str], bootstrap: int):
    """The :class:`~learnmech.lm_scaling.IsoflopPlan` and the extra budgets of ``lm scaling``, every option checked."""
    from learnmech.lm_scaling import isoflop_plan
    from learnmech.lm_train import MAX_MEMBERS, LMRecipe

    _shape_options(layers, seq_len, batch)
    _whole(bootstrap, "--bootstrap", 0, 10_000)
    budget_list = _numbers(budgets, "--budgets")
    size_list = _numbers(sizes, "--sizes", int)
    extra = _numbers(target_budgets, "--target-budgets") if target_budgets else []
    members = max(len(rates), len(budget_list)) * seeds
    _whole(seeds, "--seeds", 1, MAX_MEMBERS // max(len(rates), len(budget_list)),
           f"MAX_MEMBERS = {MAX_MEMBERS} learning rates or budgets x seeds")
    _whole(heads, "--heads", 1, size_list[0])
    if any(w % heads for w in size_list):
        raise BadInput(f"--heads: {heads} heads must divide every size, got --sizes {sizes}")
    recipe = LMRecipe(seq_len=seq_len, batch_size=batch)
    try:
        plan = isoflop_plan(budget_list, size_list, recipe, n_layers=layers, n_heads=heads)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from None  # isoflop_plan names "budgets" or "sizes"
    check_memory(plan.configs[-1], recipe, members, "--sizes", f"{layers} layers x {members} members")
    return plan, extra


def _optimum_rows(runs, extra: list[float]) -> list:
    """:class:`~learnmech.lm_scaling.LawPrediction` at every planned budget and every ``--target-budgets``."""
    from learnmech.lm_scaling import predict_largest

    plan = runs.plan
    return [predict_largest(runs.law, c, plan.n_params, plan.tokens[-1]) for c in [*plan.budgets.tolist(), *extra]]


def _print_scaling(runs, rows, slope, corpus_name: str) -> None:
    """The law with its intervals, the compute-optimal table, the largest budget against its prediction, ``a``."""
    from rich.table import Table

    from learnmech.cli_fit_output import print_summary
    from learnmech.lm_scaling import largest_budget_optimum

    plan, pred = runs.plan, runs.prediction
    tuned = f" (tuned at d_model {plan.d_models[0]})" if runs.sweep_rates.size else ""
    out.print(f"learning rate {runs.learning_rate:.4g} (2^{math.log2(runs.learning_rate):.2f}){tuned}", highlight=False)
    note = f"compute-optimal allocation withheld: {pred.withheld}" if pred.withheld else None
    print_summary(runs.law, Path(f"{corpus_name} runs below the largest budget"), runs.law.loss_.size, [], note, None)
    if not pred.withheld:
        table = Table(title="compute-optimal N*, D*, L* of the fitted law", title_justify="left")
        for col in ("compute C", "N*", "D*", "D*/N*", "L* (nats/byte)", "N* 95% CI", "L* 95% CI"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(f"{r.flops:.3g}", f"{r.n_star:.4g}", f"{r.d_star:.4g}", f"{r.d_star / r.n_star:.3g}",
                          f"{r.loss_star:.4f}", f"{r.n_star_ci[0]:.3g}..{r.n_star_ci[1]:.3g}",
                          f"{r.loss_star_ci[0]:.4f}..{r.loss_star_ci[1]:.4f}")
        out.print(table)
    optima, best = largest_budget_optimum(plan.budgets[-1], plan.n_params, runs.mean_loss[-1])
    measured = runs.mean_loss[-1, best]
    out.print(f"largest budget C = {plan.budgets[-1]:.3g}: predicted L* {pred.loss_star:.4f}, N* {pred.n_star:.4g}; "
              f"measured best L {measured:.4f} at N {plan.n_params[best]:.4g} (d_model {plan.d_models[best]}), "
              f"isoFLOP vertex N* {optima.n_star[0]:.4g}"
              + (f" ({optima.reason[0]})" if not optima.valid[0] else ""), highlight=False)
    out.print(f"isoFLOP slope a (N* ~ C^a) = {slope.a:.3f}, 95% CI {slope.ci[0]:.3f}..{slope.ci[1]:.3f} "
              "(Chinchilla 0.5, Kaplan 0.73)", highlight=False)


def _run_rows(runs) -> list[list[Any]]:
    """One CSV row per run: budget, size, N, steps, tokens D, its own 6ND, seed, held-out loss, phase."""
    plan, rows = runs.plan, []
    for g, c in enumerate(plan.budgets.tolist()):
        for s, d in enumerate(plan.d_models):
            for seed, loss in enumerate(runs.losses[g, s].tolist()):
                rows.append([repr(c), d, int(plan.n_params[s]), int(plan.steps[g, s]), int(plan.tokens[g, s]),
                             repr(float(plan.compute[g, s])), seed, repr(loss),
                             "largest" if g == plan.budgets.size - 1 else "fit"])
    return rows


RUN_HEADER = ["budget", "d_model", "n_params", "steps", "tokens", "compute_6nd", "seed", "val_loss_nats", "phase"]


@lm_app.command("scaling")
def lm_scaling(
    corpus_path: Optional[Path] = CORPUS_OPT,
    budgets: str = typer.Option("1e9,3e9,1e10,3e10", "--budgets", help="compute budgets C in FLOP (6 N D), "
                                                                      "increasing; the largest is predicted"),
    sizes: str = typer.Option("16,24,32,48,64", "--sizes", help="widths d_model of the size ladder (>= 3)"),
    lr: str = typer.Option("2^-10..2^-5", "--lr", help="peak AdamW learning rate (2^-8), or a grid A..B[:STEP] "
                                                       "tuned at the smallest size and budget (muP transfers it)"),
    layers: int = LAYERS_OPT,
    heads: int = HEADS_OPT,
    seq_len: int = SEQ_LEN_OPT,
    batch: int = BATCH_OPT,
    seeds: int = SEEDS_OPT,
    target_budgets: Optional[str] = typer.Option(None, "--target-budgets", help="more budgets for the "
                                                                                "compute-optimal table"),
    bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap refits for the 95% intervals (0 to 10000)"),
    out_dir: Path = typer.Option(Path("learnmech-results/lm-scaling"), "--out", help="folder for the figure and CSV"),
    as_json: bool = JSON_OPT,
) -> None:
    """IsoFLOP sweep: fit L = E + A/N^alpha + B/D^beta below the largest budget, predict it, then run it.

    Every size of --sizes (muP transformers, base width the smallest) trains
    on every budget C for round(C / (6 N batch seq_len)) steps, N the
    non-embedding parameters (Kaplan et al. 2020, arXiv:2001.08361). The
    Chinchilla law (Hoffmann et al. 2022, arXiv:2203.15556) is fitted on the
    budgets below the largest and its prediction for the largest is made
    before the largest runs. Prints the law with bootstrap intervals, the
    compute-optimal N*, D*, L* at every budget and --target-budgets, the
    largest budget measured against its prediction, and the isoFLOP slope a
    of N* ~ C^a. Writes OUT/lm-scaling.png, .svg and .csv (one row per run).

    Example: learnmech lm scaling --corpus notes.txt --budgets 1e9,3e9,1e10,3e10
    --sizes 16,24,32,48,64 --out results
    """
    try:
        rates = _scaling_rates(lr)
        plan, extra = _scaling_plan(budgets, sizes, layers, heads, seq_len, batch, seeds, rates, target_budgets,
                                    bootstrap)
        _check_out(out_dir)
        corpus = load_text(corpus_path, seq_len, batch)
    except BadInput as exc:
        fail_input(str(exc))

    from learnmech.lm_scaling import isoflop_slope, run_isoflop
    from learnmech.report.scaling import plot_scaling_fit

    with progress_bar() as bar:
        try:
            runs = run_isoflop(plan, corpus, learning_rates=rates, seeds=seeds, n_bootstrap=bootstrap,
                               progress=_progress_callback(bar))
        except ValueError as exc:  # every rate diverged, or too few runs survived to fit: nothing written
            if not str(exc).startswith("learning_rates: "):
                raise
            fail_input(f"--lr: {str(exc).removeprefix('learning_rates: ')}")
    slope = isoflop_slope(plan.budgets, plan.n_params, runs.mean_loss, n_boot=bootstrap)
    rows = _optimum_rows(runs, extra)
    n_all = np.broadcast_to(plan.n_params[None, :], plan.steps.shape).ravel()
    fig = plot_scaling_fit(runs.law, {"n": n_all, "d": plan.tokens.ravel()}, runs.mean_loss.ravel(),
                           title=f"learnmech lm scaling: {corpus.name}, law fitted below C = {plan.budgets[-1]:.3g}")
    paths = write_outputs(fig, out_dir, "lm-scaling", RUN_HEADER, _run_rows(runs))
    for note in runs.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if as_json:
        from learnmech.cli_fit_output import plain

        payload = {"corpus": corpus_record(corpus), "budgets": plan.budgets.tolist(), "d_models": list(plan.d_models),
                   "n_params": plan.n_params.tolist(), "steps": plan.steps.tolist(), "learning_rate":
                   runs.learning_rate, "mean_loss": finite_or_none(runs.mean_loss), "law": plain(runs.law.params_),
                   "law_ci": plain(runs.law.ci_), "prediction": plain(runs.prediction), "optima": plain(rows),
                   "isoflop_slope": {"a": finite_or_none(slope.a), "ci": finite_or_none(list(slope.ci))},
                   "files": paths}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    _print_scaling(runs, rows, slope, corpus.name)
    for path in paths:
        out.print(f"wrote {path}", highlight=False)
