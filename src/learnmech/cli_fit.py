"""``learnmech fit scaling FILE``: fit a scaling law to a user's own runs (CSV or Parquet).

The fit is :class:`learnmech.theory.scaling_law.ScalingLaw` (Huber loss on log-loss residuals,
L-BFGS from a grid of starts, bootstrap intervals). Every input is checked before anything is
fitted or written: a missing column, a non-positive or non-finite value, too few points for the
form, or a hold-out threshold that leaves nothing to fit or to test is one line on stderr naming
the option, and exit code 2.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.table import Table

from learnmech.cli_common import BadInput, fail_input, finite_or_none, out

__all__ = ["fit_app"]

fit_app = typer.Typer(no_args_is_help=True, help="Fit laws to your own measurements.")

_OPTION_OF_INPUT = {"n": "--n", "d": "--d", "u": "--u", "x": "--x"}


def _read(path: Path) -> dict[str, np.ndarray]:
    """The table as columns; ``BadInput`` naming FILE when it cannot be read."""
    from learnmech.data.tables import read_table

    if not path.is_file():
        raise BadInput(f"FILE: no such file: {path}")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"FILE: expected a .csv or .parquet file, got {path.name!r}")
    try:
        return read_table(path)
    except (ValueError, OSError) as exc:
        raise BadInput(f"FILE: cannot read {path.name}: {exc}") from None


def _column(table, option: str, name: str, path: Path) -> np.ndarray:
    """Column ``name`` as positive finite floats; ``BadInput`` naming ``option`` otherwise."""
    if name not in table:
        raise BadInput(f"{option}: no column {name!r} in {path.name}; columns: {', '.join(table)}")
    try:
        values = np.asarray(table[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{option}: column {name!r} must be numeric") from None
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        raise BadInput(f"{option}: column {name!r} must be positive and finite; {bad.size} value(s) are not "
                       f"(first at row {bad[0] + 1}: {table[name][bad[0]]!r})")
    return values


def _inputs(form, table, path: Path, columns: dict[str, Optional[str]], flops: Optional[str]):
    """The form's inputs by name (``d`` from ``flops / (6 n)`` when ``--flops`` is given) and the compute."""
    inputs: dict[str, np.ndarray] = {}
    for name in form.inputs:
        option = _OPTION_OF_INPUT[name]
        if name == "d" and columns["d"] is None and flops is not None:
            continue  # derived below from --flops
        if columns[name] is None:
            extra = " or --flops COL" if name == "d" else ""
            raise BadInput(f"{option}: the form {form.name} needs {option} COL{extra} (its inputs: "
                           f"{', '.join(form.inputs)})")
        inputs[name] = _column(table, option, columns[name], path)
    compute = _column(table, "--flops", flops, path) if flops is not None else None
    if "d" in form.inputs and "d" not in inputs:
        if "n" not in inputs:
            raise BadInput(f"--flops: D = FLOP/(6N) needs --n COL as well (form {form.name})")
        inputs["d"] = compute / (6.0 * inputs["n"])
    if compute is None and "n" in inputs and "d" in inputs:
        compute = 6.0 * inputs["n"] * inputs["d"]
    return {k: inputs[k] for k in form.inputs}, compute


def _check_counts(form, n_points: int, compute, holdout_above: Optional[float], bootstrap: int) -> None:
    need = len(form.params) + 1
    if n_points < need:
        raise BadInput(f"FILE: {n_points} rows; the form {form.name} has {len(form.params)} parameters and needs "
                       f"at least {need} points")
    if bootstrap < 0:
        raise BadInput(f"--bootstrap: must be an integer >= 0, got {bootstrap}")
    if holdout_above is None:
        return
    if not (math.isfinite(holdout_above) and holdout_above > 0):
        raise BadInput(f"--holdout-above: must be a positive compute (FLOP), got {holdout_above}")
    if compute is None:
        raise BadInput("--holdout-above: needs the compute of each run: give --flops COL, or --n and --d")
    below, above = int(np.sum(compute <= holdout_above)), int(np.sum(compute > holdout_above))
    if below < need or above < 1:
        raise BadInput(f"--holdout-above: {holdout_above:g} leaves {below} points to fit (need >= {need}) and "
                       f"{above} to test (need >= 1); compute spans {compute.min():.3g}..{compute.max():.3g}")


def _plain(value: Any) -> Any:
    """Dataclasses / NamedTuples / arrays as JSON-safe plain data."""
    if is_dataclass(value):
        value = asdict(value)
    elif hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) or hasattr(value, "tolist"):
        return finite_or_none(value)
    return str(value)


def _frontier_rows(law, compute) -> list[dict[str, float]]:
    """Compute-optimal N, D and D/N at the data's largest budget and one and two decades beyond."""
    from learnmech.theory.scaling_forms import FORMS

    if not FORMS[law.form].frontier or compute is None:
        return []
    budgets = compute.max() * np.array([1.0, 10.0, 100.0])
    n_opt, d_opt = law.frontier(budgets)
    return [{"flops": float(c), "n_opt": float(n), "d_opt": float(d), "tokens_per_parameter": float(d / n)}
            for c, n, d in zip(budgets, np.atleast_1d(n_opt), np.atleast_1d(d_opt))]


