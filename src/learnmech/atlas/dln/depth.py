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
seeds) and the integrated ODE, i.e. the smallest R^2 over the depths is at least 0.99.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged
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


def _label(depth: int) -> str:
    """The part that names a depth in the records: ``L3/mode/0``, ``r2/L3``."""
    return f"L{depth}"


def _modes(record, cfg: Config, depth: int) -> list[Curve]:
    """The mode curves ``L{depth}/mode/a`` of a record, in mode order."""
    return [record[key(_label(depth), "mode", a)] for a in range(len(cfg.s))]


def predict(cfg: Config):
    out = {}
    for depth in cfg.depths:
        t = np.geomspace(_t_max(cfg, depth) * 1e-3, _t_max(cfg, depth), 400)
        u = mode_trajectory(t, cfg.s, cfg.u0, depth)  # (T, r)
        out.update({key(_label(depth), "mode", a): Curve(t, u[:, a]) for a in range(len(cfg.s))})
        out[key(_label(depth), "t_half")] = Curve(np.arange(len(cfg.s)), t_half(cfg.s, cfg.u0, depth))
    return out


def measure(cfg: Config, progress=None):
    teacher = make_teacher(cfg.d_in, cfg.d_out, cfg.s, cfg.teacher_seed)
    out = {}
    for depth in cfg.depths:
        widths = (cfg.d_in,) + (cfg.hidden,) * (depth - 1) + (cfg.d_out,)
        result = train_dln(
            teacher, widths=widths, eta=cfg.eta, t_max=_t_max(cfg, depth), seeds=cfg.seeds,
            init=lambda net, rng, hp: net.init_aligned(rng, teacher.U, teacher.V, cfg.u0),
            points=cfg.points, n_samples=cfg.n_samples, progress=progress, label=f"dln.depth L={depth}",
        )
        out.update(mode_curves(result, cfg.eta, _label(depth), "mode"))
    return out


def summarize(cfg: Config, prediction, measurement):
    """R^2 of the measured trajectories (all modes, all seeds) against the ODE, per depth and the
    smallest of them; the slowest mode's predicted t_half per depth (reported, no threshold)."""
    out = {"diverged": float(sum(count_diverged(*_modes(measurement, cfg, d)) for d in cfg.depths))}
    r2 = {}
    for depth in cfg.depths:
        modes = _modes(measurement, cfg, depth)
        u_pred = mode_trajectory(modes[0].x, cfg.s, cfg.u0, depth)  # (T, r)
        r2[depth] = r_squared(np.stack([m.y for m in modes], -1), u_pred[None])
    worst = min(r2, key=r2.get)
    out.update({"min_r2": float(r2[worst]), "min_r2_depth": float(worst)})
    out.update({key("r2", _label(d)): float(v) for d, v in r2.items()})
    out.update({key("slowest_t_half", _label(d)): float(prediction[key(_label(d), "t_half")].y[0, -1])
                for d in cfg.depths})
    return out


RULES = Rules(
    guards=(diverged("a member diverged; lower eta"),),
    checks=(Check("min R^2 over depths", "min_r2", ">=", R2_MIN, fmt=".5f"),),
)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(len(cfg.depths), title="dln.depth: mode strengths of depth-L linear networks", width=3.8)
    for ax, depth in zip(axes, cfg.depths):
        modes, theory = _modes(measurement, cfg, depth), _modes(prediction, cfg, depth)
        for a, (sa, m, p) in enumerate(zip(cfg.s, modes, theory)):
            c = COLORS[a % len(COLORS)]
            band(ax, m.x, m.y, color=c, label=f"measured, s={sa:g}")
            theory_line(ax, p.x, p.y[0], color="black", label="ODE du/dt = L u^(2-2/L)(s-u)" if a == 0 else None)
        ax.set(xscale="log", title=f"L = {depth}: R^2 {summary[key('r2', _label(depth))]:.5f}",
               xlabel="time t = eta x steps", ylabel="end-to-end mode strength u")
        ax.legend(fontsize=6.5, loc="upper left")
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="dln.depth",
    pillar="solvable settings",
    statement="In a depth-L linear network with balanced aligned initialisation each mode obeys "
              "du/dt = L u^(2-2/L) (s - u): plateaus lengthen and transitions sharpen with depth.",
    references=("Saxe, McClelland & Ganguli 2014, arXiv:1312.6120",),
    config=Config,
    presets={"tiny": {"seeds": 2, "depths": (1, 3), "s": (2.0, 1.0), "u0": 0.05, "d_in": 3, "d_out": 3,
                      "hidden": 4, "eta": 0.01, "e_folds": 2.0, "points": 20, "n_samples": 8},
             "quick": {"seeds": 2}, "full": {"seeds": 8, "depths": (1, 2, 3, 4, 6), "u0": 1e-3, "points": 300}},
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
