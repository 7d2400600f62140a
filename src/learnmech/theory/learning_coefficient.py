"""Exact learning coefficients (real log canonical thresholds) of singular learning theory.

Contract: every function here is a pure prediction in exact arithmetic on integers or floats
(no training, no randomness) and returns a ``Coefficient(lam, multiplicity)``.

Setting (Watanabe 2009, *Algebraic Geometry and Statistical Learning Theory*, ch. 2 and 6).
For a model with population loss ``K(w) >= 0`` (the KL divergence to the truth, ``K = 0`` on the
true parameters) and a prior ``phi(w)``, the volume of near-optimal parameters scales as

    V(eps) = int_{K(w) < eps} phi(w) dw  ~  c eps^lam (ln 1/eps)^(m - 1)      (eps -> 0),

equivalently the partition function ``Z(t) = int exp(-t K(w)) phi(w) dw ~ c' t^-lam (ln t)^(m-1)``
and the Bayes free energy ``F_n = n L_n(w0) + lam ln n - (m - 1) ln ln n + O_p(1)``. ``lam`` is
the learning coefficient (the real log canonical threshold, RLCT) and ``m`` its multiplicity.
A regular model has ``lam = d/2``, ``m = 1``; a singular one has ``lam <= d/2``.

The local learning coefficient that the SGLD estimator of Lau et al. (2023, arXiv:2308.12108)
measures at a true parameter equals these values when the true parameter's neighbourhood carries
the singularity analysed here. Aoyagi & Watanabe's value for reduced-rank regression is the global one,
the minimum over the true set ``{B A = W0}``; it is attained at its most singular points, where the
``H - r`` hidden directions beyond the rank carry nothing in either layer (for ``r = 0``: ``A = B = 0``).
At other true points the local coefficient is larger or, with a smaller multiplicity, equal (for
``M = H = N = 1``, ``r = 0``: at ``(a, b) = (1, 0)`` ``K ~ b^2`` gives ``(1/2, 1)``, at the origin ``(1/2, 2)``).
"""

from __future__ import annotations

import numbers
from typing import Callable, NamedTuple

import numpy as np

__all__ = [
    "Coefficient",
    "normal_crossing",
    "reduced_rank_regression",
    "rrr_case",
    "regular",
]


class Coefficient(NamedTuple):
    """A learning coefficient ``lam`` (the RLCT) and its multiplicity ``m >= 1``."""

    lam: float
    multiplicity: int


