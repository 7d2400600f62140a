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
``log lambda_k`` on ``log k`` over the ranks ``5..200`` (1-based, inclusive;
:class:`learnmech.fit.PowerLaw`), and its goodness is the ``R^2`` of that straight line. The first few eigenvalues (the coarse shape of a digit) and the
tail (pixel noise, the rank cut-off) are outside the range on purpose.

Halves. The 5,000 images are permuted with a fixed seed and split into two disjoint halves of
2,500; each half's covariance (re-centred on its own mean) is fitted over the same ranks. ``full``
repeats this for several random splits and the verdict uses the worst split. (``images`` below
5,000 uses the first ``images`` of them, centred on their own mean: the ``tiny`` preset only.)

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
in log-log AND the exponents of the two halves differ by at most 0.1 (for every split measured);
inconclusive when the spectrum or a half's has no positive eigenvalues over ranks 5..200.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field, field_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules
from learnmech.data import load_digits, load_mnist5k
from learnmech.fit import PowerLaw
from learnmech.increasing import Increasing
from learnmech.observe.spectra import (
    covariance_spectrum,
    cumulative_power,
    kernel_spectrum,
    linear_kernel_eigensystem,
    target_power,
)
from learnmech.report import COLORS, finish_figure, new_figure, theory_line
from learnmech.theory.spectral import predicted_learning_curve_exponent

__all__ = ["CLAIM", "Config", "RULES", "normalized_pixels", "rbf_gram", "split_halves", "summarize"]

FIT_RANGE = (5, 200)  # CLAIMS.md: "eigenvalues 5 to 200"
R2_MIN = 0.95  # CLAIMS.md: R^2 >= 0.95 in log-log
EXPONENT_TOL = 0.1  # CLAIMS.md: exponent stable (+/- 0.1) across two disjoint halves
KERNELS = ("rbf", "ntk")
KERNEL_LABELS = {"mnist": "linear kernel", "rbf": "RBF kernel", "ntk": "ReLU NTK"}
CLASSES = 10
MNIST_IMAGES = 5000

Ranks = Increasing(int, 2, "ranks (k_min, k_max), 1-based")


class Config(ClaimConfig):
    seeds: int = Field(1, ge=1, le=1, description="not used: no training (the splits have their own count)")
    splits: int = Field(1, ge=1, le=50, description="random splits of MNIST-5k into two disjoint halves")
    split_seed: int = Field(0, ge=0, description="seed of the permutations that define the halves")
    target_range: Ranks = Field(FIT_RANGE, max_length=2, description="ranks where b is fitted (1-based, inclusive)")
    digits_range: Ranks = Field((5, 40), max_length=2, description="ranks fitted on digits (64 dimensions; not judged)")
    kernels: tuple[str, ...] = Field((), description="full-rank kernels whose spectra are also measured: rbf, ntk")
    images: int = Field(MNIST_IMAGES, ge=100, le=MNIST_IMAGES, description="the first this many MNIST-5k images "
                        "(5000: all; fewer only to run in seconds)")

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


