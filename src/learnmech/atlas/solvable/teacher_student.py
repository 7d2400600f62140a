"""solvable.teacher-student — online SGD in a soft committee machine follows its order-parameter ODEs.

Statement (Saad & Solla 1995, PRL 74:4337; Biehl & Schwarze 1995; Goldt et al. 2019,
arXiv:1906.08632): a student with ``K`` erf units learning a teacher with ``M`` erf units by online
SGD on Gaussian inputs follows, as ``N -> inf``, closed ODEs for its overlaps ``R = W B^T / N``,
``Q = W W^T / N`` in time ``alpha = steps / N``; the generalisation error is an arcsin formula of
``(R, Q, T)``; the ODE predicts a symmetric plateau and its escape (specialisation). Model, units,
learning rate and the ``1/2`` of ``eps_g`` as in :mod:`learnmech.theory.committee` (second-layer
weights fixed to 1, not trained; SGD rate ``eta`` on ``w``, Saad & Solla's ``eta / N`` on ``w / sqrt N``).

Experiment. ``K = M`` in ``units`` (2; 2 and 3 in ``full``), ``N = 500``. Teacher: ``M`` orthogonal
rows of norm ``sqrt N`` (``T = I``, from ``teacher_seed``). Student: ``w_ij ~ N(0, init_std^2)``,
``init_std = 0.1`` (``Q(0) ~ 0.01``, small against ``T_nn = 1``; seed ``j`` draws from
``numpy.random.default_rng([init_seed, K, j])``, inputs from ``jax.random.split(key(init_seed))[j]``).
Online SGD, one fresh Gaussian example per step, all seeds in one ``vmap`` over a ``lax.scan``: its
own loop rather than :func:`learnmech.train.train`, whose members train on a fixed data set, while
online learning draws ``alpha_max * N`` fresh inputs per seed (``10^5`` in ``quick``) and records
only the overlaps. Recorded on a uniform ``alpha`` grid:
``R``, ``Q``, ``eps_g`` from the formula at the measured overlaps, and as a check a Monte Carlo
``eps_g`` on ``test_inputs`` fixed Gaussian inputs (reported, no threshold). Float32 training
(updates ``~ eta / sqrt N`` of weights ``~ 0.1``: far above float32 rounding), float64 ODEs.

Prediction. At finite ``N`` the initial overlaps are random, ``R_in(0) ~ init_std / sqrt N``, and
their asymmetry sets how long the plateau lasts (escape ``~ log(1/asymmetry) / rate``). So the ODE is
integrated per seed, from that seed's own initial ``R(0), Q(0)`` (the standard practice; predict
redraws the same initial weights from the seeds, no training), and compared per seed: the fair
comparison, since one ODE from the seed-mean initial overlaps escapes at a single time (82.6 in
quick) while the seeds' own ODEs spread from 59 to 98, as the simulated seeds do. What the ODE cannot
know is the symmetry breaking that SGD noise adds during the run (``O(eta / sqrt N)`` per unit
``alpha``), which moves each seed's escape by ~10% either way at ``N = 500``. That noise and the initial
asymmetry (``init_std / sqrt N``) both scale as ``N^{-1/2}``, so at fixed ``init_std`` the scatter does not
shrink with ``N``: the quick preset at ``N = 2000`` gives a curve error of 66% (14% to a tenth of the plateau),
escape error 12.5% (one seed 43 earlier than its ODE), tail rate ratio 1.01 (measured under load).

Verdict (CLAIMS.md), for every ``K``: the mean over the grid of ``|<eps_ODE>_seeds / <eps_sim>_seeds
- 1|`` (the ODE curves averaged over seeds against the simulation's seed mean) <= 10%; the plateau
height (:func:`~learnmech.theory.committee.plateau_index`) within 10% and the escape time
(:func:`~learnmech.theory.committee.escape_time`) within 20%, as the mean over seeds of each seed's
relative error against its own ODE. Guards: no diverged seed; every seed and its ODE escape
within the run. The headline numbers are the worst over ``K``.

On the curve rule. After the escape ``eps_g`` decays exponentially, ``e^{-c alpha}``; a seed that
escapes ``d`` later than its ODE is off by the constant factor ``e^{c d}`` for the rest of the run,
and the seed means of the tail are dominated by the latest seeds. At ``N = 500`` the SGD noise
scatters each seed's escape around its ODE's by ~10% (``d`` of 5 to 15 in ``alpha``; seed-mean
escapes agree within 3% for K = 2, 7% for K = 3), so the tail's relative error is 30 to 60% and the
run-mean error depends on how much tail ``alpha_max`` includes. Reported beside it, no threshold:
``eps_rel_err_to_tenth_of_plateau`` (the same mean, over the points where the ODE's seed mean is above
a tenth of its plateau: plateau and escape) and ``tail_rate_ratio`` (fitted decay rates of the last
quarter, simulation over ODE), the two parts a shift in time cannot mix.

Measured (under load, 2 shared cores; ``K = M = 2``, ``eta = 1``): quick fails on the curve rule,
17.7% (5.9% to a tenth of the plateau, tail rate ratio 1.004), plateau 4.7%, escape 4.0%; full,
16 seeds, 29.4% (K=2; 9.1%, 1.008) and 17.2% (K=3, ``eta = 0.5``; 7.5%, 1.51: its last quarter still
mixes seeds that are escaping, the latest at alpha = 279), plateau
6.8% / 5.1%, escape 11.3% / 7.9%.

Presets (wall times of ``execute_run`` under load, load average ~6 on 2 cores): tiny ``K = 2``,
``N = 100``, 2 seeds (2.8 s; too small to hold); quick ``K = 2``, ``N = 500``, 8 seeds,
``alpha <= 200`` (11.6 s, 10.3 s CPU for the whole process); full ``K = 2, 3``, 16 seeds,
``alpha <= 200, 400`` (~150 s).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.metrics import linear_fit
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged, reached
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.committee import (escape_time, generalisation_error, integrate_overlaps, plateau_index,
                                        symmetric_fixed_point)

__all__ = ["CLAIM", "Config", "online_sgd"]

EPS_RTOL = 0.10  # CLAIMS.md: mean relative error of eps_g(alpha)
PLATEAU_RTOL = 0.10  # CLAIMS.md: plateau height
ESCAPE_RTOL = 0.20  # CLAIMS.md: escape time
DTYPE = jnp.float32  # the simulation; the ODEs are float64
MAX_ELEMENTS = 50_000_000  # largest array a config may ask for (400 MB in float64): inputs, weights, test set
MAX_I4_ELEMENTS = 10_000_000  # seeds * (K + M)^4: the I4 tensor of the ODEs, ~8 temporaries of it per RK4 stage


class Config(ClaimConfig):
    units: tuple[int, ...] = Field((2,), description="K = M values, one experiment each")
    n: int = Field(500, ge=10, le=20_000, description="input dimension N")
    eta: tuple[float, ...] = Field((1.0,), description="SGD learning rate on w (Saad-Solla eta), one per units entry")
    init_std: float = Field(0.1, gt=0, le=2.0, description="student weights w_ij ~ N(0, init_std^2)")
    alpha_max: tuple[float, ...] = Field((200.0,), description="run length alpha = steps / N, one per units entry")
    points: int = Field(200, ge=10, le=5000, description="observation points on the uniform alpha grid")
    test_inputs: int = Field(1000, ge=10, le=100_000, description="fixed inputs of the Monte Carlo eps_g check")
    dalpha: float = Field(0.1, ge=1e-3, le=0.5,
                          description="RK4 step of the ODEs in alpha (0.1 moves the escape time by 1e-8 relative)")
    teacher_seed: int = 0
    init_seed: int = 0

    @model_validator(mode="after")
    def _grid(self):
        if not self.units or any(not 1 <= k <= 8 for k in self.units):
            raise ValueError("units: must be 1 to 8 values, each 1 <= K <= 8")
        if len(self.alpha_max) != len(self.units) or any(a <= 0 for a in self.alpha_max):
            raise ValueError("alpha_max: must be positive, one per units entry")
        if len(self.eta) != len(self.units) or any(not 0 < e <= 1.5 for e in self.eta):
            raise ValueError("eta: must be in (0, 1.5], one per units entry")
        for a in self.alpha_max:
            if abs(a * self.n / self.points - round(a * self.n / self.points)) > 1e-9 or a * self.n < self.points:
                raise ValueError(f"points: must divide alpha_max * n = {a * self.n:g} steps")
        return self._fits_in_memory()

    def _fits_in_memory(self):
        """Refuse configs whose arrays would not fit: the inputs drawn per observation block (all seeds at
        once), the initial weights, the Monte Carlo test set and the ODEs' I4 tensor."""
        block = self.seeds * max(a * self.n / self.points for a in self.alpha_max) * self.n
        sizes = {"seeds * alpha_max * n^2 / points (inputs per observation block)": block,
                 "seeds * K * n (initial weights)": self.seeds * max(self.units) * self.n,
                 "test_inputs * n (Monte Carlo test set)": self.test_inputs * self.n}
        for what, size in sizes.items():
            if size > MAX_ELEMENTS:
                raise ValueError(f"{what}: must be at most {MAX_ELEMENTS:.0e} elements, got {size:.3g}")
        if self.seeds * (2 * max(self.units)) ** 4 > MAX_I4_ELEMENTS:
            raise ValueError(f"seeds * (2K)^4 (the ODEs' I4 tensor): must be at most {MAX_I4_ELEMENTS:.0e}, "
                             f"got {self.seeds * (2 * max(self.units)) ** 4}")
        return self


