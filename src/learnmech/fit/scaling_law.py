"""``ScalingLaw``: a scikit-learn estimator around :mod:`learnmech.fit.scaling_fit`.

Contract (scikit-learn's): the constructor only stores its keyword settings (``get_params``,
``set_params`` and ``sklearn.base.clone`` work); ``fit(table, ...)`` validates the columns, fits
(and bootstraps when ``n_bootstrap > 0``) and returns ``self``; fitted results end in ``_``
(``params_``, ``ci_``, ``result_``, ``bootstrap_``; ``basins_``, the other basins within 1% of the
best objective, and ``unidentified_``, the parameters that ran to a bound). Every fit says when it
cannot be trusted (:mod:`learnmech.fit.diagnostics`): ``diagnostics_`` holds the fit's findings and
the bootstrap's, ``warnings_`` those that are not notes, and ``frontier_withheld_`` why a
compute-optimal table must not be drawn from this fit (``""`` when it may; :meth:`frontier` still
computes one, for a caller who knows better). A table is a mapping
of column name to 1-D array (a dict of numpy arrays, a DataFrame's columns); tokens come from a
``d`` column or from ``D = C / (6 N)`` with a FLOP column (Kaplan et al. 2020, arXiv:2001.08361,
``C ~ 6 N D``).

>>> import numpy as np
>>> n = np.repeat(np.logspace(7, 9, 5), 5); d = np.tile(np.logspace(9, 11, 5), 5)
>>> law = ScalingLaw().fit({"n": n, "d": d, "loss": 1.8 + 480 / n**0.35 + 2100 / d**0.37})
>>> round(law.params_["beta"], 4)
0.37
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator

from learnmech.fit.diagnostics import warnings_of, withheld_reason
from learnmech.fit.scaling_fit import Bootstrap, FitResult, HoldoutReport, bootstrap_fit, fit_form, holdout_report
from learnmech.theory.scaling_forms import ScalingForm, get_form, predict
from learnmech.theory.scaling_frontier import compute_optimal

__all__ = ["ScalingLaw"]


class ScalingLaw(BaseEstimator):
    """Fit a parametric scaling law (default Chinchilla) to a table of runs.

    Args:
      form: a name in ``FORMS`` or a :class:`ScalingForm` (e.g. from ``user_form``).
      delta, reduction: Huber threshold on log-loss and ``"sum"`` / ``"mean"``.
      n_bootstrap: bootstrap refits for ``ci_`` (0: none).
      level: confidence level of the percentile intervals.
      seed: seed of the bootstrap resampling.
      starts, max_iter, n_refine, refine_iter, npolish, fixed: the search of :func:`fit_form`
        (its defaults: the form's grid of starts, 15 grid iterations, the best 16 refined for
        400, 8 distinct ones polished; ``fixed`` natural parameters held at given values).
    """

    def __init__(self, form: str | ScalingForm = "chinchilla", delta: float = 1e-3, reduction: str = "sum",
                 n_bootstrap: int = 0, level: float = 0.95, seed: int = 0, *, starts=None, max_iter: int = 15,
                 n_refine: int = 16, refine_iter: int = 400, npolish: int = 8,
                 fixed: Mapping[str, float] | None = None):
        self.form = form
        self.delta = delta
        self.reduction = reduction
        self.n_bootstrap = n_bootstrap
        self.level = level
        self.seed = seed
        self.starts = starts
        self.max_iter = max_iter
        self.n_refine = n_refine
        self.refine_iter = refine_iter
        self.npolish = npolish
        self.fixed = fixed

    def _search(self) -> dict:
        """The keyword arguments of :func:`fit_form` that set its search."""
        return {"starts": self.starts, "max_iter": self.max_iter, "n_refine": self.n_refine,
                "refine_iter": self.refine_iter, "npolish": self.npolish, "fixed": self.fixed}

    # ------------------------------------------------------------ columns

    def _inputs(self, table: Mapping, columns: Mapping[str, str | None], flops: str | None) -> dict[str, np.ndarray]:
        form = get_form(self.form)
        out = {}
        for key, col in columns.items():
            if key in form.inputs and col is not None:
                out[key] = _column(table, col, key)
        if "d" in form.inputs and "d" not in out:
            if flops is None:
                raise ValueError("d: give a token column (d=...) or a FLOP column (flops=...) for D = C / (6 N)")
            if "n" not in out:
                raise ValueError("n: needed with flops=... to compute D = C / (6 N)")
            c = _column(table, flops, "flops")
            _same_length("flops", c, "n", out["n"])
            out["d"] = c / (6.0 * out["n"])
        missing = [k for k in form.inputs if k not in out]
        if missing:
            raise ValueError(f"{missing[0]}: form {form.name!r} needs a column for {missing[0]!r}")
        first = next(iter(out))
        for key, values in out.items():
            _same_length(key, values, first, out[first])
        return out

    def fit(self, table: Mapping, *, n: str = "n", d: str | None = None, flops: str | None = None,
            u: str | None = None, x: str | None = None, loss: str = "loss", progress=None) -> "ScalingLaw":
        """Fit to ``table``; ``n``, ``d``, ``u``, ``x``, ``flops``, ``loss`` name its columns.

        ``progress(label, done, total)``, when given, follows the fit and the bootstrap
        (:mod:`learnmech.fit.scaling_fit`).
        """
        form = get_form(self.form)
        if d is None and flops is None and "d" in table:
            d = "d"
        columns = {"n": n, "d": d, "u": u if u is not None else ("u" if "u" in table else None),
                   "x": x if x is not None else ("x" if "x" in table else None)}
        inputs = self._inputs(table, columns, flops)
        y = _column(table, loss, "loss")
        first = next(iter(inputs))
        _same_length("loss", y, first, inputs[first])
        if y.size < form.n_params + 1:
            raise ValueError(f"loss: need at least {form.n_params + 1} runs for {form.n_params} parameters, got {y.size}")
        self.inputs_, self.loss_ = inputs, y
        self.flops_ = _column(table, flops, "flops") if flops is not None else 6.0 * inputs["n"] * inputs["d"] \
            if {"n", "d"} <= set(inputs) else None
        self.result_: FitResult = fit_form(form, inputs, y, delta=self.delta, reduction=self.reduction,
                                           progress=progress, **self._search())
        self.params_ = dict(self.result_.params)
        self.basins_ = self.result_.basins  # other basins within 1% of the best (Basin: params, objective)
        self.unidentified_ = self.result_.unidentified  # parameters the data cannot tell from a bound
        self.bootstrap_: Bootstrap | None = None
        self.ci_: dict[str, tuple[float, float]] = {}
        if self.n_bootstrap > 0:
            self.bootstrap_ = bootstrap_fit(form, inputs, y, n_boot=self.n_bootstrap, seed=self.seed,
                                            level=self.level, delta=self.delta, reduction=self.reduction,
                                            fit=self.result_, progress=progress)  # held parameters stay held
            self.ci_ = dict(self.bootstrap_.ci)
        self.diagnostics_ = self.result_.diagnostics + (self.bootstrap_.diagnostics if self.bootstrap_ else ())
        self.warnings_ = warnings_of(self.diagnostics_)
        self.frontier_withheld_ = withheld_reason(self.diagnostics_)
        return self

    # ------------------------------------------------------------ use

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise RuntimeError("ScalingLaw: call fit(...) first")

    def predict(self, table_or_inputs: Mapping, *, flops: str | None = None) -> np.ndarray:
        """Predicted loss at the inputs of a table (``n``, ``d`` or ``flops``, ``u``, ``x`` columns)."""
        self._check_fitted()
        columns = {k: (k if k in table_or_inputs else None) for k in ("n", "d", "u", "x")}
        return predict(self.form, self.params_, **self._inputs(table_or_inputs, columns, flops))

    def frontier(self, flops) -> tuple[np.ndarray, np.ndarray]:
        """Compute-optimal ``(N_opt, D_opt)`` at budgets ``flops`` (Chinchilla-type forms only).

        Computed from ``params_`` whatever the diagnostics say; check ``frontier_withheld_`` first
        (non-empty: the fit is not identified or not converged, and the CLI and the figure withhold it).
        """
        self._check_fitted()
        form = get_form(self.form)
        if not form.frontier:
            raise ValueError(f"form: the compute-optimal frontier needs a Chinchilla-type form, not {form.name!r}")
        return compute_optimal(self.params_, flops)

    def holdout(self, threshold: float, progress=None) -> HoldoutReport:
        """Refit on runs with compute ``6 N D`` (or the FLOP column) ``<= threshold``; errors above it."""
        self._check_fitted()
        if self.flops_ is None:
            raise ValueError("threshold: holdout needs a compute column (flops=...) or n and d")
        return holdout_report(self.form, self.inputs_, self.loss_, self.flops_, threshold,
                              delta=self.delta, reduction=self.reduction, progress=progress, **self._search())


def _column(table: Mapping, name: str, field: str) -> np.ndarray:
    if name not in table:
        raise ValueError(f"{field}: column {name!r} not in the table (columns: {sorted(map(str, table))})")
    values = np.asarray(table[name], dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{field}: column {name!r} must be finite and > 0")
    return values


def _same_length(field: str, values: np.ndarray, reference: str, ref_values: np.ndarray) -> None:
    if values.size != ref_values.size:
        raise ValueError(f"{field}: must have one value per run ({ref_values.size}, as {reference}), got {values.size}")
