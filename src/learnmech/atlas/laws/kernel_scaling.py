"""laws.kernel-scaling — the data-scaling exponent of kernel regression, predicted from the spectrum.

Statement (Spigler, Geiger & Wyart 2020, arXiv:1905.10843; Bordelon, Canatar & Pehlevan 2020,
arXiv:2002.02561; Cui, Loureiro, Krzakala & Zdeborova 2021, arXiv:2105.15004): if the kernel's
eigenvalues decay as ``lambda_k ~ k^-a`` and the target's power in the kernel eigenbasis as
``v_k^2 ~ k^-b``, ridgeless noiseless kernel regression on ``n`` samples has a test error
``~ n^-beta`` with ``beta = min(b - 1, 2a)``
(:func:`learnmech.theory.spectral.predicted_learning_curve_exponent`, derivation there: the
unlearned tail ``sum_{k > n} v_k^2 ~ n^{1-b}`` against the residual ``kappa^2 sum_{k<n} v_k^2 /
lambda_k^2 ~ n^{-2a}`` of the learned modes).

Pool convention (that of ``kernel.eigenlearning``): each data set is a pool of ``N`` points whose
uniform measure *is* the data distribution. The kernel is diagonalised on the pool
(``lambda_k = eig(K)/N``, eigenfunctions ``phi_k(x_j) = sqrt(N) u_jk``), the target coefficients are
``v_k = phi_k^T y / N`` (:mod:`learnmech.observe.spectra`), a training set is ``n`` *distinct* pool
points, and the test error is the MSE (summed over outputs) on the whole pool.

Measuring ``a`` and ``b``. ``a`` is the least-squares log-log slope of ``lambda_k`` over the ranks
``k_min..k_max`` (:class:`learnmech.fit.PowerLaw`). ``b`` comes from the *tail* power ``T_k = sum_{i > k} v_i^2 / sum_i v_i^2``
(:func:`~learnmech.observe.spectra.cumulative_power`), which decays as ``k^{1-b}``: ``b - 1`` is its
log-log slope over the same ranks. The per-mode power ``v_k^2`` is a poor estimator (it fluctuates by
O(1) factors from mode to mode: random signs within nearly degenerate eigenpairs, modes the target
does not touch), while the tail is exactly the unlearned error the exponent is made of.

Which ``n``? With ``n`` samples the effective regularisation ``kappa(n)`` (``sum_k lambda_k /
(lambda_k + kappa) = n``) sits at the eigenvalue of rank ``m ~ n`` (``m = n sin(pi/a)/(pi/a)`` for an
exact power law, 0.41 n at ``a = 1.5``): modes above rank ~``n`` are learned, those below are not,
so the learning curve at ``n`` probes the spectrum and the target near rank ``n``. The exponent is
therefore fitted over ``n`` in the same range ``k_min..k_max`` as the spectra (``n_points``
log-spaced sizes), and the least-squares log-log slope of the mean test error over draws is
compared with ``min(b - 1, 2a)``. ``k_max`` is at most ``N/8``: on a finite pool the error carries
``O(n/N)`` corrections (the ``n`` training points are part of the population and are fitted
exactly), which steepen the local slope by about ``n/(N - n)``.

Data sets:

- ``gaussian`` (quick): Gaussian design (Cui et al. 2021), ``x ~ N(0, diag(k^-alpha))`` in
  ``features`` dimensions (``alpha`` = ``covariance_exponent``), the linear kernel ``K = x . x'``
  (the NTK of a linear model, i.e. the kernel of a wide random-feature model), and a linear target
  ``f*(x) = theta . x`` with ``theta_k = s_k k^{(alpha - beta)/2}`` (random signs ``s_k``), so that the
  population target power is ``v_k^2 = theta_k^2 k^-alpha = k^-beta`` (``beta`` =
  ``target_exponent``), normalised to unit mean square on the pool. Why this setting: its pool
  spectrum is a clean power law over two decades (measured octave-by-octave slopes 1.47-1.53 over
  ranks 8..512 at ``alpha = 1.5``), whereas the ReLU NTK of the same data has plateaus from its degree-1, 2, ...
  components (measured octave slopes 0.85-1.26 at ``d = 256``, ``alpha = 1``), and Gaussian features are
  where the eigenlearning theory is exact. ``alpha = 1.5 > 1`` makes the kernel trace-class, and
  ``beta = 2.5`` puts the target in the target-limited regime ``b - 1 = 1.5 < 2a = 3``, the regime of
  real data, well away from the crossover ``b - 1 = 2a`` where logarithmic corrections slow the
  approach to the asymptote.
- ``digits`` / ``mnist5k`` (full): the analytic NTK of a ReLU network (``depth`` hidden layers,
  NTK parameterisation, ``weight_var = 2``), pixels scaled and centred, targets one-hot minus 1/10
  (10 outputs). Real spectra are only approximately power laws; the verdict says whether the
  prediction holds there.

Why not the kernel-limited regime ``b - 1 > 2a`` in the experiment? On a pool of ``N`` random
points the pool eigenfunctions are the population ones only up to ``O(1/sqrt(N))`` mixing, so a
smooth target leaks power ``~ lambda_k / N`` into every pool mode, and the *measured* tail of a
target with ``beta = 6`` decays like ``k^-2`` instead of ``k^-5`` (measured on the Gaussian pool);
``min(b - 1, 2a)`` with that ``b`` is not what the learning curve follows. The kernel-limited
branch is checked against the exact theory instead (tests: the eigenlearning slope on exact power
laws).

Also reported: the eigenlearning learning curve (:func:`learnmech.theory.eigenlearning.learning_curve`,
ridgeless) on the same pool spectrum and target coefficients, an exact-theory reference, and its
fitted exponent. A wide network (``full``) is not run: the NTK regression is its infinite-width limit.

Verdict (CLAIMS.md): for every data set, ``|fitted exponent - min(b - 1, 2a)| <= 0.1`` (the value
reported is the largest over data sets); inconclusive if a test error is not finite (guard
"diverged"), or not positive.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import NullLocator
from pydantic import Field, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.metrics import log_slope
from learnmech.atlas.rules import Check, Guard, Rules, count_diverged, diverged
from learnmech.data import gaussian_inputs, load_digits, load_mnist5k, power_law_spectrum, regression_targets
from learnmech.fit import PowerLaw
from learnmech.observe.spectra import (cumulative_power, kernel_spectrum, linear_kernel_eigensystem,
                                       predicted_learning_curve_exponent, target_power)
from learnmech.report import COLORS, band, finish_figure, new_figure, theory_line
from learnmech.theory.eigenlearning import learning_curve, target_coefficients
from learnmech.theory.kernels import nngp_ntk
from learnmech.theory.krr import kernel_ridge

__all__ = ["CLAIM", "Config", "RULES", "summarize"]

EXPONENT_TOL = 0.1  # CLAIMS.md: fitted exponent within +/- 0.1 of min(b - 1, 2a)
REAL_SIZES = {"digits": 1797, "mnist5k": 5000}  # pool sizes of the bundled data sets
MAX_POOL_FRACTION = 0.125  # k_max <= N/8: finite-pool corrections O(n/N) (module docstring)
RIDGE = 1e-10  # delta / (tr K / N): numerically ridgeless (see _test_errors)
DENSE_POINTS = 60  # eigenlearning curve for the figure

Dataset = Literal["gaussian", "digits", "mnist5k"]


class Config(ClaimConfig):
    seeds: int = Field(48, ge=2, le=4096, description="training sets drawn per n (per data set)")
    datasets: tuple[Dataset, ...] = Field(("gaussian",), min_length=1, description="data sets, each judged")
    k_min: int = Field(16, ge=1, le=10_000, description="smallest rank of the power-law fits, and smallest n")
    k_max: int = Field(256, ge=4, le=10_000, description="largest rank of the power-law fits, and largest n")
    n_points: int = Field(9, ge=3, le=40, description="log-spaced training set sizes in k_min..k_max")
    pool: int = Field(2048, ge=64, le=20_000, description="pool size N of the gaussian data set")
    features: int = Field(4096, ge=8, le=20_000, description="dimension d of the gaussian data (kernel rank min(d, N))")
    covariance_exponent: float = Field(1.5, gt=1, le=4, description="alpha: gaussian covariance k^-alpha")
    target_exponent: float = Field(2.5, gt=1, le=10, description="beta: gaussian target power v_k^2 ~ k^-beta")
    depth: int = Field(2, ge=1, le=16, description="hidden layers of the ReLU network whose NTK is the kernel "
                       "(real data)")
    weight_var: float = Field(2.0, gt=0, le=10.0, description="sigma_w^2 (2 keeps ReLU activations O(1))")
    bias_var: float = Field(0.0, ge=0, le=10.0, description="sigma_b^2")
    data_seed: int = Field(0, ge=0, description="pool, target signs and training-set draws")

    @model_validator(mode="after")
    def _ranges_fit_every_pool(self):
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets: must be distinct, got {self.datasets}")
        if self.k_max < 4 * self.k_min:
            raise ValueError(f"k_max: must be at least 4 k_min (a fit over less than a factor 4 in rank "
                             f"is not an exponent), got {self.k_min}..{self.k_max}")
        for name in self.datasets:
            size = _pool_size(self, name)
            if self.k_max > MAX_POOL_FRACTION * size:
                raise ValueError(f"k_max: must be at most N/8 = {MAX_POOL_FRACTION * size:.0f} for {name}, "
                                 f"got {self.k_max}")
        if "gaussian" in self.datasets and self.k_max > MAX_POOL_FRACTION * self.features:
            raise ValueError(f"k_max: must be at most features/8 = {MAX_POOL_FRACTION * self.features:.0f} (the "
                             f"linear kernel has rank min(features, N)), got {self.k_max}")
        return self


def _pool_size(cfg: Config, name: str) -> int:
    return cfg.pool if name == "gaussian" else REAL_SIZES[name]


def _n_grid(cfg: Config) -> np.ndarray:
    return np.unique(np.round(np.geomspace(cfg.k_min, cfg.k_max, cfg.n_points))).astype(np.int64)


@dataclass(frozen=True)
class Pool:
    """A data set's pool: the population of the theory (arrays are read-only)."""

    kernel: np.ndarray  # (N, N) Gram matrix
    eigenvalues: np.ndarray  # (M,) of the integral operator w.r.t. the pool's uniform measure, descending
    coefficients: np.ndarray  # (M, outputs) target coefficients v_k
    power: np.ndarray  # (M,) target power v_k^2 summed over outputs
    target: np.ndarray  # (N, outputs) target on the pool


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _gaussian_pool(size: int, dim: int, alpha: float, beta: float, seed: int) -> Pool:
    """Gaussian design: ``x ~ N(0, diag(k^-alpha))``, linear kernel, ``f* = theta . x`` with ``v_k^2 = k^-beta``."""
    spectrum = power_law_spectrum(dim, alpha, dtype=jnp.float32)  # (d,)
    x = np.asarray(gaussian_inputs(jax.random.key(seed), size, spectrum, dtype=jnp.float32), np.float64)  # (N, d)
    k = np.arange(1, dim + 1, dtype=np.float64)
    theta = np.random.default_rng([seed, 1]).choice([-1.0, 1.0], dim) * k ** (0.5 * (alpha - beta))  # (d,)
    y = x @ theta  # (N,)
    y = (y / np.sqrt(np.mean(y**2)))[:, None]  # (N, 1), unit mean square on the pool
    gram = x @ x.T  # (N, N)
    es = linear_kernel_eigensystem(x, center=False) if dim < size else kernel_spectrum(gram)  # (M,), (N, M)
    return Pool(gram, es.eigenvalues, target_coefficients(es.eigenfunctions, y), target_power(es, y), y)


