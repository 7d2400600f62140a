"""Every estimator of ``learnmech.fit`` keeps scikit-learn's contract (in the spirit of ``check_estimator``).

The estimators are discovered from ``learnmech.fit.__all__`` (every class with a ``fit``), so a new
one is checked as soon as it is exported; ``EXPECTED`` makes a silent skip impossible. Each has a
small data set built from its own theory form with known parameters (``CASES``), and the checks:

1. the constructor stores its parameters unchanged (any object, no validation) and ``get_params``
   returns them; ``set_params`` sets them;
2. ``sklearn.base.clone`` round-trips: same parameters, no fitted attribute;
3. ``fit`` returns ``self``; it sets attributes ending in ``_`` (and only those), which the unfitted
   estimator has none of; and the fit recovers the known parameters (tolerance on each case's line);
4. ``fit`` leaves its input arrays as they were;
5. a refit on the same data is bitwise identical (fixed seeds);
6. bad input (wrong shape, NaN where not allowed, too few points) is one ValueError on one line
   that names the argument.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
import re
from typing import Callable, NamedTuple

import numpy as np
import pytest
from sklearn.base import clone

import learnmech.fit as fit
from learnmech.theory.batch_tradeoff import steps_hyperbola
from learnmech.theory.parameterization import get_parameterization
from learnmech.theory.scaling_forms import get_form, predict
from learnmech.theory.scaling_frontier import compute_optimal

EXPECTED = {"IsoflopLaw", "LearningRateTransfer", "PowerLaw", "ScalingLaw", "StepsHyperbola"}
CHINCHILLA = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}  # a Chinchilla-form law


def estimator_classes() -> dict[str, type]:
    objects = {name: getattr(fit, name) for name in fit.__all__}
    return {name: obj for name, obj in objects.items() if inspect.isclass(obj) and hasattr(obj, "fit")}


class Case(NamedTuple):
    params: dict  # non-default settings the checks construct with
    data: Callable[[], tuple]  # the positional arguments of fit, built from the theory form
    recovers: Callable  # (fitted estimator) -> None: asserts the known parameters come back
    bad: tuple  # (what, fit arguments, argument the message must name)


# ------------------------------------------------------------------ the cases


def _scaling_table(rows: int = 25) -> tuple:
    n, d = np.repeat(np.logspace(7, 9, 5), 5), np.tile(np.logspace(9, 11, 5), 5)  # (25,) 5 x 5 design
    return ({"n": n[:rows], "d": d[:rows], "loss": predict("chinchilla", CHINCHILLA, n=n, d=d)[:rows]},)


def _scaling_recovers(law) -> None:
    for name, value in CHINCHILLA.items():  # noise-free data: the optimum is the law (3e-15 measured; 1e-9 allowed)
        assert law.params_[name] == pytest.approx(value, rel=1e-9), name
        assert law.ci_[name] == pytest.approx((value, value), rel=1e-9), name  # every resample has that optimum


def _scaling_bad() -> tuple:
    (table,) = _scaling_table()
    return (
        ("wrong shape", (dict(table, d=table["d"][:-1]),), "d"),
        ("NaN", (dict(table, loss=np.where(np.arange(25) == 3, np.nan, table["loss"])),), "loss"),
        ("too few points", _scaling_table(rows=5), "loss"),  # 5 parameters need 6 runs
    )


def _isoflop_data(budgets: int = 6) -> tuple:
    flops = np.repeat(np.geomspace(1e18, 1e21, budgets), 15)  # (G * 15,)
    n_opt, _ = compute_optimal(CHINCHILLA, flops)  # the theory's frontier N*(C)
    n = n_opt * np.exp(np.tile(np.linspace(-1.5, 1.5, 15), budgets))  # 15 sizes around N* per budget
    return flops, n, predict("chinchilla", CHINCHILLA, n=n, d=flops / (6 * n))


def _isoflop_recovers(law) -> None:
    a = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])  # N* ~ C^a (Hoffmann et al. eq. 4)
    # Noise-free profiles: L - E = C^(-alpha beta / (alpha + beta)) f(log(N / N*)) has the same shape at every
    # budget, so the parabola misplaces every vertex by one factor (0.11% at window 2, measured) and the
    # exponent is exact up to rounding (1e-12).
    assert law.a_ == pytest.approx(a, abs=1e-12)
    np.testing.assert_allclose(law.optima_.n_star, compute_optimal(CHINCHILLA, law.optima_.flops)[0], rtol=2e-3)
    assert law.ci_[0] <= law.a_ <= law.ci_[1]


def _isoflop_bad() -> tuple:
    flops, n, loss = _isoflop_data()
    return (
        ("wrong shape", (flops, n[:-1], loss), "n"),
        ("NaN", (flops, n, np.where(np.arange(loss.size) == 7, np.nan, loss)), "loss"),
        ("too few points", (flops[:2], n[:2], loss[:2]), "flops"),
    )


LRS = 2.0 ** np.arange(-12, -2)  # (10,) learning rates
WIDTHS = np.array([64.0, 128.0, 256.0, 512.0])
SP_SLOPE = -get_parameterization("mup-adam").rows["hidden"].c  # SP + Adam: eta* ~ width^-c, c = 1 (muP's hidden c)
ETA0_LOG2 = -5.0  # log2 eta* at width 64


def _transfer_data(lrs=LRS) -> tuple:
    vertex = ETA0_LOG2 + SP_SLOPE * np.log2(WIDTHS / 64)  # (W,) log2 eta*
    log_loss = 0.3 * (np.log2(lrs)[None, :] - vertex[:, None]) ** 2  # (W, K) an exact parabola in log2 eta
    seeds = 1.0 + 0.1 * np.arange(3)  # (3,) a seed scales the loss and leaves eta* in place
    return WIDTHS, lrs, np.exp(log_loss)[:, :, None] * seeds  # losses (W, K, seeds)


def _transfer_recovers(est) -> None:
    # exact parabolas in (log2 eta, log L): the vertex formula is exact, up to rounding (1e-12)
    assert est.slope_ == pytest.approx(SP_SLOPE, abs=1e-12)
    assert est.intercept_ == pytest.approx(ETA0_LOG2 - SP_SLOPE * 6, abs=1e-11)
    assert est.predict(1024.0) == pytest.approx(2.0 ** (ETA0_LOG2 + SP_SLOPE * 4), rel=1e-11)


def _transfer_bad() -> tuple:
    widths, lrs, losses = _transfer_data()
    return (
        ("wrong shape", (widths, lrs, losses[:, :, 0]), "losses"),
        ("NaN", (np.array([64.0, np.nan, 256.0, 512.0]), lrs, losses), "widths"),  # NaN losses are diverged runs
        ("too few points", _transfer_data(lrs=LRS[:2]), "learning_rates"),
    )


BATCHES = 2.0 ** np.arange(11)  # (11,) 1 .. 1024
S_MIN, B_NOISE, N_TRAIN = 7.3, 42.0, 4096


def _steps_recovers(est) -> None:
    # exact hyperbola: Brent to 1e-10 in log B_noise, so both parameters to 1e-6 relative
    assert est.s_min_ == pytest.approx(S_MIN, rel=1e-6) and est.b_noise_ == pytest.approx(B_NOISE, rel=1e-6)
    assert est.e_min_ == pytest.approx(S_MIN * B_NOISE, rel=2e-6) and est.rms_ < 1e-8


def _steps_bad() -> tuple:
    steps = steps_hyperbola(BATCHES, S_MIN, B_NOISE, N_TRAIN)
    return (
        ("wrong shape", (BATCHES, steps[:-1]), "steps"),
        ("NaN", (BATCHES, np.where(np.arange(11) == 4, np.nan, steps)), "steps"),
        ("too few points", (BATCHES[:1], steps[:1]), "batch"),
    )


RANKS = np.arange(1.0, 301.0)  # (300,)


def _power_recovers(est) -> None:
    # an exact power law: least squares in log-log is exact up to rounding (1e-12)
    assert est.exponent_ == pytest.approx(1.3, abs=1e-12)
    assert math.exp(est.log_prefactor_) == pytest.approx(2.5, rel=1e-12)
    assert est.n_points_ == 196 and est.r2_ == pytest.approx(1.0, abs=1e-12)


def _power_bad() -> tuple:
    values = 2.5 * RANKS**-1.3
    return (
        ("wrong shape", (values.reshape(30, 10),), "values"),
        ("NaN", (np.where(RANKS == 50, np.nan, values),), "values"),
        ("too few points", (values[:1],), "values"),
    )


CASES = {
    "ScalingLaw": Case(
        # 100 of the 4,500 starts of the Hoffmann grid (the search is the same; the full grid costs ~10 s)
        params={"starts": get_form("chinchilla").starts()[::45], "n_bootstrap": 8, "seed": 3},
        data=_scaling_table, recovers=_scaling_recovers, bad=_scaling_bad()),
    "IsoflopLaw": Case(params={"n_boot": 50, "seed": 5, "window": 2.0}, data=_isoflop_data,
                       recovers=_isoflop_recovers, bad=_isoflop_bad()),
    "LearningRateTransfer": Case(params={}, data=_transfer_data, recovers=_transfer_recovers, bad=_transfer_bad()),
    "StepsHyperbola": Case(params={"n_train": N_TRAIN},
                           data=lambda: (BATCHES, steps_hyperbola(BATCHES, S_MIN, B_NOISE, N_TRAIN)),
                           recovers=_steps_recovers, bad=_steps_bad()),
    "PowerLaw": Case(params={"k_min": 5, "k_max": 200}, data=lambda: (2.5 * RANKS**-1.3,), recovers=_power_recovers,
                     bad=_power_bad()),
}
NAMES = sorted(estimator_classes())


# ------------------------------------------------------------------ helpers


def _fitted_attributes(est) -> dict:
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


def _same(a, b) -> bool:
    """Bitwise equality of fitted results: arrays, floats (NaN equal to NaN), dicts, tuples, dataclasses."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, float, np.floating)):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return type(a) is type(b) and a == b


