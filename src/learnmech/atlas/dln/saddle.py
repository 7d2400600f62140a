"""dln.saddle-to-saddle — incremental rank learning from a small random initialisation.

Statement: trained from a small random initialisation of scale ``sigma``, a two-layer linear
network learns its teacher one mode at a time: the loss shows one plateau-then-drop per
target mode, the numerical rank of ``W2 W1`` grows by exactly one at each drop, and the plateau
before the first drop lengthens like ``ln(1/sigma)`` (Saxe, McClelland & Ganguli 2014,
arXiv:1312.6120; Jacot, Ged, Simsek, Hongler & Gabriel 2021, arXiv:2106.15933).

Initial strengths. Every weight is ``N(0, sigma^2)``. While ``W2 W1`` is small, mode ``k`` grows
from the combination ``p_k = W1 v_k + W2^T u_k`` of the two layers' projections onto the teacher's
singular vectors, ``u_k ~ |p_k|^2 e^{2 s_k t} / 4``, and a mode learned later grows only from the part
of ``p_k`` orthogonal to the hidden directions of the modes learned before it; so each mode follows
the logistic of :func:`learnmech.theory.dln.mode_trajectory_two_layer` from
``u0_k = |P_{<k}^perp p_k(0)|^2 / 4`` (:func:`~learnmech.theory.dln.effective_u0_two_layer`, derived
there; it predicts each mode's ``t_half`` to better than 1%). The claim uses these per member, from
the member's own initial weights (recorded at ``t = 0``), not the projected initial product
``[U^T W2 W1 V]_kk``, which has either sign. Their mean is ``sigma^2 (h - k) / 2``
(:func:`~learnmech.theory.dln.typical_u0_two_layer`, ``k = 0, 1, ...``): the "typical" strengths of the
per-scale report and of the theory curves in the figure.

The slope: each member's draw is rescaled across ``sigma`` (the same draw at every scale), so
``u0_k = c_k sigma^2`` with ``c_k`` fixed by the draw, and ``t_half = ln(s/u0 - 1)/(2s)`` gives
``t_1 = (2 ln(1/sigma) + ln(s_1/c_1)) / (2 s_1)`` for ``s_1/u0 >> 1``: slope ``1/s_1`` in ``ln(1/sigma)``.

Where the stages are separated (CLAIMS.md, rule revised in #9). With
``t_q = t_half + ln(q/(1 - q))/(2 s)`` the time at which a logistic mode reaches ``q s``
(:func:`~learnmech.theory.dln.transition_time_two_layer`), the 10%-90% rise time of mode ``k`` is
``t_90 - t_10 = ln(81)/(2 s_k)`` (exact once ``u0_k <= s_k/10``; :func:`~learnmech.theory.dln.rise_time_two_layer`).
The pair of consecutive modes ``(k, k+1)`` is predicted separated when the plateau between their drops,
``t_half(s_{k+1}, u0_{k+1}) - t_half(s_k, u0_k)``, is at least ``SEPARATION_MIN = 2`` such rise times of
mode ``k`` (:func:`~learnmech.theory.dln.stage_separation_two_layer` gives the ratio). A member (one seed
at one ``sigma``) is judged when every consecutive pair is separated for its own ``u0``; the drop count
and the one-rank-per-drop check are judged on those members only. The others are reported per scale
(``drops_right/<sigma>``, ``rank_steps_right/<sigma>``), not judged. The verdict's details give, per
scale, the predicted separation of each pair at the typical strengths (``separation/typical/<sigma>/<pair>``)
and its smallest value over the members (``separation/min/<sigma>/<pair>``), and the fraction of members
judged (``judged/<sigma>``). The separation grows as ``sigma`` shrinks (the plateau gains
``ln(1/sigma^2) (1/(2 s_{k+1}) - 1/(2 s_k))``, the rise time does not change).

Conventions: loss ``(1/2n) sum ||f - y||^2``; ``t = eta * steps``. Drops are found by
:func:`learnmech.atlas.drops.find_drops` (``-d ln L/d ln t >= drop_threshold``); the rank is
the number of singular values of ``W2 W1`` above ``rank_tol * s_min``.

Verdict (CLAIMS.md): detected drops == target rank and rank +1 per drop, on every judged member;
slope of the mean first-drop time against ``ln(1/sigma)`` within 20% of ``1/s_1`` (every scale,
unchanged by the revision). No judged member: inconclusive.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import indexed, key
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged
from learnmech.atlas.dln.experiment import decreasing, horizon, loss_curve, make_teacher, rank_curve, train_dln
from learnmech.atlas.drops import find_drops
from learnmech.atlas.metrics import linear_fit
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.dln import (effective_u0_two_layer, mode_trajectory_two_layer, predicted_loss,
                                  stage_separation_two_layer, t_half_two_layer, typical_u0_two_layer)

SLOPE_RTOL = 0.20  # CLAIMS.md
SEPARATION_MIN = 2.0  # CLAIMS.md (#9): plateau >= 2 x the earlier mode's 10%-90% rise time


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
        if len(sigmas) < 2 or any(not 0 < v < 1 for v in sigmas) or len({_label(v) for v in sigmas}) != len(sigmas):
            raise ValueError("need at least two distinct scales in (0, 1)")
        return sigmas

    @model_validator(mode="after")
    def _small_init(self):
        if len(self.s) < 2:
            raise ValueError("s: need at least two teacher modes (stages to tell apart)")
        if self.hidden < len(self.s):
            raise ValueError(f"hidden: must be at least the number of teacher modes ({len(self.s)}), got {self.hidden}")
        if max(self.sigmas) ** 2 * self.hidden / 2 > min(self.s) / 10:
            largest = np.sqrt(min(self.s) / 5 / self.hidden)
            raise ValueError(f"sigmas: the typical initial strength sigma^2 hidden / 2 must be at most a tenth of the "
                             f"smallest s ({min(self.s):g}): sigma <= {largest:.3g}")
        return self


def _label(sigma: float) -> str:
    """A scale's name in the summary's keys, e.g. ``0.01``, ``0.00316228``."""
    return f"{sigma:g}"


def _pair(k: int) -> str:
    """Consecutive modes ``k, k + 1`` (from 0) as the summary names them: ``"1-2"``, ``"2-3"``, ..."""
    return f"{k + 1}-{k + 2}"


def _typical_u0(cfg: Config, sigma: float) -> np.ndarray:
    return typical_u0_two_layer(sigma, cfg.hidden, len(cfg.s))


def _t_max(cfg: Config) -> float:
    """The slowest mode's ``t_half`` at ``u0 = sigma_min^2 sqrt(h)`` (in the presets below its typical
    ``sigma^2 (h - K + 1)/2``: room for a low draw), plus ``e_folds`` of its relaxation."""
    u0 = min(cfg.sigmas) ** 2 * np.sqrt(cfg.hidden)
    return horizon(float(t_half_two_layer(min(cfg.s), u0)), min(cfg.s), 2, cfg.e_folds)


def predict(cfg: Config):
    """The slope ``1/s_1``, the drop count, and per scale the separation of each consecutive pair and the
    aligned-init loss curve, both at the typical initial strengths ``sigma^2 (h - k)/2``."""
    t = np.geomspace(_t_max(cfg) * 1e-3, _t_max(cfg), 400)
    out = {"first_drop_slope": 1.0 / cfg.s[0], "drops": float(len(cfg.s))}
    for g, sigma in enumerate(cfg.sigmas):
        u0 = _typical_u0(cfg, sigma)
        out[key("loss", g)] = Curve(t, predicted_loss(mode_trajectory_two_layer(t, cfg.s, u0), cfg.s))
        out[key("separation", g)] = Curve(np.arange(len(cfg.s) - 1), stage_separation_two_layer(cfg.s, u0))
    return out


def measure(cfg: Config, progress=None):
    teacher = make_teacher(cfg.d_in, cfg.d_out, cfg.s, cfg.teacher_seed)
    U, V = teacher.U, teacher.V  # (d_out, K), (d_in, K)
    result = train_dln(
        teacher, widths=(cfg.d_in, cfg.hidden, cfg.d_out), eta=cfg.eta, t_max=_t_max(cfg), seeds=cfg.seeds,
        init=lambda net, rng, hp: [hp["sigma"] / net.scale * w for w in net.init(rng)],
        points=cfg.points, n_samples=cfg.n_samples, grid={"sigma": list(cfg.sigmas)},
        progress=progress, label="dln.saddle-to-saddle",
        observe_more=lambda params, params0: {"W1V": params0[0] @ V, "W2tU": params0[1].T @ U},  # (h, K) each
    )
    u0 = effective_u0_two_layer(result["W1V"][..., 0, :, :], result["W2tU"][..., 0, :, :])  # (scales, seeds, K)
    out = {}
    for g in range(len(cfg.sigmas)):
        out[key("loss", g)] = loss_curve(result, cfg.eta, index=g)
        out[key("rank", g)] = rank_curve(result, cfg.eta, cfg.rank_tol * min(cfg.s), index=g)
        out[key("u0", g)] = Curve(np.arange(len(cfg.s)), u0[g])  # x = mode index, y = (seeds, K)
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
    return np.array(counts), np.array(ranks_ok), np.array(first)


def _separation(s, u0: np.ndarray) -> np.ndarray:
    """``(members, K - 1)`` :func:`stage_separation_two_layer` of each member; NaN for a member whose
    strengths are not a small initialisation (some ``u0`` outside ``(0, s)``)."""
    s = np.asarray(s, np.float64)
    valid = np.all((u0 > 0) & (u0 < s), axis=1)  # (members,)
    sep = stage_separation_two_layer(s, np.where(valid[:, None], u0, s / 4))
    sep[~valid] = np.nan
    return sep


def _fraction(ok: np.ndarray, among: np.ndarray) -> float:
    """Mean of ``ok`` over the members in ``among``; NaN when there are none."""
    return float(np.mean(ok[among])) if among.any() else float("nan")


def summarize(cfg: Config, prediction, measurement):
    """Per member: separated or not, the drop count, whether the rank steps by one; per scale: the separations,
    the fractions judged and right, the mean first-drop time; the slope of those times against ``ln(1/sigma)``."""
    losses, ranks, u0s = (indexed(measurement, name) for name in ("loss", "rank", "u0"))
    typical = indexed(prediction, "separation")
    target = float(prediction["drops"])
    out, right, steps_ok, judged, t1, counts = {}, [], [], [], [], []
    for sigma, loss, rank, u0, sep_typical in zip(cfg.sigmas, losses, ranks, u0s, typical):
        count, ok, first = _stages(cfg, loss, rank)
        sep = _separation(cfg.s, u0.y)  # (seeds, K - 1)
        separated = np.all(sep >= SEPARATION_MIN, axis=1)  # NaN compares False: not judged
        label = _label(sigma)
        for k in range(sep.shape[1]):
            out[key("separation", "typical", label, _pair(k))] = float(sep_typical.y[0, k])
            out[key("separation", "min", label, _pair(k))] = float(np.min(sep[:, k]))
        out[key("judged", label)] = float(np.mean(separated))
        out[key("drops_right", label)] = float(np.mean(count == target))
        out[key("rank_steps_right", label)] = float(np.mean(ok))
        right.append(count == target)
        steps_ok.append(ok)
        judged.append(separated)
        counts.append(count)
        t1.append(np.nanmean(first) if np.isfinite(first).any() else np.nan)
    right, steps_ok, judged, counts = (np.concatenate(v) for v in (right, steps_ok, judged, counts))
    log_inv_sigma, t1 = np.log(1.0 / np.asarray(cfg.sigmas)), np.array(t1)  # (scales,)
    slope = linear_fit(log_inv_sigma, t1)[0] if np.all(np.isfinite(t1)) else np.nan
    predicted = float(prediction["first_drop_slope"])
    order = np.argsort(log_inv_sigma)
    return {
        "diverged": float(sum(count_diverged(loss) for loss in losses)),
        "first_drop_slope_rel_err": float(abs(slope / predicted - 1.0)),
        "judged_members": float(judged.sum()), "members": float(judged.size),
        "members_with_right_drop_count": _fraction(right, judged),
        "members_with_rank_steps_of_one": _fraction(steps_ok, judged),
        "unjudged_with_right_drop_count": _fraction(right, ~judged),
        "unjudged_with_rank_steps_of_one": _fraction(steps_ok, ~judged),
        "separation_min": SEPARATION_MIN,
        "first_drop_slope": float(slope), "predicted_slope": predicted,
        "min_drops": float(counts.min()), "max_drops": float(counts.max()), "target_drops": target,
        **out,
        "first_drop_time": Curve(log_inv_sigma[order], t1[order]),  # x = ln(1/sigma)
    }


RULES = Rules(
    guards=(diverged("a member diverged; lower eta"),
            Guard("members with separated stages (plateau >= 2 rise times)", "judged_members", ">=", 1.0, fmt="g",
                  advice="no member's stages are predicted separated, so drops and ranks cannot be judged; use "
                         "smaller sigmas or more widely spaced s (separation/... in the details)")),
    checks=(Check("|first-drop slope x s_1 - 1|", "first_drop_slope_rel_err", "<=", SLOPE_RTOL),
            Check("fraction of judged members with drops == rank", "members_with_right_drop_count", ">=", 1.0,
                  fmt=".3g"),
            Check("fraction of judged members with rank +1 per drop", "members_with_rank_steps_of_one", ">=", 1.0,
                  fmt=".3g")),
)


def _scale_label(sigma: float, summary) -> str:
    """Legend text of one scale: its smallest separation over members and pairs, judged or not."""
    label = _label(sigma)
    low = min(v for k, v in summary.items() if k.startswith(key("separation", "min", label) + "/"))
    judged = summary[key("judged", label)]
    status = "judged" if judged == 1.0 else "not judged" if judged == 0.0 else f"{judged:.0%} judged"
    return f"sigma={sigma:g}: separation >= {low:.2f}, {status}"


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_l, ax_r, ax_s) = new_figure(3, title="dln.saddle-to-saddle: incremental learning from small random init",
                                         width=4.0)
    curves = zip(cfg.sigmas, indexed(measurement, "loss"), indexed(measurement, "rank"), indexed(prediction, "loss"))
    for g, (sigma, loss, rank, p) in enumerate(curves):
        c = COLORS[g % len(COLORS)]
        style = "-" if summary[key("judged", _label(sigma))] == 1.0 else ":"  # dotted: not all judged (theory dashed)
        band(ax_l, loss.x, loss.y, color=c, label=_scale_label(sigma, summary), linestyle=style)
        theory_line(ax_l, p.x, p.y[0], color=c,
                    label="aligned theory, typical u0 = sigma^2 (h - k)/2" if g == 0 else None)
        band(ax_r, rank.x, rank.y, color=c, label=f"sigma={sigma:g}", linestyle=style)
    ax_l.set(xscale="log", yscale="log", xlabel="time t = eta x steps", ylabel="loss (1/2n) sum ||f(x)-y||^2")
    ax_l.legend(fontsize=6)
    ax_r.set(xscale="log", xlabel="time t = eta x steps", ylabel=f"rank of W2 W1 (sv > {cfg.rank_tol:g} s_min)",
             title=f"judged: stages separated (plateau >= {SEPARATION_MIN:g} rise times); dotted: not judged")
    ax_r.title.set_fontsize(7)
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
