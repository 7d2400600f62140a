"""limits.lazy-rich — the output scale selects lazy or rich learning.

Statement (Chizat, Oyallon & Bach 2019, arXiv:1812.07956): training the scaled, centred model
``h_alpha(w; x) = alpha (f(w; x) - f(w0; x))`` on ``F_alpha(w) = L(h_alpha(w)) / alpha^2`` moves the
parameters by ``O(1/alpha)``: large ``alpha`` is lazy (the network stays on its linearisation at
``w0``), small ``alpha`` is rich (the hidden units move, and their input weights turn towards the
directions of the teacher's units).

Conventions: ``L(h) = (1/2n) sum_i (h(x_i) - y_i)^2``; full-batch GD with a fixed learning rate
``eta`` on ``F_alpha``; time ``t = eta * steps``, the same ``t`` for every ``alpha``.

Which learning rate? With ``r = h_alpha - y`` and ``J = Df(w)`` the ``(n, P)`` Jacobian,
``grad F_alpha = (1/(n alpha)) J^T r``, so gradient flow gives ``dh_alpha/dt = alpha J dw/dt
= -(1/n) J J^T r``: at ``w0`` the function-space dynamics do not depend on ``alpha``, and the
parameter velocity is ``1/alpha`` times an ``alpha``-independent vector. A fixed ``eta`` on
``F_alpha`` is therefore the right convention; it is the same thing as GD on the unscaled loss
``L(h_alpha)`` with learning rate ``eta / alpha^2`` (the "learning rate scaled as 1/alpha^2" of
CLAIMS.md). Applying both (``F_alpha`` *and* ``eta / alpha^2``) would rescale time by
``1/alpha^2`` and compare runs at different training times; this module applies only the first.

Lazy prediction. Linearising ``f`` at ``w0`` (``J`` fixed), GD on ``F_alpha`` starting from
``h = 0`` gives, with ``G = J J^T / n`` and ``s`` steps,
``h_s = (I - (I - eta G)^s) y`` and ``w_s - w0 = (1/(n alpha)) J^T G^{-1} (I - (I - eta G)^s) y``,
hence ``||w_s - w0||^2 = (1/(n alpha^2)) sum_k (v_k . y)^2 (1 - (1 - eta g_k)^s)^2 / g_k`` over the
eigenpairs ``(g_k, v_k)`` of ``G``: exactly ``1/alpha`` at every time. At large width ``J J^T``
tends to the analytic tangent kernel of the student (below) and ``||w0||^2`` to its mean
``3m``; that gives the dashed theory line ``movement = C / alpha``.

Student: ``learnmech.nets.MLP((2, m, 1), "relu", "ntk", bias=False)``,
``f(w; x) = (1/sqrt(m)) sum_j a_j relu(w_j . x / sqrt(2))``, all weights ``N(0, 1)``. Its tangent
kernel, the student's own :meth:`learnmech.nets.MLP.kernels`, is (Jacot, Gabriel & Hongler 2018,
arXiv:1806.07572; arc-cosine moments of Cho & Saul 2009)
``Theta(x, x') = |x| |x'| (sin th + 2 (pi - th) cos th) / (4 pi)``, ``th`` the angle between ``x``
and ``x'``: the ``a``-gradients give ``E[relu(u) relu(u')]`` with ``u = w.x/sqrt(2)``, the
``w``-gradients give ``E[a^2] P(u > 0, u' > 0) x.x'/2 = (pi - th)/(2 pi) x.x'/2``.

Where the regimes meet. Chizat et al. measure laziness by
``kappa = ||h(w0) - y|| Lip(Df) / (alpha ||Df||^2)``; for this student ``||Df||^2 = O(1)`` and
``Lip(Df) = O(1/sqrt(m))``, so ``kappa ~ 1/(alpha sqrt(m))``: the crossover sits near
``alpha ~ 1/sqrt(200) = 0.07``. The grid 0.03 .. 30 is lazy from about ``alpha = 1`` up, and only
its low end (0.03, 0.1) is rich, 0.1 being close to the crossover. (A mean-field readout ``1/m``
would move the crossover to ``alpha ~ 1``, but then ``alpha >= 1`` would not be lazy; CLAIMS.md
places the lazy range at the top and the rich range at the bottom of this grid, which is the
NTK-scaled student.)

Alignment. Student neuron ``j`` points at angle ``atan2(w_j2, w_j1)``; it is aligned when that is
within 10 degrees of a teacher direction. In the lazy limit the directions stay at their
isotropic initial values, so the fraction aligned is the length of the union of the arcs of
half-width 10 degrees around the teacher directions over 360 degrees (1/6 for three well separated
directions). The seeds initialise every ``alpha`` identically (trainer contract), so the
fraction at the largest ``alpha`` is a paired baseline for the rich runs.

Teacher: ``y = sum_k relu(u_k . x)``, unit ``u_k`` at ``teacher_angles`` (degrees), output weights
1, ``x ~ N(0, I_2)``. The evenly spread directions 0/120/240 are avoided on purpose: since
``relu(z) = relu(-z) + z`` and those ``u_k`` sum to zero, that teacher is *also* exactly three
units at 60/180/300, and "a teacher direction" is ambiguous. With the default 0/90/180
(``y = |x_1| + relu(x_2)``) the flipped representation needs extra units for the linear remainder
``x_2``, so the teacher's own units are the cheapest representation.

Learning rate. The curvature of ``F_alpha`` contains ``(1/(n alpha)) sum_i r_i D^2 f(x_i)``, which
grows as ``alpha`` shrinks (and the rich runs' weights grow), so ``eta`` is set by the richest run;
``eta = 0.25`` keeps every ``alpha >= 0.03`` stable. The judge calls a run inconclusive if a
member diverged or a rich run did not bring its loss below ``converged_loss`` of its initial value.
Lazy runs need not converge: ``||w_t - w0|| ~ 1/alpha`` holds at every ``t``.

Verdict (CLAIMS.md): the log-log slope of the relative movement ``||w_T - w0|| / ||w0||`` (all
weights) against ``alpha`` over ``alpha >= lazy_min`` is ``-1 +/- 0.2``; and for every
``alpha <= 0.1`` of the grid the fraction of aligned neurons (pooled over seeds) is at least 3x its
value at the largest ``alpha`` (the headline, the check with the smaller margin here). Also
reported, without threshold: the fraction weighted by the neuron's output mass ``|a_j| ||w_j||``,
and measured over linearised movement in the lazy range.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.metrics import log_slope
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged
from learnmech.increasing import Increasing
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.lazy_rich import angle_to_nearest, isotropic_alignment, linearised_movement
from learnmech.train import OptimizerSpec, log_schedule, train

__all__ = ["CLAIM", "Config", "student"]

SLOPE = -1.0  # CLAIMS.md: movement ~ alpha^-1 in the lazy range
SLOPE_TOL = 0.2  # CLAIMS.md
RICH_MAX = 0.1  # CLAIMS.md: alignment is judged at alpha <= 0.1
ALIGN_DEG = 10.0  # CLAIMS.md: "within 10 degrees of a teacher direction"
ALIGN_RATIO_MIN = 3.0  # CLAIMS.md

DTYPE = "float32"  # the smallest movement measured is ~5e-3 of ||w0||, far above float32 rounding


class Config(ClaimConfig):
    alphas: Increasing(float, 3) = Field((0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
                                         description="output scales, increasing (log grid 0.03 .. 30)")
    lazy_min: float = Field(1.0, gt=0, description="the lazy range where the slope is fitted: alpha >= lazy_min")
    width: int = Field(200, ge=8, le=4096, description="hidden units of the student")
    teacher_angles: tuple[float, ...] = Field((0.0, 90.0, 180.0), description="teacher unit directions, degrees")
    n_samples: int = Field(128, ge=8, le=100_000, description="training inputs x ~ N(0, I_2)")
    eta: float = Field(0.25, gt=0, le=2.0, description="GD learning rate on F_alpha = L / alpha^2")
    t_max: float = Field(500.0, gt=0, le=1e6, description="training time eta x steps, the same for every alpha")
    points: int = Field(60, ge=10, le=2000, description="observation points (log-spaced)")
    converged_loss: float = Field(1e-3, gt=0, lt=1, description="rich runs must reach L_T / L_0 below this")
    data_seed: int = 0

    @field_validator("teacher_angles")
    @classmethod
    def _some_directions(cls, a: tuple[float, ...]) -> tuple[float, ...]:
        if len(a) == 0 or not all(math.isfinite(v) for v in a):
            raise ValueError("must be at least one finite angle")
        return a

    @model_validator(mode="after")
    def _ranges(self):
        if sum(a >= self.lazy_min for a in self.alphas) < 2:
            raise ValueError(f"lazy_min: need at least 2 alphas >= {self.lazy_min}, got {self.alphas}")
        if not any(a <= RICH_MAX for a in self.alphas) or self.alphas[-1] <= RICH_MAX:
            raise ValueError(f"alphas: need some alpha <= {RICH_MAX} and a largest alpha above it, got {self.alphas}")
        return self


# ---------------------------------------------------------------------------------------------
# Experiment


def _teacher_directions(cfg: Config) -> np.ndarray:
    phi = np.deg2rad(np.asarray(cfg.teacher_angles, np.float64))
    return np.stack([np.cos(phi), np.sin(phi)], axis=1)  # (K, 2)


def _dataset(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, 2)`` and teacher targets ``(n, 1)``, float64 values exactly representable in DTYPE."""
    X = np.random.default_rng(cfg.data_seed).standard_normal((cfg.n_samples, 2)).astype(DTYPE).astype(np.float64)
    Y = np.maximum(X @ _teacher_directions(cfg).T, 0.0).sum(axis=1, keepdims=True)  # (n, 1)
    return X, Y.astype(DTYPE).astype(np.float64)


