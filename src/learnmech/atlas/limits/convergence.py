"""limits.kernel-convergence — finite networks converge to the NNGP and the NTK.

Statement: the output covariance and the tangent kernel of a randomly initialised fully
connected network converge, as its width ``w`` grows, to the analytic NNGP (Neal 1996; Lee et al.
2018, arXiv:1711.00165) and NTK (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572) of
:mod:`learnmech.theory.kernels` (the network's own kernels, :meth:`learnmech.nets.MLP.kernels`), with
relative errors that shrink as ``w^{-1/2}``.

Experiment. ``MLP((d, w, ..., w, 1), "relu", "ntk", sigma=sqrt(2), bias=False)`` at each width,
``seeds`` independent initialisations, on ``n`` fixed inputs on the sphere of radius ``sqrt(d)``.
For every network:

- the empirical NTK ``J J^T`` (:func:`learnmech.observe.ntk.empirical_ntk`, the layer-structured
  product for learnmech's MLP);
- the empirical NNGP of the network: its output covariance over initialisations of the readout
  layer given the hidden layers, ``E_readout[f(x) f(x')] = sigma^2 z(x).z(x')/w``, computed exactly
  (:func:`learnmech.observe.ntk.readout_nngp`). CLAIMS.md says "output covariance over many
  inits"; the raw covariance of the outputs of ``S`` whole networks has a Monte Carlo error
  ``O(S^{-1/2})`` whatever the width, a floor that hides the width dependence, and the exact
  covariance of the finite network over *all* its initialisations differs from the limit only by
  ``O(1/w)``, which is not the ``w^{-1/2}`` law either. The ``w^{-1/2}`` law is that of one
  network's kernel, which is what is judged (both kernels alike, errors averaged over seeds).
  The error of the mean over the ``seeds`` networks (``nngp_over_inits_error``, ~``(S w)^{-1/2}``)
  is recorded with no threshold.

Why ``-1/2``: each kernel is an average over ``w`` hidden units whose summands are only weakly
dependent, so its fluctuation around the limit is ``O(w^{-1/2})`` (Hanin & Nica 2019,
arXiv:1909.05989, for the NTK; the same law of large numbers for the NNGP), while the bias of the
mean is ``O(1/w)``. The error of one network, ``||K_w - K||_F / ||K||_F``, averaged over seeds,
therefore falls with log-log slope ``-1/2`` until the ``1/w`` bias would dominate (far beyond
these widths).

Verdict (CLAIMS.md): for both kernels the log-log slope of the mean relative Frobenius error
against width is ``-0.5 +/- 0.15``, and the error at the largest width is below 5%. The headline is
the slope of the kernel farthest from ``-1/2``; inconclusive when a network produced non-finite
kernels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.limits.common import relative_frobenius, sphere_inputs
from learnmech.atlas.metrics import linear_fit
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged
from learnmech.increasing import Increasing
from learnmech.nets import MLP
from learnmech.observe import empirical_ntk, readout_nngp
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.kernels import Kernels

SLOPE = -0.5  # CLAIMS.md
SLOPE_TOL = 0.15  # CLAIMS.md
MAX_ERROR = 0.05  # CLAIMS.md: at the largest width
KERNELS = ("nngp", "ntk")
ERRORS = {"nngp": "nngp_error", "ntk": "ntk_error", "nngp_over_inits": "nngp_over_inits_error"}  # measured curves


class Config(ClaimConfig):
    widths: Increasing(int, 3, "widths") = Field((64, 256, 1024, 4096),
                                                  description="hidden widths, increasing (a slope is fitted)")
    depth: int = Field(2, ge=1, le=6, description="hidden layers")
    activation: str = Field("relu", description="relu | erf | tanh | gelu")
    weight_var: float = Field(2.0, gt=0, le=10, description="sigma_w^2 of every layer")
    d_in: int = Field(8, ge=1, le=1024)
    n_inputs: int = Field(16, ge=2, le=512, description="inputs on the sphere of radius sqrt(d_in)")
    data_seed: int = 0

    @field_validator("widths")
    @classmethod
    def _fits_in_memory(cls, w):
        if w[-1] > 16384:
            raise ValueError("the largest width must be <= 16384 (a width^2 weight matrix per layer)")
        return w

    @field_validator("activation")
    @classmethod
    def _activation(cls, a):
        if a not in ("relu", "erf", "tanh", "gelu"):
            raise ValueError("must be one of relu, erf, tanh, gelu")
        return a


def _inputs(cfg: Config) -> np.ndarray:
    return sphere_inputs(cfg.data_seed, cfg.n_inputs, cfg.d_in)


def _upper(k: np.ndarray) -> np.ndarray:
    return k[np.triu_indices(k.shape[0])]


def _network(cfg: Config, width: int) -> MLP:
    return MLP((cfg.d_in, *(width,) * cfg.depth, 1), cfg.activation, "ntk", sigma=math.sqrt(cfg.weight_var),
               bias=False, dtype="float32")


def _analytic(cfg: Config) -> Kernels:
    """The infinite-width NNGP and NTK of the claim's network (``ntk``: the same at every width), float64."""
    return _network(cfg, cfg.widths[0]).kernels(_inputs(cfg), dtype=np.float64)


