"""``learnmech transfer``: the learning-rate sweep across widths under muP and SP, from the command line.

The options are parsed and bounded here (:mod:`learnmech.transfer_budget`), every refusal one line
and exit code 2 before any work; the sweep itself is :func:`learnmech.transfer` on the task and
students of the claim ``hparams.mup-transfer`` (:class:`learnmech.nets.Student`, the ``init``/``apply``
form of the model; its muP student is what ``parameterization="mup-adam"`` makes of the SP student,
tests/test_transfer_models.py). A user's own model (equinox, flax nnx, a plain pytree) runs through
the same function from Python; the command's help says how.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from learnmech.cli_common import BadInput, err, finite_or_none, out, progress_bar
from learnmech.cli_common import fail_input as _fail_input

__all__ = ["transfer"]

_POWER_OF_TWO = re.compile(r"^2\^\(?([+-]?\d+(?:\.\d*)?)\)?$")  # 2^-8, 2^(-8.5)


def _parse_positive_number(token: str) -> float:
    """``2^k`` or a plain number (``1e-3``); ``ValueError`` otherwise (``2^2000`` and ``1e999`` included)."""
    token = token.strip()
    power = _POWER_OF_TWO.match(token.replace(" ", ""))
    try:
        value = 2.0 ** float(power.group(1)) if power else float(token)
    except OverflowError:  # 2.0 ** 2000
        raise ValueError(token) from None
    if not math.isfinite(value):
        raise ValueError(token)
    return value


def _parse_widths(text: str) -> list[int]:
    """``--widths``: comma-separated integers, 2 to ``MAX_WIDTHS`` of them, positive, strictly increasing, at
    most ``MAX_WIDTH``."""
    from learnmech.increasing import increasing
    from learnmech.transfer_budget import MAX_WIDTH, MAX_WIDTHS
    from learnmech.value_bounds import echo

    if text.count(",") + 1 > MAX_WIDTHS:
        raise BadInput(f"--widths: at most {MAX_WIDTHS} widths (MAX_WIDTHS), got {text.count(',') + 1}")
    try:
        widths = [int(t) for t in text.split(",")]
    except ValueError:
        raise BadInput(f"--widths: expected comma-separated integers such as 32,64,128, got {echo(text)}") from None
    if len(widths) < 2:
        raise BadInput(f"--widths: need at least 2 widths (a slope is fitted), got {echo(text)}")
    try:
        increasing(widths, at_least=2, name="--widths", what="widths")
    except ValueError:
        raise BadInput(f"--widths: must be positive and strictly increasing, got {echo(text)}") from None
    if widths[-1] > MAX_WIDTH:
        raise BadInput(f"--widths: each width must be at most {MAX_WIDTH} (MAX_WIDTH), got {echo(widths[-1])}")
    return widths


def _parse_learning_rates(text: str) -> list[float]:
    """``--lrs``: ``A..B[:STEP]`` (``A``, ``A 2^STEP``, ... up to ``B``; STEP in octaves, default 1) or a list.

    At least 3 and at most ``MAX_LEARNING_RATES``; a range's count is computed before its grid is built.
    """
    from learnmech.increasing import increasing
    from learnmech.width_transfer import log2_grid
    from learnmech.transfer_budget import MAX_LEARNING_RATES, grid_size
    from learnmech.value_bounds import echo

    expected = ("--lrs: expected a range such as 2^-12..2^-3 (or 2^-12..2^-3:0.5) or a comma list of positive "
                f"numbers, got {echo(text)}")
    too_many = f"--lrs: at most {MAX_LEARNING_RATES} learning rates (MAX_LEARNING_RATES), got {{}} from {echo(text)}"
    try:
        if ".." in text:
            lo, _, rest = text.partition("..")
            hi, sep, step = rest.partition(":")
            lo_v, hi_v, step_v = _parse_positive_number(lo), _parse_positive_number(hi), float(step) if sep else 1.0
            if lo_v <= 0 or hi_v <= 0 or not step_v > 0 or not math.isfinite(step_v):
                raise ValueError(text)
            count = grid_size(math.log2(lo_v), math.log2(hi_v), step_v)
            if count > MAX_LEARNING_RATES:
                shown = "infinitely many" if math.isinf(count) else count if count < 10**15 else f"{count:.3g}"
                raise BadInput(too_many.format(shown))
            lrs = log2_grid(math.log2(lo_v), math.log2(hi_v), step_v).tolist()
        else:
            if text.count(",") + 1 > MAX_LEARNING_RATES:
                raise BadInput(too_many.format(text.count(",") + 1))
            lrs = [_parse_positive_number(t) for t in text.split(",")]
    except ValueError:
        raise BadInput(expected) from None
    if len(lrs) < 3:
        raise BadInput(f"--lrs: need at least 3 learning rates (a parabola is fitted), got {len(lrs)} from {echo(text)}")
    try:
        return list(increasing(lrs, at_least=3, name="--lrs", what="learning rates"))
    except ValueError:
        raise BadInput(f"--lrs: learning rates must be positive and strictly increasing, got {echo(text)}") from None


def _transfer_summary(results, target_width: int) -> dict[str, Any]:
    """Per parameterisation, what ``learnmech.width_transfer.transfer`` found (its ``Transfer``), as the output shows it."""
    return {p: {"eta_star": r.eta_star, "log2_eta_star": [math.log2(e) if e > 0 else math.nan for e in r.eta_star],
                "at_edge": [bool(e) for e in r.at_edge], "fitted": [bool(f) for f in r.fitted], "slope": r.slope,
                "intercept": r.intercept, "eta_star_at_target": r.predicted(target_width), "mean_loss": r.mean_loss}
            for p, r in results.items()}


def _eta_text(eta: float, edge: bool = False) -> str:
    if not (eta > 0 and math.isfinite(eta)):
        return "n/a"
    return f"{eta:.3g} (2^{math.log2(eta):.2f})" + (" [grid edge]" if edge else "")


def _print_transfer_table(widths, summary, target_width: int) -> None:
    names = {"mup": "muP (mup-adam)", "sp": "SP"}
    table = Table(title=f"optimal Adam learning rate eta* (muP base width {widths[0]})", title_justify="left")
    table.add_column("")
    for p in summary:
        table.add_column(names[p], justify="right")
    for i, w in enumerate(widths):
        table.add_row(f"width {w}", *(_eta_text(s["eta_star"][i], s["at_edge"][i]) for s in summary.values()))
    table.add_row("slope of log2 eta* vs log2 width", *(f"{s['slope']:.3f}" for s in summary.values()))
    table.add_row(f"predicted eta* at width {target_width}",
                  *(_eta_text(s["eta_star_at_target"]) for s in summary.values()))
    out.print(table)


def transfer(
    widths: str = typer.Option("32,64,128,256", "--widths",
                               help="hidden widths, comma-separated, increasing; the first is muP's base width"),
    lrs: str = typer.Option("2^-12..2^-3", "--lrs",
                            help="Adam learning rates: a log2 range A..B[:STEP] (A, A 2^STEP, ... up to B; STEP "
                                 "in octaves, default 1), e.g. 2^-12..2^-3:0.5, or a comma list, e.g. 1e-3,2^-9,0.01"),
    steps: int = typer.Option(100, "--steps", help="Adam steps per run (the same for every run)"),
    seeds: int = typer.Option(4, "--seeds", help="seeds per learning rate (the loss is averaged over them)"),
    target_width: int = typer.Option(4096, "--target-width", help="width to extrapolate eta* to"),
    out_dir: Path = typer.Option(Path("learnmech-results/transfer"), "--out", help="folder for the figure"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Learning-rate sweep at several widths under muP and SP: eta* per width, its slope, and eta* extrapolated.

    The task and network are those of the claim hparams.mup-transfer (Adam on
    a teacher-MLP regression, ReLU MLP with 2 hidden layers); a seed that
    diverged makes its learning rate rank above every finite loss. Every
    option is bounded (learnmech.transfer_budget), and a request whose widest
    ensemble would not fit in this machine's memory is refused before
    anything is allocated.

    Your own model runs through the same function, from Python:

        from learnmech import transfer
        from learnmech.width_transfer import log2_grid
        result = transfer(build=make, widths=[32, 64, 128],
                          learning_rates=log2_grid(-10, -2), data=(x, y),
                          steps=100, seeds=2, parameterization="mup-adam")

    where make(width, key) returns an equinox Module, a flax nnx Module or a
    plain pytree (then also pass apply=lambda params, x: ...); the first
    width is muP's base. This command is that function on the claim's MLP.
    """
    from learnmech import transfer_budget as budget
    from learnmech.value_bounds import echo

    try:
        width_list = _parse_widths(widths)
        lr_list = _parse_learning_rates(lrs)
        for name, value, limit in (("--steps", steps, "MAX_STEPS"), ("--seeds", seeds, "MAX_SEEDS"),
                                   ("--target-width", target_width, "MAX_TARGET_WIDTH")):
            if value < 1:
                raise BadInput(f"{name}: must be an integer >= 1, got {echo(value)}")
            if value > getattr(budget, limit):
                raise BadInput(f"{name}: must be an integer <= {getattr(budget, limit)} ({limit}), got {echo(value)}")
        if out_dir.exists() and not out_dir.is_dir():
            raise BadInput(f"--out: {out_dir} exists and is not a folder")
    except BadInput as exc:
        _fail_input(str(exc))

    from learnmech.atlas.hparams.mup_transfer import MUP_SHIFT_MAX, SP_SLOPE_MAX, Config
    from learnmech.data.transfer_task import transfer_task, zero_function_loss
    from learnmech.nets.students import Student
    from learnmech.report import plot_transfer, save_figure
    from learnmech.width_transfer import transfer as sweep_widths

    task = Config()  # the claim's task: data, network depth, batch size (the option defaults are its quick preset)
    members = len(lr_list) * seeds  # trained at once: every learning rate x seed of one width and parameterisation
    memory = budget.mlp_memory(d_in=task.d_in, hidden_layers=task.hidden_layers, rows=task.n_samples)
    what = f"{task.hidden_layers} hidden layers x {members} members ({len(lr_list)} learning rates x {seeds} seeds)"
    if (refusal := budget.memory_refusal(width_list[-1], memory(width_list[-1], members), what)) is not None:
        _fail_input(f"--widths: {refusal}")
    data = transfer_task(task.n_samples, task.d_in, task.data_seed)
    with progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        results: dict[str, Any] = {}
        for p in ("sp", "mup"):  # muP at its base width is the SP network: reused (Student.known), trained once
            model, label = Student(p, width_list[0], task.d_in, task.hidden_layers), f"learning-rate sweep ({p})"
            results[p] = sweep_widths(model.init, model.apply, width_list, lr_list, data=data, steps=steps, seeds=seeds,
                                      lr_multipliers=model.lr_multipliers, batch_size=task.batch_size, memory=memory,
                                      known=model.known(results), progress=lambda d, t, s=label: progress(s, d, t))
    zero = zero_function_loss(data)
    summary = _transfer_summary(results, target_width)
    fig = plot_transfer(results, zero, mup_band=MUP_SHIFT_MAX, sp_slope=SP_SLOPE_MAX,
                        title=f"learnmech transfer: Adam, {steps} steps, widths {width_list[0]}..{width_list[-1]}")
    paths = [str(p) for p in save_figure(fig, out_dir, "transfer")]
    edges = [f"{p} width {w}" for p, s in summary.items() for w, e in zip(width_list, s["at_edge"]) if e]
    if edges:
        err.print(f"warning: eta* is at the edge of the learning-rate grid for {', '.join(edges)} (left out of "
                  "the slope); widen --lrs", markup=False, highlight=False)
    if as_json:
        payload = {"widths": width_list, "learning_rates": lr_list, "steps": steps, "seeds": seeds,
                   "base_width": width_list[0], "target_width": target_width, "zero_function_loss": zero,
                   "figures": paths,
                   **{p: {k: finite_or_none(v) for k, v in s.items()} for p, s in summary.items()}}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    _print_transfer_table(width_list, summary, target_width)
    out.print(f"figure: {paths[0]}", highlight=False)
