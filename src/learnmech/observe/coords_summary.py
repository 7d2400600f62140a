"""The coordinate check's result: per-step ratios and slopes, the worst step, warnings and a summary table.

Contract. :class:`CoordCheck` holds what :func:`learnmech.observe.coords.coord_check` measured
(activation RMS at init ``(W, L)`` and its change after each step ``(W, K, L)``, means over
seeds) and derives everything else from it with pure numpy:

- ``ratios[t, l] = change[-1, t, l] / change[0, t, l]`` (widest over narrowest) and
  ``slopes[t, l]``, the least-squares slope of ``log change[:, t, l]`` against ``log width``;
- the **worst step** of each layer: the step whose ratio is farthest from 1 in log,
  ``argmax_t |log ratios[t, l]|`` (a non-finite ratio counts as infinitely far);
  ``worst_ratio``, ``worst_step`` and ``worst_slope`` read that step. The muP prediction is a
  slope 0 at *every* step (Yang et al. 2022, TP-V, arXiv:2203.03466, Appendix "coordinate
  check"), so a parameterisation is only as good as its worst step: under SP the output update
  typically blows up at step 1 and is pulled back by the optimiser afterwards, so the last step
  alone can look flat.
- ``init_slope``: the slope of the activation RMS at initialisation against width.

Slope tolerance of the warnings (``SLOPE_TOLERANCE = 0.15``). A width exponent, not a ratio, so
the rule does not depend on the width span. The exponents that parameterisation mistakes produce
are multiples of 1/2: an initialiser whose std carries a spurious ``width^{-1/2}`` (flax
``nnx.Embed``'s default ``1/sqrt(features)`` on an embedding) or lacks a ``fan_in^{-1/2}`` (a fixed
std such as 0.02) shifts the init RMS by ``-1/2`` / ``+1/2``; a learning rate off by a factor of
width shifts a layer's own update by ``+-1`` (SP's output update grows like ``width^{1}`` to
``width^{3/2}`` under Adam). 0.15 is under a third of the smallest of these, leaving room for
finite-width curvature and seed noise in a fit over a few widths; over the 8x width span of the
``hparams.coord-check`` claim it corresponds to widest/narrowest ratios in ``[0.73, 1.37]``,
about that claim's band ``[0.75, 1.33]``.

The readout's init. Under muP the output layer's init variance is ``base/fan_in^2`` and its init
RMS decays like ``width^{-1/2}``; only its update is Theta(1) (TP-V, Table 3). The layer named as
the readout (by default the last, the model's output) is therefore accepted with an init slope
near 0 (SP) *or* near -1/2 (muP); every other layer must have init slope near 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["CoordCheck", "format_summary", "SLOPE_TOLERANCE"]

SLOPE_TOLERANCE = 0.15  # |d log RMS / d log width| above which a layer is said to drift (module docstring)
MUP_READOUT_INIT_SLOPE = -0.5  # TP-V: readout init variance base/fan_in^2, RMS ~ width^{-1/2}


def _log_slope(widths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``log values`` against ``log widths``, per column: ``(W, L) -> (L,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(np.asarray(widths, np.float64))  # (W,)
        y = np.log(np.asarray(values, np.float64))  # (W, L)
        xc = x - x.mean()
        return (xc @ (y - y.mean(axis=0))) / (xc @ xc)  # (L,)


def _ratio(values: np.ndarray) -> np.ndarray:
    """Widest over narrowest, per column: ``(W, L) -> (L,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(values[-1] / values[0], np.float64)


def _distance_from_one(ratios: np.ndarray) -> np.ndarray:
    """``|log ratio|``, with ``inf`` for a ratio that is not a positive finite number."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(np.log(ratios))
    return np.where(np.isfinite(d), d, np.inf)


_CAUSES = {
    ("init", "shrinks", "input"): "an initialiser scaled by 1/sqrt(width), e.g. flax nnx.Embed's default std "
                                  "1/sqrt(features); an input or embedding layer needs a width-independent std",
    ("init", "shrinks", "hidden"): "init variance falling faster than 1/fan_in (e.g. the readout's 1/fan_in^2 rule "
                                   "applied to a hidden layer), or a layer below that already shrinks; for "
                                   "attention logits under muP's c/d_head with a random query this is expected "
                                   "(q.k ~ sqrt(d_head) at init: slope -1/2; zero_query=True starts them at 0)",
    ("init", "shrinks", "readout"): "a readout init that is neither SP's 1/fan_in (slope 0) nor muP's "
                                    "base/fan_in^2 (slope -1/2)",
    ("init", "grows", "input"): "an init std that grows with width (a multiplier or std tied to the width)",
    ("init", "grows", "hidden"): "an init std that does not shrink with fan_in (a fixed std such as 0.02 or 1 "
                                 "grows like sqrt(width)), or a layer below that already grows",
    ("init", "grows", "readout"): "an init std that does not shrink with fan_in (a fixed std such as 0.02 or 1 "
                                  "grows like sqrt(width))",
    ("update", "grows", "input"): "learning rate too large for wide layers (the input layer's update should not "
                                  "depend on width: check its learning rate and multiplier)",
    ("update", "grows", "hidden"): "learning rate too large for wide layers (SP, or muP's learning rate "
                                   "eta * base / fan_in missing on this layer), or a layer below that already grows",
    ("update", "grows", "readout"): "learning rate too large for wide layers (SP, or muP's readout rule missing: "
                                    "learning rate eta * base / fan_in under Adam and init variance base/fan_in^2)",
    ("update", "shrinks", "input"): "learning rate too small for wide layers: the layer freezes as width grows "
                                    "(e.g. a 1/width learning rate on the input layer, or muP applied twice)",
    ("update", "shrinks", "hidden"): "learning rate too small for wide layers: the layer freezes as width grows "
                                     "(e.g. an NTK-style 1/width rate, or muP multipliers applied twice)",
    ("update", "shrinks", "readout"): "learning rate too small for wide layers: the readout freezes as width grows "
                                      "(e.g. muP's output multiplier applied twice)",
}


@dataclass(frozen=True)
class CoordCheck:
    """Result of :func:`learnmech.observe.coords.coord_check`.

    Attributes:
      widths: ``(W,)`` increasing.
      steps: ``(K,)`` the steps ``1..k`` after which the change is recorded.
      rms: ``(W, L)`` activation RMS at initialisation, mean over seeds.
      change: ``(W, K, L)`` RMS of ``h_t - h_0`` on the probe after ``t`` steps, mean over seeds.
      rms_per_seed: ``(W, S, L)`` the same before averaging (``None`` when built from means).
      change_per_seed: ``(W, S, K, L)`` the same before averaging (``None`` when built from means).
      layer_names: ``L`` names (from the model's ``names`` or the keys of a dict that ``layers``
        returns); ``None`` reads as ``"layer 1"``, ..., ``"layer L"``.
      timings: per width, seconds spent tracing, compiling and running its program (``None`` when
        not measured).

    A diverged member shows as NaN (or inf) in its per-seed entries and in the means.
    """

    widths: np.ndarray
    steps: np.ndarray
    rms: np.ndarray
    change: np.ndarray
    rms_per_seed: np.ndarray | None = None
    change_per_seed: np.ndarray | None = None
    layer_names: tuple[str, ...] | None = None
    timings: Mapping[int, Mapping[str, float]] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The ``L`` layer names (``layer_names``, or ``"layer 1"``, ...)."""
        if self.layer_names is not None:
            return tuple(self.layer_names)
        return tuple(f"layer {l + 1}" for l in range(np.shape(self.rms)[-1]))

    # --- per step ---------------------------------------------------------------------------

    @property
    def ratios(self) -> np.ndarray:
        """``(K, L)`` change widest over narrowest, per step and layer (1 when width-independent)."""
        return _ratio(np.asarray(self.change, np.float64))

    @property
    def slopes(self) -> np.ndarray:
        """``(K, L)`` log-log slope of the change against width, per step and layer (0 under muP)."""
        change = np.asarray(self.change, np.float64)  # (W, K, L)
        return np.stack([_log_slope(self.widths, change[:, t]) for t in range(change.shape[1])])

    # --- the worst step: the summary to judge by ----------------------------------------------

    @property
    def worst_index(self) -> np.ndarray:
        """``(L,)`` index into ``steps`` of each layer's ratio farthest from 1 in log."""
        return np.argmax(_distance_from_one(self.ratios), axis=0)

    @property
    def worst_step(self) -> np.ndarray:
        """``(L,)`` the step (from ``steps``) whose ratio widest/narrowest is farthest from 1 in log."""
        return np.asarray(self.steps)[self.worst_index]

    @property
    def worst_ratio(self) -> np.ndarray:
        """``(L,)`` the change ratio widest/narrowest at each layer's worst step."""
        return np.take_along_axis(self.ratios, self.worst_index[None], axis=0)[0]

    @property
    def worst_slope(self) -> np.ndarray:
        """``(L,)`` the log-log slope of the change at each layer's worst step."""
        return np.take_along_axis(self.slopes, self.worst_index[None], axis=0)[0]

    # --- the last step (kept for callers that want it; judge by the worst step) ---------------

    @property
    def ratio(self) -> np.ndarray:
        """``(L,)`` change ratio widest/narrowest at the **last** step ``k`` only.

        The last step can look flat when an earlier one blew up (SP: the output update at step 1
        grows with width, then the optimiser pulls it back); judge by :attr:`worst_ratio`.
        """
        return self.ratios[-1]

    @property
    def slope(self) -> np.ndarray:
        """``(L,)`` log-log slope of the change at the **last** step ``k``; see :attr:`worst_slope`."""
        return self.slopes[-1]

    # --- initialisation ------------------------------------------------------------------------

    @property
    def rms_ratio(self) -> np.ndarray:
        """``(L,)`` activation RMS at init, widest over narrowest."""
        return _ratio(np.asarray(self.rms, np.float64))

    @property
    def rms_slope(self) -> np.ndarray:
        """``(L,)`` log-log slope of the activation RMS at init against width."""
        return _log_slope(self.widths, np.asarray(self.rms, np.float64))

    @property
    def init_slope(self) -> np.ndarray:
        """``(L,)`` the same as :attr:`rms_slope`: 0 for every layer but muP's readout (-1/2)."""
        return self.rms_slope

    # --- diagnosis -----------------------------------------------------------------------------

    def diagnose(self, tolerance: float = SLOPE_TOLERANCE, *, readout: int | str | None = -1) -> list[dict]:
        """Per layer, the drifts beyond ``tolerance``: a list of ``L`` dicts with keys ``layer``,
        ``role`` (``"input"`` for the first layer, ``"readout"``, ``"hidden"``), ``finite`` and
        ``drifts`` (a list of ``(what, direction, slope, cause)``, ``what`` in ``init``/``update``).
        ``readout``: index or name of the readout layer (default: the last, the output), whose
        init slope -1/2 is muP's and accepted; ``None``: no layer is treated as the readout.
        """
        tolerance = _checked_tolerance(tolerance)
        names = self.names
        r = _readout_index(readout, names)
        init, update = self.init_slope, self.worst_slope
        out = []
        for l, name in enumerate(names):
            role = "readout" if l == r else ("input" if l == 0 else "hidden")
            finite = bool(np.all(np.isfinite(np.asarray(self.rms)[..., l]))
                          and np.all(np.isfinite(np.asarray(self.change)[..., l])))
            drifts = []
            accepted = (0.0, MUP_READOUT_INIT_SLOPE) if role == "readout" else (0.0,)
            if finite and min(abs(init[l] - a) for a in accepted) > tolerance:
                direction = "grows" if init[l] > 0 else "shrinks"
                drifts.append(("init", direction, float(init[l]), _CAUSES[("init", direction, role)]))
            if finite and abs(update[l]) > tolerance:
                direction = "grows" if update[l] > 0 else "shrinks"
                drifts.append(("update", direction, float(update[l]), _CAUSES[("update", direction, role)]))
            out.append({"layer": name, "role": role, "finite": finite, "drifts": drifts})
        return out

    def warnings(self, tolerance: float = SLOPE_TOLERANCE, *, readout: int | str | None = -1) -> list[str]:
        """Plain sentences, one per layer whose init RMS or update RMS drifts with width.

        A layer drifts when the log-log slope of its init RMS, or of its update RMS at its worst
        step, exceeds ``tolerance`` in absolute value (``SLOPE_TOLERANCE = 0.15`` by default; the
        module docstring derives it). The readout (``readout``: index or name, default the last
        layer) may have init slope -1/2, muP's (Yang et al. 2022, arXiv:2203.03466, Table 3). Each
        sentence names the layer, the slope and the likely cause; a layer with a non-finite value
        (a diverged member) gets one sentence saying so. Empty when every layer is flat.
        """
        sentences = []
        worst_step, worst_ratio = self.worst_step, self.worst_ratio
        for l, d in enumerate(self.diagnose(tolerance, readout=readout)):
            if not d["finite"]:
                sentences.append(f"{d['layer']}: non-finite activation RMS or change (a member diverged); "
                                 f"lower the learning rate or check the model at the widest widths.")
            for what, direction, slope, cause in d["drifts"]:
                where = ("at initialisation" if what == "init" else
                         f"at step {int(worst_step[l])} (widest/narrowest {worst_ratio[l]:.3g})")
                sentences.append(f"{d['layer']}: {what} RMS {direction} with width {where}, slope {slope:+.2f} "
                                 f"(|slope| > {tolerance:g}); likely cause: {cause}.")
        return sentences

    def summary(self, tolerance: float = SLOPE_TOLERANCE, *, readout: int | str | None = -1) -> list[dict]:
        """One row per layer: ``layer``, ``init_slope``, ``worst_step``, ``worst_ratio``,
        ``worst_slope``, ``last_ratio`` and ``verdict`` (``"flat"``, ``"muP readout init"`` for an
        accepted -1/2 init slope, ``"non-finite"``, or the drifts, e.g. ``"update grows"``).
        Print it with :func:`format_summary`."""
        rows = []
        init, worst_step, worst_ratio, worst_slope, last = (self.init_slope, self.worst_step, self.worst_ratio,
                                                            self.worst_slope, self.ratio)
        for l, d in enumerate(self.diagnose(tolerance, readout=readout)):
            rows.append({"layer": d["layer"], "init_slope": float(init[l]), "worst_step": int(worst_step[l]),
                         "worst_ratio": float(worst_ratio[l]), "worst_slope": float(worst_slope[l]),
                         "last_ratio": float(last[l]), "verdict": _verdict(d, init[l], tolerance)})
        return rows


def _verdict(diagnosis: dict, init_slope: float, tolerance: float) -> str:
    if not diagnosis["finite"]:
        return "non-finite"
    if diagnosis["drifts"]:
        return ", ".join(f"{what} {direction}" for what, direction, _, _ in diagnosis["drifts"])
    if diagnosis["role"] == "readout" and abs(init_slope) > tolerance:
        return "flat (muP readout init)"
    return "flat"


def _checked_tolerance(tolerance: float) -> float:
    tolerance = float(tolerance)
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance: must be a positive slope, got {tolerance}")
    return tolerance


def _readout_index(readout: int | str | None, names: Sequence[str]) -> int | None:
    if readout is None:
        return None
    if isinstance(readout, str):
        if readout not in names:
            raise ValueError(f"readout: must be one of the layer names {list(names)} or an index, got {readout!r}")
        return list(names).index(readout)
    if isinstance(readout, (bool, np.bool_)) or not isinstance(readout, (int, np.integer)):
        raise ValueError(f"readout: must be a layer index, a layer name or None, got {readout!r}")
    if not -len(names) <= int(readout) < len(names):
        raise ValueError(f"readout: index must be in [{-len(names)}, {len(names) - 1}], got {readout}")
    return int(readout) % len(names)


_COLUMNS = (("layer", "{}"), ("init_slope", "{:+.2f}"), ("worst_step", "{}"), ("worst_ratio", "{:.3g}"),
            ("worst_slope", "{:+.2f}"), ("last_ratio", "{:.3g}"), ("verdict", "{}"))


def format_summary(rows: Sequence[Mapping]) -> str:
    """The rows of :meth:`CoordCheck.summary` as a fixed-width text table, one line per layer."""
    cells = [[name for name, _ in _COLUMNS]] + [[fmt.format(row[name]) for name, fmt in _COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)