def _print_summary(law, path: Path, n_points: int, frontier, holdout) -> None:
    result = law.result_
    out.print(f"{law.form} fit of {path.name} ({n_points} points)", highlight=False)
    table = Table()
    for name, justify in (("parameter", "left"), ("value", "right"), ("CI low", "right"), ("CI high", "right")):
        table.add_column(name, justify=justify)
    for name, value in law.params_.items():
        lo, hi = law.ci_.get(name, (math.nan, math.nan))
        table.add_row(name, f"{value:.6g}", f"{lo:.6g}", f"{hi:.6g}")
    out.print(table)
    out.print(f"objective {result.objective:.6g} (Huber, delta {law.delta:g}), {result.n_starts} starts, "
              f"converged {result.converged}", highlight=False)
    if frontier:
        out.print("compute-optimal allocation", highlight=False)
        ft = Table()
        for name in ("compute C", "N_opt", "D_opt", "D/N"):
            ft.add_column(name, justify="right")
        for row in frontier:
            ft.add_row(f"{row['flops']:.3g}", f"{row['n_opt']:.4g}", f"{row['d_opt']:.4g}",
                       f"{row['tokens_per_parameter']:.3g}")
        out.print(ft)
    if holdout is not None:
        out.print(f"hold-out: fitted on the {holdout.n_train} runs with C <= {holdout.threshold:.3g}, predicted the "
                  f"{holdout.n_test} above it with mean |relative error| {holdout.mean_abs_rel_error:.2%}, max "
                  f"{holdout.max_abs_rel_error:.2%}, RMS log error {holdout.rmse_log:.4f}", highlight=False)


@fit_app.command("scaling")
def scaling(
    file: Path = typer.Argument(..., help="CSV or Parquet table, one row per training run"),
    form: str = typer.Option("chinchilla", "--form", help="chinchilla, kaplan-n, kaplan-d, kaplan-joint, "
                                                          "power-offset or data-constrained"),
    n: Optional[str] = typer.Option(None, "--n", help="column of parameter counts N"),
    d: Optional[str] = typer.Option(None, "--d", help="column of training tokens D"),
    flops: Optional[str] = typer.Option(None, "--flops", help="column of training compute C (D = C/(6N) if no --d)"),
    u: Optional[str] = typer.Option(None, "--u", help="column of unique tokens U (data-constrained form)"),
    x: Optional[str] = typer.Option(None, "--x", help="column of the one input of power-offset"),
    loss: str = typer.Option("loss", "--loss", help="column of final losses"),
    bootstrap: int = typer.Option(0, "--bootstrap", help="bootstrap refits for 95% intervals (0: none)"),
    holdout_above: Optional[float] = typer.Option(None, "--holdout-above",
                                                  help="fit only runs with compute <= C, report the error above"),
    delta: float = typer.Option(1e-3, "--delta", help="Huber delta on log-loss residuals (Hoffmann et al.: 1e-3)"),
    seed: int = typer.Option(0, "--seed", help="seed of the bootstrap resamples"),
    out_dir: Path = typer.Option(Path("learnmech-results/fit"), "--out", help="folder for the figure"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Fit a scaling law to FILE: parameters with bootstrap intervals, the frontier, a hold-out check, a figure."""
    from learnmech.theory.scaling_forms import FORMS

    try:
        if form not in FORMS:
            raise BadInput(f"--form: unknown form {form!r}; allowed: {', '.join(FORMS)}")
        if not (math.isfinite(delta) and delta > 0):
            raise BadInput(f"--delta: must be a positive number, got {delta}")
        if out_dir.exists() and not out_dir.is_dir():
            raise BadInput(f"--out: {out_dir} exists and is not a folder")
        spec = FORMS[form]
        table = _read(file)
        inputs, compute = _inputs(spec, table, file, {"n": n, "d": d, "u": u, "x": x}, flops)
        losses = _column(table, "--loss", loss, file)
        _check_counts(spec, losses.size, compute, holdout_above, bootstrap)
    except BadInput as exc:
        fail_input(str(exc))

    from learnmech.report import save_figure
    from learnmech.report.scaling_figure import plot_scaling_fit
    from learnmech.theory.scaling_law import ScalingLaw

    law = ScalingLaw(form=form, delta=delta, n_bootstrap=bootstrap, seed=seed)
    table = {**inputs, "loss": losses} | ({"flops": compute} if compute is not None else {})
    law.fit(table, **{k: k for k in inputs}, flops="flops" if compute is not None else None, loss="loss")
    holdout = law.holdout(holdout_above) if holdout_above is not None else None
    frontier = _frontier_rows(law, compute)
    fig = plot_scaling_fit(law, inputs, losses, holdout=holdout,
                           title=f"learnmech fit scaling: {form} on {file.name}")
    paths = [str(p) for p in save_figure(fig, out_dir, f"scaling-{form}")]
    if as_json:
        payload = {"file": str(file), "form": form, "n_points": int(losses.size),
                   "delta": delta, "params": _plain(law.params_), "ci": _plain(law.ci_),
                   "objective": finite_or_none(law.result_.objective), "converged": bool(law.result_.converged),
                   "frontier": frontier, "holdout": _plain(holdout), "figures": paths}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    _print_summary(law, file, int(losses.size), frontier, holdout)
    out.print(f"figure: {paths[0]}", highlight=False)