def _teacher(cfg: Config, m: int) -> np.ndarray:
    """``B`` ``(m, n)``: orthonormal rows (QR of a Gaussian) times ``sqrt n``, so ``T = B B^T / n = I``."""
    g = np.random.default_rng([cfg.teacher_seed, m]).normal(size=(cfg.n, m))
    return (np.linalg.qr(g)[0].T * math.sqrt(cfg.n)).astype(np.float32)


def _initial_weights(cfg: Config, k: int) -> np.ndarray:
    """``W(0)`` ``(seeds, k, n)`` float32: ``init_std * N(0, 1)``, seed ``j`` from
    ``default_rng([init_seed, k, j])``."""
    draw = [np.random.default_rng([cfg.init_seed, k, j]).standard_normal((k, cfg.n)) for j in range(cfg.seeds)]
    return (np.stack(draw) * cfg.init_std).astype(np.float32)


def _overlaps(w, b):
    """``(R, Q)`` of weights ``w`` ``(..., K, N)`` and teacher ``b`` ``(M, N)`` in float64."""
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    n = b.shape[-1]
    return w @ b.T / n, w @ np.swapaxes(w, -1, -2) / n


def _steps(cfg: Config, i: int) -> int:
    return round(cfg.alpha_max[i] * cfg.n / cfg.points)  # steps between observations