def _real_pool(name: str, depth: int, weight_var: float, bias_var: float) -> Pool:
    """Real data, ReLU-NTK Gram, one-hot-minus-1/10 targets."""
    x, labels = (load_digits if name == "digits" else load_mnist5k)(dtype=jnp.float32)
    x = np.asarray(x, np.float64)  # (N, d)
    y = np.asarray(regression_targets(labels, 10, dtype=jnp.float32), np.float64)  # (N, 10)
    gram = nngp_ntk(x, depth=depth, activation="relu", weight_var=weight_var, bias_var=bias_var,
                    parameterization="ntk", dtype=np.float64).ntk  # (N, N)
    es = kernel_spectrum(gram)  # (N,), (N, N)
    return Pool(gram, es.eigenvalues, target_coefficients(es.eigenfunctions, y), target_power(es, y), y)


@functools.lru_cache(maxsize=3)
def _cached_pool(name: str, size: int, dim: int, alpha: float, beta: float, depth: int, weight_var: float,
                 bias_var: float, seed: int) -> Pool:
    """One pool (cached: predict and measure share it)."""
    if name == "gaussian":
        pool = _gaussian_pool(size, dim, alpha, beta, seed)
    else:
        pool = _real_pool(name, depth, weight_var, bias_var)
    return Pool(*(_frozen(np.ascontiguousarray(a)) for a in (pool.kernel, pool.eigenvalues, pool.coefficients,
                                                               pool.power, pool.target)))


