"""universal.data-spectra — real data have power-law covariance spectra.

Statement (CLAIMS.md; the premise of the spectral theories of learning curves: Spigler, Geiger &
Wyart 2020, arXiv:1905.10843; Bordelon, Canatar & Pehlevan 2020, arXiv:2002.02561; Cui,
Loureiro, Krzakala & Zdeborova 2021, arXiv:2105.15004): the eigenvalues of the input covariance
of real image data decay as a power law ``lambda_k ~ C k^{-a}`` over the middle of the spectrum,
with an exponent that is a property of the data distribution (the same on disjoint samples).

Data and conventions. MNIST-5k (:func:`learnmech.data.load_mnist5k`, 5000 x 784) with the loader's
normalisation done in float64: pixels / 255, then each column minus its mean over the 5,000
images. The covariance is ``C = (1/N) Xc^T Xc`` (:func:`learnmech.observe.spectra.covariance_spectrum`);
its 784 eigenvalues are ranked ``k = 1, 2, ...`` from the largest. Only about 650 are nonzero: the
constant border pixels have zero variance. A power law is fitted by least squares of
``log lambda_k`` on ``log k`` over the ranks ``5..200`` (1-based, inclusive), and its goodness is
the ``R^2`` of that straight line. The first few eigenvalues (the coarse shape of a digit) and the
tail (pixel noise, the rank cut-off) are outside the range on purpose.

Halves. The 5,000 images are permuted with a fixed seed and split into two disjoint halves of
2,500; each half's covariance (re-centred on its own mean) is fitted over the same ranks. ``full``
repeats this for several random splits and the verdict uses the worst split.

Digits (scikit-learn 8x8, 1797 x 64, pixels / 16, centred) are reported alongside, not judged:
with 64 dimensions (61 nonzero eigenvalues) the range 5..200 does not exist; ranks ``5..40`` are
fitted instead (``digits_range``).

Predicted learning-curve exponent. For ridgeless kernel regression with kernel eigenvalues
``lambda_k ~ k^{-a}`` and target power ``v_k^2 ~ k^{-b}`` the test error decays as
``n^{-min(b - 1, 2a)}`` (:mod:`learnmech.theory.spectral`, derivation there). For the linear kernel
``K(x, x') = xc . xc'`` the kernel eigenvalues under the data's empirical measure *are* the
covariance eigenvalues (:func:`learnmech.observe.spectra.linear_kernel_eigensystem`), so ``a`` is
the covariance exponent. The target is the centred one-hot label ``y_c = 1[label = c] - 1/10``;
its power per mode ``v_k^2 = sum_c ((1/N) sum_j phi_k(x_j) y_jc)^2`` is noisy mode by mode, so
``b`` is taken from the unexplained fraction ``T(k) = sum_{i > k} v_i^2 / sum_i v_i^2`` (sums over
the modes of the kernel), which decays as ``k^{1 - b}``: ``b = 1 + (fitted decay of T)`` over
``target_range`` (default 5..200, the same ranks). The per-mode fit is reported too. Caveats, stated
because they limit what this exponent means for the linear kernel: the kernel has finite rank
``r ~ 650``, so the power law can describe the learning curve only for ``1 << n << r`` (at
``n = r`` ridgeless linear regression interpolates and its error peaks), and the label power
outside the linear span of the pixels (reported as ``target_out_of_span``) is an error floor no
linear predictor removes. ``full`` also measures the spectra of two full-rank kernels on the same
5,000 images — a Gaussian RBF ``exp(-|x - x'|^2 / mean_{i,j} |x_i - x_j|^2)`` and the NTK of a
one-hidden-layer ReLU network (:func:`learnmech.theory.kernels.nngp_ntk`, NTK parameterisation,
``sigma_w^2 = 1``, no bias) — with their ``a``, ``b`` and predicted exponents, reported, not judged.

Verdict (CLAIMS.md): holds when the power law fits MNIST-5k's ranks 5..200 with ``R^2 >= 0.95``
in log-log AND the exponents of the two halves differ by at most 0.1 (for every split measured).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.data import load_digits, load_mnist5k
from learnmech.observe.spectra import (
    covariance_spectrum,
    cumulative_power,
    fit_power_law,
    kernel_spectrum,
    linear_kernel_eigensystem,
    target_power,
)
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.spectral import predicted_learning_curve_exponent

__all__ = ["CLAIM", "Config", "normalized_pixels", "rbf_gram", "split_halves", "summarize"]

FIT_RANGE = (5, 200)  # CLAIMS.md: "eigenvalues 5 to 200"
R2_MIN = 0.95  # CLAIMS.md: R^2 >= 0.95 in log-log
EXPONENT_TOL = 0.1  # CLAIMS.md: exponent stable (+/- 0.1) across two disjoint halves
KERNELS = ("rbf", "ntk")
CLASSES = 10


class Config(ClaimConfig):
    seeds: int = Field(1, ge=1, le=1, description="not used: no training (the splits have their own count)")
    splits: int = Field(1, ge=1, le=50, description="random splits of MNIST-5k into two disjoint halves")
    split_seed: int = Field(0, ge=0, description="seed of the permutations that define the halves")
    target_range: tuple[int, int] = Field(FIT_RANGE, description="ranks where b is fitted (1-based, inclusive)")
    digits_range: tuple[int, int] = Field((5, 40), description="ranks fitted on digits (64 dimensions; not judged)")
    kernels: tuple[str, ...] = Field((), description="full-rank kernels whose spectra are also measured: rbf, ntk")

    @field_validator("target_range", "digits_range")
    @classmethod
    def _range(cls, r: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= r[0] < r[1]:
            raise ValueError(f"must be 1 <= k_min < k_max, got {r}")
        return r

    @field_validator("kernels")
    @classmethod
    def _known(cls, ks: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(ks)) != len(ks) or any(k not in KERNELS for k in ks):
            raise ValueError(f"must be distinct names from {KERNELS}, got {ks}")
        return ks


# ---------------------------------------------------------------------------------------------
# Data


def normalized_pixels(raw, pixel_max: float) -> np.ndarray:
    """``raw / pixel_max`` minus each column's mean, in float64: the loaders' normalisation. ``(n, d)``."""
    x = np.asarray(raw, np.float64) / pixel_max  # (n, d) in [0, 1]
    return x - x.mean(axis=0, keepdims=True)


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_mnist5k(normalize=False)  # raw 0..255 integers, exact in float32
    return normalized_pixels(x, 255.0), np.asarray(y)  # (5000, 784), (5000,)


def _digits() -> np.ndarray:
    x, _ = load_digits(normalize=False)
    return normalized_pixels(x, 16.0)  # (1797, 64)


def _targets(labels) -> np.ndarray:
    """Centred one-hot ``1[label = c] - 1/C``, ``(n, C)`` float64."""
    return np.eye(CLASSES)[np.asarray(labels)] - 1.0 / CLASSES


def split_halves(n: int, splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``splits`` random partitions of ``range(n)`` into two disjoint halves of ``n // 2`` indices."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(splits):
        p = rng.permutation(n)
        out.append((np.sort(p[: n // 2]), np.sort(p[n // 2: 2 * (n // 2)])))
    return out


def rbf_gram(x) -> np.ndarray:
    """``K_ij = exp(-|x_i - x_j|^2 / s)`` with ``s`` the mean of ``|x_i - x_j|^2`` over all pairs. ``(n, n)``.

    For centred data ``s = 2 mean_i |x_i|^2``.
    """
    x = np.asarray(x, np.float64)
    sq = np.sum(x**2, axis=1)  # (n,)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0, None)  # (n, n)
    return np.exp(-d2 / d2.mean())


def _ntk_gram(x) -> np.ndarray:
    from learnmech.theory.kernels import nngp_ntk  # jax-compiled; only the full preset needs it

    return nngp_ntk(x, depth=1, activation="relu", weight_var=1.0, bias_var=0.0, dtype=np.float64).ntk


# ---------------------------------------------------------------------------------------------
# Theory and experiment


def _scalar(v: float) -> Curve:
    return Curve(np.zeros(1), np.array([[v]]))


def _ranks(m: int) -> np.ndarray:
    return np.arange(1.0, m + 1.0)


def predict(cfg: Config):
    """The claim's form: a power law with ``R^2 >= 0.95`` and a sample-independent exponent.

    The exponent itself is a property of the data (measured); the learning-curve exponent predicted
    from it, ``min(b - 1, 2a)``, is computed by the judge from the measured spectra.
    """
    return {"r2_min": _scalar(R2_MIN), "exponent_tol": _scalar(EXPONENT_TOL),
            "fit_range": Curve(np.asarray(FIT_RANGE, np.float64), np.ones((1, 2)))}


def measure(cfg: Config, progress=None):
    steps = 3 + len(cfg.kernels)
    tick = (lambda i: progress("universal.data-spectra", i, steps)) if progress else (lambda i: None)
    x, labels = _mnist()
    y = _targets(labels)  # (5000, 10)
    lin = linear_kernel_eigensystem(x)  # (r,), (5000, r): the r positive covariance eigenvalues
    spectrum = np.zeros(x.shape[1])  # (784,): the other 784 - r are zero (below 1e-12 lambda_1)
    spectrum[: lin.eigenvalues.size] = lin.eigenvalues
    power = target_power(lin, y)  # (r,)
    out = {
        "spectrum/mnist": Curve(_ranks(spectrum.size), spectrum),
        "target/mnist": Curve(_ranks(power.size), power),
        "target_total/mnist": _scalar(float(np.sum(y**2)) / y.shape[0]),  # ||y||^2 / N, all the label power
    }
    tick(1)
    halves = [covariance_spectrum(x[idx]) for pair in split_halves(x.shape[0], cfg.splits, cfg.split_seed)
              for idx in pair]  # 2 * splits of (784,)
    out["spectrum/halves"] = Curve(_ranks(spectrum.size), np.stack(halves))  # members (2i, 2i+1): split i
    tick(2)
    digits = covariance_spectrum(_digits())  # (64,)
    out["spectrum/digits"] = Curve(_ranks(digits.size), digits)
    tick(3)
    for i, name in enumerate(cfg.kernels):
        es = kernel_spectrum(rbf_gram(x) if name == "rbf" else _ntk_gram(x))  # (5000,), (5000, 5000)
        out[f"spectrum/{name}"] = Curve(_ranks(es.eigenvalues.size), es.eigenvalues)
        out[f"target/{name}"] = Curve(_ranks(es.eigenvalues.size), target_power(es, y))
        tick(4 + i)
    for key, krange in (("mnist", FIT_RANGE), ("digits", cfg.digits_range)):
        fit = _fit(out[f"spectrum/{key}"].y[0], krange)
        if fit is not None:
            k = np.arange(krange[0], krange[1] + 1.0)
            out[f"fit/{key}"] = Curve(k, fit.predict(k))  # the fitted law over its range
    return out


# ---------------------------------------------------------------------------------------------
# Verdict and figure


def _fit(values, krange):
    """The power-law fit over ``krange``, or ``None`` when the range is not available (too few or zero values)."""
    try:
        return fit_power_law(values, *krange)
    except ValueError:
        return None


def _beta(a: float, b: float) -> float:
    try:
        return predicted_learning_curve_exponent(a, b)
    except ValueError:
        return float("nan")


def _target_fits(cfg: Config, measurement, name: str, a: float) -> dict[str, float]:
    power = measurement[f"target/{name}"].y[0]
    tail, per_mode = _fit(cumulative_power(power), cfg.target_range), _fit(power, cfg.target_range)
    nan = float("nan")
    b = 1.0 + tail.exponent if tail else nan
    return {f"b/{name}": b, f"b_r2/{name}": tail.r2 if tail else nan,
            f"b_per_mode/{name}": per_mode.exponent if per_mode else nan,
            f"b_per_mode_r2/{name}": per_mode.r2 if per_mode else nan,
            f"beta_predicted/{name}": _beta(a, b) if tail else nan}


def summarize(cfg: Config, measurement) -> dict[str, float]:
    """Every fitted number of the claim, from the stored spectra (NaN where a range is unavailable)."""
    nan = float("nan")
    s: dict[str, float] = {}
    full = _fit(measurement["spectrum/mnist"].y[0], FIT_RANGE)
    s.update({"a/mnist": full.exponent if full else nan, "r2/mnist": full.r2 if full else nan,
              "log_prefactor/mnist": full.log_prefactor if full else nan,
              "nonzero_eigenvalues/mnist": float(np.count_nonzero(measurement["spectrum/mnist"].y[0]
                                                                  > 1e-12 * measurement["spectrum/mnist"].y[0, 0]))})
    halves = [_fit(h, FIT_RANGE) for h in measurement["spectrum/halves"].y]
    a_h = np.array([f.exponent if f else nan for f in halves])  # (2 * splits,)
    diffs = np.abs(a_h[0::2] - a_h[1::2])  # (splits,)
    for i, (a1, a2) in enumerate(zip(a_h[0::2], a_h[1::2])):
        s.update({f"a_half1/split{i}": a1, f"a_half2/split{i}": a2})
    s.update({"r2_halves_min": min((f.r2 for f in halves if f), default=nan),
              "exponent_spread_max": float(np.max(diffs)) if np.all(np.isfinite(diffs)) else nan,
              "worst_split": float(np.argmax(diffs)) if np.all(np.isfinite(diffs)) else nan})
    dig = _fit(measurement["spectrum/digits"].y[0], cfg.digits_range)
    s.update({"a/digits": dig.exponent if dig else nan, "r2/digits": dig.r2 if dig else nan})
    s.update(_target_fits(cfg, measurement, "mnist", s["a/mnist"]))
    power = measurement["target/mnist"].y[0]
    s["target_out_of_span/mnist"] = 1.0 - float(power.sum()) / float(measurement["target_total/mnist"].y[0, 0])
    for name in KERNELS:
        if f"spectrum/{name}" not in measurement:
            continue
        kf = _fit(measurement[f"spectrum/{name}"].y[0], FIT_RANGE)
        a = kf.exponent if kf else nan
        s.update({f"a/{name}": a, f"r2/{name}": kf.r2 if kf else nan})
        s.update(_target_fits(cfg, measurement, name, a))
    return s


def judge(cfg: Config, prediction, measurement) -> Verdict:
    s = summarize(cfg, measurement)
    details = {k: float(v) for k, v in s.items()}
    lo, hi = FIT_RANGE
    if not (math.isfinite(s["r2/mnist"]) and math.isfinite(s["exponent_spread_max"])):
        return Verdict(status="inconclusive", metric="usable eigenvalues", value=s["nonzero_eigenvalues/mnist"],
                       threshold=float(hi), details=details,
                       reason=f"the spectrum (or a half's) has no positive eigenvalues over ranks {lo}..{hi}")
    splits = len(measurement["spectrum/halves"].y) // 2
    reason = (f"MNIST-5k ranks {lo}..{hi}: lambda_k ~ k^-{s['a/mnist']:.3f}, R^2 = {s['r2/mnist']:.4f} "
              f"(want >= {R2_MIN:g}); halves: |a1 - a2| max {s['exponent_spread_max']:.4f} over {splits} split(s) "
              f"(want <= {EXPONENT_TOL:g}). Reported: digits ranks {cfg.digits_range[0]}..{cfg.digits_range[1]} "
              f"a = {s['a/digits']:.3f} (R^2 {s['r2/digits']:.3f}); linear-kernel target b = {s['b/mnist']:.3f}, "
              f"predicted learning-curve exponent min(b - 1, 2a) = {s['beta_predicted/mnist']:.3f}")
    if s["r2/mnist"] < R2_MIN:
        return Verdict(status="fails", metric=f"R^2 of the power-law fit, ranks {lo}..{hi}", value=s["r2/mnist"],
                       threshold=R2_MIN, reason=reason, details=details)
    if s["exponent_spread_max"] > EXPONENT_TOL:
        return Verdict(status="fails", metric="|a_half1 - a_half2| (worst split)", value=s["exponent_spread_max"],
                       threshold=EXPONENT_TOL, reason=reason, details=details)
    return Verdict(status="holds", metric=f"R^2 of the power-law fit, ranks {lo}..{hi}", value=s["r2/mnist"],
                   threshold=R2_MIN, reason=reason, details=details)


def _positive(k, v):
    keep = v > 1e-12 * v.max()
    return k[keep], v[keep]


def _floor(ax, values, rank: int):
    """Lower y-limit a little below the value at ``rank``, so the rank cut-off does not squash the fit range."""
    v = values[: min(rank, values.size)]
    v = v[v > 0]
    if v.size:
        ax.set_ylim(bottom=0.3 * v[-1])


def _plot_mnist(ax, cfg: Config, measurement, s):
    m = measurement["spectrum/mnist"]
    for j, h in enumerate(measurement["spectrum/halves"].y):
        ax.plot(*_positive(m.x, h), color=COLORS[1], linewidth=0.7, alpha=0.6,
                label=f"disjoint halves ({len(measurement['spectrum/halves'].y) // 2} split(s))" if j == 0 else None)
    ax.plot(*_positive(m.x, m.y[0]), color=COLORS[0], linewidth=1.4, label="all 5,000 images")
    if "fit/mnist" in measurement:
        f = measurement["fit/mnist"]
        theory_line(ax, f.x, f.y[0], color="black",
                    label=f"power law k^-{s['a/mnist']:.2f}, R^2 = {s['r2/mnist']:.3f}")
    ax.axvspan(*FIT_RANGE, color="gray", alpha=0.08, label=f"fit range {FIT_RANGE[0]}..{FIT_RANGE[1]}")
    _floor(ax, m.y[0], 2 * FIT_RANGE[1])
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="covariance eigenvalue lambda_k")
    ax.legend(fontsize=7, title=f"MNIST-5k: |a_half1 - a_half2| <= {s['exponent_spread_max']:.3f}", title_fontsize=7)


def _plot_digits(ax, cfg: Config, measurement, s):
    d = measurement["spectrum/digits"]
    ax.plot(*_positive(d.x, d.y[0]), color=COLORS[2], linewidth=1.4, label="digits 8x8 (1,797 images)")
    if "fit/digits" in measurement:
        f = measurement["fit/digits"]
        theory_line(ax, f.x, f.y[0], color="black", label=f"power law k^-{s['a/digits']:.2f}, R^2 = {s['r2/digits']:.3f}")
    ax.axvspan(*cfg.digits_range, color="gray", alpha=0.08, label=f"fit range {cfg.digits_range[0]}..{cfg.digits_range[1]}")
    _floor(ax, d.y[0], cfg.digits_range[1] + 10)
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="covariance eigenvalue lambda_k")
    ax.legend(fontsize=7, title="digits (reported, not judged)", title_fontsize=7)


def _plot_targets(ax, cfg: Config, measurement, s):
    names = ["mnist"] + [k for k in KERNELS if f"target/{k}" in measurement]
    label = {"mnist": "linear kernel", "rbf": "RBF kernel", "ntk": "ReLU NTK"}
    lo, hi = cfg.target_range
    for i, name in enumerate(names):
        t = measurement[f"target/{name}"]
        tail = cumulative_power(t.y[0])
        k, v = _positive(t.x, tail)
        ax.plot(k, v, color=COLORS[i], linewidth=1.3,
                label=f"{label[name]}: b = {s[f'b/{name}']:.2f}, beta = min(b-1, 2a) = {s[f'beta_predicted/{name}']:.2f}")
        fit = _fit(tail, cfg.target_range)
        if fit is not None:
            kk = np.arange(lo, hi + 1.0)
            theory_line(ax, kk, fit.predict(kk), color=COLORS[i])
    ax.axvspan(lo, hi, color="gray", alpha=0.08, label=f"fit range {lo}..{hi} (dashed: k^(1-b))")
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylim=(1e-2, 1.5),
           ylabel="unexplained label power T(k)")
    ax.legend(fontsize=7, loc="lower left", title="MNIST-5k labels: T(k) = sum_{i>k} v_i^2 / sum_i v_i^2",
              title_fontsize=7)


def _plot_kernels(ax, cfg: Config, measurement, s):
    for i, name in enumerate(k for k in KERNELS if f"spectrum/{k}" in measurement):
        sp = measurement[f"spectrum/{name}"]
        ax.plot(*_positive(sp.x, sp.y[0]), color=COLORS[i + 1], linewidth=1.3,
                label=f"{name}: a = {s[f'a/{name}']:.2f}, R^2 = {s[f'r2/{name}']:.3f}")
        fit = _fit(sp.y[0], FIT_RANGE)
        if fit is not None:
            k = np.arange(FIT_RANGE[0], FIT_RANGE[1] + 1.0)
            theory_line(ax, k, fit.predict(k), color="black")
    ax.axvspan(*FIT_RANGE, color="gray", alpha=0.08)
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="kernel eigenvalue (Gram / N)")
    ax.legend(fontsize=7, title="MNIST-5k kernel spectra (reported)", title_fontsize=7)


def plot(cfg: Config, prediction, measurement, verdict=None):
    s = summarize(cfg, measurement)
    kernels = any(f"spectrum/{k}" in measurement for k in KERNELS)
    fig, axes = new_figure(4 if kernels else 3, title="universal.data-spectra: power-law spectra of real data")
    _plot_mnist(axes[0], cfg, measurement, s)
    _plot_digits(axes[1], cfg, measurement, s)
    _plot_targets(axes[2], cfg, measurement, s)
    if kernels:
        _plot_kernels(axes[3], cfg, measurement, s)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="universal.data-spectra",
    pillar="universal behaviours",
    statement="The covariance spectrum of MNIST-5k is a power law over ranks 5..200 (R^2 >= 0.95 in log-log) "
              "whose exponent is the same (+/- 0.1) on disjoint halves of the data.",
    references=("Spigler, Geiger & Wyart 2020, arXiv:1905.10843",
                "Bordelon, Canatar & Pehlevan 2020, arXiv:2002.02561",
                "Cui, Loureiro, Krzakala & Zdeborova 2021, arXiv:2105.15004"),
    config=Config,
    presets={
        "quick": {"splits": 1},
        "full": {"splits": 5, "kernels": KERNELS},
    },
    predict=predict, measure=measure, judge=judge, plot=plot,
    tags=("scaling", "kernels", "real data"),
)
