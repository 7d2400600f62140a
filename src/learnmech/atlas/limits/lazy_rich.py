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
kernel is (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572; arc-cosine moments of Cho & Saul 2009)
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
value at the largest ``alpha``. Also reported, without threshold: the fraction weighted by the
neuron's output mass ``|a_j| ||w_j||``, and measured over linearised movement in the lazy range.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.atlas.metrics import log_slope
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.train import OptimizerSpec, log_schedule, train
from learnmech.theory.kernels import nngp_ntk

__all__ = ["CLAIM", "Config", "angle_to_nearest", "isotropic_alignment", "linearised_movement", "relu_ntk"]

SLOPE = -1.0  # CLAIMS.md: movement ~ alpha^-1 in the lazy range
SLOPE_TOL = 0.2  # CLAIMS.md
RICH_MAX = 0.1  # CLAIMS.md: alignment is judged at alpha <= 0.1
ALIGN_DEG = 10.0  # CLAIMS.md: "within 10 degrees of a teacher direction"
ALIGN_RATIO_MIN = 3.0  # CLAIMS.md

DTYPE = "float32"  # the smallest movement measured is ~5e-3 of ||w0||, far above float32 rounding


class Config(ClaimConfig):
    alphas: tuple[float, ...] = Field((0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
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

    @field_validator("alphas")
    @classmethod
    def _increasing(cls, a: tuple[float, ...]) -> tuple[float, ...]:
        if len(a) < 3 or any(v <= 0 for v in a) or any(x >= y for x, y in zip(a, a[1:])):
            raise ValueError("must be at least 3 positive, strictly increasing values")
        return a

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
# Theory


def relu_ntk(X: np.ndarray) -> np.ndarray:
    """Tangent kernel of ``f(x) = (1/sqrt(m)) sum_j a_j relu(w_j . x / sqrt(2))`` at infinite width.

    The analytic NTK of :func:`learnmech.theory.kernels.nngp_ntk` for one hidden layer with
    ``sigma_w^2 = 1``: ``Theta(x, x') = |x| |x'| (sin th + 2 (pi - th) cos th) / (4 pi)`` with ``th``
    the angle between ``x`` and ``x'`` (Jacot et al. 2018, arXiv:1806.07572; Cho & Saul 2009).
    ``X`` is ``(n, d)``; returns ``(n, n)``.

    >>> round(float(relu_ntk(np.array([[3.0, 4.0]]))[0, 0]), 12)  # th = 0: |x|^2 / 2
    12.5
    """
    return nngp_ntk(np.asarray(X, dtype=np.float64), depth=1, activation="relu", weight_var=1.0).ntk


def linearised_movement(kernel: np.ndarray, y: np.ndarray, eta: float, steps: int) -> float:
    """``alpha ||w_s - w0||`` for ``s`` GD steps on ``F_alpha`` with the network linearised at ``w0``.

    ``||w_s - w0||^2 = (1/(n alpha^2)) sum_k (v_k . y)^2 (1 - (1 - eta g_k)^s)^2 / g_k`` with
    ``(g_k, v_k)`` the eigenpairs of ``G = kernel / n`` (``kernel = J J^T``, ``(n, n)``), ``y``
    the ``(n,)`` targets, ``eta`` the learning rate (module docstring; Chizat et al. 2019,
    arXiv:1812.07956, Section 2: lazy training is training the linearised model).

    >>> round(linearised_movement(np.eye(2) * 2.0, np.array([1.0, 1.0]), 0.5, 10_000), 12)  # G = I: |y|^2 / n
    1.0
    """
    n = len(y)
    g, v = np.linalg.eigh(np.asarray(kernel, np.float64) / n)  # (n,), (n, n)
    g = np.clip(g, 0.0, None)
    proj = v.T @ np.asarray(y, np.float64)  # (n,)
    done = -np.expm1(steps * np.log1p(-np.minimum(eta * g, 1.0 - 1e-15)))  # 1 - (1 - eta g)^s
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(g > 1e-300, done**2 / g, 0.0)  # done ~ s eta g as g -> 0, so done^2/g -> 0
    return float(np.sqrt(np.sum(proj**2 * weight) / n))


def isotropic_alignment(teacher_angles, window_deg: float = ALIGN_DEG) -> float:
    """Fraction of uniformly random directions within ``window_deg`` of one of ``teacher_angles``.

    The union of the arcs ``[phi_k - w, phi_k + w]`` covers ``sum_k min(gap_k, 2w)`` degrees, with
    ``gap_k`` the circular gaps between the sorted teacher angles (the lazy limit of the
    alignment fraction: directions stay at their isotropic initial values).

    >>> round(isotropic_alignment((0.0, 90.0, 180.0)), 12)  # 3 x 20 / 360
    0.166666666667
    """
    phi = np.sort(np.mod(np.asarray(teacher_angles, np.float64), 360.0))
    gaps = np.diff(np.append(phi, phi[0] + 360.0))  # (K,)
    return float(np.sum(np.minimum(gaps, 2.0 * window_deg)) / 360.0)


def angle_to_nearest(theta_deg, teacher_deg):
    """Absolute angle in degrees from each ``theta`` to the nearest teacher angle (numpy or jax)."""
    d = (theta_deg[..., None] - np.asarray(teacher_deg, np.float64) + 180.0) % 360.0 - 180.0
    return abs(d).min(axis=-1)


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


def _student(cfg: Config) -> MLP:
    return MLP((2, cfg.width, 1), "relu", "ntk", bias=False, dtype=DTYPE)


def predict(cfg: Config):
    X, Y = _dataset(cfg)
    alphas = np.asarray(cfg.alphas)
    w0_norm = math.sqrt(3 * cfg.width)  # E ||w0||^2 = 2m + m entries of N(0, 1)
    c = linearised_movement(relu_ntk(X), Y[:, 0], cfg.eta, _steps(cfg)) / w0_norm
    return {
        "movement": Curve(alphas, c / alphas),
        "alignment": Curve(alphas, np.full(alphas.size, isotropic_alignment(cfg.teacher_angles))),
    }


def _neuron_angles(params):
    W = params["net"][0]["w"]  # (2, m)
    return jnp.degrees(jnp.arctan2(W[1], W[0]))  # (m,)


def measure(cfg: Config, progress=None):
    net = _student(cfg)
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
        out[f"loss/{i}"] = Curve(t, result["loss"][i] * alpha**2)  # L(h_alpha), (seeds, T)
        out[f"movement/{i}"] = Curve(t, result["movement"][i])
        out[f"alignment/{i}"] = Curve(t, result["alignment"][i])
        out[f"angle/{i}"] = Curve(neurons, angles[i])  # final input-weight directions, degrees
        out[f"mass/{i}"] = Curve(neurons, mass[i])  # final |a_j| ||w_j||
    return out


# ---------------------------------------------------------------------------------------------
# Verdict and figure


def _alignment(cfg: Config, measurement, i: int, weighted: bool = False) -> float:
    """Fraction of neurons (pooled over seeds) within ALIGN_DEG of a teacher direction."""
    aligned = angle_to_nearest(measurement[f"angle/{i}"].y, cfg.teacher_angles) <= ALIGN_DEG  # (seeds, m)
    if not weighted:
        return float(np.mean(aligned))
    mass = measurement[f"mass/{i}"].y
    return float(np.sum(mass * aligned) / np.sum(mass))


def _summary(cfg: Config, prediction, measurement) -> dict[str, np.ndarray]:
    A = len(cfg.alphas)
    final = lambda name: np.array([measurement[f"{name}/{i}"].y[:, -1] for i in range(A)])  # noqa: E731  (A, seeds)
    initial_loss = np.array([measurement[f"loss/{i}"].y[:, 0] for i in range(A)])  # (A, seeds)
    return {
        "alpha": np.asarray(cfg.alphas),
        "movement": final("movement").mean(axis=1),  # (A,)
        "loss_ratio": (final("loss") / initial_loss).mean(axis=1),
        "alignment": np.array([_alignment(cfg, measurement, i) for i in range(A)]),
        "weighted": np.array([_alignment(cfg, measurement, i, weighted=True) for i in range(A)]),
        "linearised": prediction["movement"].y[0],
    }


def judge(cfg: Config, prediction, measurement) -> Verdict:
    A = len(cfg.alphas)
    if any(np.isnan(measurement[f"{k}/{i}"].y).any() for k in ("loss", "movement") for i in range(A)):
        return Verdict(status="inconclusive", metric="diverged members", value=1.0, threshold=0.0,
                       reason="a member diverged; lower eta")
    s = _summary(cfg, prediction, measurement)
    alpha = s["alpha"]
    lazy, rich = alpha >= cfg.lazy_min, alpha <= RICH_MAX
    details = {}
    for i, a in enumerate(alpha):
        details.update({f"movement/{a:g}": float(s["movement"][i]), f"alignment/{a:g}": float(s["alignment"][i]),
                        f"alignment_weighted/{a:g}": float(s["weighted"][i]),
                        f"final_loss_ratio/{a:g}": float(s["loss_ratio"][i])})
        if lazy[i]:
            details[f"movement_over_linearised/{a:g}"] = float(s["movement"][i] / s["linearised"][i])
    worst_loss = float(s["loss_ratio"][rich].max())
    if worst_loss > cfg.converged_loss:
        return Verdict(status="inconclusive", metric="rich runs L_T/L_0 (max)", value=worst_loss,
                       threshold=cfg.converged_loss, details=details,
                       reason=f"a rich run (alpha <= {RICH_MAX:g}) ended at L_T/L_0 = {worst_loss:.2e}; "
                              "train longer or lower eta")
    slope = log_slope(alpha[lazy], s["movement"][lazy])
    ratios = s["alignment"][rich] / s["alignment"][-1]
    details.update({"slope": slope, "alignment_ratio_min": float(ratios.min()),
                    "alignment_lazy_limit": float(prediction["alignment"].y[0, 0])})
    details.update({f"alignment_ratio/{a:g}": float(r) for a, r in zip(alpha[rich], ratios)})
    rich_text = ", ".join(f"{f:.3f} at alpha={a:g}" for a, f in zip(alpha[rich], s["alignment"][rich]))
    reason = (f"slope {slope:.3f} over alpha >= {cfg.lazy_min:g} (want {SLOPE:g} +/- {SLOPE_TOL:g}); aligned within "
              f"{ALIGN_DEG:g} deg: {rich_text} vs {s['alignment'][-1]:.3f} at alpha={alpha[-1]:g} "
              f"(ratio min {ratios.min():.2f}, want >= {ALIGN_RATIO_MIN:g})")
    off = abs(slope - SLOPE)
    if off > SLOPE_TOL:
        return Verdict(status="fails", metric="|slope + 1| of movement vs alpha (lazy range)", value=off,
                       threshold=SLOPE_TOL, reason=reason, details=details)
    if ratios.min() < ALIGN_RATIO_MIN:
        return Verdict(status="fails", metric="alignment ratio rich / largest alpha (min)", value=float(ratios.min()),
                       threshold=ALIGN_RATIO_MIN, reason=reason, details=details)
    # Both criteria hold; the headline is the alignment ratio, the one with the smaller margin here.
    return Verdict(status="holds", metric="alignment ratio rich / largest alpha (min)", value=float(ratios.min()),
                   threshold=ALIGN_RATIO_MIN, reason=reason, details=details)


def _plot_movement(ax, cfg: Config, prediction, measurement):
    A = len(cfg.alphas)
    alpha = np.asarray(cfg.alphas)
    finals = np.array([measurement[f"movement/{i}"].y[:, -1] for i in range(A)]).T  # (seeds, A)
    band(ax, alpha, finals, color=COLORS[0], label="measured (mean, 10-90%)")
    ax.plot(np.repeat(alpha[None], finals.shape[0], 0).ravel(), finals.ravel(), ".", color=COLORS[0], alpha=0.5)
    theory_line(ax, alpha, prediction["movement"].y[0], color="black", label="linearised model, C / alpha")
    ax.axvspan(cfg.lazy_min, alpha[-1], color="gray", alpha=0.08, label="lazy range (slope fitted)")
    ax.set(xscale="log", yscale="log", xlabel="output scale alpha",
           ylabel="relative movement ||w_T - w_0|| / ||w_0||")
    ax.legend(fontsize=7)


def _plot_alignment(ax, cfg: Config, prediction, measurement):
    alpha = np.asarray(cfg.alphas)
    s = [_alignment(cfg, measurement, i) for i in range(len(alpha))]
    w = [_alignment(cfg, measurement, i, weighted=True) for i in range(len(alpha))]
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
        th = np.deg2rad(measurement[f"angle/{i}"].y.ravel())
        mass = measurement[f"mass/{i}"].y.ravel()
        ax.plot(radius * np.cos(circle), radius * np.sin(circle), color="gray", linewidth=0.4, zorder=0)
        ax.scatter(radius * np.cos(th), radius * np.sin(th), s=3 + 80 * mass / mass.max(), color=color, alpha=0.35,
                   linewidths=0, zorder=2, label=f"alpha={cfg.alphas[i]:g}" + (" (outer)" if i == 0 else " (inner)"))
    ax.set(aspect="equal", xlim=(-1.3, 1.3), ylim=(-1.6, 1.3), xticks=[], yticks=[],
           xlabel="neuron direction w_j / ||w_j|| (marker area ~ |a_j| ||w_j||)")
    ax.legend(fontsize=7, loc="lower center", ncol=3, handletextpad=0.2, columnspacing=0.8)


def plot(cfg: Config, prediction, measurement, verdict=None):
    fig, (ax_m, ax_a, ax_n) = new_figure(3, title="limits.lazy-rich: two-layer ReLU student, output scale alpha")
    _plot_movement(ax_m, cfg, prediction, measurement)
    _plot_alignment(ax_a, cfg, prediction, measurement)
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
        "quick": {"seeds": 2},
        "full": {"seeds": 8, "n_samples": 256, "t_max": 1000.0, "points": 100,
                 "alphas": (0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)},
    },
    predict=predict, measure=measure, judge=judge, plot=plot,
    tags=("kernels",),
)