def predict(cfg: Config):
    k = _analytic(cfg)
    pairs = np.arange(_upper(k.nngp).size)
    w = np.asarray(cfg.widths, float)
    return {
        "nngp": Curve(pairs, _upper(k.nngp)),
        "ntk": Curve(pairs, _upper(k.ntk)),
        "rate": Curve(w, (w / w[0]) ** SLOPE),  # the predicted law, up to its constant
    }


def _empirical(cfg: Config, width: int, x: jax.Array):
    """Per-seed empirical NNGP and NTK, each ``(seeds, n, n)`` float64."""
    net = _network(cfg, width)

    @jax.jit
    def kernels(key):
        params = net.init(key)
        return readout_nngp(net, params, x), empirical_ntk(net.apply, params, x)

    out = [kernels(jax.random.key(seed)) for seed in range(cfg.seeds)]
    return tuple(np.stack([np.asarray(o[i], np.float64) for o in out]) for i in range(2))


def measure(cfg: Config, progress=None):
    x = jnp.asarray(_inputs(cfg), jnp.float32)
    ref = _analytic(cfg)
    errors = {name: [] for name in ERRORS}
    out = {}
    for i, width in enumerate(cfg.widths):
        nngp, ntk = _empirical(cfg, width, x)
        errors["nngp"].append(relative_frobenius(nngp, ref.nngp))
        errors["nngp_over_inits"].append(relative_frobenius(nngp.mean(axis=0, keepdims=True), ref.nngp))
        errors["ntk"].append(relative_frobenius(ntk, ref.ntk))
        if i in (0, len(cfg.widths) - 1):
            pairs = np.arange(_upper(ref.nngp).size)
            out[key("nngp_entries", f"w{width}")] = Curve(pairs, np.stack([_upper(k) for k in nngp]))
            out[key("ntk_entries", f"w{width}")] = Curve(pairs, np.stack([_upper(k) for k in ntk]))
        if progress:
            progress("limits.kernel-convergence", i + 1, len(cfg.widths))
    w = np.asarray(cfg.widths, float)
    for name, errs in errors.items():
        out[ERRORS[name]] = Curve(w, np.stack(errs, axis=1))  # (seeds or 1, widths)
    return out


def _fit(curve: Curve) -> tuple[float, float]:
    """Log-log slope of the seed-mean error against width, and its intercept (NaN for a non-finite error)."""
    x, y = np.log(curve.x), np.log(curve.mean)
    if not np.all(np.isfinite(y)):
        return math.nan, math.nan
    return linear_fit(x, y)


def summarize(cfg: Config, prediction, measurement):
    """Each kernel's log-log slope (and intercept, for the figure) and its error at the largest
    width; the worst slope (farthest from -1/2) is the headline; the error of the NNGP averaged over
    the seeds is reported with no threshold."""
    out = {"diverged": count_diverged(*(measurement[ERRORS[n]] for n in KERNELS))}
    for name in ERRORS:
        curve = measurement[ERRORS[name]]
        slope, intercept = _fit(curve)
        out.update({f"{name}_slope": slope, f"{name}_intercept": intercept,
                    f"{name}_error_at_widest": float(curve.mean[-1])})
    worst = max(KERNELS, key=lambda n: abs(out[f"{n}_slope"] - SLOPE))
    out["worst_slope"] = out[f"{worst}_slope"]
    return out