def _steps(cfg: Config) -> int:
    return max(1, round(cfg.t_max / cfg.eta))


def student(cfg: Config) -> MLP:
    """The two-layer ReLU student, NTK parameterisation, no biases (module docstring)."""
    return MLP((2, cfg.width, 1), "relu", "ntk", bias=False, dtype=DTYPE)


def predict(cfg: Config):
    X, Y = _dataset(cfg)
    alphas = np.asarray(cfg.alphas)
    w0_norm = math.sqrt(3 * cfg.width)  # E ||w0||^2 = 2m + m entries of N(0, 1)
    theta = student(cfg).kernels(X, dtype=np.float64).ntk  # (n, n), the infinite-width J J^T
    c = linearised_movement(theta, Y[:, 0], cfg.eta, _steps(cfg)) / w0_norm
    return {
        "movement": Curve(alphas, c / alphas),
        "alignment": Curve(alphas, np.full(alphas.size, isotropic_alignment(cfg.teacher_angles, ALIGN_DEG))),
    }


def _neuron_angles(params):
    W = params["net"][0]["w"]  # (2, m)
    return jnp.degrees(jnp.arctan2(W[1], W[0]))  # (m,)


def measure(cfg: Config, progress=None):
    net = student(cfg)
    X, Y = _dataset(cfg)
    data = (jnp.asarray(X, DTYPE), jnp.asarray(Y, DTYPE))
    teacher = np.asarray(cfg.teacher_angles)

    def init(key):
        params = net.init(key)
        # f(w0) on the training inputs, carried as a constant leaf (full batch: the batch is always
        # the whole data set, in this order); stop_gradient keeps it fixed under GD.
        return {"net": params, "f0": net.apply(params, data[0])}  # f0: (n, 1)

    def loss(params, batch, hp):
        x, y = batch
        alpha = hp["alpha"].astype(DTYPE)
        h = alpha * (net.apply(params["net"], x) - jax.lax.stop_gradient(params["f0"]))  # (n, 1)
        return mse(h, y) / alpha**2  # F_alpha = L(h_alpha) / alpha^2

    def observe(params, params0):
        now, start = jax.tree.leaves(params["net"]), jax.tree.leaves(params0["net"])
        moved = jnp.sqrt(sum(jnp.sum((a - b) ** 2) for a, b in zip(now, start)))
        size = jnp.sqrt(sum(jnp.sum(b**2) for b in start))
        aligned = angle_to_nearest(_neuron_angles(params), teacher) <= ALIGN_DEG
        return {"movement": moved / size, "alignment": jnp.mean(aligned)}

    report = None if progress is None else (lambda done, total: progress("limits.lazy-rich", done, total))
    result = train(
        init=init, loss=loss, data=data, optimizer=OptimizerSpec("sgd", {"learning_rate": cfg.eta}),
        seeds=list(range(cfg.seeds)), grid={"alpha": list(cfg.alphas)},
        steps=log_schedule(_steps(cfg), cfg.points), observe=observe, progress=report,
    )
    t = result.steps * cfg.eta
    W = np.asarray(result.params["net"][0]["w"], np.float64)  # (A, seeds, 2, m)
    a = np.asarray(result.params["net"][1]["w"][..., 0], np.float64)  # (A, seeds, m)
    angles = np.degrees(np.arctan2(W[..., 1, :], W[..., 0, :]))  # (A, seeds, m)
    mass = np.abs(a) * np.linalg.norm(W, axis=-2)  # (A, seeds, m)
    neurons = np.arange(cfg.width)
    out = {}
    for i, alpha in enumerate(cfg.alphas):
        out[key("loss", i)] = Curve(t, result["loss"][i] * alpha**2)  # L(h_alpha), (seeds, T)
        out[key("movement", i)] = Curve(t, result["movement"][i])
        out[key("alignment", i)] = Curve(t, result["alignment"][i])
        out[key("angle", i)] = Curve(neurons, angles[i])  # final input-weight directions, degrees
        out[key("mass", i)] = Curve(neurons, mass[i])  # final |a_j| ||w_j||
    return out


