"""dln.saddle-to-saddle — incremental rank learning from a small random initialisation.

Statement: trained from a small random initialisation of scale ``sigma``, a two-layer linear
network learns its teacher one mode at a time: the loss shows one plateau-then-drop per
target mode, the numerical rank of ``W2 W1`` grows by exactly one at each drop, and the plateau
before the first drop lengthens like ``ln(1/sigma)`` (Saxe, McClelland & Ganguli 2014,
arXiv:1312.6120; Jacot, Ged, Simsek, Hongler & Gabriel 2021, arXiv:2106.15933).

The slope: with per-layer entries ``N(0, sigma^2)``, the initial mode strength is
``u0 = c sigma^2`` (``c`` set by the random draw and the width, the same for every ``sigma`` when
the same draw is rescaled, as here), and ``t_half = ln(s/u0 - 1)/(2s)`` gives
``t_1 = (2 ln(1/sigma) + ln(s_1/c)) / (2 s_1)`` for ``s_1/u0 >> 1``: slope ``1/s_1`` in
``ln(1/sigma)``. The alignment phase adds a ``sigma``-independent offset, which the slope ignores.

Conventions: loss ``(1/2n) sum ||f - y||^2``; ``t = eta * steps``. Drops are found by
:func:`learnmech.atlas.drops.find_drops` (``-d ln L/d ln t >= drop_threshold``); the rank is
the number of singular values of ``W2 W1`` above ``rank_tol * s_min``.

Verdict (CLAIMS.md): detected drops == target rank and rank +1 per drop (checked for every
member at every ``sigma``); slope of the first-drop time against ``ln(1/sigma)`` within 20% of
``1/s_1``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged
from learnmech.atlas.dln.experiment import decreasing, horizon, loss_curve, make_teacher, rank_curve, train_dln
from learnmech.atlas.drops import find_drops
from learnmech.atlas.metrics import linear_fit
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.dln import mode_trajectory_two_layer, predicted_loss, t_half_two_layer

SLOPE_RTOL = 0.20  # CLAIMS.md


class Config(ClaimConfig):
    s: tuple[float, ...] = Field((4.0, 1.5, 0.5), description="teacher singular values, decreasing")
    sigmas: tuple[float, ...] = Field((1e-2, 1e-3, 1e-4), description="per-layer init scales")
    d_in: int = Field(6, ge=1, le=512)
    d_out: int = Field(6, ge=1, le=512)
    hidden: int = Field(16, ge=1, le=1024)
    eta: float = Field(0.002, gt=0, le=1.0)
    e_folds: float = Field(4.0, gt=0, le=50, description="train this many e-folds of the slowest mode past its t_half")
    points: int = Field(300, ge=50, le=5000)
    n_samples: int = Field(32, ge=1, le=100_000)
    drop_threshold: float = Field(1.0, gt=0, description="-dlnL/dlnt above which the loss is dropping")
    rank_tol: float = Field(0.5, gt=0, lt=1, description="rank counts singular values above rank_tol * s_min")
    teacher_seed: int = 0

    _s = field_validator("s")(decreasing)

    @field_validator("sigmas")
    @classmethod
    def _sigmas(cls, sigmas):
        if len(sigmas) < 2 or any(not 0 < v < 1 for v in sigmas) or len(set(sigmas)) != len(sigmas):
            raise ValueError("need at least two distinct scales in (0, 1)")
        return sigmas


def _u0(cfg: Config, sigma: float) -> float:
    """Typical initial mode strength ``sigma^2 sqrt(hidden)`` (a sum of ``hidden`` products)."""
    return sigma**2 * np.sqrt(cfg.hidden)


def _t_max(cfg: Config) -> float:
    return horizon(float(t_half_two_layer(min(cfg.s), _u0(cfg, min(cfg.sigmas)))), min(cfg.s), 2, cfg.e_folds)


def predict(cfg: Config):
    """The slope ``1/s_1``, the drop count, and aligned-init loss curves at ``u0 = sigma^2 sqrt(h)``."""
    t = np.geomspace(_t_max(cfg) * 1e-3, _t_max(cfg), 400)
    out = {"first_drop_slope": 1.0 / cfg.s[0], "drops": float(len(cfg.s))}
    for g, sigma in enumerate(cfg.sigmas):
        out[key("loss", g)] = Curve(t, predicted_loss(mode_trajectory_two_layer(t, cfg.s, _u0(cfg, sigma)), cfg.s))
    return out


def measure(cfg: Config, progress=None):
    teacher = make_teacher(cfg.d_in, cfg.d_out, cfg.s, cfg.teacher_seed)
    result = train_dln(
        teacher, widths=(cfg.d_in, cfg.hidden, cfg.d_out), eta=cfg.eta, t_max=_t_max(cfg), seeds=cfg.seeds,
        init=lambda net, rng, hp: [hp["sigma"] / net.scale * w for w in net.init(rng)],
        points=cfg.points, n_samples=cfg.n_samples, grid={"sigma": list(cfg.sigmas)},
        progress=progress, label="dln.saddle-to-saddle",
    )
    out = {}
    for g in range(len(cfg.sigmas)):
        out[key("loss", g)] = loss_curve(result, cfg.eta, index=g)
        out[key("rank", g)] = rank_curve(result, cfg.eta, cfg.rank_tol * min(cfg.s), index=g)
    return out


def _stages(cfg: Config, loss: Curve, rank: Curve):
    """One scale's members: drop counts, whether the rank on the plateaus is 0, 1, 2, ..., first-drop times."""
    counts, ranks_ok, first = [], [], []
    for m in range(loss.y.shape[0]):
        drops = find_drops(loss.x, loss.y[m], threshold=cfg.drop_threshold)
        at = np.searchsorted(rank.x, drops.plateaus).clip(0, rank.x.size - 1)
        counts.append(drops.count)
        ranks_ok.append(np.array_equal(rank.y[m, at], np.arange(drops.count + 1)))
        first.append(drops.times[0] if drops.count else np.nan)
    return counts, ranks_ok, np.array(first)


