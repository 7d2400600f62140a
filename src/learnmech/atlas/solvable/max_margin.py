"""solvable.max-margin — gradient descent on separable data converges to the max-margin direction.

Statement (Soudry, Hoffer, Nacson, Gunasekar & Srebro 2018, arXiv:1710.10345, Theorem 3): for logistic
regression on linearly separable data, GD at a stable step gives ``w(t) = w_hat log t + rho(t)`` with
``w_hat`` the hard-margin SVM direction and ``rho`` bounded (almost every data set), so the angle to
``w_hat`` decays like ``1/log t`` and ``||w(t)|| / log t -> ||w_hat||``.

Conventions (:mod:`learnmech.theory.max_margin`, which derives the asymptotics): homogeneous linear model
(no bias), mean logistic loss, float64, ``w_0 ~ init_scale N(0, I_d / d)`` (one draw per seed; the theorem
holds from any start), ``eta = lr_fraction * 2 / beta`` with ``beta = sigma_max(X)^2 / (4n)`` the loss's
smoothness; ``t`` is the step count ``k``. ``w_hat`` comes from scipy's NNLS (Lawson-Hanson
least-distance programming, an exact active-set QP method), KKT residuals ~1e-15.

Experiment: (i) synthetic: ``n_synthetic`` points ``x = y separation e_1 + N(0, I_dim)``, ``y = +-1``,
redrawn while ``y x_1 < cut`` (separable through the origin by construction); (ii) scikit-learn digits,
two classes (0 vs 1), pixels standardised over the chosen images, constant pixels dropped (52 of 64
remain); separable, which :func:`~learnmech.theory.max_margin.hard_margin` checks. GD for ``steps`` steps
with the project's trainer (:func:`learnmech.train.train`, a traced loop between observation
points), ``w`` recorded at ``per_decade`` log-spaced steps per decade from ``k = 10``.

Verdict (CLAIMS.md): over the last two decades of ``k`` the angle ``theta_k`` between ``w_k`` and ``w_hat``
is linear in ``1 / log k`` with ``R^2 >= 0.95`` (least squares with an intercept; the worst member of
both data sets), and ``||w_k|| / log k`` at the last step within 5% of ``||w_hat||``.

What theory says about the 5% rule (not a change of the rule): ``||w_k|| / log k = ||w_hat|| (1 + c/log k)``
with ``c = log(eta/n) - sum alpha log alpha / sum alpha`` (support vectors' dual weights), a closed form.
For these data (``lr_fraction = 0.5``) ``c = -5.58`` (synthetic) and ``-3.49`` (digits), so at ``k = 1e6``
(``log k = 13.8``) the ratio is predicted at 0.60 and 0.75 of ``||w_hat||``, and 5% needs
``log k >= 20 |c|``, i.e. ``k >= 1e48`` and ``1e30``: the rule as written cannot hold within 1e6 steps, for
a reason the theory itself gives (the ``O(1)`` residual ``rho`` is *not* small against ``log t``; the
time convention cannot rescue it: ``t = eta k / n`` only moves ``log(eta/n) = -4.99, -7.24`` out of ``c``,
leaving ``-sum alpha log alpha / sum alpha = -0.59, +3.74`` against ``log t = 8.8, 6.6`` at ``k = 1e6``:
still 7% and 57% off). The summary reports the predicted ratio at the last step beside
the measured one, the predicted asymptotic angle ``arctan(a / (log k + c))``, and the smallest
non-support margin gap ``m_2 - 1``: the asymptotic form describes ``w_k`` only once
``(m_2 - 1) log k >> 1`` (digits: ``m_2 - 1 = 0.0086``, far from it at any reachable ``k``; synthetic:
``0.037``, so ``(m_2 - 1) log k = 0.5`` at ``k = 1e6``: also pre-asymptotic. Measured at ``1e6`` (seed 0):
``c = w_hat . (w_k - w_hat log k) / ||w_hat||^2 = -4.85`` and ``-3.15`` against ``-5.58`` and ``-3.49``, and
``r = w_k - w_hat log k`` still moves by 1.05 and 0.39 over the last two decades).

What the R^2 rule can tell apart (not a change of the rule): over two decades ending at ``1e6``, ``1/log k``
spans only a factor 1.5, so any smooth decay is nearly linear in it: ``k^-0.05``, ``k^-0.2``,
``1/sqrt(log k)`` and ``1/log^2 k`` all give ``R^2 >= 0.99`` against ``1/log k`` with a free intercept. The
fits here have positive intercepts (0.056 synthetic, 0.070 digits at ``1e6``, against end angles 0.094 and
0.204), which a ``1/log t`` decay to zero would not leave.

Presets (measured on the shared 2-core machine under load ~8, so wall times are inflated; CPU time in
brackets): tiny ``1e3`` steps, 7-10 s (3.1 s CPU), fails (R^2 0.924, norm 0.32); quick ``1e5`` steps (two
decades ``1e3 .. 1e5``), one seed, 10-15 s (3.1 s CPU), fails on the norm (R^2 0.987, norm error 0.40 vs
0.48 predicted); full ``1e6`` steps, four seeds, 112 s, fails on the norm (R^2 0.994, norm errors 0.35
synthetic and 0.21 digits, against 0.40 and 0.25 from ``1 + c/log k``; the gaps are the pre-asymptotic
pull of the near-support examples).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.metrics import linear_fit, r_squared
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged, reached
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.max_margin import (angle_coefficient, hard_margin, kkt_residuals, log10_steps_for_norm_ratio,
                                         logistic_smoothness, margin_gap, norm_offset, predicted_angle,
                                         predicted_norm_ratio)
from learnmech.train import OptimizerSpec, train

__all__ = ["CLAIM", "Config", "DATASETS", "dataset", "schedule"]

DATASETS = ("synthetic", "digits")
R2_MIN = 0.95  # CLAIMS.md
NORM_TOL = 0.05  # CLAIMS.md: ||w||/log t within 5% of ||w_hat||
DECADES = 2.0  # CLAIMS.md: the fit window is the last two decades of t
MIN_WINDOW_POINTS = 5  # fewer observations in the window: too few to judge linearity (inconclusive)
DTYPE = jnp.float64  # the relative update of w is ~1/(k log k), 7e-8 at k = 1e6: float32's resolution


class Config(ClaimConfig):
    seeds: int = Field(2, ge=1, le=64, description="initialisations w_0 (the data are fixed)")
    steps: int = Field(1_000_000, ge=1_000, le=10_000_000, description="GD steps (t = k)")
    per_decade: int = Field(8, ge=3, le=50, description="observation points per decade of k, from k = 10")
    lr_fraction: float = Field(0.5, gt=0, lt=1, description="eta as a fraction of the stability limit 2/beta")
    init_scale: float = Field(0.1, ge=0, le=10, description="w_0 ~ init_scale N(0, I_d / d)")
    n_synthetic: int = Field(100, ge=4, le=10_000, description="synthetic examples")
    dim: int = Field(3, ge=2, le=64, description="synthetic input dimension")
    separation: float = Field(2.0, gt=0, le=20, description="synthetic cluster means +-separation e_1")
    cut: float = Field(0.5, gt=0, le=20, description="synthetic examples with y x_1 < cut are redrawn")
    digit_classes: tuple[int, int] = Field((0, 1), description="the two digits; the second is labelled +1")
    n_digits: int = Field(360, ge=4, le=400, description="at most this many images of the two classes, in order")
    data_seed: int = 0

    @field_validator("digit_classes")
    @classmethod
    def _classes(cls, pair: tuple[int, int]) -> tuple[int, int]:
        if pair[0] == pair[1] or not all(0 <= c <= 9 for c in pair):
            raise ValueError("must be two different digits from 0 to 9")
        return pair

    @model_validator(mode="after")
    def _cut_reachable(self):
        if self.cut > self.separation + 2.0:  # acceptance P(N(separation, 1) >= cut) would fall below 2%
            raise ValueError(f"cut: must be at most separation + 2 = {self.separation + 2.0:g}, got {self.cut:g}")
        return self


# ---------------------------------------------------------------------------------------------
# Data and theory


def _synthetic(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """``X`` ``(n, dim)``, ``y`` ``(n,)``: two Gaussian clusters, every ``y x_1 >= cut`` (rejection)."""
    rng = np.random.default_rng(cfg.data_seed)
    y = np.where(np.arange(cfg.n_synthetic) % 2 == 0, 1.0, -1.0)
    mean = np.zeros(cfg.dim)
    mean[0] = cfg.separation
    X = y[:, None] * mean + rng.standard_normal((cfg.n_synthetic, cfg.dim))
    while np.any(bad := y * X[:, 0] < cfg.cut):
        X[bad] = y[bad, None] * mean + rng.standard_normal((int(bad.sum()), cfg.dim))
    return X, y


def _digits(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Two digit classes, pixels standardised over the chosen images, constant pixels dropped."""
    from learnmech.data import load_digits

    X, labels = load_digits(normalize=False, dtype=jnp.float32)  # pixel counts 0..16: exact in float32
    X, labels = np.asarray(X, np.float64), np.asarray(labels)
    keep = np.flatnonzero(np.isin(labels, cfg.digit_classes))[: cfg.n_digits]
    X, y = X[keep], np.where(labels[keep] == cfg.digit_classes[1], 1.0, -1.0)
    std = X.std(axis=0)
    X = X[:, std > 0]
    return (X - X.mean(axis=0)) / std[std > 0], y