def _mnist(images: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_mnist5k(normalize=False)  # raw 0..255 integers, exact in float32
    return normalized_pixels(x[:images], 255.0), np.asarray(y)[:images]  # (images, 784), (images,)


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
    from learnmech.theory.kernels import nngp_ntk  # jax-compiled; only runs that list "ntk" need it

    return nngp_ntk(x, depth=1, activation="relu", weight_var=1.0, bias_var=0.0, dtype=np.float64).ntk


# ---------------------------------------------------------------------------------------------
# Theory and experiment


def _ranks(m: int) -> np.ndarray:
    return np.arange(1.0, m + 1.0)


def predict(cfg: Config):
    """The claim's form: a power law with ``R^2 >= 0.95`` and a sample-independent exponent.

    The exponent itself is a property of the data (measured); the learning-curve exponent predicted
    from it, ``min(b - 1, 2a)``, is computed by the summary from the measured spectra.
    """
    return {"r2_min": R2_MIN, "exponent_tol": EXPONENT_TOL, "fit_k_min": float(FIT_RANGE[0]),
            "fit_k_max": float(FIT_RANGE[1])}


def measure(cfg: Config, progress=None):
    steps = 3 + len(cfg.kernels)
    tick = (lambda i: progress("universal.data-spectra", i, steps)) if progress else (lambda i: None)
    x, labels = _mnist(cfg.images)
    y = _targets(labels)  # (N, 10)
    lin = linear_kernel_eigensystem(x)  # (r,), (N, r): the r positive covariance eigenvalues
    spectrum = np.zeros(x.shape[1])  # (784,): the other 784 - r are zero (below 1e-12 lambda_1)
    spectrum[: lin.eigenvalues.size] = lin.eigenvalues
    power = target_power(lin, y)  # (r,)
    out = {
        key("spectrum", "mnist"): Curve(_ranks(spectrum.size), spectrum),
        key("target", "mnist"): Curve(_ranks(power.size), power),
        key("target_total", "mnist"): float(np.sum(y**2)) / y.shape[0],  # ||y||^2 / N, all the label power
    }
    tick(1)
    halves = np.zeros((2 * cfg.splits, x.shape[1]))  # (2 * splits, 784): zero beyond a half's rank when n/2 < 784
    for i, idx in enumerate(idx for pair in split_halves(x.shape[0], cfg.splits, cfg.split_seed) for idx in pair):
        h = covariance_spectrum(x[idx])  # (min(n/2, 784),)
        halves[i, : h.size] = h
    out[key("spectrum", "halves")] = Curve(_ranks(spectrum.size), halves)  # members (2i, 2i+1): split i
    tick(2)
    digits = covariance_spectrum(_digits())  # (64,)
    out[key("spectrum", "digits")] = Curve(_ranks(digits.size), digits)
    tick(3)
    for i, name in enumerate(cfg.kernels):
        es = kernel_spectrum(rbf_gram(x) if name == "rbf" else _ntk_gram(x))  # (N,), (N, N)
        out[key("spectrum", name)] = Curve(_ranks(es.eigenvalues.size), es.eigenvalues)
        out[key("target", name)] = Curve(_ranks(es.eigenvalues.size), target_power(es, y))
        tick(4 + i)
    return out


# ---------------------------------------------------------------------------------------------
# Summary, verdict and figure


def _fit(values, krange) -> PowerLaw | None:
    """The power-law fit over ``krange``, or ``None`` when the range is not available (too few or zero values)."""
    try:
        return PowerLaw(k_min=krange[0], k_max=krange[1]).fit(values)
    except ValueError:
        return None


def _num(fit: PowerLaw | None, attr: str) -> float:
    """A fitted number, NaN when there is no fit."""
    return float(getattr(fit, attr)) if fit is not None else float("nan")


def _put_line(out: dict, name: str, fit: PowerLaw | None, krange) -> None:
    """``out[name]``: the fitted law over its range, as a curve (nothing when there is no fit)."""
    if fit is not None:
        k = np.arange(krange[0], krange[1] + 1.0)
        out[name] = Curve(k, fit.predict(k))


def _beta(a: float, b: float) -> float:
    try:
        return predicted_learning_curve_exponent(a, b)
    except ValueError:
        return float("nan")


def _target_fits(cfg: Config, measurement, name: str, a: float) -> dict:
    """``b`` from the unexplained fraction ``T(k)`` (and per mode), the predicted exponent, and the curves
    ``T(k)`` and its fitted law for the figure."""
    power = measurement[key("target", name)].y[0]
    tail_curve = cumulative_power(power)
    tail, per_mode = _fit(tail_curve, cfg.target_range), _fit(power, cfg.target_range)
    nan = float("nan")
    b = 1.0 + _num(tail, "exponent_")
    out = {key("b", name): b, key("b_r2", name): _num(tail, "r2_"),
           key("b_per_mode", name): _num(per_mode, "exponent_"),
           key("b_per_mode_r2", name): _num(per_mode, "r2_"),
           key("beta_predicted", name): _beta(a, b) if tail is not None else nan,
           key("tail", name): Curve(_ranks(power.size), tail_curve)}
    _put_line(out, key("tail_fit", name), tail, cfg.target_range)
    return out


def summarize(cfg: Config, prediction, measurement) -> dict:
    """Every fitted number of the claim from the stored spectra (NaN where a range is unavailable),
    the fitted laws as curves, and ``fit_usable`` (1 when the guard's fits exist)."""
    nan = float("nan")
    full_spectrum = measurement[key("spectrum", "mnist")].y[0]
    full = _fit(full_spectrum, FIT_RANGE)
    s = {key("a", "mnist"): _num(full, "exponent_"), key("r2", "mnist"): _num(full, "r2_"),
         key("log_prefactor", "mnist"): _num(full, "log_prefactor_"),
         key("nonzero_eigenvalues", "mnist"): float(np.count_nonzero(full_spectrum > 1e-12 * full_spectrum[0]))}
    _put_line(s, key("fit", "mnist"), full, FIT_RANGE)
    halves = [_fit(h, FIT_RANGE) for h in measurement[key("spectrum", "halves")].y]
    a_h = np.array([_num(f, "exponent_") for f in halves])  # (2 * splits,)
    diffs = np.abs(a_h[0::2] - a_h[1::2])  # (splits,)
    for i, (a1, a2) in enumerate(zip(a_h[0::2], a_h[1::2])):
        s.update({key("a_half1", f"split{i}"): float(a1), key("a_half2", f"split{i}"): float(a2)})
    s.update({"r2_halves_min": min((f.r2_ for f in halves if f is not None), default=nan),
              "exponent_spread_max": float(np.max(diffs)) if np.all(np.isfinite(diffs)) else nan,
              "worst_split": float(np.argmax(diffs)) if np.all(np.isfinite(diffs)) else nan})
    s["fit_usable"] = float(math.isfinite(s[key("r2", "mnist")]) and math.isfinite(s["exponent_spread_max"]))
    dig = _fit(measurement[key("spectrum", "digits")].y[0], cfg.digits_range)
    s.update({key("a", "digits"): _num(dig, "exponent_"), key("r2", "digits"): _num(dig, "r2_")})
    _put_line(s, key("fit", "digits"), dig, cfg.digits_range)
    s.update(_target_fits(cfg, measurement, "mnist", s[key("a", "mnist")]))
    power, total = measurement[key("target", "mnist")].y[0], float(measurement[key("target_total", "mnist")])
    s[key("target_out_of_span", "mnist")] = 1.0 - float(power.sum()) / total  # label power outside the pixels' span
    for name in KERNELS:
        if key("spectrum", name) not in measurement:
            continue
        kf = _fit(measurement[key("spectrum", name)].y[0], FIT_RANGE)
        a = _num(kf, "exponent_")
        s.update({key("a", name): a, key("r2", name): _num(kf, "r2_")})
        _put_line(s, key("fit", name), kf, FIT_RANGE)
        s.update(_target_fits(cfg, measurement, name, a))
    return s


RULES = Rules(
    guards=(Guard(f"power-law fits over ranks {FIT_RANGE[0]}..{FIT_RANGE[1]} (all images and every half)",
                  "fit_usable", ">=", 1.0, fmt="g",
                  advice=f"the spectrum (or a half's) has no positive eigenvalues over ranks "
                         f"{FIT_RANGE[0]}..{FIT_RANGE[1]}"),),
    checks=(Check(f"R^2 of the power-law fit, ranks {FIT_RANGE[0]}..{FIT_RANGE[1]}", key("r2", "mnist"), ">=",
                  R2_MIN),
            Check("|a_half1 - a_half2| (worst split)", "exponent_spread_max", "<=", EXPONENT_TOL)),
)


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
    m, halves = measurement[key("spectrum", "mnist")], measurement[key("spectrum", "halves")].y
    for j, h in enumerate(halves):
        ax.plot(*_positive(m.x, h), color=COLORS[1], linewidth=0.7, alpha=0.6,
                label=f"disjoint halves ({len(halves) // 2} split(s))" if j == 0 else None)
    ax.plot(*_positive(m.x, m.y[0]), color=COLORS[0], linewidth=1.4, label=f"all {cfg.images:,} images")
    if key("fit", "mnist") in s:
        f = s[key("fit", "mnist")]
        theory_line(ax, f.x, f.y[0], color="black",
                    label=f"power law k^-{s[key('a', 'mnist')]:.2f}, R^2 = {s[key('r2', 'mnist')]:.3f}")
    ax.axvspan(*FIT_RANGE, color="gray", alpha=0.08, label=f"fit range {FIT_RANGE[0]}..{FIT_RANGE[1]}")
    _floor(ax, m.y[0], 2 * FIT_RANGE[1])
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="covariance eigenvalue lambda_k")
    ax.legend(fontsize=7, title=f"MNIST-5k: |a_half1 - a_half2| <= {s['exponent_spread_max']:.3f}", title_fontsize=7)