def summarize(cfg: Config, prediction, measurement):
    """Per member (every scale): the drop count and whether the rank steps by one; per scale: the mean
    first-drop time, and the slope of those times against ``ln(1/sigma)`` with its error from ``1/s_1``."""
    losses, ranks = indexed(measurement, "loss"), indexed(measurement, "rank")
    counts, ranks_ok, t1 = [], [], []
    for loss, rank in zip(losses, ranks):
        c, ok, first = _stages(cfg, loss, rank)
        counts += c
        ranks_ok += ok
        t1.append(np.nanmean(first) if np.isfinite(first).any() else np.nan)
    log_inv_sigma, t1 = np.log(1.0 / np.asarray(cfg.sigmas)), np.array(t1)  # (scales,)
    slope = linear_fit(log_inv_sigma, t1)[0] if np.all(np.isfinite(t1)) else np.nan
    predicted = float(prediction["first_drop_slope"])
    order = np.argsort(log_inv_sigma)
    return {
        "diverged": float(sum(count_diverged(loss) for loss in losses)),
        "first_drop_slope_rel_err": float(abs(slope / predicted - 1.0)),
        "members_with_right_drop_count": float(np.mean(np.array(counts) == prediction["drops"])),
        "members_with_rank_steps_of_one": float(np.mean(ranks_ok)),
        "first_drop_slope": float(slope), "predicted_slope": predicted,
        "min_drops": float(min(counts)), "max_drops": float(max(counts)), "target_drops": float(prediction["drops"]),
        "first_drop_time": Curve(log_inv_sigma[order], t1[order]),  # x = ln(1/sigma)
    }


RULES = Rules(
    guards=(diverged("a member diverged; lower eta"),),
    checks=(Check("|first-drop slope x s_1 - 1|", "first_drop_slope_rel_err", "<=", SLOPE_RTOL),
            Check("fraction of members with drops == rank", "members_with_right_drop_count", ">=", 1.0,
                  fmt=".3g"),
            Check("fraction of members with rank +1 per drop", "members_with_rank_steps_of_one", ">=", 1.0,
                  fmt=".3g")),
)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_l, ax_r, ax_s) = new_figure(3, title="dln.saddle-to-saddle: incremental learning from small random init", width=4.0)
    curves = zip(cfg.sigmas, indexed(measurement, "loss"), indexed(measurement, "rank"), indexed(prediction, "loss"))
    for g, (sigma, loss, rank, p) in enumerate(curves):
        c = COLORS[g % len(COLORS)]
        band(ax_l, loss.x, loss.y, color=c, label=f"measured, sigma={sigma:g}")
        theory_line(ax_l, p.x, p.y[0], color=c, label="aligned theory, u0 = sigma^2 sqrt(h)" if g == 0 else None)
        band(ax_r, rank.x, rank.y, color=c, label=f"sigma={sigma:g}")
    ax_l.set(xscale="log", yscale="log", xlabel="time t = eta x steps", ylabel="loss (1/2n) sum ||f(x)-y||^2")
    ax_l.legend(fontsize=6.5)
    ax_r.set(xscale="log", xlabel="time t = eta x steps", ylabel=f"rank of W2 W1 (sv > {cfg.rank_tol:g} s_min)")
    ax_r.legend(fontsize=6.5)
    t1 = summary["first_drop_time"]
    x, y = t1.x, t1.y[0]
    ax_s.plot(x, y, "o", color=COLORS[0], label=f"measured first drop, slope {summary['first_drop_slope']:.3g}")
    slope = summary["predicted_slope"]
    theory_line(ax_s, x, np.nanmean(y) + slope * (x - x.mean()), color="black", label=f"slope 1/s_1 = {slope:.3g}")
    ax_s.set(xlabel="ln(1/sigma)", ylabel="first-drop time t_1")
    ax_s.legend(fontsize=7)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="dln.saddle-to-saddle",
    pillar="solvable settings",
    statement="From a small random initialisation a linear network learns one mode per plateau-then-drop, "
              "its rank growing by one at each drop, with plateaus lengthening like ln(1/sigma).",
    references=("Saxe, McClelland & Ganguli 2014, arXiv:1312.6120",
                "Jacot, Ged, Simsek, Hongler & Gabriel 2021, arXiv:2106.15933"),
    config=Config,
    presets={"tiny": {"seeds": 2, "s": (2.0, 0.5), "sigmas": (1e-2, 1e-3), "d_in": 3, "d_out": 3, "hidden": 6,
                      "eta": 0.01, "e_folds": 2.0, "points": 60, "n_samples": 8},
             "quick": {"seeds": 3}, "full": {"seeds": 12, "sigmas": (1e-2, 10**-2.5, 1e-3, 10**-3.5, 1e-4), "points": 500}},
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