# ---------------------------------------------------------------------------------------------
# Verdict and figure


def _alignment(cfg: Config, angle: Curve, mass: Curve, weighted: bool = False) -> float:
    """Fraction of neurons (pooled over seeds) within ALIGN_DEG of a teacher direction."""
    aligned = angle_to_nearest(angle.y, cfg.teacher_angles) <= ALIGN_DEG  # (seeds, m)
    if not weighted:
        return float(np.mean(aligned))
    return float(np.sum(mass.y * aligned) / np.sum(mass.y))


def _per_alpha(cfg: Config, summary, name: str) -> np.ndarray:
    """The summary's ``name/<alpha>`` scalars over the grid, ``(A,)``."""
    return np.array([summary[key(name, f"{a:g}")] for a in cfg.alphas])


def summarize(cfg: Config, prediction, measurement):
    """Per alpha: the final relative movement (and its ratio to the linearised prediction in the
    lazy range), the aligned fraction (plain and weighted by output mass), the final loss ratio;
    the lazy-range slope, the rich alphas' alignment ratios to the largest alpha, and the worst rich
    loss ratio (the convergence guard)."""
    loss, movement = indexed(measurement, "loss"), indexed(measurement, "movement")
    angle, mass = indexed(measurement, "angle"), indexed(measurement, "mass")
    alpha = np.asarray(cfg.alphas)
    lazy, rich = alpha >= cfg.lazy_min, alpha <= RICH_MAX
    moved = np.array([m.y[:, -1].mean() for m in movement])  # (A,)
    loss_ratio = np.array([(c.y[:, -1] / c.y[:, 0]).mean() for c in loss])  # (A,)
    aligned = np.array([_alignment(cfg, a, m) for a, m in zip(angle, mass)])  # (A,)
    weighted = [_alignment(cfg, a, m, weighted=True) for a, m in zip(angle, mass)]
    linearised = prediction["movement"].y[0]
    out = {"diverged": count_diverged(*loss, *movement), "converged_loss": cfg.converged_loss,
           "rich_loss_ratio_max": float(loss_ratio[rich].max())}
    for i, a in enumerate(f"{v:g}" for v in alpha):
        out.update({key("movement", a): float(moved[i]), key("alignment", a): float(aligned[i]),
                    key("alignment_weighted", a): float(weighted[i]),
                    key("final_loss_ratio", a): float(loss_ratio[i])})
        if lazy[i]:
            out[key("movement_over_linearised", a)] = float(moved[i] / linearised[i])
    finite = np.all(np.isfinite(moved[lazy]) & (moved[lazy] > 0))
    slope = log_slope(alpha[lazy], moved[lazy]) if finite else math.nan
    ratios = aligned[rich] / aligned[-1]
    out.update({"slope": slope, "slope_offset": abs(slope - SLOPE), "alignment_ratio_min": float(ratios.min()),
                "alignment_lazy_limit": float(prediction["alignment"].y[0, 0])})
    out.update({key("alignment_ratio", f"{a:g}"): float(r) for a, r in zip(alpha[rich], ratios)})
    return out


