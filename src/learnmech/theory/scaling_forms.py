"""Parametric scaling-law forms: each one a log-space function of the fit coordinates, as data.

Contract: a :class:`ScalingForm` maps *fit coordinates* ``theta`` (unconstrained reals, shape
``(k,)``) and the **logarithms** of its inputs (``"n"`` parameters, ``"d"`` training tokens,
``"u"`` unique tokens, ``"x"`` any scale variable; each ``(points,)``) to the predicted
**log-loss** ``log L_hat`` ``(points,)``. It also carries the map between fit coordinates and
the natural parameters (``A = e^a``, ...), the default grid of starting points of the fitter
and the equation with its reference. Every ``log_loss`` is written in jax so that the fitter
can differentiate and vectorise it; where a form has a log-sum-exp expression it is used, so
that every term stays finite over the whole start grid (Hoffmann et al. 2022, App. D.2).

Forms (``FORMS``):

- ``"chinchilla"``: ``L = E + A / N^alpha + B / D^beta``, fitted as
  ``log L = LSE(a - alpha log N, b - beta log D, e)`` with ``A, B, E = e^a, e^b, e^e``
  (Hoffmann et al. 2022, arXiv:2203.15556, eq. 2 and App. D.2).
- ``"kaplan-n"``: ``L = (N_c / N)^alpha_N``; ``"kaplan-d"``: ``L = (D_c / D)^alpha_D``
  (Kaplan et al. 2020, arXiv:2001.08361, eqs. 1.1-1.2), fitted as the straight line
  ``log L = c - alpha log N`` with ``c = alpha log N_c``.
- ``"kaplan-joint"``: ``L = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D`` (Kaplan et al.
  2020, eq. 1.5), fitted as ``log L = alpha_D LSE((alpha_N/alpha_D)(log N_c - log N), log D_c - log D)``.
- ``"power-offset"``: ``L = E + A x^(-alpha)``, fitted as ``log L = LSE(a - alpha log x, e)``;
  ``"data-constrained"``: Muennighoff et al. 2023, arXiv:2305.16264, eqs. 5-7 (:func:`_data_constrained_log_loss`).

:func:`user_form` wraps any jax-traceable ``fn(params, inputs) -> loss``; :func:`reduced_form`
holds some natural parameters of a form fixed (a form over the other coordinates).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FORMS", "INPUT_NAMES", "ScalingForm", "get_form", "predict", "reduced_form", "user_form"]

INPUT_NAMES = ("n", "d", "u", "x")
LogLoss = Callable[[jnp.ndarray, Mapping[str, jnp.ndarray]], jnp.ndarray]


def _exp(x: float) -> float:  # e^x, or +inf past the largest float (a runaway scale: unidentified, no OverflowError)
    return math.exp(x) if x < 709.0 else math.inf


@dataclass(frozen=True)
class ScalingForm:
    """One parametric law, as data (checked when built).

    Attributes:
      name: key in ``FORMS`` (or the user's name).
      inputs: the input columns it reads, a subset of ``INPUT_NAMES``.
      params: natural parameter names, e.g. ``("E", "A", "B", "alpha", "beta")``.
      coords: names of the fit coordinates ``theta`` (e.g. ``("a", "b", "e", "alpha", "beta")``).
      log_loss: ``(theta (k,), {input: log value (points,)}) -> log L_hat (points,)`` in jax.
      to_natural: ``theta (k,) -> {param: float}``.
      from_natural: ``{param: float} -> theta (k,)``.
      grid: per fit coordinate, its starting values; the default starts are their product, except
        for ``dealt`` coordinates (:meth:`starts`).
      equation, reference: for docstrings, reports and figures.
      frontier: whether the compute-optimal frontier of :mod:`scaling_fit` applies
        (the form has ``E, A, B, alpha, beta`` with ``L = E + A/N^alpha + B/D^beta`` without repetition).
      dealt: fit coordinates whose axes are dealt out over the product of the other axes instead of
        crossed with it (:meth:`starts`); ``deal_rounds`` combinations of them per combination of the others.
    """

    name: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    coords: tuple[str, ...]
    log_loss: LogLoss = field(repr=False)
    to_natural: Callable[[np.ndarray], dict] = field(repr=False)
    from_natural: Callable[[Mapping[str, float]], np.ndarray] = field(repr=False)
    grid: tuple[tuple[float, ...], ...] = field(repr=False)
    equation: str = ""
    reference: str = ""
    frontier: bool = False
    dealt: tuple[str, ...] = ()
    deal_rounds: int = 1

    def __post_init__(self):
        unknown = set(self.inputs) - set(INPUT_NAMES)
        if unknown or not self.inputs:
            raise ValueError(f"inputs: must be a non-empty subset of {INPUT_NAMES}, got {self.inputs}")
        if len(self.grid) != len(self.coords) or len(self.params) != len(self.coords):
            raise ValueError(f"{self.name}: params, coords and grid must have one entry per fit coordinate")
        if any(len(values) == 0 for values in self.grid):
            raise ValueError(f"{self.name}: every grid axis needs at least one starting value")
        if self.dealt:
            _check_deal(self)

    @property
    def n_params(self) -> int:
        return len(self.coords)

    def starts(self) -> np.ndarray:
        """The default starting points ``(S, k)`` float64: the Cartesian product of ``grid``, or a deal.

        Without ``dealt`` coordinates: the product of the axes, in ``itertools.product`` order. With
        them: the product of the other (crossed) axes, ``B`` rows, and the product of the dealt axes,
        ``P`` combinations, are paired ``deal_rounds`` times: in round ``r`` crossed row ``i`` gets
        dealt combination ``floor(P frac(i phi + r / deal_rounds))``, ``phi`` the golden ratio (a
        Weyl sequence: equidistributed along every arithmetic progression of rows, so no crossed axis
        is aliased with a dealt one; every combination is used in every round, checked when the form
        is built). ``S = B x deal_rounds`` rows: the cost of crossing ``deal_rounds`` dealt combinations,
        but every one of the ``P`` is tried, and a fit holding the crossed parameters fixed starts from all ``P``.
        """
        if not self.dealt:
            return _product(self.grid, self.n_params)
        crossed = [i for i, c in enumerate(self.coords) if c not in self.dealt]
        dealt = [i for i, c in enumerate(self.coords) if c in self.dealt]
        base = _product([self.grid[i] for i in crossed], len(crossed))  # (B, k - m)
        combos = _product([self.grid[i] for i in dealt], len(dealt))  # (P, m)
        blocks = []
        for r in range(self.deal_rounds):
            block = np.empty((base.shape[0], self.n_params))  # (B, k)
            block[:, crossed] = base
            block[:, dealt] = combos[_deal(base.shape[0], combos.shape[0], r / self.deal_rounds)]
            blocks.append(block)
        return np.concatenate(blocks)


def _deal(rows: int, combos: int, shift: float) -> np.ndarray:
    """``floor(P frac(i phi + shift))`` for rows ``i < B``: the dealt combination of each crossed row ``(B,)``."""
    return np.floor(combos * np.mod(np.arange(rows) * _GOLDEN + shift, 1.0)).astype(int)


_GOLDEN = (1 + math.sqrt(5)) / 2


def _product(axes, k: int) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, k)


def _check_deal(form: ScalingForm) -> None:
    """The dealt coordinates exist, leave a crossed axis, and every dealt combination is dealt in each round."""
    unknown = set(form.dealt) - set(form.coords)
    if unknown or len(form.dealt) == len(form.coords):
        raise ValueError(f"{form.name}: dealt must name some, not all, of the coordinates {form.coords}")
    crossed = math.prod(len(a) for a, c in zip(form.grid, form.coords) if c not in form.dealt)
    dealt = math.prod(len(a) for a, c in zip(form.grid, form.coords) if c in form.dealt)
    if form.deal_rounds < 1:
        raise ValueError(f"{form.name}: deal_rounds must be >= 1, got {form.deal_rounds}")
    for r in range(form.deal_rounds):
        if np.unique(_deal(crossed, dealt, r / form.deal_rounds)).size < dealt:
            raise ValueError(f"{form.name}: {crossed} crossed combinations cannot deal all {dealt} dealt ones")


def _lse(*terms):
    """``log sum_j exp(t_j)`` of a few broadcastable arrays, shifted by their (constant) maximum."""
    m = jax.lax.stop_gradient(functools.reduce(jnp.maximum, terms))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return m + jnp.log(sum(jnp.exp(t - m) for t in terms))


# ---------------------------------------------------------------- Chinchilla (Hoffmann et al. 2022)

def _chinchilla_log_loss(theta, logs):
    a, b, e, alpha, beta = theta
    return _lse(a - alpha * logs["n"], b - beta * logs["d"], e)  # (points,)


def _chinchilla_natural(theta):
    a, b, e, alpha, beta = np.asarray(theta, dtype=np.float64)
    return {"E": _exp(e), "A": _exp(a), "B": _exp(b), "alpha": float(alpha), "beta": float(beta)}


def _chinchilla_coords(p):  # a scale of 0 (a term the fit switched off) is log 0 = -inf; a negative one is refused
    return np.array([*(math.log(v) if v != 0 else -math.inf for v in (p["A"], p["B"], p["E"])), p["alpha"], p["beta"]])


# Hoffmann et al. 2022, App. D.2: alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
# a, b in {0, 5, ..., 25}: 5 * 5 * 5 * 6 * 6 = 4,500 starts.
_HOFFMANN_GRID = (
    (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),  # a
    (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),  # b
    (-1.0, -0.5, 0.0, 0.5, 1.0),  # e
    (0.0, 0.5, 1.0, 1.5, 2.0),  # alpha
    (0.0, 0.5, 1.0, 1.5, 2.0),  # beta
)

CHINCHILLA = ScalingForm(
    name="chinchilla",
    inputs=("n", "d"),
    params=("E", "A", "B", "alpha", "beta"),
    coords=("a", "b", "e", "alpha", "beta"),
    log_loss=_chinchilla_log_loss,
    to_natural=_chinchilla_natural,
    from_natural=_chinchilla_coords,
    grid=_HOFFMANN_GRID,
    equation="L = E + A/N^alpha + B/D^beta",
    reference="Hoffmann et al. 2022, arXiv:2203.15556 (eq. 2, App. D.2)",
    frontier=True,
)


# ---------------------------------------------------------------- Kaplan et al. 2020

def _kaplan_single(var: str, scale: str, exponent: str) -> ScalingForm:
    def log_loss(theta, logs):
        c, alpha = theta
        return c - alpha * logs[var]  # log L = alpha (log X_c - log X)

    def natural(theta):
        c, alpha = np.asarray(theta, dtype=np.float64)
        return {scale: _exp(c / alpha) if alpha != 0 else math.inf, exponent: float(alpha)}

    def coords(p):
        return np.array([p[exponent] * math.log(p[scale]), p[exponent]])

    return ScalingForm(
        name=f"kaplan-{var}",
        inputs=(var,),
        params=(scale, exponent),
        coords=("c", exponent),
        log_loss=log_loss,
        to_natural=natural,
        from_natural=coords,
        grid=((0.0, 1.0, 2.0, 5.0), (0.01, 0.1, 0.5)),  # a straight line in log-log: convex, any start works
        equation=f"L = ({scale}/{var.upper()})^{exponent}",
        reference="Kaplan et al. 2020, arXiv:2001.08361 (eqs. 1.1-1.2)",
    )


def _kaplan_joint_log_loss(theta, logs):
    log_nc, log_dc, alpha_n, alpha_d = theta
    return alpha_d * _lse((alpha_n / alpha_d) * (log_nc - logs["n"]), log_dc - logs["d"])


KAPLAN_JOINT = ScalingForm(
    name="kaplan-joint",
    inputs=("n", "d"),
    params=("N_c", "D_c", "alpha_N", "alpha_D"),
    coords=("log_N_c", "log_D_c", "alpha_N", "alpha_D"),
    log_loss=_kaplan_joint_log_loss,
    to_natural=lambda t: {"N_c": _exp(t[0]), "D_c": _exp(t[1]), "alpha_N": float(t[2]), "alpha_D": float(t[3])},
    from_natural=lambda p: np.array([math.log(p["N_c"]), math.log(p["D_c"]), p["alpha_N"], p["alpha_D"]]),
    grid=((15.0, 25.0, 35.0), (15.0, 25.0, 35.0), (0.05, 0.2, 0.5), (0.05, 0.2, 0.5)),
    equation="L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
    reference="Kaplan et al. 2020, arXiv:2001.08361 (eq. 1.5)",
)


# ---------------------------------------------------------------- power law with offset

def _power_offset_log_loss(theta, logs):
    a, e, alpha = theta
    return _lse(a - alpha * logs["x"], e)


POWER_OFFSET = ScalingForm(
    name="power-offset",
    inputs=("x",),
    params=("E", "A", "alpha"),
    coords=("a", "e", "alpha"),
    log_loss=_power_offset_log_loss,
    to_natural=lambda t: {"E": _exp(t[1]), "A": _exp(t[0]), "alpha": float(t[2])},
    from_natural=lambda p: np.array([math.log(p["A"]), math.log(p["E"]), p["alpha"]]),
    grid=((0.0, 5.0, 10.0, 15.0, 20.0, 25.0), (-1.0, -0.5, 0.0, 0.5, 1.0), (0.0, 0.5, 1.0, 1.5, 2.0)),
    equation="L = E + A x^-alpha",
    reference="power law with offset (e.g. Hestness et al. 2017, arXiv:1712.00409)",
)


# ---------------------------------------------------------------- data-constrained (Muennighoff et al. 2023)

def _data_constrained_log_loss(theta, logs):
    """``log L`` of the data-constrained law (Muennighoff et al. 2023, arXiv:2305.16264, eqs. 5-7).

    ``L = E + A / N'^alpha + B / D'^beta`` with effective data and parameters

    - ``R_D = max(D / U_D - 1, 0)`` (repetitions beyond the first epoch; ``U_D`` = unique tokens),
      ``D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D))``  (eq. 5);
    - ``U_N = min(N, N_opt(U_D))``: the parameters that ``U_D`` tokens can use compute-optimally,
      ``N_opt(D) = G (G D)^(beta/alpha)`` from the frontier ``N_opt = G (C/6)^a``,
      ``D_opt = G^-1 (C/6)^b`` with ``G = (alpha A / (beta B))^(1/(alpha+beta))``;
      ``R_N = max(N / U_N - 1, 0)`` (excess parameters),
      ``N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N))``  (eq. 6);
    - ``N' = N`` and ``D' = D`` without repetition or excess parameters, where it is Chinchilla.

    Fit coordinates ``(a, b, e, alpha, beta, log R*_D, log R*_N)``; the published C4 fit has
    ``R*_D = 15.4`` and ``R*_N = 5.3`` (their Section 6, with ``E, A, B, alpha = beta`` fitted
    beforehand to Chinchilla's C4 isoFLOP points and held fixed).
    """
    a, b, e, alpha, beta, log_rd, log_rn = theta
    rd_star, rn_star = jnp.exp(log_rd), jnp.exp(log_rn)
    log_g = (jnp.log(alpha) + a - jnp.log(beta) - b) / (alpha + beta)  # log G
    log_n_opt_u = log_g + (beta / alpha) * (log_g + logs["u"])  # log N_opt(U_D)
    log_un = jnp.minimum(logs["n"], log_n_opt_u)  # log U_N
    r_d = jnp.maximum(jnp.expm1(logs["d"] - logs["u"]), 0.0)  # (points,)
    r_n = jnp.maximum(jnp.expm1(logs["n"] - log_un), 0.0)
    log_d_eff = logs["u"] + jnp.log1p(-rd_star * jnp.expm1(-r_d / rd_star))  # log D'
    log_n_eff = log_un + jnp.log1p(-rn_star * jnp.expm1(-r_n / rn_star))  # log N'
    return _lse(a - alpha * log_n_eff, b - beta * log_d_eff, e)


def _dc_natural(theta):
    out = _chinchilla_natural(theta[:5])
    out.update(R_D=_exp(theta[5]), R_N=_exp(theta[6]))
    return out


DATA_CONSTRAINED = ScalingForm(
    name="data-constrained",
    inputs=("n", "d", "u"),
    params=("E", "A", "B", "alpha", "beta", "R_D", "R_N"),
    coords=("a", "b", "e", "alpha", "beta", "log_R_D", "log_R_N"),
    log_loss=_data_constrained_log_loss,
    to_natural=_dc_natural,
    from_natural=lambda p: np.concatenate([_chinchilla_coords(p), [math.log(p["R_D"]), math.log(p["R_N"])]]),
    # Exponents start away from 0 (N_opt(U_D) divides by alpha). log R* on 0, 1, ..., 8 (R* from 1 to
    # 3,000; the datablations table repeats its tokens up to 9,000 times): with E..beta held at the
    # published C4 values the objective has five basins within 0.14% of each other along a valley
    # R*_D ~ 15..160 (tests/test_fit_basins.py), whose basins of attraction interleave at a spacing of
    # ~0.5 in log R*; 16 of these 81 pairs descend to the lowest. The 81 pairs are dealt 4 times over
    # the 972 combinations of the other axes (ScalingForm.starts): 3,888 starts, as many as the former
    # 2 x 2 R* grid crossed with them, where 9 x 9 crossed would be 78,732.
    grid=(
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        (-1.0, 0.0, 1.0),
        (0.25, 0.5, 1.0),
        (0.25, 0.5, 1.0),
        tuple(float(v) for v in range(9)),
        tuple(float(v) for v in range(9)),
    ),
    dealt=("log_R_D", "log_R_N"),
    deal_rounds=4,
    equation="L = E + A/N'^alpha + B/D'^beta, D' = U_D(1 + R*_D(1 - e^(-R_D/R*_D))), N' likewise",
    reference="Muennighoff et al. 2023, arXiv:2305.16264 (eqs. 5-7)",
    frontier=True,
)


FORMS: dict[str, ScalingForm] = {
    f.name: f
    for f in (
        CHINCHILLA,
        _kaplan_single("n", "N_c", "alpha_N"),
        _kaplan_single("d", "D_c", "alpha_D"),
        KAPLAN_JOINT,
        POWER_OFFSET,
        DATA_CONSTRAINED,
    )
}


def get_form(name: str | ScalingForm) -> ScalingForm:
    """The form called ``name`` (a :class:`ScalingForm` is returned as it is)."""
    if isinstance(name, ScalingForm):
        return name
    if name not in FORMS:
        raise KeyError(f"form: must be one of {sorted(FORMS)}, got {name!r}")
    return FORMS[name]


def user_form(
    fn: Callable[[Mapping[str, jnp.ndarray], Mapping[str, jnp.ndarray]], jnp.ndarray],
    params: Sequence[str],
    inputs: Sequence[str],
    *,
    starts: Mapping[str, Sequence[float]] | None = None,
    name: str = "user",
) -> ScalingForm:
    """A form from a user callable ``fn(params, inputs) -> loss`` (natural scale, jax-traceable).

    ``params`` are the names ``fn`` reads from its first argument (fitted as they are, no
    transform), ``inputs`` the columns it reads from its second (``"n"``, ``"d"``, ``"u"``, ``"x"``).
    The fit minimises the Huber loss of ``log fn - log L`` like every other form; a start where
    ``fn`` is not positive gives a NaN objective and is discarded. ``starts`` maps each parameter
    to its starting values (default ``(0.1, 1.0, 10.0)`` each; the starts are their product).

    >>> f = user_form(lambda p, x: p["c"] * x["x"] ** -p["k"], ("c", "k"), ("x",))
    >>> float(predict(f, {"c": 2.0, "k": 1.0}, x=np.array([4.0]))[0])
    0.5
    """
    names = tuple(params)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"params: must be distinct non-empty names, got {params}")
    starts = dict(starts or {})
    unknown = set(starts) - set(names)
    if unknown:
        raise ValueError(f"starts: unknown parameters {sorted(unknown)}; allowed {names}")
    grid = tuple(tuple(float(v) for v in starts.get(p, (0.1, 1.0, 10.0))) for p in names)

    def log_loss(theta, logs):
        values = {p: theta[i] for i, p in enumerate(names)}
        return jnp.log(fn(values, {k: jnp.exp(v) for k, v in logs.items()}))

    return ScalingForm(
        name=name,
        inputs=tuple(inputs),
        params=names,
        coords=names,
        log_loss=log_loss,
        to_natural=lambda t: {p: float(t[i]) for i, p in enumerate(names)},
        from_natural=lambda p: np.array([p[k] for k in names], dtype=np.float64),
        grid=grid,
        equation="user-supplied",
        reference="user-supplied",
    )


def reduced_form(form: str | ScalingForm, fixed: Mapping[str, float]) -> tuple[ScalingForm, np.ndarray]:
    """``form`` with the natural parameters ``fixed`` held, over its free fit coordinates; and their indices.

    Only for parameters one-to-one with a fit coordinate (every built-in form's). Its ``params`` are
    the free ones; its ``to_natural`` gives every parameter, the held ones included. The held values
    are a float64 numpy array, set into ``theta`` inside ``log_loss`` (which the fitter calls with
    ``jax.enable_x64`` on), so a fixed fit stays float64 throughout. Forms are cached per
    ``(form, fixed)``, so that refitting reuses the compiled solver.
    """
    form = get_form(form)
    unknown = set(fixed) - set(form.params)
    if unknown:
        raise ValueError(f"fixed: unknown parameters {sorted(unknown)}; allowed {form.params}")
    items = tuple(sorted((str(k), float(v)) for k, v in fixed.items()))
    if not all(math.isfinite(v) for _, v in items):
        raise ValueError(f"fixed: values must be finite numbers, got {dict(items)}")
    return _reduced(form, items)


@functools.lru_cache(maxsize=32)
def _reduced(form: ScalingForm, fixed: tuple[tuple[str, float], ...]) -> tuple[ScalingForm, np.ndarray]:
    held_values = dict(fixed)
    shown = ", ".join(f"{k} = {v:g}" for k, v in held_values.items())
    verb = "is" if len(held_values) == 1 else "are"
    reference = {p: 1.0 for p in form.params} | held_values
    probe = {p: 2.0 for p in form.params} | held_values
    try:
        full = np.asarray(form.from_natural(reference), dtype=np.float64)  # (k,) the held coordinates' values
        held = np.asarray(form.from_natural(probe)) == full  # coordinates set by the fixed parameters alone
    except (ValueError, OverflowError, ZeroDivisionError) as exc:
        raise ValueError(f"fixed: {shown} {verb} outside the domain of the form {form.name!r} ({exc})") from None
    if held.sum() != len(fixed):
        raise ValueError(f"fixed: {', '.join(held_values)} {verb} not one-to-one with fit coordinates of the form "
                         f"{form.name!r}; only such parameters can be held")
    if not np.all(np.isfinite(full[held])):
        raise ValueError(f"fixed: {shown} {verb} outside the domain of the form {form.name!r} (a fit coordinate "
                         "is not finite)")
    free = np.flatnonzero(~held)
    if free.size == 0:
        raise ValueError(f"fixed: every parameter of the form {form.name!r} is fixed; leave at least one free")

    def log_loss(theta, logs):
        return form.log_loss(jnp.asarray(full, dtype=theta.dtype).at[free].set(theta), logs)

    def to_natural(theta):
        x = full.copy()
        x[free] = theta
        return form.to_natural(x) | held_values  # the held values as given (exp(log E) may differ by an ulp)

    reduced = ScalingForm(
        name=form.name, inputs=form.inputs, params=tuple(p for p in form.params if p not in held_values),
        coords=tuple(form.coords[i] for i in free), log_loss=log_loss, to_natural=to_natural,
        from_natural=lambda p: form.from_natural(reference | dict(p))[free],
        grid=tuple(form.grid[i] for i in free), equation=form.equation, reference=form.reference,
    )
    return reduced, free


def log_inputs(form: ScalingForm, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{name: log value}`` for the inputs ``form`` reads, float64 ``(points,)``, checked positive."""
    out = {}
    for key in form.inputs:
        if key not in inputs:
            raise ValueError(f"{key}: required by form {form.name!r} (inputs {form.inputs})")
        value = np.asarray(inputs[key], dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(value)) or np.any(value <= 0):
            raise ValueError(f"{key}: must be finite and > 0")
        out[key] = np.log(value)
    return out


def predict(form: str | ScalingForm, params: Mapping[str, float], **inputs) -> np.ndarray:
    """The form's loss ``L_hat`` (natural scale, float64) at ``inputs`` (arrays of one shape).

    >>> p = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    >>> round(float(predict("chinchilla", p, n=70e9, d=1.4e12)), 3)
    1.937
    """
    form = get_form(form)
    missing = set(form.params) - set(params)
    if missing:
        raise ValueError(f"params: missing {sorted(missing)} for form {form.name!r}")
    missing_inputs = set(form.inputs) - set(inputs)
    if missing_inputs:
        raise ValueError(f"{sorted(missing_inputs)[0]}: required by form {form.name!r} (inputs {form.inputs})")
    arrays = np.broadcast_arrays(*(np.asarray(inputs[k], dtype=np.float64) for k in form.inputs))
    logs = log_inputs(form, dict(zip(form.inputs, arrays)))
    with jax.enable_x64(True):
        theta = jnp.asarray(form.from_natural(params), dtype=jnp.float64)
        log_l = form.log_loss(theta, {k: jnp.asarray(v) for k, v in logs.items()})
        return np.exp(np.asarray(log_l)).reshape(arrays[0].shape)