@functools.cache
def _fit_once(name: str):
    """One fit per estimator, shared by the checks: ``(estimator, data, copy of the data taken before)``."""
    data = CASES[name].data()
    before = copy.deepcopy(data)
    est = estimator_classes()[name](**CASES[name].params)
    returned = est.fit(*data)
    assert returned is est, f"{name}.fit must return self"
    return est, data, before


# ------------------------------------------------------------------ the checks


def test_every_exported_estimator_is_checked():
    assert set(NAMES) == EXPECTED and set(CASES) == EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_constructor_only_stores_parameters(name):
    cls = estimator_classes()[name]
    signature = inspect.signature(cls.__init__)
    names = [] if cls.__init__ is object.__init__ else [p for p in signature.parameters if p != "self"]  # no settings
    assert all(signature.parameters[p].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
               for p in names), "no *args / **kwargs: get_params cannot see them"
    defaults = {p: signature.parameters[p].default for p in names}
    assert cls().get_params() == defaults
    anything = {p: object() for p in names}  # no validation in the constructor: any object is stored as given
    got = cls(**anything).get_params()
    assert got.keys() == anything.keys() and all(got[p] is anything[p] for p in names)
    est = cls()
    params = CASES[name].params
    assert est.set_params(**params) is est and all(est.get_params()[p] is v for p, v in params.items())
    assert not _fitted_attributes(est)