RULES = Rules(
    guards=(diverged("a member diverged; lower eta"),
            Guard("rich runs L_T/L_0 (max)", "rich_loss_ratio_max", "<=", "converged_loss", fmt=".2e",
                  advice=f"a rich run (alpha <= {RICH_MAX:g}) did not converge; train longer or lower eta")),
    checks=(Check("alignment ratio rich / largest alpha (min)", "alignment_ratio_min", ">=", ALIGN_RATIO_MIN,
                  fmt=".3f"),
            Check("|slope + 1| of movement vs alpha (lazy range)", "slope_offset", "<=", SLOPE_TOL, fmt=".3f")),
)


def _plot_movement(ax, cfg: Config, prediction, measurement):
    alpha = np.asarray(cfg.alphas)
    finals = np.array([m.y[:, -1] for m in indexed(measurement, "movement")]).T  # (seeds, A)
    band(ax, alpha, finals, color=COLORS[0], label="measured (mean, 10-90%)")
    ax.plot(np.repeat(alpha[None], finals.shape[0], 0).ravel(), finals.ravel(), ".", color=COLORS[0], alpha=0.5)
    theory_line(ax, alpha, prediction["movement"].y[0], color="black", label="linearised model, C / alpha")
    ax.axvspan(cfg.lazy_min, alpha[-1], color="gray", alpha=0.08, label="lazy range (slope fitted)")
    ax.set(xscale="log", yscale="log", xlabel="output scale alpha",
           ylabel="relative movement ||w_T - w_0|| / ||w_0||")
    ax.legend(fontsize=7)