def _count(name: str, value, minimum: int) -> int:
    """``value`` as a Python int >= ``minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def regular(d: int) -> Coefficient:
    """Learning coefficient of a regular model with ``d`` parameters: ``(d/2, 1)``.

    A model is regular at ``w0`` when the Hessian of ``K`` there is positive definite; then
    ``K(w) ~ (w - w0)^T I (w - w0)`` and ``V(eps) ~ c eps^{d/2}`` (the BIC penalty
    ``(d/2) ln n``). Watanabe 2009, ch. 1; Schwarz 1978.

    >>> regular(4)
    Coefficient(lam=2.0, multiplicity=1)
    """
    d = _count("d", d, 1)
    return Coefficient(d / 2.0, 1)


def _reals_above(name: str, values, lower: float, strict: bool) -> np.ndarray:
    """1-d float64 array of finite reals above ``lower``; ValueError naming ``name``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a 1-d sequence of numbers, got {values!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: must be a non-empty 1-d sequence of numbers")
    bad = ~np.isfinite(arr) | ((arr <= lower) if strict else (arr < lower))
    if np.any(bad):
        relation = ">" if strict else ">="
        raise ValueError(f"{name}: every entry must be finite and {relation} {lower}, got {values!r}")
    return arr


def normal_crossing(powers, prior_powers=None) -> Coefficient:
    """Learning coefficient of a normal crossing ``K(w) = prod_j w_j^{2 p_j}`` at ``w = 0``.

    With a prior density ``phi(w) ∝ prod_j |w_j|^{h_j}`` near the origin (``h_j > -1`` so that
    it is integrable; ``h_j = 0``, a prior positive at 0, by default):

        lam = min_{j : p_j > 0} (h_j + 1) / (2 p_j),
        m   = #{ j : p_j > 0 and (h_j + 1) / (2 p_j) = lam }.

    Coordinates with ``p_j = 0`` do not enter ``K`` and do not count. Watanabe 2009, ch. 2
    (Theorem 2.4 / Remark 2.14: the zeta function ``int K^z phi dw`` of a normal crossing has
    its largest pole at ``-lam`` with order ``m``). Equal ratios are matched to a relative
    tolerance of 1e-12, so float powers such as ``1/3`` compare as intended.

    Args:
        powers: ``p_j >= 0`` (integers or reals), at least one positive.
        prior_powers: ``h_j > -1``, same length as ``powers``; default all zero.

    >>> normal_crossing([1, 1])             # K = (a b)^2
    Coefficient(lam=0.5, multiplicity=2)
    >>> normal_crossing([1, 2], [0, 1])     # K = a^2 b^4, phi ∝ |b|
    Coefficient(lam=0.5, multiplicity=2)
    """
    p = _reals_above("powers", powers, 0.0, strict=False)
    if not np.any(p > 0):
        raise ValueError("powers: at least one power must be positive (K must vanish to finite order)")
    if prior_powers is None:
        h = np.zeros_like(p)
    else:
        h = _reals_above("prior_powers", prior_powers, -1.0, strict=True)
        if h.shape != p.shape:
            raise ValueError(f"prior_powers: must have the length of powers ({p.size}), got {h.size}")
    active = p > 0
    ratios = (h[active] + 1.0) / (2.0 * p[active])  # (active,)
    lam = float(np.min(ratios))
    multiplicity = int(np.sum(np.isclose(ratios, lam, rtol=1e-12, atol=0.0)))
    return Coefficient(lam, multiplicity)


class _RRRCase(NamedTuple):
    """One case of Aoyagi & Watanabe's theorem: a condition on (M, H, N, r) and its value."""

    name: str
    applies: Callable[[int, int, int, int], bool]
    eight_lam: Callable[[int, int, int, int], int]  # 8 lam: an integer in every case
    multiplicity: int


def _balanced_8lam(M: int, H: int, N: int, r: int) -> int:
    """``8 lam`` of the balanced case before the parity correction."""
    return 2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2


def _balanced(M: int, H: int, N: int, r: int) -> bool:
    """No dimension dominates: N + r <= M + H, M + r <= N + H and H + r <= M + N."""
    return N + r <= M + H and M + r <= N + H and H + r <= M + N


# Aoyagi & Watanabe 2005, Theorem 1 (cases in the order of the paper). The four conditions
# partition every valid (M, H, N, r) with r <= min(M, N, H): any two of the strict
# "dominated" inequalities summed give H < r, M < r or N < r.
_RRR_CASES: tuple[_RRRCase, ...] = (
    _RRRCase(
        "balanced-even",
        lambda M, H, N, r: _balanced(M, H, N, r) and (M + H + N + r) % 2 == 0,
        _balanced_8lam,
        1,
    ),
    _RRRCase(
        "balanced-odd",
        lambda M, H, N, r: _balanced(M, H, N, r) and (M + H + N + r) % 2 == 1,
        lambda M, H, N, r: _balanced_8lam(M, H, N, r) + 1,
        2,
    ),
    _RRRCase("output-dominated", lambda M, H, N, r: M + H < N + r, lambda M, H, N, r: 4 * (H * M - H * r + N * r), 1),
    _RRRCase("input-dominated", lambda M, H, N, r: N + H < M + r, lambda M, H, N, r: 4 * (H * N - H * r + M * r), 1),
    _RRRCase("hidden-dominated", lambda M, H, N, r: M + N < H + r, lambda M, H, N, r: 4 * M * N, 1),
)


def _rrr_arguments(M, H, N, r) -> tuple[int, int, int, int]:
    """Validated ``(M, H, N, r)``: positive sizes and ``0 <= r <= min(M, N, H)``."""
    M, H, N = _count("M", M, 1), _count("H", H, 1), _count("N", N, 1)
    r = _count("r", r, 0)
    if r > min(M, N, H):
        raise ValueError(f"r: the true rank must be <= min(M, N, H) = {min(M, N, H)}, got {r}")
    return M, H, N, r


def _rrr_lookup(M, H, N, r) -> tuple[_RRRCase, tuple[int, int, int, int]]:
    args = _rrr_arguments(M, H, N, r)
    matches = [case for case in _RRR_CASES if case.applies(*args)]
    assert len(matches) == 1, f"cases of the theorem must partition the inputs, got {matches}"
    return matches[0], args


def rrr_case(M: int, H: int, N: int, r: int) -> str:
    """Name of the case of Aoyagi & Watanabe's theorem that ``(M, H, N, r)`` falls in.

    One of ``"balanced-even"``, ``"balanced-odd"`` (case 1 (a)/(b) of the paper),
    ``"output-dominated"`` (``M + H < N + r``), ``"input-dominated"`` (``N + H < M + r``),
    ``"hidden-dominated"`` (``M + N < H + r``). Symbols as in ``reduced_rank_regression``.

    >>> rrr_case(4, 3, 8, 0)
    'output-dominated'
    """
    return _rrr_lookup(M, H, N, r)[0].name


def reduced_rank_regression(M: int, H: int, N: int, r: int) -> Coefficient:
    """Learning coefficient of reduced-rank regression (a two-layer linear network).

    Model ``y = B A x + noise`` with input ``x in R^M``, ``A`` of shape ``(H, M)``, ``B`` of
    shape ``(N, H)``, output ``y in R^N``, ``H`` the hidden width (the rank bound of the model),
    and a true map ``W0 = B0 A0`` of rank ``r <= min(M, N, H)``; the prior is positive at the
    true parameters. With ``K(A, B) ∝ |B A - W0|_F^2`` (whitened inputs), Aoyagi & Watanabe
    (2005, Neural Networks 18(7):924-933, "Stochastic complexities of reduced rank regression
    in Bayesian estimation", Theorem 1):

    1. ``N + r <= M + H``, ``M + r <= N + H``, ``H + r <= M + N`` (no dimension dominates):
       (a) ``M + H + N + r`` even: ``lam = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2] / 8``, ``m = 1``;
       (b) ``M + H + N + r`` odd:  ``lam = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2 + 1] / 8``, ``m = 2``.
    2. ``M + H < N + r``: ``lam = (H M - H r + N r) / 2``, ``m = 1``.
    3. ``N + H < M + r``: ``lam = (H N - H r + M r) / 2``, ``m = 1``.
    4. ``M + N < H + r``: ``lam = M N / 2``, ``m = 1`` (the regular count of ``W``).

    With ``H = r`` (no redundant hidden units) the value is the regular count of the
    rank-``H`` matrices, ``(H (M + N) - H^2) / 2``. The value is symmetric in ``M <-> N``.

    >>> reduced_rank_regression(M=5, H=3, N=5, r=0)
    Coefficient(lam=6.5, multiplicity=2)
    >>> reduced_rank_regression(M=1, H=1, N=1, r=0)     # K = (a b)^2
    Coefficient(lam=0.5, multiplicity=2)
    """
    case, args = _rrr_lookup(M, H, N, r)
    return Coefficient(case.eight_lam(*args) / 8.0, case.multiplicity)
