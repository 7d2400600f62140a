"""dev.llc-calibration — the SGLD estimate of the local learning coefficient recovers known values.

Statement (Watanabe 2009; Lau, Furman, Wang, Murfet & Wei 2023, arXiv:2308.12108; Aoyagi & Watanabe
2005): at a true parameter ``w0`` the local learning coefficient is ``d/2`` for a regular model with ``d``
parameters, ``1/(2 max_j p_j)`` for the normal crossing ``K(w) = prod_j w_j^{2 p_j}`` and Aoyagi &
Watanabe's value for reduced-rank regression; the estimator ``lambda_hat = n beta (E[L_n(w)] - L_n(w0))``,
``beta = 1/ln n``, under SGLD localised at ``w0`` (``learnmech.observe.llc.estimate_llc``) recovers them.

Models (all linear in the input ``x ~ N(0, I)``, outputs ``y = f(x, w0) + noise``, loss the Gaussian
negative log-likelihood with unit variance up to a constant, ``L_n(w) = (1/2n) sum_i ||y_i - f(x_i, w)||^2``):
regular ``f = W x`` (``W`` of shape ``(N, M)``, ``d = M N``); normal crossing ``f = x prod_j w_j^{p_j}``
(scalar ``x``, ``w0 = 0``, ``K = (1/2) prod_j w_j^{2 p_j}``); reduced-rank regression ``f = B A x``
(``A (H, M)``, ``B (N, H)``), teacher ``W0 = U V^T`` of rank ``r`` (unit singular values), ``w0`` its
balanced factorisation ``A0 = [V^T; 0]``, ``B0 = [U, 0]`` (every true ``(A, B)`` of ranks ``r`` is carried
onto this one by the ``GL(H)`` symmetry, which preserves ``K``, so the local value is the same).

Why ``w* = w0`` and projected noise. The theory's ``lambda`` belongs to a true parameter (``K(w0) = 0``);
the estimator assumes ``w*`` is a minimum of ``L_n``. For a model linear in ``x`` the data enter ``L_n``
only through ``Sigma = X^T X / n`` and the least-squares map ``W_ls``: ``L_n(w) = const + (1/2)
tr((W(w) - W_ls) Sigma (W(w) - W_ls)^T)``. Drawing the noise and projecting it off the column span of
``X`` makes ``W_ls = W0``, so ``w0`` is at once the true parameter and a global minimum of ``L_n``. A
trained minimum of a singular model sits instead on the set ``W(w) = W_ls``, a distance ``O(n^{-1/2})``
from the singularity in output space, where the local geometry at small scales is not the one analysed.

Two finite-n effects (reported beside the exact values, the verdict compares with the exact value).
(1) Multiplicity. The localised partition function ``Z(t) = int exp(-t K_n(w) - gamma/2 |w - w0|^2) dw``
behaves as ``c t^{-lambda} (ln t)^{m-1}`` (Watanabe 2009, ch. 2), and ``E[t K_n] = -d ln Z / d ln t``,
so ``E[n beta K_n] = lambda - (m - 1)/ln(n beta) + o(1/ln t)``: a case with ``m = 2`` reads low by about
``1/ln(n beta)`` (14% of ``lambda = 1/2`` at ``n beta = 1000``) and converges only logarithmically.
(2) The WBIC fluctuation (Watanabe 2013, JMLR 14, Theorem 4): with ``w*`` the true parameter and noise
that is not orthogonal to ``X``, ``n beta (E L_n - L_n(w0)) = lambda + U_n sqrt(lambda / (2 ln n)) +
O_p(1/ln n)``, ``U_n`` asymptotically a centred Gaussian. For ``f = x w^2`` (``lambda = 1/4``) the term is
``-sqrt(beta) xi E[u]`` to first order (``xi ~ N(0, 1)`` the normalised noise-input correlation, ``u =
sqrt(n beta) w^2``, ``E[u] = 2^{1/2} Gamma(3/4) / Gamma(1/4) = 0.48``): a standard deviation of 0.6 ``lambda``
at ``n = 10^4``, per data set; for a regular model the term is ``-beta n (L_n(w0) -
L_n(W_ls)) = -beta chi^2_d / 2`` (mean ``-lambda / ln n``). Projecting the noise makes it vanish
identically (hence the projection), leaving (1), the localisation and the SGLD step. "Finite-n expectation": regular, the exact Gaussian value ``(1/2) sum_i t a_i /
(t a_i + gamma)`` (``a_i``: eigenvalues of the Hessian of ``L_n``, ``t = n beta``); normal crossing, the
exact ``E[t K_n]`` under the localised posterior by quadrature in log coordinates; reduced-rank
regression, ``lambda - (m - 1)/ln t``.

Hyperparameters, fixed by rules before any verdict: ``beta = 1/ln n``; ``gamma = 1``, so the localisation
radius ``1/sqrt(gamma)`` is the teacher's scale (unit singular values) and ``gamma / (t a) <= 1.3%`` for
the regular directions (``a ~ 1``, ``n >= 500``); step ``eps = step_scale / (n beta)``, ``step_scale = 0.02``: the stiffest
direction of ``t L_n`` has curvature ``kappa <= 2.4 t`` (the largest eigenvalue of ``Sigma`` is about
``(1 + sqrt(M/n))^2 <= 1.2`` at ``n = 500``) and Euler-Maruyama inflates its variance by
``eps kappa / 4 <= 1.2%``; the MALA acceptance (mean over kept steps) must reach ``MIN_ACCEPTANCE = 0.9``,
else the run is inconclusive. Chains start at ``w0`` (as devinterp does) and run full batch with ``n beta =
n / ln n`` (devinterp's default puts the batch size where the theory puts ``n``). Directions that ``K`` leaves
flat relax only under the localisation, on the time scale ``1/gamma`` of their variance: ``burn_in`` must
reach ``gamma eps burn_in >= 3`` (variance within 5% of stationary) and the kept draws must be at least as
many as the burn-in, else inconclusive; the presets take ``burn_in = 3 n beta / (gamma step_scale)`` and
``draws = 2 burn_in``. The loss is evaluated from the moments ``Z^T Z / n`` of ``Z = [X, Y]`` (exact for a
model linear in ``x``), so a step costs the same at every ``n``.

Presets (2 shared cores under load): ``tiny`` 7.7 s (inconclusive: too short), ``quick`` (7 cases, n = 500)
13-33 s, ``full`` (13 cases, 2 data seeds, n = 5000) 347 s. Both: regular and reduced-rank estimates within 3%
of exact; normal crossings 10-35% low yet within 15% (quick: 0.224 against 0.195 for ``p = (1, 2)``, a chain standard
error of about 11% of ``lambda``) and 7.6% (full) of their finite-n expectations, so the claim fails on
effect (1) and the localisation's ``O(t^{-1/4})`` correction for ``p = (1, 2)``, not on the sampler.

Verdict (the specification): every estimate (mean over chains, each case and data seed) within 15% of the
exact value. Reported per case: exact, multiplicity, finite-n expectation, estimate, spread over chains,
acceptance, runaway fraction, and the largest error against the finite-n expectation (no threshold).
Inconclusive when a chain ran away, the acceptance is below 0.9 or the chains had too little time.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import NullFormatter
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Guard, Rules
from learnmech.observe.llc import estimate_llc
from learnmech.report import COLORS, finish_figure, new_figure
from learnmech.theory.learning_coefficient import normal_crossing, reduced_rank_regression, regular
from learnmech.theory.localised_posterior import crossing_expectation, gaussian_expectation

__all__ = ["CLAIM", "Case", "Config", "cases", "dataset", "measure_family", "moments", "table"]

RTOL = 0.15  # the specification: every estimate within 15% of the exact value
MIN_ACCEPTANCE = 0.9  # mean MALA acceptance below this: the step is too large to trust (inconclusive)
MIN_RELAXATION = 3.0  # gamma eps burn_in: a flat coordinate's variance within e^-3 = 5% of its stationary 1/gamma
DTYPE = jnp.float64  # the excess loss n beta (L - L*) is O(1) on a loss of O(1): float64 keeps 1e-12
TRACE_POINTS = 100  # thinned running-estimate curve stored per case


class Case(NamedTuple):
    """One calibration case: ``family`` in ``("regular", "crossing", "rrr")`` and its sizes."""

    family: str
    sizes: tuple[int, ...]  # regular (M, N); crossing: the powers p_j; rrr (M, H, N, r)

    @property
    def label(self) -> str:
        return f"{self.family}{self.sizes}".replace(" ", "")


def _sizes(name: str, length: tuple[int, int], low: int, high: int):
    def check(value: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
        for item in value:
            if not length[0] <= len(item) <= length[1] or any(not low <= s <= high for s in item):
                raise ValueError(f"{name}: every entry must hold {length[0]} to {length[1]} integers in "
                                 f"[{low}, {high}], got {item!r}")
        return value
    return check


class Config(ClaimConfig):
    seeds: int = Field(1, ge=1, le=16, description="independent data sets (and chain keys) per case")
    regular: tuple[tuple[int, int], ...] = Field(((2, 2), (4, 3)), description="regular W x: (M, N) per case")
    crossing: tuple[tuple[int, ...], ...] = Field(((1, 2), (1, 1)), description="normal crossing powers p_j")
    rrr: tuple[tuple[int, int, int, int], ...] = Field(((3, 3, 3, 1), (2, 4, 2, 1), (4, 2, 2, 1)),
                                                       description="reduced-rank regression (M, H, N, r)")
    n: int = Field(500, ge=50, le=200_000, description="examples; beta = 1/ln n")
    gamma: float = Field(1.0, gt=0, le=1e4, description="localisation strength")
    step_scale: float = Field(0.02, gt=0, le=1.0, description="SGLD step times n beta")
    chains: int = Field(8, ge=2, le=64, description="SGLD chains per estimate (vectorised)")
    draws: int = Field(24200, ge=20, le=400_000, description="SGLD steps per chain")
    burn_in: int = Field(12100, ge=0, le=200_000, description="first draws left out of the estimate")
    noise: float = Field(1.0, ge=0, le=10, description="std of the label noise before its projection (once "
                         "projected off the inputs' span it moves only L_n(w0), not L_n - L_n(w0) nor its gradient)")
    data_seed: int = 0

    _reg = field_validator("regular")(_sizes("regular", (2, 2), 1, 16))
    _nc = field_validator("crossing")(_sizes("crossing", (1, 3), 1, 4))
    _rrr = field_validator("rrr")(_sizes("rrr", (4, 4), 0, 16))

    @field_validator("rrr")
    @classmethod
    def _ranks(cls, value):
        for M, H, N, r in value:
            if min(M, H, N) < 1 or r > min(M, H, N):
                raise ValueError(f"rrr: need M, H, N >= 1 and 0 <= r <= min(M, H, N), got {(M, H, N, r)}")
        return value

    @model_validator(mode="after")
    def _counts(self):
        if self.burn_in >= self.draws:
            raise ValueError(f"burn_in: must be below draws ({self.draws}), got {self.burn_in}")
        if not (self.regular or self.crossing or self.rrr):
            raise ValueError("regular, crossing, rrr: at least one case is needed")
        return self


def cases(cfg: Config) -> tuple[Case, ...]:
    """Every case of the experiment, regular first, then crossing, then reduced-rank regression."""
    return (tuple(Case("regular", s) for s in cfg.regular) + tuple(Case("crossing", p) for p in cfg.crossing)
            + tuple(Case("rrr", s) for s in cfg.rrr))


def _coefficient(case: Case):
    if case.family == "regular":
        return regular(case.sizes[0] * case.sizes[1])
    if case.family == "crossing":
        return normal_crossing(case.sizes)
    return reduced_rank_regression(*case.sizes)


# ---------------------------------------------------------------------------------------------
# Data, teachers and the finite-n expectations


def _dims(case: Case) -> tuple[int, int]:
    """Input and output dimension ``(M, N)``."""
    if case.family == "crossing":
        return 1, 1
    return (case.sizes[0], case.sizes[1]) if case.family == "regular" else (case.sizes[0], case.sizes[2])


def _teacher(case: Case, rng) -> tuple[np.ndarray, list]:
    """``(W0 (N, M), w0)``: the true map and the true parameter (a pytree)."""
    M, N = _dims(case)
    if case.family == "regular":
        W0 = rng.standard_normal((N, M))
        return W0, W0
    if case.family == "crossing":
        return np.zeros((1, 1)), np.zeros(len(case.sizes))
    _, H, _, r = case.sizes
    U = np.linalg.qr(rng.standard_normal((N, N)))[0][:, :r]  # (N, r)
    V = np.linalg.qr(rng.standard_normal((M, M)))[0][:, :r]  # (M, r)
    A0 = np.zeros((H, M)); A0[:r] = V.T  # noqa: E702  balanced: B0^T B0 = A0 A0^T = diag(1_r, 0)
    B0 = np.zeros((N, H)); B0[:, :r] = U  # noqa: E702
    return B0 @ A0, [A0, B0]


def dataset(case: Case, n: int, noise: float, seed: int):
    """``(X (n, M), Y (n, N), W0, w0)`` with the noise projected off the span of ``X``'s columns."""
    rng = np.random.default_rng(seed)
    W0, w0 = _teacher(case, rng)
    M, N = _dims(case)
    X = rng.standard_normal((n, M))  # (n, M)
    eps = noise * rng.standard_normal((n, N))  # (n, N)
    eps -= X @ np.linalg.lstsq(X, eps, rcond=None)[0]  # X^T eps = 0: the least-squares map is W0
    return X, X @ W0.T + eps, W0, w0


