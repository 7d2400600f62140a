"""dln.depth — deeper linear networks learn in sharper steps.

Statement: with a balanced, teacher-aligned initialisation, the end-to-end strength of each mode
of a depth-``L`` linear network obeys ``du/dt = L u^{2-2/L} (s - u)`` (Saxe, McClelland &
Ganguli 2014, arXiv:1312.6120; the general-depth form follows from each of the ``L`` layers
carrying ``a = u^{1/L}`` with ``da/dt = a^{L-1} (s - a^L)``). From the same initial strength
``u0``, plateaus lengthen and transitions sharpen as ``L`` grows.

Conventions: loss ``(1/2n) sum ||f - y||^2``; ``t = eta * steps``; every depth starts at the same
end-to-end strength ``u0`` (per-layer scale ``u0^{1/L}``) and trains ``e_folds`` relaxation times
of its slowest mode past that mode's predicted ``t_half``.

Verdict (CLAIMS.md): R^2 >= 0.99 per depth between the measured trajectories (all modes, all
seeds) and the integrated ODE.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.atlas.dln.experiment import decreasing, horizon, make_teacher, mode_curves, train_dln
from learnmech.atlas.metrics import r_squared
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.dln import mode_trajectory, t_half

R2_MIN = 0.99  # CLAIMS.md


class Config(ClaimConfig):
    depths: tuple[int, ...] = Field((2, 3, 4), description="numbers of weight matrices")
    s: tuple[float, ...] = Field((3.0, 1.5, 0.75), description="teacher singular values, decreasing")
    u0: float = Field(1e-2, gt=0, lt=0.1, description="initial end-to-end mode strength")
    d_in: int = Field(6, ge=1, le=512)
    d_out: int = Field(6, ge=1, le=512)
    hidden: int = Field(8, ge=1, le=1024)
    eta: float = Field(0.002, gt=0, le=1.0, description="GD learning rate")
    e_folds: float = Field(4.0, gt=0, le=50, description="train this many e-folds of the slowest mode past its t_half")
    points: int = Field(120, ge=20, le=5000)
    n_samples: int = Field(32, ge=1, le=100_000)
    teacher_seed: int = 0

    _s = field_validator("s")(decreasing)

    @field_validator("depths")
    @classmethod
    def _depths(cls, depths):
        if len(depths) == 0 or any(d < 1 or d > 12 for d in depths) or len(set(depths)) != len(depths):
            raise ValueError("must be distinct integers between 1 and 12")
        return depths


def _t_max(cfg: Config, depth: int) -> float:
    return horizon(float(t_half(min(cfg.s), cfg.u0, depth)[0]), min(cfg.s), depth, cfg.e_folds)


def predict(cfg: Config):
    out = {}
    for depth in cfg.depths:
        t = np.geomspace(_t_max(cfg, depth) * 1e-3, _t_max(cfg, depth), 400)
        u = mode_trajectory(t, cfg.s, cfg.u0, depth)  # (T, r)
        out.update({f"L{depth}/mode/{a}": Curve(t, u[:, a]) for a in range(len(cfg.s))})
        out[f"L{depth}/t_half"] = Curve(np.arange(len(cfg.s)), t_half(cfg.s, cfg.u0, depth))
    return out


def measure(cfg: Config, progress=None):
    teacher = make_teacher(cfg.d_in, cfg.d_out, cfg.s, cfg.teacher_seed)
    out = {}
    for depth in cfg.depths:
        widths = (cfg.d_in,) + (cfg.hidden,) * (depth - 1) + (cfg.d_out,)
        result = train_dln(
            teacher, widths=widths, eta=cfg.eta, t_max=_t_max(cfg, depth), seeds=cfg.seeds,
            init=lambda net, key, hp: net.init_aligned(key, teacher.U, teacher.V, cfg.u0),
            points=cfg.points, n_samples=cfg.n_samples, progress=progress, label=f"dln.depth L={depth}",
        )
        out.update(mode_curves(result, cfg.eta, f"L{depth}/mode"))
    return out


def _r2(cfg: Config, measurement, depth: int) -> float:
    modes = [measurement[f"L{depth}/mode/{a}"] for a in range(len(cfg.s))]
    u_pred = mode_trajectory(modes[0].x, cfg.s, cfg.u0, depth)  # (T, r)
    return r_squared(np.stack([m.y for m in modes], -1), u_pred[None])


def judge(cfg: Config, prediction, measurement) -> Verdict:
    keys = [k for k in measurement if "/mode/" in k]
    if any(np.isnan(measurement[k].y).any() for k in keys):
        return Verdict(status="inconclusive", metric="diverged members", value=1.0, threshold=0.0,
                       reason="a member diverged; lower eta")
    r2 = {depth: _r2(cfg, measurement, depth) for depth in cfg.depths}
    worst = min(r2, key=r2.get)
    reason = "R^2 per depth: " + ", ".join(f"L={d}: {v:.5f}" for d, v in r2.items())
    sharp = [prediction[f"L{d}/t_half"].y[0, -1] for d in cfg.depths]
    reason += "; slowest t_half " + ", ".join(f"{v:.3g}" for v in sharp)
    details = {f"r2/L{d}": v for d, v in r2.items()}
    status = "holds" if r2[worst] >= R2_MIN else "fails"
    return Verdict(status=status, metric=f"min R^2 over depths (L={worst})", value=r2[worst], threshold=R2_MIN,
                   reason=reason, details=details)


def plot(cfg: Config, prediction, measurement, verdict=None):
    fig, axes = new_figure(len(cfg.depths), title="dln.depth: mode strengths of depth-L linear networks", width=3.8)
    for ax, depth in zip(axes, cfg.depths):
        for a, sa in enumerate(cfg.s):
            c = COLORS[a % len(COLORS)]
            m = measurement[f"L{depth}/mode/{a}"]
            band(ax, m.x, m.y, color=c, label=f"measured, s={sa:g}")
            p = prediction[f"L{depth}/mode/{a}"]
            theory_line(ax, p.x, p.y[0], color="black", label="ODE du/dt = L u^(2-2/L)(s-u)" if a == 0 else None)
        ax.set(xscale="log", title=f"L = {depth}", xlabel="time t = eta x steps", ylabel="end-to-end mode strength u")
        ax.legend(fontsize=6.5, loc="upper left")
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="dln.depth",
    pillar="solvable settings",
    statement="In a depth-L linear network with balanced aligned initialisation each mode obeys "
              "du/dt = L u^(2-2/L) (s - u): plateaus lengthen and transitions sharpen with depth.",
    references=("Saxe, McClelland & Ganguli 2014, arXiv:1312.6120",),
    config=Config,
    presets={"quick": {"seeds": 2}, "full": {"seeds": 8, "depths": (1, 2, 3, 4, 6), "u0": 1e-3, "points": 300}},
    predict=predict, measure=measure, judge=judge, plot=plot,
)