def predict(cfg: Config):
    """Per seed, the ODE from that seed's initial overlaps; and the symmetric fixed point (no training)."""
    out = {}
    for i, k in enumerate(cfg.units):
        b = _teacher(cfg, k)
        r0, q0 = _overlaps(_initial_weights(cfg, k), b)  # (S, K, M), (S, K, K)
        path = integrate_overlaps(r0, q0, _overlaps(b, b)[1], cfg.eta[i], cfg.alpha_max[i], cfg.points, cfg.dalpha)
        out[key("eps", k)] = Curve(path.alpha, path.eps)
        out[key("R", k)] = Curve(path.alpha, np.moveaxis(path.R, 1, -1).reshape(-1, path.alpha.size))
        out[key("plateau_fixed_point", k)] = symmetric_fixed_point(k, cfg.eta[i])[3]
    return out


def _g(u):
    return erf(u / math.sqrt(2.0))


def _g_prime(u):
    return math.sqrt(2.0 / math.pi) * jnp.exp(-u * u / 2)


def online_sgd(w0, b, eta: float, keys, points: int, every: int, x_test):
    """Online SGD of a soft committee machine, vmapped over seeds; returns ``(R, Q, eps_mc)`` per observation.

    ``w0`` ``(S, K, N)``, ``b`` ``(M, N)``, ``keys`` ``(S,)`` (the input stream of each seed),
    ``x_test`` ``(P, N)``. Each step draws ``x ~ N(0, I_N)`` and moves ``w_i += (eta / sqrt N) delta_i x``,
    ``delta_i = g'(lambda_i) (y - f)`` (:mod:`learnmech.theory.committee`). Observations after every
    ``every`` steps: ``R`` ``(S, points, K, M)``, ``Q`` ``(S, points, K, K)`` and the Monte Carlo
    ``eps = (1/2) mean_p (f - y)^2`` on ``x_test`` ``(S, points)``.
    """
    n = b.shape[-1]
    scale = 1.0 / math.sqrt(n)
    y_test = jnp.sum(_g(x_test @ b.T * scale), -1)  # (P,)

    def step(w, x):  # w (K, N), x (N,)
        lam, nu = w @ x * scale, b @ x * scale  # (K,), (M,)
        delta = _g_prime(lam) * (jnp.sum(_g(nu)) - jnp.sum(_g(lam)))  # (K,)
        return w + (eta * scale) * delta[:, None] * x[None, :], None

    def observe(w):
        f_test = jnp.sum(_g(x_test @ w.T * scale), -1)  # (P,)
        return w @ b.T / n, w @ w.T / n, 0.5 * jnp.mean((f_test - y_test) ** 2)

    def run(w, stream):
        def block(w, j):
            xs = jax.random.normal(jax.random.fold_in(stream, j), (every, n), w.dtype)  # (every, N)
            w, _ = jax.lax.scan(step, w, xs)
            return w, observe(w)

        return jax.lax.scan(block, w, jnp.arange(points))[1]

    return jax.jit(jax.vmap(run))(w0, keys)