def _plot_alignment(ax, cfg: Config, prediction, summary):
    alpha = np.asarray(cfg.alphas)
    s, w = _per_alpha(cfg, summary, "alignment"), _per_alpha(cfg, summary, "alignment_weighted")
    ax.plot(alpha, s, "o-", color=COLORS[1], label="fraction of neurons (measured)")
    ax.plot(alpha, w, "s:", color=COLORS[2], label="weighted by |a| ||w|| (measured)")
    theory_line(ax, alpha, prediction["alignment"].y[0], color="black", label="lazy limit (isotropic)")
    ax.axhline(ALIGN_RATIO_MIN * s[-1], color=COLORS[3], linewidth=0.9, linestyle="-.",
               label=f"{ALIGN_RATIO_MIN:g} x value at alpha={alpha[-1]:g}")
    ax.axvspan(alpha[0], RICH_MAX, color="gray", alpha=0.08, label="rich range (judged)")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="output scale alpha",
           ylabel=f"fraction within {ALIGN_DEG:g} deg of a teacher unit")
    ax.legend(fontsize=7)


def _plot_neurons(ax, cfg: Config, measurement):
    """Final input-weight directions as points on two rings (smallest alpha outside), area ~ |a_j| ||w_j||."""
    for k, phi in enumerate(np.deg2rad(cfg.teacher_angles)):
        ax.plot([0, 1.2 * np.cos(phi)], [0, 1.2 * np.sin(phi)], "--", color="black", linewidth=1.0, zorder=1,
                label="teacher directions" if k == 0 else None)
    circle = np.linspace(0, 2 * np.pi, 200)
    for i, radius, color in ((0, 1.0, COLORS[1]), (len(cfg.alphas) - 1, 0.65, COLORS[0])):
        th = np.deg2rad(measurement[key("angle", i)].y.ravel())
        mass = measurement[key("mass", i)].y.ravel()
        ax.plot(radius * np.cos(circle), radius * np.sin(circle), color="gray", linewidth=0.4, zorder=0)
        ax.scatter(radius * np.cos(th), radius * np.sin(th), s=3 + 80 * mass / mass.max(), color=color, alpha=0.35,
                   linewidths=0, zorder=2, label=f"alpha={cfg.alphas[i]:g}" + (" (outer)" if i == 0 else " (inner)"))
    ax.set(aspect="equal", xlim=(-1.3, 1.3), ylim=(-1.6, 1.3), xticks=[], yticks=[],
           xlabel="neuron direction w_j / ||w_j|| (marker area ~ |a_j| ||w_j||)")
    ax.legend(fontsize=7, loc="lower center", ncol=3, handletextpad=0.2, columnspacing=0.8)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_m, ax_a, ax_n) = new_figure(3, title="limits.lazy-rich: two-layer ReLU student, output scale alpha")
    _plot_movement(ax_m, cfg, prediction, measurement)
    _plot_alignment(ax_a, cfg, prediction, summary)
    _plot_neurons(ax_n, cfg, measurement)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="limits.lazy-rich",
    pillar="tractable limits",
    statement="Training alpha (f(w) - f(w0)) on L / alpha^2 moves the weights by O(1/alpha): large alpha is lazy "
              "(linearised), small alpha is rich (hidden units align with the teacher's directions).",
    references=("Chizat, Oyallon & Bach 2019, arXiv:1812.07956",),
    config=Config,
    presets={
        "tiny": {"seeds": 2, "alphas": (0.1, 1.0, 10.0), "width": 16, "n_samples": 16, "t_max": 60.0, "points": 10},
        "quick": {"seeds": 2},
        "full": {"seeds": 8, "n_samples": 256, "t_max": 1000.0, "points": 100,
                 "alphas": (0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("kernels",),
)