@pytest.mark.parametrize("name", NAMES)
def test_clone_round_trips_unfitted(name):
    est, _, _ = _fit_once(name)
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert _same(twin.get_params(), est.get_params())
    assert not _fitted_attributes(twin)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_sets_underscored_attributes_and_recovers_the_law(name):
    est, _, _ = _fit_once(name)
    unfitted = estimator_classes()[name](**CASES[name].params)
    assert not _fitted_attributes(unfitted)
    added = set(vars(est)) - set(vars(unfitted))
    assert added and all(k.endswith("_") for k in added), f"fit may only add attributes ending in _: {sorted(added)}"
    CASES[name].recovers(est)


@pytest.mark.parametrize("name", NAMES)
def test_fit_does_not_mutate_its_input(name):
    _, data, before = _fit_once(name)
    assert _same(data, before)


@pytest.mark.parametrize("name", NAMES)
def test_refit_is_bitwise_deterministic(name):
    est, data, _ = _fit_once(name)
    again = clone(est).fit(*data)
    first, second = _fitted_attributes(est), _fitted_attributes(again)
    assert first.keys() == second.keys()
    for key in first:
        assert _same(first[key], second[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_value_error_naming_the_argument(name):
    cls = estimator_classes()[name]
    assert {what for what, _, _ in CASES[name].bad} == {"wrong shape", "NaN", "too few points"}
    for what, args, argument in CASES[name].bad:
        with pytest.raises(ValueError) as info:
            cls(**CASES[name].params).fit(*args)
        message = str(info.value)
        assert re.search(rf"\b{argument}\b", message), f"{what}: {message!r} does not name {argument!r}"
        assert "\n" not in message, f"{what}: one line, got {message!r}"