def measure(cfg: Config, progress=None):
    out = {}
    for i, k in enumerate(cfg.units):
        b, w0 = _teacher(cfg, k), _initial_weights(cfg, k)
        streams = jax.random.split(jax.random.key(cfg.init_seed), cfg.seeds)  # each seed's input stream
        x_test = np.random.default_rng([cfg.init_seed, k, cfg.seeds]).standard_normal((cfg.test_inputs, cfg.n))
        x_test = jnp.asarray(x_test, DTYPE)
        r, q, eps_mc = online_sgd(jnp.asarray(w0), jnp.asarray(b), cfg.eta[i], streams, cfg.points, _steps(cfg, i),
                                  x_test)
        r0, q0 = _overlaps(w0, b)
        r = np.concatenate([r0[:, None], np.asarray(r, np.float64)], 1)  # (S, P + 1, K, M)
        q = np.concatenate([q0[:, None], np.asarray(q, np.float64)], 1)
        alpha = np.linspace(0.0, cfg.alpha_max[i], cfg.points + 1)
        eps0 = _mc_error(w0, b, np.asarray(x_test))
        out[key("eps", k)] = Curve(alpha, generalisation_error(r, q, _overlaps(b, b)[1]))
        out[key("eps_mc", k)] = Curve(alpha, np.concatenate([eps0[:, None], np.asarray(eps_mc, np.float64)], 1))
        out[key("R", k)] = Curve(alpha, np.moveaxis(r, 1, -1).reshape(-1, alpha.size))
        if progress is not None:
            progress("solvable.teacher-student", i + 1, len(cfg.units))
    return out