def _expectation(cfg: Config, case: Case, X: np.ndarray, t: float) -> float:
    if case.family == "regular":
        return gaussian_expectation(np.linalg.eigvalsh(X.T @ X / X.shape[0]), case.sizes[1], t, cfg.gamma)
    if case.family == "crossing":
        return crossing_expectation(case.sizes, float(np.mean(X[:, 0] ** 2)), t, cfg.gamma)
    lam, m = _coefficient(case)
    return lam - (m - 1) / np.log(t)


def _nbeta(cfg: Config) -> float:
    return cfg.n / np.log(cfg.n)


def _seed(cfg: Config, i: int, s: int) -> int:
    return cfg.data_seed + 1000 * i + s


def predict(cfg: Config):
    """Exact ``lambda`` and ``m`` per case, and the finite-n expectation (module docstring) per case and seed."""
    out, t = {}, _nbeta(cfg)
    for i, case in enumerate(cases(cfg)):
        lam, m = _coefficient(case)
        out[key("exact", i)], out[key("multiplicity", i)] = float(lam), float(m)
        expected = [_expectation(cfg, case, dataset(case, cfg.n, cfg.noise, _seed(cfg, i, s))[0], t)
                    for s in range(cfg.seeds)]
        out[key("expected", i)] = Curve(np.arange(cfg.seeds), np.asarray(expected))
    return out