def _plot_digits(ax, cfg: Config, measurement, s):
    d = measurement[key("spectrum", "digits")]
    ax.plot(*_positive(d.x, d.y[0]), color=COLORS[2], linewidth=1.4, label="digits 8x8 (1,797 images)")
    if key("fit", "digits") in s:
        f = s[key("fit", "digits")]
        theory_line(ax, f.x, f.y[0], color="black",
                    label=f"power law k^-{s[key('a', 'digits')]:.2f}, R^2 = {s[key('r2', 'digits')]:.3f}")
    lo, hi = cfg.digits_range
    ax.axvspan(lo, hi, color="gray", alpha=0.08, label=f"fit range {lo}..{hi}")
    _floor(ax, d.y[0], cfg.digits_range[1] + 10)
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="covariance eigenvalue lambda_k")
    ax.legend(fontsize=7, title="digits (reported, not judged)", title_fontsize=7)


def _plot_targets(ax, cfg: Config, s):
    names = ["mnist"] + [k for k in KERNELS if key("tail", k) in s]
    lo, hi = cfg.target_range
    for i, name in enumerate(names):
        tail = s[key("tail", name)]
        ax.plot(*_positive(tail.x, tail.y[0]), color=COLORS[i], linewidth=1.3,
                label=f"{KERNEL_LABELS[name]}: b = {s[key('b', name)]:.2f}, "
                      f"beta = min(b-1, 2a) = {s[key('beta_predicted', name)]:.2f}")
        if key("tail_fit", name) in s:
            f = s[key("tail_fit", name)]
            theory_line(ax, f.x, f.y[0], color=COLORS[i])
    ax.axvspan(lo, hi, color="gray", alpha=0.08, label=f"fit range {lo}..{hi} (dashed: k^(1-b))")
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylim=(1e-2, 1.5),
           ylabel="unexplained label power T(k)")
    ax.legend(fontsize=7, loc="lower left", title="MNIST-5k labels: T(k) = sum_{i>k} v_i^2 / sum_i v_i^2",
              title_fontsize=7)