def _mc_error(w, b, x):
    """Monte Carlo ``eps_g`` of weights ``w`` ``(S, K, N)`` on inputs ``x`` ``(P, N)`` at ``alpha = 0`` (numpy)."""
    from scipy.special import erf as erf_np

    scale = 1.0 / math.sqrt(b.shape[-1])
    y = erf_np(x @ b.T.astype(np.float64) * scale / math.sqrt(2)).sum(-1)  # (P,)
    f = erf_np(np.einsum("pn,skn->spk", x, w.astype(np.float64)) * scale / math.sqrt(2)).sum(-1)  # (S, P)
    return 0.5 * np.mean((f - y) ** 2, -1)


def _seed_landmarks(alpha, eps_row) -> tuple[float, float]:
    """``(plateau height, escape time)`` of one curve (NaN where there is none)."""
    p = plateau_index(alpha, eps_row)
    return (float(eps_row[p]) if p >= 0 else float("nan")), escape_time(alpha, eps_row, p)


def _tail_rate(alpha, eps) -> float:
    """Decay rate ``-d log eps / d alpha`` fitted over the last quarter of the run."""
    last = alpha >= alpha[0] + 0.75 * (alpha[-1] - alpha[0])
    return float(-linear_fit(alpha[last], np.log(eps[last]))[0])


def _compare(alpha, ode, sim):
    """Curve error, per-seed plateau and escape errors for one ``K`` (``ode``, ``sim`` ``(S, P)``),
    and each seed's escape time (simulation, ODE)."""
    mean_ode, mean_sim = np.mean(ode, 0), np.mean(sim, 0)
    with np.errstate(all="ignore"):
        rel_curve = np.abs(mean_ode / mean_sim - 1.0)  # (P,)
    lo = np.array([_seed_landmarks(alpha, row) for row in ode])  # (S, 2)
    ls = np.array([_seed_landmarks(alpha, row) for row in sim])
    rel = np.abs(ls / lo - 1.0)  # (S, 2)
    ok = np.all(np.isfinite(rel), 1)
    window = mean_ode >= np.nanmean(lo[:, 0]) / 10  # plateau and escape, before the exponential tail
    with np.errstate(all="ignore"):
        tail = _tail_rate(alpha, mean_sim) / _tail_rate(alpha, mean_ode)
    out = {"eps_rel_err": float(np.mean(rel_curve)), "escaped": float(np.sum(ok)),
           "eps_rel_err_to_tenth_of_plateau": float(np.mean(rel_curve[window])), "tail_rate_ratio": tail,
           "plateau_rel_err": float(np.mean(rel[ok, 0])) if ok.any() else float("nan"),
           "escape_rel_err": float(np.mean(rel[ok, 1])) if ok.any() else float("nan"),
           "escape_sim_over_ode": float(np.mean(ls[ok, 1] / lo[ok, 1])) if ok.any() else float("nan"),
           "plateau_ode": float(np.nanmean(lo[:, 0])), "plateau_sim": float(np.nanmean(ls[:, 0])),
           "escape_ode": float(np.nanmean(lo[:, 1])), "escape_sim": float(np.nanmean(ls[:, 1]))}
    return out, ls[:, 1], lo[:, 1]


def summarize(cfg: Config, prediction, measurement):
    """Per ``K``: curve error, plateau and escape errors (module docstring), the Monte Carlo check;
    the headline numbers are the worst over ``K``."""
    out: dict[str, float] = {"diverged": count_diverged(*(measurement[key("eps", k)] for k in cfg.units))}
    for k in cfg.units:
        eps, ode = measurement[key("eps", k)], prediction[key("eps", k)]
        parts, esc_sim, esc_ode = _compare(eps.x, ode.y, eps.y)
        with np.errstate(all="ignore"):
            parts["mc_rel_diff"] = float(np.nanmean(np.abs(measurement[key("eps_mc", k)].y / eps.y - 1.0)))
        parts["plateau_fixed_point"] = float(prediction[key("plateau_fixed_point", k)])
        out.update({key(name, k): value for name, value in parts.items()})
        out.update({key("escape_sim", k, j): float(e) for j, e in enumerate(esc_sim)})
        out.update({key("escape_ode", k, j): float(e) for j, e in enumerate(esc_ode)})
    for name in ("eps_rel_err", "plateau_rel_err", "escape_rel_err"):
        out[name] = max(out[key(name, k)] for k in cfg.units)
    out["escaped"] = float(sum(out[key("escaped", k)] for k in cfg.units))
    out["runs"] = float(cfg.seeds * len(cfg.units))
    return out


