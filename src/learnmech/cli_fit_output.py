"""What ``learnmech fit scaling`` prints: the parameter table, the warnings, the frontier, the JSON.

Contract: functions of a fitted :class:`learnmech.fit.ScalingLaw` (and the rows of its
compute-optimal table); they write to the CLI's console or return plain JSON-safe data and never
fit anything.

The parameter table shows the bootstrap's intervals, or without a bootstrap the local
(Gauss-Newton) 95% intervals every fit has. Every fit says when it cannot be trusted
(:mod:`learnmech.fit.diagnostics`): the parameter table has a ``flag`` column naming each
parameter's findings (``at a bound``, ``runaway``, ``local CI 10.9 decades``, ...); the
``converged`` line gives the stationarity verdict with its reason (:mod:`learnmech.fit.convergence`);
every warning follows as one line, ``not identified: ...`` or ``warning: ...``; and a fit that is not identified or not converged gets no compute-optimal
table: the line ``compute-optimal allocation withheld: <why>`` stands in its place (the exit code
stays 0: the fit ran and its result, with the reason, is the output). The JSON carries the same:
``"identified"``, ``"stop_reason"``, ``"intervals"`` (local 95%), ``"diagnostics"`` (every entry,
notes included), ``"warnings"`` (their sentences), ``"frontier_withheld"`` (the reason or ``""``)
and then ``"frontier": []`` with the reason in ``"frontier_note"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from learnmech.cli_common import finite_or_none, out

__all__ = ["LABELS", "json_payload", "plain", "print_summary"]

LABELS = {"unidentified": "not identified", "not_converged": "not converged", "warning": "warning", "note": "note"}


def plain(value: Any) -> Any:
    """Dataclasses / NamedTuples / arrays as JSON-safe plain data."""
    if is_dataclass(value):
        value = asdict(value)
    elif hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) or hasattr(value, "tolist"):
        return finite_or_none(value)
    return str(value)


def json_payload(law, path: Path, n_points: int, frontier, note, holdout, figures) -> dict:
    """The ``--json`` document of a fit."""
    result = law.result_
    return {"file": str(path), "form": law.form, "n_points": int(n_points), "delta": law.delta,
            "params": plain(law.params_), "ci": plain(law.ci_), "intervals": plain(result.intervals),
            "objective": finite_or_none(result.objective), "converged": bool(result.converged),
            "stop_reason": result.stop_reason,
            "identified": not any(d.severity == "unidentified" for d in law.diagnostics_),
            "fixed": plain(result.fixed), "unidentified": list(result.unidentified),
            "basins": [{"params": plain(b.params), "objective": finite_or_none(b.objective)} for b in result.basins],
            "diagnostics": plain(law.diagnostics_), "warnings": [d.message for d in law.warnings_],
            "frontier_withheld": law.frontier_withheld_, "frontier": frontier, "frontier_note": note,
            "holdout": plain(holdout), "figures": figures}


def _flags(law, name: str) -> str:
    """The tags of the warnings about parameter ``name``, for the table's flag column."""
    return "; ".join(dict.fromkeys(d.tag for d in law.warnings_ if name in d.params))


def print_summary(law, path: Path, n_points: int, frontier, note, holdout) -> None:
    """The parameter table, the convergence verdict, the warnings, the frontier (or why not), the hold-out."""
    result = law.result_
    out.print(f"{law.form} fit of {path.name} ({n_points} points)", highlight=False)
    table = Table()
    intervals, low, high = (law.ci_, "CI low", "CI high") if law.ci_ else \
        (result.intervals, "local 95% low", "local 95% high")  # without a bootstrap: the Gauss-Newton interval
    for name, justify in (("parameter", "left"), ("value", "right"), (low, "right"), (high, "right"),
                          ("flag", "left")):
        table.add_column(name, justify=justify)
    for name, value in law.params_.items():
        lo, hi = intervals.get(name, (math.nan, math.nan))
        shown = ("fixed", "fixed") if name in result.fixed else (f"{lo:.6g}", f"{hi:.6g}")
        table.add_row(name, f"{value:.6g}", *shown, _flags(law, name))
    out.print(table)
    out.print(f"objective {result.objective:.8g} (Huber, delta {law.delta:g}), {result.n_starts} starts, "
              f"converged {result.converged}: {result.stop_reason}", highlight=False)
    _print_warnings(law)
    if frontier:
        out.print("compute-optimal allocation", highlight=False)
        ft = Table()
        for name in ("compute C", "N_opt", "D_opt", "D/N"):
            ft.add_column(name, justify="right")
        for row in frontier:
            ft.add_row(f"{row['flops']:.3g}", f"{row['n_opt']:.4g}", f"{row['d_opt']:.4g}",
                       f"{row['tokens_per_parameter']:.3g}")
        out.print(ft)
    if note:
        out.print(note if note.startswith("compute-optimal allocation withheld") else f"note: {note}",
                  highlight=False)
    if holdout is not None:
        out.print(f"hold-out: fitted on the {holdout.n_train} runs with C <= {holdout.threshold:.3g}, predicted the "
                  f"{holdout.n_test} above it with mean |relative error| {holdout.mean_abs_rel_error:.2%}, max "
                  f"{holdout.max_abs_rel_error:.2%}, RMS log error {holdout.rmse_log:.4f}", highlight=False)


def _print_warnings(law) -> None:
    """Every warning as one line (the converged line already gave non-convergence), then the basins' table."""
    shown = [d for d in law.warnings_ if d.code != "not_converged"]
    if shown:
        out.print(f"warnings ({len(shown)}): this fit cannot be trusted as it stands"
                  if law.frontier_withheld_ else f"warnings ({len(shown)})", highlight=False)
    for d in shown:
        out.print(f"  {LABELS[d.severity]}: {d.message}", highlight=False)
    result = law.result_
    if not result.basins:
        return
    free = [p for p in result.params if p not in result.fixed]
    bt = Table()
    for name in ("basin", *free, "objective", "above best"):
        bt.add_column(name, justify="left" if name == "basin" else "right")
    bt.add_row("best", *(f"{result.params[p]:.6g}" for p in free), f"{result.objective:.8g}", "0")
    for i, basin in enumerate(result.basins, start=2):
        gap = basin.objective / result.objective - 1 if result.objective else math.inf
        bt.add_row(str(i), *(f"{basin.params[p]:.6g}" for p in free), f"{basin.objective:.8g}", f"{gap:.2e}")
    out.print(bt)