def _get_pool(cfg: Config, name: str) -> Pool:
    if name == "gaussian":
        return _cached_pool(name, cfg.pool, cfg.features, cfg.covariance_exponent, cfg.target_exponent,
                            0, 0.0, 0.0, cfg.data_seed)
    return _cached_pool(name, REAL_SIZES[name], 0, 0.0, 0.0, cfg.depth, cfg.weight_var, cfg.bias_var, 0)


def predict(cfg: Config):
    """Pool spectrum and target power (from which ``a``, ``b`` and ``beta`` are fitted) and the
    eigenlearning learning curve on the pool; no regression is run."""
    out = {}
    grid = _n_grid(cfg)
    dense = np.geomspace(grid[0], grid[-1], DENSE_POINTS)
    for name in cfg.datasets:
        pool = _get_pool(cfg, name)
        ranks = np.arange(1, pool.eigenvalues.size + 1)
        out[key(name, "eigenvalues")] = Curve(ranks, pool.eigenvalues)
        out[key(name, "target_power")] = Curve(ranks, pool.power)
        out[key(name, "target_tail")] = Curve(ranks, cumulative_power(pool.power))
        for name_n, n in ((key(name, "eigenlearning"), grid), (key(name, "eigenlearning", "curve"), dense)):
            out[name_n] = Curve(n, learning_curve(pool.eigenvalues, pool.coefficients, n.astype(np.float64)).test_mse)
    return out