RULES = Rules(
    guards=(diverged("a seed diverged; lower eta"),
            reached("seeds escaping the plateau (with their ODEs)", "escaped", "runs",
                    "a seed or its ODE stayed on the plateau; raise alpha_max")),
    checks=(Check("mean rel. error of eps_g(alpha), ODE vs seed mean", "eps_rel_err", "<=", EPS_RTOL, fmt=".2%"),
            Check("plateau height rel. error (mean over seeds)", "plateau_rel_err", "<=", PLATEAU_RTOL, fmt=".2%"),
            Check("escape time rel. error (mean over seeds)", "escape_rel_err", "<=", ESCAPE_RTOL, fmt=".2%")),
)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax_e, ax_r) = new_figure(2, title="solvable.teacher-student: soft committee machine, online SGD")
    for i, k in enumerate(cfg.units):
        c = COLORS[i % len(COLORS)]
        sim, ode, mc = (src[key(name, k)] for src, name in ((measurement, "eps"), (prediction, "eps"),
                                                          (measurement, "eps_mc")))
        band(ax_e, sim.x, sim.y, color=c, label=f"simulation K=M={k} (formula at measured R, Q)")
        ax_e.plot(mc.x, mc.mean, color=c, linestyle=":", linewidth=1.0, label=f"Monte Carlo K=M={k}")
        theory_line(ax_e, ode.x, ode.mean, color="black" if i == 0 else c, label="ODE (per-seed init, mean)")
        ax_e.axhline(prediction[key("plateau_fixed_point", k)], color=c, linewidth=0.7, alpha=0.6)
    ax_e.set(yscale="log", xlabel="alpha = steps / N", ylabel="eps_g = (1/2) E[(f - y)^2]")
    ax_e.legend(fontsize=6)
    k = cfg.units[0]
    r_sim, r_ode = measurement[key("R", k)], prediction[key("R", k)]
    for a in range(k * k):  # seed 0's R_in entries
        theory_line(ax_r, r_ode.x, r_ode.y[a], color=COLORS[a % len(COLORS)], label="ODE" if a == 0 else None)
        ax_r.plot(r_sim.x, r_sim.y[a], color=COLORS[a % len(COLORS)], linewidth=1.2,
                  label="simulation" if a == 0 else None)
    ax_r.set(xlabel="alpha = steps / N", ylabel=f"R_in = w_i . B_n / N (seed 0, K=M={k})")
    ax_r.legend(fontsize=7)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="solvable.teacher-student",
    pillar="solvable settings",
    statement="Online SGD in a soft committee machine (erf units, Gaussian inputs) follows the Saad-Solla "
              "order-parameter ODEs: its generalisation error, symmetric plateau and escape time match them.",
    references=("Saad & Solla 1995, PRL 74:4337", "Biehl & Schwarze 1995, J. Phys. A 28:643",
                "Goldt, Advani, Saxe, Krzakala & Zdeborova 2019, arXiv:1906.08632"),
    config=Config,
    presets={"tiny": {"seeds": 2, "n": 100, "alpha_max": (120.0,), "points": 60, "test_inputs": 200,
                      "dalpha": 0.25},
             "quick": {"seeds": 8},
             "full": {"seeds": 16, "units": (2, 3), "eta": (1.0, 0.5), "alpha_max": (200.0, 400.0), "points": 400,
                      "test_inputs": 2000}},
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
)
