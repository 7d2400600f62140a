"""``learnmech fit scaling FILE``: fit a scaling law to a user's own runs (CSV or Parquet).

The fit is :class:`learnmech.fit.ScalingLaw` (Huber loss on log-loss residuals,
L-BFGS from a grid of starts, bootstrap intervals). Every input is checked before anything is
fitted or written: a file that is not a readable regular CSV/Parquet file (one line naming the
row and column of a parse error), a missing or duplicated column, a non-numeric, non-positive or
non-finite value, a derived compute ``6 N D`` or token count ``C / (6 N)`` that is not finite, too
few points for the form, a hold-out threshold that leaves nothing to fit or to test, a bootstrap
count or seed out of range, or an ``--out`` folder that cannot be written is one line on stderr
naming the option, and exit code 2.

Limits (policy): ``--bootstrap`` at most ``MAX_BOOTSTRAP`` resamples and at most
``MAX_RESAMPLED_ROWS`` resampled rows (``--bootstrap`` times the rows: each refit of a resample
costs time in proportion to the rows); ``--seed`` from 0 to ``2**32 - 1``. Memory is bounded by
the fitter itself: ``O(rows)`` plus a constant (:mod:`learnmech.fit.scaling_fit`).

``--fix NAME=VALUE`` (repeatable) holds a parameter of the form at a value in natural units and
fits the others (:func:`learnmech.theory.scaling_forms.reduced_form`); a malformed item, a name
that is not a parameter of the form, a value that is not a finite number or outside the form's
range, a name given twice, or every parameter fixed is one line naming ``--fix``, exit code 2.

A fit that ran exits 0 even when its law has no compute-optimal frontier (an exponent or a
coefficient not > 0: a loss flat or rising in ``N`` or ``D``): the parameters are printed with a
note saying so, and the JSON has ``"frontier": []`` and the note in ``"frontier_note"``.

A fit that cannot be trusted exits 0 too, and says so (:mod:`learnmech.cli_fit_output`): every
diagnostic of :mod:`learnmech.fit.diagnostics` (a parameter at a bound or far below the data, a
runaway exponent, other basins within 1% of the best, a 95% interval wider than the data support,
non-convergence with its reason) is printed, flagged in the parameter table and listed in the
JSON; and a fit that is not identified or not converged gets **no compute-optimal table**: the
line ``compute-optimal allocation withheld: <why>`` stands in its place (JSON ``"frontier": []``,
the reason in ``"frontier_withheld"`` and ``"frontier_note"``). Exit code 0 was chosen because the
fit ran and its result, with the reason, is the answer; a script tells an untrusted fit by
``"identified"`` / ``"converged"`` or by ``"frontier_withheld"`` being non-empty.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from learnmech.cli_common import BadInput, doing, fail_input, out, progress_bar
from learnmech.cli_fit_output import json_payload, print_summary

__all__ = ["MAX_BOOTSTRAP", "MAX_RESAMPLED_ROWS", "fit_app"]

MAX_BOOTSTRAP = 10_000  # resamples: percentile intervals at 95% are stable to ~1% of their width by then
MAX_RESAMPLED_ROWS = 10**8  # --bootstrap x rows: 300-iteration refits of 1e8 rows take about an hour on 2 CPU cores
MAX_SEED = 2**32 - 1  # numpy's SeedSequence takes any integer >= 0; a 32-bit seed is plenty to name a resampling
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")  # an integer as typed (no exponent, no thousands of digits)
_FIX = re.compile(r"\s*([^=\s]+)\s*=\s*([^=\s]+)\s*")  # NAME=VALUE of --fix

fit_app = typer.Typer(no_args_is_help=True, help="Fit laws to your own measurements.")

_OPTION_OF_INPUT = {"n": "--n", "d": "--d", "u": "--u", "x": "--x"}


def _integer(text: str, option: str, allowed: str, ok) -> int:
    """``text`` as an integer for which ``ok(value)``; ``BadInput`` saying ``allowed`` otherwise."""
    value = int(text) if _INTEGER.fullmatch(text.strip()) else None
    if value is None or not ok(value):
        raise BadInput(f"{option}: must be {allowed}, got {text.strip() if value is not None else repr(text)}")
    return value


def _fixed(form, items: list[str]) -> dict[str, float]:
    """``--fix NAME=VALUE`` items as ``{name: value}``; ``BadInput`` naming ``--fix`` and what is allowed."""
    from learnmech.theory.scaling_forms import reduced_form

    allowed = ", ".join(form.params)
    fixed: dict[str, float] = {}
    for item in items:
        match = _FIX.fullmatch(item)
        if match is None:
            raise BadInput(f"--fix: expected NAME=VALUE with NAME one of {allowed} and VALUE a number, got {item!r}")
        name, text = match.groups()
        if name not in form.params:
            raise BadInput(f"--fix: {name!r} is not a parameter of the form {form.name}; allowed: {allowed}")
        if name in fixed:
            raise BadInput(f"--fix: {name} is given twice")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadInput(f"--fix: the value of {name} must be a finite number, got {text!r}")
        fixed[name] = value
    if len(fixed) == len(form.params):
        raise BadInput(f"--fix: every parameter of the form {form.name} is fixed; leave at least one free")
    for name, value in fixed.items():  # one at a time, so that the line names the culprit
        try:
            reduced_form(form, {name: value})
        except ValueError as exc:
            raise BadInput(f"--fix: {str(exc).removeprefix('fixed: ')}") from None
    return fixed


def _read(path: Path) -> dict[str, np.ndarray]:
    """The table as columns; ``BadInput`` naming FILE when it cannot be read (the name is taken literally)."""
    from learnmech.data.tables import read_table

    if not (path.exists() or path.is_symlink()):
        raise BadInput(f"FILE: no such file: {path}")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"FILE: expected a .csv or .parquet file, got {path.name!r}")
    try:
        return read_table(path)
    except ValueError as exc:  # read_table's one line: "file: <path> ..."
        raise BadInput(f"FILE: {str(exc).removeprefix('file: ')}") from None
    except OSError as exc:
        raise BadInput(f"FILE: {path} could not be read: {exc.strerror or exc}") from None


def _first_not_number(values) -> tuple[int, Any]:
    """The first entry (1-based row, value) of a column that does not read as a number."""
    for row, value in enumerate(values, start=1):
        try:
            float(value)
        except (TypeError, ValueError):
            return row, value
    return 0, None


def _column(table, option: str, name: str, path: Path) -> np.ndarray:
    """Column ``name`` as positive finite floats; ``BadInput`` naming ``option`` otherwise."""
    if name not in table:
        raise BadInput(f"{option}: no column {name!r} in {path.name}; columns: {', '.join(table)}")
    try:
        values = np.asarray(table[name], dtype=np.float64)
    except (TypeError, ValueError):
        row, value = _first_not_number(table[name])
        shown = "an empty field" if value is None else repr(value)
        raise BadInput(f"{option}: column {name!r} of {path.name} must be numeric; row {row} holds {shown}") from None
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        raise BadInput(f"{option}: column {name!r} must be positive and finite; {bad.size} value(s) are not "
                       f"(first at row {bad[0] + 1}: {values[bad[0]]:g})")
    return values


def _derived(values: np.ndarray, option: str, what: str, operands: dict[str, np.ndarray]) -> np.ndarray:
    """A derived column (``D = C/(6N)``, ``C = 6 N D``) that must be positive and finite; ``BadInput`` otherwise."""
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        row = bad[0]
        given = ", ".join(f"{k} = {v[row]:g}" for k, v in operands.items())
        raise BadInput(f"{option}: {what} must be positive and finite in float64; {bad.size} row(s) are not "
                       f"(first at row {row + 1}: {given} give {values[row]:g})")
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
        with np.errstate(over="ignore", under="ignore"):
            six_n = 6.0 * inputs["n"]  # C / (6 N) as ScalingLaw computes it; C / 6 / N only where 6 N overflows
            tokens = np.where(np.isfinite(six_n), compute / six_n, compute / 6.0 / inputs["n"])
        inputs["d"] = _derived(tokens, "--flops", "the tokens D = C/(6N)", {"C": compute, "N": inputs["n"]})
    if compute is None and "n" in inputs and "d" in inputs:
        with np.errstate(over="ignore"):
            product = 6.0 * inputs["n"] * inputs["d"]  # as ScalingLaw computes it (inf is refused below)
        compute = _derived(product, "--d", "the compute C = 6 N D", {"N": inputs["n"], "D": inputs["d"]})
    return {k: inputs[k] for k in form.inputs}, compute


def _check_counts(form, n_points: int, compute, holdout_above: Optional[float], bootstrap: int,
                  n_fixed: int = 0) -> None:
    free = len(form.params) - n_fixed
    need = free + 1
    if n_points < need:
        what = f"{free} free parameters ({n_fixed} fixed by --fix)" if n_fixed else f"{free} parameters"
        raise BadInput(f"FILE: {n_points} rows; the form {form.name} has {what} and needs at least {need} points")
    if bootstrap * n_points > MAX_RESAMPLED_ROWS:
        raise BadInput(f"--bootstrap: {bootstrap} resamples of {n_points} rows are {bootstrap * n_points:.3g} "
                       f"resampled rows; at most {MAX_RESAMPLED_ROWS:.0e} (here at most "
                       f"{MAX_RESAMPLED_ROWS // n_points} resamples)")
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


def _check_out(out_dir: Path) -> None:
    """``--out`` must be a folder that exists or can be created, and be writable: checked before the fit."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out: {out_dir} exists and is not a folder")
    existing = next(p for p in (out_dir.absolute(), *out_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise BadInput(f"--out: {existing} is not a folder, so {out_dir} cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"--out: the folder {existing} is not writable")


def _frontier_rows(law, compute) -> tuple[list[dict[str, float]], Optional[str]]:
    """Compute-optimal N, D and D/N at the data's largest budget and one and two decades beyond.

    Returns the rows and a note: ``None``, or why there are no rows for a form that has a frontier
    (the fit is not identified or not converged: withheld; the fitted law has none; budgets beyond
    float64 are left out).
    """
    from learnmech.theory.scaling_forms import FORMS
    from learnmech.theory.scaling_frontier import frontier_problem

    if not FORMS[law.form].frontier or compute is None:
        return [], None
    if law.frontier_withheld_:
        return [], f"compute-optimal allocation withheld: {law.frontier_withheld_}; see the warnings"
    problem = frontier_problem(law.params_)
    if problem:
        return [], f"the compute-optimal frontier is undefined for this fit: {problem}"
    with np.errstate(over="ignore"):
        budgets = compute.max() * np.array([1.0, 10.0, 100.0])
    budgets = budgets[np.isfinite(budgets)]
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        n_opt, d_opt = (np.atleast_1d(v) for v in law.frontier(budgets))
        ratio = d_opt / n_opt
    shown = np.isfinite(n_opt) & np.isfinite(d_opt) & np.isfinite(ratio) & (n_opt > 0) & (d_opt > 0)
    rows = [{"flops": float(c), "n_opt": float(n), "d_opt": float(d), "tokens_per_parameter": float(r)}
            for c, n, d, r in zip(budgets[shown], n_opt[shown], d_opt[shown], ratio[shown])]
    return rows, None if rows else "the compute-optimal allocation is beyond float64 at these budgets"


def _write_figure(fig, out_dir: Path, stem: str) -> list[str]:
    """The figure as ``out_dir/stem.{png,svg}``, each written whole or not at all (``write_atomic``)."""
    from learnmech.report.figures import figure_bytes
    from learnmech.store.files import write_files

    contents = figure_bytes(fig)
    with doing("writing the figure"):
        return [str(p) for p in write_files(out_dir, stem, contents)]


def _fit(law, table: dict, inputs: dict, compute, holdout_above: Optional[float]):
    """Fit (and bootstrap, and the hold-out refit) behind a progress bar on stderr (on a terminal)."""
    columns = {k: k for k in inputs} | {"flops": "flops" if compute is not None else None, "loss": "loss"}
    with progress_bar() as bar:
        task = bar.add_task("fitting", total=None)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, description=label, completed=done, total=total)

        law.fit(table, **columns, progress=progress)
        return law.holdout(holdout_above, progress=progress) if holdout_above is not None else None


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
    bootstrap: str = typer.Option("0", "--bootstrap", metavar="INTEGER",
                                  help=f"bootstrap refits for 95% intervals (0: none; 2 to {MAX_BOOTSTRAP})"),
    holdout_above: Optional[float] = typer.Option(None, "--holdout-above",
                                                  help="fit only runs with compute <= C, report the error above"),
    delta: float = typer.Option(1e-3, "--delta", help="Huber delta on log-loss residuals (Hoffmann et al.: 1e-3)"),
    seed: str = typer.Option("0", "--seed", metavar="INTEGER",
                             help=f"seed of the bootstrap resamples (0 to {MAX_SEED})"),
    fix: Optional[list[str]] = typer.Option(None, "--fix", metavar="NAME=VALUE",
                                            help="hold a parameter of the form at VALUE (natural units, e.g. "
                                                 "--fix alpha=0.34); repeatable"),
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
        n_boot = _integer(bootstrap, "--bootstrap", f"0 (no intervals) or an integer from 2 to {MAX_BOOTSTRAP}",
                          lambda v: v == 0 or 2 <= v <= MAX_BOOTSTRAP)
        seed_value = _integer(seed, "--seed", f"an integer from 0 to {MAX_SEED}", lambda v: 0 <= v <= MAX_SEED)
        spec = FORMS[form]
        fixed = _fixed(spec, fix or [])
        _check_out(out_dir)
        table = _read(file)
        inputs, compute = _inputs(spec, table, file, {"n": n, "d": d, "u": u, "x": x}, flops)
        losses = _column(table, "--loss", loss, file)
        _check_counts(spec, losses.size, compute, holdout_above, n_boot, len(fixed))
    except BadInput as exc:
        fail_input(str(exc))

    from learnmech.fit import ScalingLaw
    from learnmech.report.scaling import plot_scaling_fit

    law = ScalingLaw(form=form, delta=delta, n_bootstrap=n_boot, seed=seed_value, fixed=fixed or None)
    table = {**inputs, "loss": losses} | ({"flops": compute} if compute is not None else {})
    try:
        holdout = _fit(law, table, inputs, compute, holdout_above)
    except FloatingPointError as exc:  # no start has a finite objective: the form cannot describe FILE
        fail_input(f"FILE: the {form} fit of {file.name} failed: {exc}")
    frontier, note = _frontier_rows(law, compute)
    fig = plot_scaling_fit(law, inputs, losses, holdout=holdout,
                           title=f"learnmech fit scaling: {form} on {file.name}")
    paths = _write_figure(fig, out_dir, f"scaling-{form}")
    if as_json:
        payload = json_payload(law, file, losses.size, frontier, note, holdout, paths)
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    print_summary(law, file, int(losses.size), frontier, note, holdout)
    out.print(f"figure: {paths[0]}", highlight=False)