def _test_errors(pool: Pool, n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Pool test MSE (summed over outputs) of ``draws`` ridgeless fits on ``n`` distinct pool points, ``(draws,)``.

    Numerically ridgeless: ``delta = RIDGE * tr K / N`` (a Cholesky solve, 2-3x faster than the
    pseudo-inverse). The sampled Gram matrices here have smallest eigenvalues of order 1e-3 of the mean
    diagonal or more, so this shifts the interpolant by ~1e-7 relatively.
    """
    size = pool.target.shape[0]
    ridge = RIDGE * float(np.trace(pool.kernel)) / size
    out = np.empty(draws)
    for d in range(draws):
        idx = rng.choice(size, n, replace=False)  # (n,) distinct points (pool convention)
        pred = kernel_ridge(pool.kernel[np.ix_(idx, idx)], pool.target[idx], pool.kernel[:, idx], ridge)  # (N, out)
        out[d] = np.mean(np.sum((pred - pool.target) ** 2, axis=1))
    return out


def measure(cfg: Config, progress=None):
    """Ridgeless kernel regression (minimum-norm interpolation) over the ``n`` grid, ``seeds`` draws per ``n``."""
    out = {}
    grid = _n_grid(cfg)
    total, done = len(cfg.datasets) * grid.size, 0
    for index, name in enumerate(cfg.datasets):
        pool = _get_pool(cfg, name)
        rng = np.random.default_rng([cfg.data_seed, 2, index])
        test = np.empty((cfg.seeds, grid.size))  # (draws, T)
        for j, n in enumerate(grid):
            test[:, j] = _test_errors(pool, int(n), cfg.seeds, rng)
            done += 1
            if progress is not None:
                progress("laws.kernel-scaling", done, total)
        out[key(name, "test_mse")] = Curve(grid, test)
    return out


def _dataset_summary(cfg: Config, prediction, measurement, name: str) -> dict:
    """``a``, ``b`` (ranks ``k_min..k_max``), the predicted, eigenlearning and fitted exponents of data set
    ``name``, the fitted laws over the ranks (curves, for the figure) and the number of test errors that
    are not positive. The measured exponent is NaN when a test error is not finite and positive."""
    a = PowerLaw(k_min=cfg.k_min, k_max=cfg.k_max).fit(prediction[key(name, "eigenvalues")].y[0])
    tail = PowerLaw(k_min=cfg.k_min, k_max=cfg.k_max).fit(prediction[key(name, "target_tail")].y[0])  # b - 1
    b = 1.0 + tail.exponent_
    predicted = predicted_learning_curve_exponent(a.exponent_, b) if b > 1 else float("nan")
    el, m = prediction[key(name, "eigenlearning")], measurement[key(name, "test_mse")]
    usable = bool(np.all(np.isfinite(m.y)) and np.all(m.y > 0))
    fitted = -log_slope(m.x, m.mean) if usable else float("nan")
    eigenlearning = -log_slope(el.x, el.y[0])
    ranks = np.arange(cfg.k_min, cfg.k_max + 1, dtype=np.float64)
    return {key(name, "a"): a.exponent_, key(name, "a_r2"): a.r2_, key(name, "b"): b, key(name, "b_r2"): tail.r2_,
            key(name, "predicted"): predicted, key(name, "eigenlearning"): eigenlearning, key(name, "fitted"): fitted,
            key(name, "eigenlearning_minus_predicted"): eigenlearning - predicted,
            key(name, "exponent_error"): abs(fitted - predicted),
            key(name, "nonpositive_test_errors"): float(np.sum(m.y <= 0)),
            key(name, "eigenvalue_fit"): Curve(ranks, a.predict(ranks)),
            key(name, "tail_fit"): Curve(ranks, tail.predict(ranks))}


def summarize(cfg: Config, prediction, measurement):
    """Per data set (:func:`_dataset_summary`), then the guards' counts and the largest exponent error."""
    out = {}
    for name in cfg.datasets:
        out.update(_dataset_summary(cfg, prediction, measurement, name))
    out["diverged"] = count_diverged(*(measurement[key(name, "test_mse")] for name in cfg.datasets))
    out["nonpositive_test_errors"] = sum(out[key(name, "nonpositive_test_errors")] for name in cfg.datasets)
    out["exponent_error_max"] = float(np.max([out[key(name, "exponent_error")] for name in cfg.datasets]))
    return out


RULES = Rules(
    guards=(diverged("a ridgeless solve gave a non-finite test error"),
            Guard("zero test errors", "nonpositive_test_errors", "<=", 0.0, fmt="g",
                  advice="a ridgeless solve gave a zero test error (the log-log slope is undefined)")),
    checks=(Check("max over data sets of |fitted - predicted exponent|", "exponent_error_max", "<=", EXPONENT_TOL),),
)


def _slope_line(ax, n, anchor_n, anchor_y, exponent, **kwargs):
    """A line ``y = anchor_y (n / anchor_n)^-exponent`` over ``n``."""
    ax.plot(n, anchor_y * (n / anchor_n) ** -exponent, **kwargs)


def _plot_spectra(ax, cfg: Config, prediction, summary, name: str):
    lam, power, tail = (prediction[key(name, part)] for part in ("eigenvalues", "target_power", "target_tail"))
    a, b = summary[key(name, "a")], summary[key(name, "b")]
    keep = power.y[0] > 0
    ax.plot(power.x[keep], power.y[0][keep], ".", color="0.6", markersize=1.5, label="target power v_k^2")
    ax.plot(lam.x, lam.y[0], color=COLORS[0], linewidth=1.4, label="kernel eigenvalues lambda_k")
    keep = tail.y[0] > 0
    ax.plot(tail.x[keep], tail.y[0][keep], color=COLORS[1], linewidth=1.4,
            label="target tail sum_{i>k} v_i^2 / sum v^2")
    for part, color, label in (("eigenvalue_fit", "k", f"fit a = {a:.2f}"),
                               ("tail_fit", COLORS[3], f"fit b - 1 = {b - 1:.2f}")):
        fit = summary[key(name, part)]
        theory_line(ax, fit.x, fit.y[0], color=color, label=label)
    ax.axvspan(cfg.k_min, cfg.k_max, color="0.9", zorder=0)
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="eigenvalue / target power",
           title=f"{name}: pool N = {_pool_size(cfg, name)}, fit over k = {cfg.k_min}..{cfg.k_max}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="lower left")


def _plot_learning_curve(ax, cfg: Config, prediction, measurement, summary, name: str):
    m = measurement[key(name, "test_mse")]
    band(ax, m.x, m.y, color=COLORS[0], label=f"ridgeless KRR, measured: slope -{summary[key(name, 'fitted')]:.2f}")
    curve = prediction[key(name, "eigenlearning", "curve")]
    theory_line(ax, curve.x, curve.y[0], color=COLORS[2],
                label=f"eigenlearning on the pool: slope -{summary[key(name, 'eigenlearning')]:.2f}")
    mid = np.sqrt(m.x[0] * m.x[-1])
    anchor = np.exp(np.interp(np.log(mid), np.log(m.x), np.log(m.mean)))
    predicted = summary[key(name, "predicted")]
    _slope_line(ax, m.x, mid, anchor * 0.5, predicted, color="k", linestyle=":", linewidth=1.6,
                label=f"predicted min(b-1, 2a) = {predicted:.2f} (offset x0.5)")
    ax.set(xscale="log", yscale="log", xlabel="training set size n (distinct pool points)",
           ylabel="test MSE on the pool (summed over outputs)")
    ticks = m.x[:: 1 + m.x.size // 10]
    ax.set_xticks(ticks, [str(int(n)) for n in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_title(f"{name}: {cfg.seeds} draws per n, ridge {RIDGE:g} x tr K/N", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, axes = new_figure(2 * len(cfg.datasets), title="laws.kernel-scaling: learning-curve exponent from the "
                           "kernel spectrum and the target power")
    for i, name in enumerate(cfg.datasets):
        _plot_spectra(axes[2 * i], cfg, prediction, summary, name)
        _plot_learning_curve(axes[2 * i + 1], cfg, prediction, measurement, summary, name)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="laws.kernel-scaling",
    pillar="simple laws",
    statement="With kernel eigenvalues lambda_k ~ k^-a and target power v_k^2 ~ k^-b measured on the data, "
              "ridgeless kernel regression's test error decays as n^-min(b-1, 2a).",
    references=("Spigler, Geiger & Wyart 2020, arXiv:1905.10843",
                "Bordelon, Canatar & Pehlevan 2020, arXiv:2002.02561",
                "Cui, Loureiro, Krzakala & Zdeborova 2021, arXiv:2105.15004"),
    config=Config,
    presets={"tiny": {"seeds": 2, "datasets": ("gaussian", "digits"), "k_min": 4, "k_max": 32, "n_points": 3,
                      "pool": 512, "features": 256},
             "quick": {"seeds": 48, "datasets": ("gaussian",)},
             "full": {"seeds": 64, "datasets": ("gaussian", "mnist5k"), "n_points": 13}},
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("scaling", "kernels"),
)