def dataset(cfg: Config, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of data set ``name`` (:data:`DATASETS`) in float64, labels +-1."""
    if name not in DATASETS:
        raise ValueError(f"dataset: must be one of {', '.join(DATASETS)}, got {name!r}")
    return _synthetic(cfg) if name == "synthetic" else _digits(cfg)


def schedule(cfg: Config) -> np.ndarray:
    """Observation steps: ``per_decade`` log-spaced steps per decade from 10 to ``steps`` (int64)."""
    decades = np.log10(cfg.steps) - 1.0
    k = np.round(np.logspace(1.0, np.log10(cfg.steps), int(np.ceil(decades * cfg.per_decade)) + 1))
    return np.unique(k.astype(np.int64))


def _learning_rate(cfg: Config, X) -> float:
    return cfg.lr_fraction * 2.0 / logistic_smoothness(X)


def predict(cfg: Config):
    """Per data set: ``w_hat``, its support and KKT residual, the offset ``c``, the angle coefficient
    ``a_SV``, the margin gap, and the predicted norm ratio and angle on the observation grid."""
    k = schedule(cfg)
    out = {}
    for name in DATASETS:
        X, y = dataset(cfg, name)
        fit = hard_margin(X, y)
        time_scale = _learning_rate(cfg, X) / X.shape[0]  # eta / n (theory.max_margin conventions)
        c, a = norm_offset(fit, time_scale), angle_coefficient(X, y, fit, time_scale)
        out.update({
            key("w_hat", name): Curve(np.arange(fit.w.size), fit.w),
            key("norm_w_hat", name): float(np.linalg.norm(fit.w)),
            key("support_vectors", name): float(fit.support.size),
            key("support_rank", name): float(np.linalg.matrix_rank((y[:, None] * X)[fit.support])),
            key("dim", name): float(X.shape[1]),
            key("kkt_residual", name): kkt_residuals(X, y, fit.w, fit.alpha)["max"],
            key("eta", name): _learning_rate(cfg, X),
            key("offset", name): c,
            key("angle_coefficient", name): a,
            key("margin_gap", name): margin_gap(fit),
            key("log10_steps_for_norm", name): log10_steps_for_norm_ratio(c, NORM_TOL),
            key("norm_ratio", name): Curve(k, predicted_norm_ratio(k, c)),
            key("angle", name): Curve(k, predicted_angle(k, c, a)),
        })
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def _logistic(params, Z):
    """Mean logistic loss ``(1/n) sum_i log(1 + exp(-z_i . w))``, ``Z`` ``(n, d)`` the signed inputs."""
    return jnp.mean(jnp.logaddexp(0.0, -(Z @ params["w"])))


def _observe(params, params0):
    return {"w": params["w"]}


def _initial(cfg: Config, d: int) -> dict:
    """``{"w": (seeds, d)}``: seed ``s`` draws ``w_0`` from ``default_rng(data_seed + 1 + s)``."""
    w0 = [np.random.default_rng(cfg.data_seed + 1 + s).standard_normal(d) for s in range(cfg.seeds)]
    return {"w": jnp.asarray(cfg.init_scale * np.stack(w0) / np.sqrt(d), DTYPE)}


def measure(cfg: Config, progress=None):
    """GD on each data set, every seed in one vmapped ensemble; ``w`` and the loss on the grid."""
    k = schedule(cfg)
    out = {}
    for i, name in enumerate(DATASETS):
        X, y = dataset(cfg, name)
        report = None if progress is None else (
            lambda done, total, i=i: progress("solvable.max-margin", i * total + done, len(DATASETS) * total))
        result = train(loss=_logistic, data=jnp.asarray(y[:, None] * X, DTYPE),
                       optimizer=OptimizerSpec("sgd", {"learning_rate": _learning_rate(cfg, X)}),
                       seeds=list(range(cfg.seeds)), steps=k, observe=_observe, params0=_initial(cfg, X.shape[1]),
                       blowup=None, layout="vmap", progress=report)
        W = np.asarray(result.observations["w"], np.float64)  # (seeds, T, d)
        out[key("loss", name)] = Curve(k, np.asarray(result.observations["loss"], np.float64))
        out.update({key("w", name, j): Curve(k, W[:, :, j]) for j in range(W.shape[-1])})
    return out


# ---------------------------------------------------------------------------------------------
# Verdict


def _trajectory(measurement, name: str, d: int) -> np.ndarray:
    """``w_k`` of every member, ``(seeds, T, d)``."""
    return np.stack([measurement[key("w", name, j)].y for j in range(d)], axis=-1)


def _angle(W: np.ndarray, w_hat: np.ndarray) -> np.ndarray:
    """``theta = atan2(||w - (w.u)u||, w.u)`` with ``u = w_hat/||w_hat||`` (accurate at small angles)."""
    u = w_hat / np.linalg.norm(w_hat)
    along = W @ u
    return np.arctan2(np.linalg.norm(W - along[..., None] * u, axis=-1), along)


def _member(k, theta, ratio, window) -> dict[str, float]:
    """One member: the fit ``theta = slope / log k + intercept`` over ``window``, its R^2, the end values."""
    x, t = 1.0 / np.log(k[window]), theta[window]
    if not (np.all(np.isfinite(t)) and np.isfinite(ratio[-1])):
        return {}
    slope, intercept = linear_fit(x, t)
    return {"r2": r_squared(t, slope * x + intercept), "slope": slope, "intercept": intercept,
            "angle_end": float(theta[-1]), "angle_log_k_end": float(theta[-1] * np.log(k[-1])),
            "norm_ratio_end": float(ratio[-1]), "norm_error": float(abs(ratio[-1] - 1.0))}


_THEORY_SCALARS = ("norm_w_hat", "support_vectors", "support_rank", "dim", "kkt_residual", "eta", "offset",
                   "angle_coefficient", "margin_gap", "log10_steps_for_norm")  # copied into the summary


def summarize(cfg: Config, prediction, measurement):
    """Per data set and member (keys ``dataset/seed/...``): the angle's fit against ``1/log k`` over the last
    two decades and the end norm ratio; per data set the predicted ratio at the end; over all: the worst R^2,
    the worst norm error, diverged members and the points in the fit window. Curves: measured angle and
    ``||w_k|| / (||w_hat|| log k)`` per data set."""
    out, members = {}, []
    for name in DATASETS:
        w_hat = prediction[key("w_hat", name)].y[0]
        W = _trajectory(measurement, name, w_hat.size)
        k = measurement[key("loss", name)].x
        theta = _angle(W, w_hat)  # (seeds, T)
        ratio = np.linalg.norm(W, axis=-1) / (np.log(k) * np.linalg.norm(w_hat))  # (seeds, T)
        window = k >= k[-1] / 10.0**DECADES
        out[key("angle", name)] = Curve(k, theta)
        out[key("norm_ratio", name)] = Curve(k, ratio)
        out[key(name, "window_points")] = float(window.sum())
        out[key(name, "predicted_norm_ratio_end")] = float(prediction[key("norm_ratio", name)].y[0, -1])
        out[key(name, "predicted_angle_end")] = float(prediction[key("angle", name)].y[0, -1])
        out.update({key(name, field): float(prediction[key(field, name)]) for field in _THEORY_SCALARS})
        for j in range(W.shape[0]):
            info = _member(k, theta[j], ratio[j], window)
            out.update({key(name, j, field): value for field, value in info.items()})
            members.append(info)
    judged = [m for m in members if m]
    out.update(diverged=float(sum(count_diverged(measurement[key("loss", n)]) for n in DATASETS)),
               window_points=min(out[key(n, "window_points")] for n in DATASETS),
               min_r2=min((m["r2"] for m in judged), default=float("nan")),
               max_norm_error=max((m["norm_error"] for m in judged), default=float("nan")))
    return out


RULES = Rules(
    guards=(diverged("a member diverged; lower lr_fraction"),
            reached("observations in the last two decades", "window_points", MIN_WINDOW_POINTS,
                    "too few observations to fit the angle; raise per_decade")),
    checks=(Check("min R^2 of angle vs 1/log t, last two decades", "min_r2", ">=", R2_MIN, fmt=".4f"),
            Check("max | ||w||/(||w_hat|| log t) - 1 | at the last step", "max_norm_error", "<=", NORM_TOL,
                  fmt=".4f")),
)


# ---------------------------------------------------------------------------------------------
# Figure


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_a, ax_n, ax_l) = new_figure(3, title="solvable.max-margin: GD on the logistic loss, separable data "
                                                  "(t = steps k)")
    for i, name in enumerate(DATASETS):
        color = COLORS[i]
        theta, ratio = summary[key("angle", name)], summary[key("norm_ratio", name)]
        x = 1.0 / np.log(theta.x)
        for j, row in enumerate(theta.y):
            ax_a.plot(x, row, color=color, linewidth=1.0, alpha=0.85, label=f"{name} (measured)" if j == 0 else None)
            ax_n.plot(ratio.x, ratio.y[j], color=color, linewidth=1.0, alpha=0.85,
                      label=f"{name} (measured)" if j == 0 else None)
        theory_line(ax_a, x, prediction[key("angle", name)].y[0], color=color,
                    label=f"{name}: arctan(a_SV/(log k + c)) (theory, asymptotic; a >= a_SV)")
        theory_line(ax_n, ratio.x, prediction[key("norm_ratio", name)].y[0], color=color,
                    label=f"{name}: 1 + c/log k, c = {prediction[key('offset', name)]:.2f} (theory)")
        fit_x = x[theta.x >= theta.x[-1] / 10.0**DECADES]
        ax_a.plot(fit_x, summary[key(name, 0, "slope")] * fit_x + summary[key(name, 0, "intercept")], color="black",
                  linewidth=0.8, linestyle=":", label="linear fit, last two decades (seed 0)" if i == 0 else None)
        loss = measurement[key("loss", name)]
        for j, row in enumerate(loss.y):
            ax_l.plot(loss.x, row, color=color, linewidth=1.0, label=name if j == 0 else None)
    k_end = float(summary[key("angle", DATASETS[0])].x[-1])
    ax_a.axvspan(0.0, 1.0 / np.log(k_end / 10.0**DECADES), color="gray", alpha=0.08)
    top = max(float(np.nanmax(summary[key("angle", n)].y)) for n in DATASETS)
    ax_a.set(xlim=(0.0, None), ylim=(0.0, 1.3 * top), xlabel="1 / log k (shaded: fit window)",
             ylabel="angle(w_k, w_hat) (rad)", title="angle vs 1/log t")
    ax_n.axhspan(1.0 - NORM_TOL, 1.0 + NORM_TOL, color="gray", alpha=0.15)
    ax_n.set(xscale="log", ylim=(0.0, 1.1), xlabel="step k", ylabel="||w_k|| / (||w_hat|| log k)",
             title="norm ratio (band: 5%)")
    ax_l.set(xscale="log", yscale="log", xlabel="step k", ylabel="mean logistic loss", title="training loss")
    for ax in (ax_a, ax_n, ax_l):
        ax.legend(fontsize=6)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="solvable.max-margin",
    pillar="solvable settings",
    statement="Gradient descent on the logistic loss of linearly separable data converges in direction to the "
              "hard-margin SVM solution: w(t) = w_hat log t + O(1), so the angle decays like 1/log t and "
              "||w(t)||/log t -> ||w_hat||.",
    references=("Soudry, Hoffer, Nacson, Gunasekar & Srebro 2018, arXiv:1710.10345",
                "Lawson & Hanson 1974, Solving Least Squares Problems, ch. 23 (least-distance programming)"),
    config=Config,
    presets={
        # tiny: every code path in seconds; two decades 10 .. 1e3 sit far before the asymptotics
        "tiny": {"seeds": 1, "steps": 1_000, "per_decade": 4, "n_synthetic": 20, "n_digits": 40},
        # quick: the last two decades are 1e3 .. 1e5
        "quick": {"seeds": 1, "steps": 100_000},
        "full": {"seeds": 4, "steps": 1_000_000, "per_decade": 10},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