RULES = Rules(
    guards=(diverged("non-finite kernel errors; the networks produced non-finite outputs"),),
    checks=(Check("log-log slope (worst kernel)", "worst_slope", ">=", SLOPE - SLOPE_TOL, fmt="+.3f"),
            Check("log-log slope (worst kernel)", "worst_slope", "<=", SLOPE + SLOPE_TOL, fmt="+.3f"),
            Check("nngp error at the largest width", "nngp_error_at_widest", "<", MAX_ERROR, fmt=".2%"),
            Check("ntk error at the largest width", "ntk_error_at_widest", "<", MAX_ERROR, fmt=".2%")),
)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_e, ax_s) = new_figure(2, title="limits.kernel-convergence: empirical kernels of ReLU networks vs the limit")
    for c, name in zip(COLORS, KERNELS):
        curve = measurement[ERRORS[name]]
        band(ax_e, curve.x, curve.y, color=c, label=f"{name.upper()} of one network, measured")
        slope, intercept = summary[f"{name}_slope"], summary[f"{name}_intercept"]
        ax_e.plot(curve.x, np.exp(intercept) * curve.x**slope, color=c, linewidth=0.8, label=f"fit: slope {slope:+.2f}")
        ref = curve.mean[0] * prediction["rate"].y[0]
        theory_line(ax_e, prediction["rate"].x, ref, color=c, label="theory: width^-1/2" if name == "ntk" else None)
    over = measurement[ERRORS["nngp_over_inits"]]
    ax_e.plot(over.x, over.mean, color=COLORS[0], linestyle=":", linewidth=0.9,
              label=f"NNGP averaged over {cfg.seeds} inits (no threshold)")
    ax_e.axhline(MAX_ERROR, color="gray", linewidth=0.8, linestyle=":", label="5% threshold")
    ax_e.set(xscale="log", yscale="log", xlabel="hidden width", ylabel="||K_width - K||_F / ||K||_F")
    ax_e.legend(fontsize=7)
    for marker, width in (("x", cfg.widths[0]), ("o", cfg.widths[-1])):
        for c, name in zip(COLORS, KERNELS):
            entries = measurement[key(f"{name}_entries", f"w{width}")]
            ref = np.tile(prediction[name].y[0], entries.y.shape[0])
            ax_s.scatter(ref, entries.y.ravel(), s=6, marker=marker, color=c, alpha=0.5,
                         label=f"{name.upper()}, width {width}")
    lo = min(prediction["nngp"].y.min(), prediction["ntk"].y.min())
    hi = max(prediction["nngp"].y.max(), prediction["ntk"].y.max())
    theory_line(ax_s, [lo, hi], [lo, hi], color="black", label="empirical = analytic")
    ax_s.set(xlabel="analytic kernel entry", ylabel="empirical kernel entry (every seed)")
    ax_s.legend(fontsize=7)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="limits.kernel-convergence",
    pillar="tractable limits",
    statement="The NNGP and NTK of a random ReLU network converge to their analytic infinite-width limits, "
              "with relative error falling as width^(-1/2) and below 5% at the largest width.",
    references=("Neal 1996, Bayesian Learning for Neural Networks",
                "Lee et al. 2018, arXiv:1711.00165",
                "Jacot, Gabriel & Hongler 2018, arXiv:1806.07572",
                "Cho & Saul 2009, Kernel methods for deep learning",
                "Hanin & Nica 2019, arXiv:1909.05989"),
    config=Config,
    presets={"tiny": {"seeds": 2, "widths": (16, 32, 64), "depth": 1, "d_in": 4, "n_inputs": 4},
             "quick": {"seeds": 4},
             "full": {"seeds": 16, "widths": (64, 128, 256, 512, 1024, 2048, 4096), "n_inputs": 32}},
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