def _plot_kernels(ax, measurement, s):
    for i, name in enumerate(k for k in KERNELS if key("spectrum", k) in measurement):
        sp = measurement[key("spectrum", name)]
        ax.plot(*_positive(sp.x, sp.y[0]), color=COLORS[i + 1], linewidth=1.3,
                label=f"{name}: a = {s[key('a', name)]:.2f}, R^2 = {s[key('r2', name)]:.3f}")
        if key("fit", name) in s:
            f = s[key("fit", name)]
            theory_line(ax, f.x, f.y[0], color="black")
    ax.axvspan(*FIT_RANGE, color="gray", alpha=0.08)
    ax.set(xscale="log", yscale="log", xlabel="rank k", ylabel="kernel eigenvalue (Gram / N)")
    ax.legend(fontsize=7, title="MNIST-5k kernel spectra (reported)", title_fontsize=7)


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    kernels = any(key("spectrum", k) in measurement for k in KERNELS)
    fig, axes = new_figure(4 if kernels else 3, title="universal.data-spectra: power-law spectra of real data")
    _plot_mnist(axes[0], cfg, measurement, summary)
    _plot_digits(axes[1], cfg, measurement, summary)
    _plot_targets(axes[2], cfg, summary)
    if kernels:
        _plot_kernels(axes[3], measurement, summary)
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
        "tiny": {"images": 600, "splits": 2, "kernels": KERNELS},
        "quick": {"splits": 1},
        "full": {"splits": 5, "kernels": KERNELS},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("scaling", "kernels", "real data"),
)