# ---------------------------------------------------------------------------------------------
# Experiment


def moments(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``S = Z^T Z / n`` of ``Z = [X, Y]`` ``(n, M + N)``: for a model linear in ``x`` it fixes ``L_n`` exactly."""
    Z = np.concatenate([X, Y], axis=1)  # (n, M + N)
    return Z.T @ Z / Z.shape[0]  # (M + N, M + N)


def _pad(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape)
    out[tuple(slice(0, k) for k in a.shape)] = a
    return out


def _moments_padded(X, Y, M: int, N: int) -> np.ndarray:
    """``moments`` of ``X`` and ``Y`` zero-padded to ``M`` and ``N`` columns (padded inputs and outputs are 0)."""
    return moments(_pad(X, (X.shape[0], M)), _pad(Y, (Y.shape[0], N)))


def _linear_loss(W, S):
    """``L_n(W) = (1/2n) sum_i ||y_i - W x_i||^2 = (1/2) tr(P S P^T)``, ``P = [-W, I_N]`` (``S``: ``moments``)."""
    P = jnp.concatenate([-W, jnp.eye(W.shape[0], dtype=W.dtype)], axis=1)  # (N, M + N)
    return 0.5 * jnp.sum((P @ S) * P)


# One loss per family, every case of a family padded to the family's largest shape and vmapped with its seeds
# (one compilation per family). ``data`` = (S, mask, ...) each with a leading axis of length 1; a masked
# parameter does not enter L_n: under the localised posterior it is an independent Gaussian coordinate that
# adds nothing to L_n - L_n(w0), so the estimate of the real coordinates is unchanged.
def _regular_loss(W, data):
    S, mask = data
    return _linear_loss(W * mask[0], S[0])


def _rrr_loss(params, data):
    (A, B), (S, mask_a, mask_b) = params, data
    return _linear_loss((B * mask_b[0]) @ (A * mask_a[0]), S[0])


def _crossing_loss(w, data):
    S, powers = data  # powers (1, d_max), zero for padding
    w_pow = jnp.where(jnp.arange(4)[None, :] < powers[0][:, None], w[:, None], 1.0)  # (d_max, 4): w_j^{p_j}, p <= 4
    return _linear_loss(jnp.prod(w_pow).reshape(1, 1), S[0])


def _family_inputs(family: str, items, shape):
    """``(loss, w0, data)`` for ``items`` = [(case, X, Y, w0)], stacked on a leading (case x seed) axis."""
    w0s, datas = [], []
    for case, X, Y, w0 in items:
        if family == "regular":
            N, M = shape
            w0s.append(_pad(w0, shape))
            datas.append((_moments_padded(X, Y, M, N)[None], _pad(np.ones_like(w0), shape)[None]))
        elif family == "crossing":
            w0s.append(_pad(w0, shape))
            datas.append((moments(X, Y)[None], _pad(np.asarray(case.sizes, np.float64), shape)[None]))
        else:
            H, M, N = shape
            (A0, B0) = w0
            w0s.append((_pad(A0, (H, M)), _pad(B0, (N, H))))
            datas.append((_moments_padded(X, Y, M, N)[None], _pad(np.ones_like(A0), (H, M))[None],
                          _pad(np.ones_like(B0), (N, H))[None]))
    stack = lambda *a: jnp.asarray(np.stack(a), DTYPE)  # noqa: E731
    loss = {"regular": _regular_loss, "crossing": _crossing_loss, "rrr": _rrr_loss}[family]
    return loss, jax.tree.map(stack, *w0s), jax.tree.map(stack, *datas)


def _shape(case: Case) -> tuple[int, ...]:
    """A case's parameter shape: regular ``(N, M)``, crossing ``(d,)``, rrr ``(H, M, N)``."""
    z = case.sizes
    return (len(z),) if case.family == "crossing" else (z[1], z[0]) + z[2:3]  # rrr: (H, M, N)


def measure_family(cfg: Config, family: str) -> dict:
    """Every case of ``family`` and seed in one vectorised ``estimate_llc``. Per case ``i``: the chains' estimates,
    acceptance, runaway flags ``(seeds, C)``, the running estimate (mean over chains, thinned, ``(seeds, P)``)."""
    t = _nbeta(cfg)
    index = [i for i, c in enumerate(cases(cfg)) if c.family == family]
    if not index:
        return {}
    todo = [cases(cfg)[i] for i in index]
    items = [(c, X, Y, w) for i, c in zip(index, todo) for s in range(cfg.seeds)
             for X, Y, _, w in [dataset(c, cfg.n, cfg.noise, _seed(cfg, i, s))]]
    loss, w0, data = _family_inputs(family, items, tuple(int(k) for k in np.max([_shape(c) for c in todo], 0)))
    keys = jax.random.split(jax.random.key(cfg.data_seed + 7919 * (index[0] + 1)), len(items))

    def one(w_star, data_s, k):  # the moments stand for the n examples: n is passed (nbeta = n / ln n)
        return estimate_llc(loss, w_star, data_s, key=k, n=cfg.n, gamma=cfg.gamma, step=cfg.step_scale / t,
                            chains=cfg.chains, draws=cfg.draws, burn_in=cfg.burn_in)

    est = jax.vmap(one)(w0, data, keys)
    shape = (len(index), cfg.seeds, cfg.chains)
    excess = t * (np.asarray(est.trace)[:, :, cfg.burn_in:] - np.asarray(est.loss_star)[:, None, None])
    running = np.cumsum(excess.mean(axis=1), axis=-1) / np.arange(1, excess.shape[-1] + 1)  # (items, K)
    pick = np.unique(np.geomspace(1, running.shape[-1], TRACE_POINTS).astype(int)) - 1
    running = running[:, pick].reshape(len(index), cfg.seeds, -1)
    chain_axis = np.arange(cfg.chains, dtype=np.float64)
    out = {}
    for j, i in enumerate(index):
        out[key("per_chain", i)] = Curve(chain_axis, np.asarray(est.per_chain).reshape(shape)[j])
        out[key("acceptance", i)] = Curve(chain_axis, np.asarray(est.acceptance).reshape(shape)[j])
        out[key("runaway", i)] = Curve(chain_axis, np.asarray(est.runaway, np.float64).reshape(shape)[j])
        out[key("running", i)] = Curve(pick + cfg.burn_in + 1.0, running[j])
    return out


def measure(cfg: Config, progress=None):
    out, families = {}, ("regular", "crossing", "rrr")
    for k, family in enumerate(families):
        out.update(measure_family(cfg, family))
        if progress is not None:
            progress("dev.llc-calibration", k + 1, len(families))
    return out


# ---------------------------------------------------------------------------------------------
# Verdict


def summarize(cfg: Config, prediction, measurement):
    """Per case ``i``: exact, multiplicity, finite-n expectation (mean over seeds), estimate (mean over seeds
    of the mean over chains), spread over chains (mean over seeds), relative error (the worst seed), lowest
    acceptance, runaway fraction; over cases: the largest relative error against the exact value (the
    verdict) and against the finite-n expectation (reported), the lowest acceptance, the runaway fraction."""
    out = {}
    for i, _ in enumerate(cases(cfg)):
        chains = measurement[key("per_chain", i)].y  # (seeds, C)
        llc, exact, expected = chains.mean(axis=1), prediction[key("exact", i)], prediction[key("expected", i)].y[0]
        out.update({key("exact", i): exact, key("multiplicity", i): prediction[key("multiplicity", i)],
                    key("expected", i): float(expected.mean()), key("estimate", i): float(llc.mean()),
                    key("spread", i): float(np.std(chains, axis=1, ddof=1).mean()),
                    key("rel_err", i): float(np.max(np.abs(llc / exact - 1.0))),
                    key("rel_err_expected", i): float(np.max(np.abs(llc / expected - 1.0))),
                    key("acceptance", i): float(measurement[key("acceptance", i)].y.mean(axis=1).min()),
                    key("runaway", i): float(measurement[key("runaway", i)].y.mean())})
    errs, errs_expected, acc, runaway = ([out[key(name, i)] for i in range(len(cases(cfg)))]
                                         for name in ("rel_err", "rel_err_expected", "acceptance", "runaway"))
    out.update(max_rel_err=max(errs), max_rel_err_expected=max(errs_expected), min_acceptance=min(acc),
               runaway_fraction=float(np.mean(runaway)), n=float(cfg.n), beta=float(1 / np.log(cfg.n)),
               nbeta=float(_nbeta(cfg)), gamma=cfg.gamma, step=float(cfg.step_scale / _nbeta(cfg)),
               relaxation=float(cfg.gamma * cfg.step_scale / _nbeta(cfg) * cfg.burn_in),
               kept_over_burn_in=float((cfg.draws - cfg.burn_in) / max(cfg.burn_in, 1)))
    return out


RULES = Rules(
    guards=(Guard("fraction of chains that ran away", "runaway_fraction", "<=", 0.0, fmt="g",
                  advice="a chain's loss ran away; lower step_scale or raise gamma"),
            Guard("lowest mean MALA acceptance", "min_acceptance", ">=", MIN_ACCEPTANCE, fmt=".3f",
                  advice="the SGLD step is too large for its discretisation bias to be small; lower step_scale"),
            Guard("burn-in in localisation relaxation times, gamma eps burn_in", "relaxation", ">=", MIN_RELAXATION,
                  fmt=".3g", advice="the chains had no time to spread over the localisation scale; raise burn_in"),
            Guard("kept draws over burn-in draws", "kept_over_burn_in", ">=", 1.0, fmt=".3g",
                  advice="average over at least as many draws as the burn-in; raise draws")),
    checks=(Check("max |estimate / exact - 1| over cases", "max_rel_err", "<=", RTOL, fmt=".2%"),),
)


def table(cfg: Config, summary) -> str:
    """The verdict table: one line per case (exact, m, finite-n expectation, estimate, spread, acceptance,
    runaway fraction, relative error)."""
    lines = [f"{'case':<18}{'exact':>7}{'m':>3}{'finite-n':>10}{'estimate':>10}{'spread':>8}{'accept':>8}"
             f"{'runaway':>8}{'rel.err':>9}"]
    for i, case in enumerate(cases(cfg)):
        v = {name: summary[key(name, i)] for name in ("exact", "multiplicity", "expected", "estimate", "spread",
                                                        "acceptance", "runaway", "rel_err")}
        lines.append(f"{case.label:<18}{v['exact']:>7.3f}{v['multiplicity']:>3.0f}{v['expected']:>10.3f}"
                     f"{v['estimate']:>10.3f}{v['spread']:>8.3f}{v['acceptance']:>8.3f}{v['runaway']:>8.2f}"
                     f"{v['rel_err']:>9.1%}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figure


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    fig, (ax, ax_run) = new_figure(2, title=f"dev.llc-calibration: SGLD LLC vs exact (n={cfg.n}, "
                                            f"n beta={_nbeta(cfg):.0f}, gamma={cfg.gamma:g})")
    todo = cases(cfg)
    exact = np.array([summary[key("exact", i)] for i in range(len(todo))])
    top = 1.15 * max(exact.max(), max(summary[key("estimate", i)] for i in range(len(todo))))
    line = np.array([0.0, top])
    ax.plot(line, line, color="black", linewidth=1.0, label="y = x (exact)")
    ax.fill_between(line, (1 - RTOL) * line, (1 + RTOL) * line, color="gray", alpha=0.15, label=f"+/-{RTOL:.0%}")
    families = ("regular", "crossing", "rrr")
    for i, case in enumerate(todo):
        color = COLORS[families.index(case.family)]
        ax.errorbar(exact[i], summary[key("estimate", i)], yerr=summary[key("spread", i)], fmt="o", color=color,
                    markersize=5, capsize=3, label=case.family if i == [c.family for c in todo].index(case.family)
                    else None)
        ax.plot(exact[i], summary[key("expected", i)], "x", color=color, markersize=6)
    ax.plot([], [], "x", color="gray", label="finite-n expectation (theory)")
    ax.set(xscale="log", yscale="log", xlabel="exact learning coefficient lambda",
           ylabel="SGLD estimate (mean over chains) +/- spread")
    for axis in (ax.xaxis, ax.yaxis):  # minor log ticks unlabelled: the labels collide
        axis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7)
    for i, case in enumerate(todo):
        run = measurement[key("running", i)]
        ax_run.plot(run.x, run.mean / exact[i], color=COLORS[i % len(COLORS)], linewidth=1.1, label=case.label)
    ax_run.axhspan(1 - RTOL, 1 + RTOL, color="gray", alpha=0.15)
    ax_run.axhline(1.0, color="black", linewidth=1.0, linestyle="--")
    ax_run.set(xlabel="SGLD step (after burn-in)", ylabel="running estimate / exact lambda")
    ax_run.legend(fontsize=6, ncol=2)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="dev.llc-calibration",
    pillar="development",
    statement="The SGLD estimate n beta (E[L_n] - L_n(w*)) of the local learning coefficient recovers the exact "
              "values of regular models (d/2), normal crossings (1/(2 max p)) and reduced-rank regression "
              "(Aoyagi & Watanabe) within 15%.",
    references=("Lau, Furman, Wang, Murfet & Wei 2023, arXiv:2308.12108",
                "Watanabe 2009, Algebraic Geometry and Statistical Learning Theory",
                "Watanabe 2013, JMLR 14 (WBIC)",
                "Aoyagi & Watanabe 2005, Neural Networks 18(7):924-933"),
    config=Config,
    presets={
        "tiny": {"regular": ((2, 1),), "crossing": ((1, 2),), "rrr": ((2, 2, 2, 1),), "n": 200, "chains": 2,
                 "draws": 200, "burn_in": 50},
        # quick and full: burn_in = 3 n beta / (gamma step_scale) rounded up (3 relaxation times of the
        # localisation, MIN_RELAXATION), draws = 2 burn_in; n = 500 keeps quick near 12 s
        "quick": {},
        "full": {"seeds": 2, "regular": ((2, 2), (4, 3), (6, 5)), "crossing": ((1, 2), (1, 1), (2, 3), (1, 1, 3)),
                 "rrr": ((3, 3, 3, 1), (2, 4, 2, 1), (4, 2, 2, 1), (2, 2, 2, 1), (5, 3, 4, 2), (4, 3, 6, 1)),
                 "n": 5000, "chains": 16, "draws": 176200, "burn_in": 88100},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("learning coefficient", "singular learning theory"),
)
