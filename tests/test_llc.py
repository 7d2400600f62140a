"""The SGLD estimator of the local learning coefficient (learnmech.observe.llc) against independent references.

- A quadratic loss ``L* + 1/2 (w - w*)^T A (w - w*)``: localised SGLD is the linear recursion
  ``x <- M x + sqrt(eps) xi``, ``M = I - eps/2 (nbeta A + gamma I)``, whose stationary covariance ``S`` solves
  the discrete Lyapunov equation ``S = M S M^T + eps I`` (scipy), so ``E[nbeta (L - L*)] = nbeta/2 tr(A S)``;
  as ``eps -> 0`` that is the Gaussian posterior's ``1/2 sum_i nbeta a_i / (nbeta a_i + gamma)``, and ``d/2``
  as ``gamma -> 0`` too (Lau et al. 2023, arXiv:2308.12108).
- Vectorised chains against a Python loop over chains and steps with numpy updates and scipy's Gaussian
  log-densities for the MALA acceptance, on the same keys.
- Minibatches: distinct indices within a step; unbiased gradient and loss (a linear loss's exact mean path).
- The probe inside ``learnmech.train.train`` against ``estimate_llc`` on the same parameters; an equinox model.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy.linalg import solve_discrete_lyapunov
from scipy.stats import norm

from learnmech.nets.mlp import MLP
from learnmech.observe.llc import estimate_llc, llc_probe
from learnmech.train import train
from learnmech.train.optimizers import OptimizerSpec

N_THEORY = 1000  # the n of nbeta = n / ln n; the data below are a stand-in of two examples
NBETA = N_THEORY / np.log(N_THEORY)
MC_SE = 4.0  # Monte Carlo tolerance: 4 standard errors of the mean over chains (the spread / sqrt(C))
EXACT = 1e-12  # the same float64 arithmetic in another order

_Q = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
A = _Q @ np.diag([0.5, 1.0, 2.0]) @ _Q.T  # (3, 3), a rotated SPD Hessian: the Lyapunov solve is not diagonal
W_STAR = np.array([0.3, -0.2, 0.1])
L_STAR = 0.25


def quadratic(params, x):
    """``L* + 1/2 (w - w*)^T A (w - w*)`` (``x``: ones, so the batch mean is 1 whatever the batch)."""
    v = params["w"] - W_STAR
    return (L_STAR + 0.5 * v @ jnp.asarray(A) @ v) * jnp.mean(x)


def lyapunov_llc(A, nbeta, gamma, step):
    """``nbeta/2 tr(A S)``, ``S = M S M^T + eps I``: the stationary mean of SGLD with a finite step."""
    d = A.shape[0]
    M = np.eye(d) - 0.5 * step * (nbeta * A + gamma * np.eye(d))
    return 0.5 * nbeta * np.trace(A @ solve_discrete_lyapunov(M, step * np.eye(d)))


def gaussian_llc(A, nbeta, gamma):
    """The step -> 0 limit: the localised posterior is Gaussian with precision ``nbeta A + gamma I``."""
    a = np.linalg.eigvalsh(A)
    return 0.5 * np.sum(nbeta * a / (nbeta * a + gamma))


@pytest.mark.parametrize("gamma, step, chains, draws, burn_in", [(100.0, 1e-3, 512, 500, 100),
                                                                 (0.0, 2e-4, 1024, 3000, 500)])
def test_quadratic_matches_the_lyapunov_stationary_value(gamma, step, chains, draws, burn_in):
    est = estimate_llc(quadratic, {"w": jnp.asarray(W_STAR)}, jnp.ones(2), key=jax.random.key(1), n=N_THEORY,
                       gamma=gamma, step=step, chains=chains, draws=draws, burn_in=burn_in)
    # the burn-in leaves a transient of |M|^(2 burn_in) <= 2e-3 of the slowest mode, well inside the MC band
    exact = lyapunov_llc(A, NBETA, gamma, step)
    se = float(est.stderr)
    np.testing.assert_allclose(float(est.nbeta), NBETA, rtol=1e-14)
    np.testing.assert_allclose(float(est.loss_star), L_STAR, rtol=1e-14)
    assert abs(float(est.llc) - exact) < MC_SE * se, (float(est.llc), exact, se)
    np.testing.assert_allclose(float(est.spread), np.std(np.asarray(est.per_chain), ddof=1), rtol=1e-12)
    if gamma > 0:  # the finite step matters here: the Gaussian value lies outside the band
        assert abs(gaussian_llc(A, NBETA, gamma) - exact) > 2 * MC_SE * se
    else:  # gamma -> 0, step -> 0: d/2 (the step's bias, 1 / (1 - eps p/4) - 1 <= 1.5%, inside 0.05)
        assert abs(float(est.llc) - 1.5) < 0.05


def tiny_net(params, batch):
    x, y = batch
    return jnp.mean((jnp.tanh(x @ params["w"]) @ params["v"] - y) ** 2)


_TINY_VALUE_GRAD = jax.jit(jax.value_and_grad(tiny_net))


def _loop_reference(params_star, data, key, *, nbeta, gamma, step, chains, draws, batch_size):
    """The same update chain by chain, step by step: numpy arithmetic, scipy log-densities, the same keys."""
    w_star, unravel = ravel_pytree(params_star)
    w_star = np.asarray(w_star)
    n_data = data[0].shape[0]

    def value_grad(w, batch):
        L, g = _TINY_VALUE_GRAD(unravel(jnp.asarray(w)), batch)
        return float(L), np.asarray(ravel_pytree(g)[0])

    def log_target(w, L):
        return -nbeta * L - 0.5 * gamma * np.sum((w - w_star) ** 2)

    def mean_of_proposal(w, g):
        return w - 0.5 * step * (nbeta * g + gamma * (w - w_star))

    traces, accepts = np.zeros((chains, draws)), np.zeros((chains, draws))
    step_keys = jax.vmap(lambda k: jax.random.split(k, draws))(jax.random.split(key, chains))  # (C, T)
    noise_keys, batch_keys = jnp.moveaxis(jax.vmap(jax.vmap(jax.random.split))(step_keys), 2, 0)  # (C, T) each
    xi = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.normal(k, w_star.shape, w_star.dtype)))(noise_keys))
    if batch_size is not None:  # (C, T, b) the step's indices, drawn as the estimator is specified to draw them
        indices = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.choice(k, n_data, (batch_size,),
                                                                           replace=False)))(batch_keys))
    for c in range(chains):
        w = w_star.copy()
        for t in range(draws):
            batch = data if batch_size is None else tuple(np.asarray(a)[indices[c, t]] for a in data)
            L, g = value_grad(w, batch)
            w2 = mean_of_proposal(w, g) + np.sqrt(step) * xi[c, t]
            L2, g2 = value_grad(w2, batch)
            log_r = (log_target(w2, L2) + norm.logpdf(w, mean_of_proposal(w2, g2), np.sqrt(step)).sum()
                     - log_target(w, L) - norm.logpdf(w2, mean_of_proposal(w, g), np.sqrt(step)).sum())
            traces[c, t], accepts[c, t] = L, min(1.0, np.exp(log_r))
            w = w2
    return traces, accepts


@pytest.mark.parametrize("batch_size", [None, 5])
def test_vectorised_chains_equal_a_loop_over_chains(batch_size):
    rng = np.random.default_rng(2)
    data = (jnp.asarray(rng.normal(size=(8, 2))), jnp.asarray(rng.normal(size=8)))
    params = {"w": jnp.asarray(rng.normal(size=(2, 3))), "v": jnp.asarray(rng.normal(size=3))}
    settings = dict(gamma=50.0, step=2e-3, chains=3, draws=12, batch_size=batch_size)
    key = jax.random.key(3)
    est = estimate_llc(tiny_net, params, data, key=key, burn_in=2, **settings)
    nbeta = 8 / np.log(8)
    traces, accepts = _loop_reference(params, data, key, nbeta=nbeta, **settings)
    np.testing.assert_allclose(np.asarray(est.trace), traces, rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(np.asarray(est.acceptance), accepts[:, 2:].mean(1), rtol=1e-10)
    loss_star = float(tiny_net(params, data))
    np.testing.assert_allclose(np.asarray(est.per_chain), nbeta * (traces[:, 2:].mean(1) - loss_star), rtol=1e-10)
    assert 0.0 < accepts.min() and accepts.mean() < 1.0  # a step where the acceptance is informative


def test_batch_of_every_example_equals_full_batch():
    """With ``b = n`` a step's batch is a permutation of the data: the same chain as full batch, same keys."""
    kw = dict(key=jax.random.key(4), n=N_THEORY, gamma=10.0, step=1e-3, chains=2, draws=30)
    full = estimate_llc(quadratic, {"w": jnp.asarray(W_STAR)}, jnp.ones(6), **kw)
    mini = estimate_llc(quadratic, {"w": jnp.asarray(W_STAR)}, jnp.ones(6), batch_size=6, **kw)
    np.testing.assert_allclose(np.asarray(mini.trace), np.asarray(full.trace), rtol=EXACT)
    np.testing.assert_allclose(np.asarray(mini.acceptance), np.asarray(full.acceptance), rtol=1e-10)


def test_minibatches_are_drawn_without_replacement():
    def largest_multiplicity(params, one_hot):  # (b, n): the largest count of one example in the batch
        return jnp.max(jnp.sum(one_hot, axis=0)) + 0.0 * jnp.sum(params)

    est = estimate_llc(largest_multiplicity, jnp.zeros(1), jnp.eye(10), key=jax.random.key(5), batch_size=7,
                       chains=4, draws=50)
    np.testing.assert_array_equal(np.asarray(est.trace), 1.0)


def test_minibatch_gradient_and_loss_are_unbiased():
    """A linear loss ``mean_i x_i . w``: ``E[w_t]`` follows the full-batch mean path
    ``m <- m - eps/2 (nbeta xbar + gamma (m - w*))`` and ``E[L_B(w_t)] = xbar . E[w_t]``."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(12, 2))
    gamma, step, draws, chains = 20.0, 2e-3, 40, 2000
    est = estimate_llc(lambda w, xb: jnp.mean(xb @ w), jnp.zeros(2), jnp.asarray(x), key=jax.random.key(7),
                       n=N_THEORY, gamma=gamma, step=step, chains=chains, draws=draws, batch_size=3)
    m, expected = np.zeros(2), []
    for _ in range(draws):
        expected.append(x.mean(0) @ m)
        m = m - 0.5 * step * (NBETA * x.mean(0) + gamma * m)
    trace = np.asarray(est.trace)  # (chains, draws)
    se = trace.std(0, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(trace.mean(0) - np.array(expected)) < MC_SE * se + 1e-15)
    assert abs(expected[-1]) > 20 * se[-1]  # the drift is resolved: a biased gradient would show


def mala_acceptance_at_stationarity(eps_p, samples=200_000, seed=13):
    """Monte Carlo of ``E[min(1, r)]`` for SGLD on ``U(x) = x^2 / 2`` (units of the precision ``p``) from the
    SGLD's own stationary law ``N(0, 1 / (1 - eps p / 4))``: ``x' = (1 - eps p / 2) x + sqrt(eps p) xi``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=samples) / np.sqrt(1 - eps_p / 4)
    x2 = (1 - eps_p / 2) * x + np.sqrt(eps_p) * rng.normal(size=samples)
    log_r = (0.5 * x ** 2 - 0.5 * x2 ** 2 + norm.logpdf(x, (1 - eps_p / 2) * x2, np.sqrt(eps_p))
             - norm.logpdf(x2, (1 - eps_p / 2) * x, np.sqrt(eps_p)))
    return np.mean(np.minimum(1.0, np.exp(log_r)))


def test_runaway_and_acceptance_diagnostics():
    one_d = lambda w, x: 0.5 * jnp.mean(x) * jnp.sum(w ** 2)  # noqa: E731  a = 1, precision p = nbeta + gamma
    p = NBETA + 1.0

    def run(loss, step):
        return estimate_llc(loss, jnp.zeros(1), jnp.ones(2), key=jax.random.key(8), n=N_THEORY, gamma=1.0,
                            step=step, chains=16, draws=200, burn_in=40)

    tiny, large, too_large = (run(one_d, s / p) for s in (1e-3, 3.0, 5.0))  # eps p; stable below 4
    assert float(tiny.acceptance.min()) > 0.99 and not bool(tiny.runaway.any())
    assert not bool(large.runaway.any())
    # 16 chains x 160 kept steps, nearly independent at eps p = 3 (|M| = 0.5): the MC error is ~0.006
    assert abs(float(large.acceptance.mean()) - mala_acceptance_at_stationarity(3.0)) < 0.03
    assert bool(too_large.runaway.all())  # |1 - eps p / 2| = 1.5: the chain blows up
    # a maximum of the loss: nbeta a > gamma, the loss falls without bound yet stays finite over 200 draws
    falling = run(lambda w, x: -one_d(w, x), 1e-3)
    assert bool(jnp.all(jnp.isfinite(falling.trace))) and bool(falling.runaway.all())
    # the top of a double well (w^2 - 1)^2: the chains fall into a well within the burn-in and stay there,
    # stationary, at an excess of -1 per draw; their estimate (~ -nbeta) is below -d/2 and flags them
    well = lambda w, x: jnp.mean(x) * jnp.sum((w ** 2 - 1.0) ** 2)  # noqa: E731
    settled = run(well, 1e-3)
    assert bool(jnp.all(jnp.isfinite(settled.trace))) and bool(settled.runaway.all())
    assert float(jnp.max(settled.per_chain)) < -0.5 * NBETA


def test_probe_in_the_trainer_equals_estimate_llc_on_the_same_parameters():
    net = MLP((2, 4, 1), activation="tanh", dtype="float64")
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(16, 2)))
    data = (x, jnp.sin(x[:, :1]))

    def loss(params, batch):
        return 0.5 * jnp.mean((net.apply(params, batch[0]) - batch[1]) ** 2)

    settings = dict(key=jax.random.key(10), gamma=30.0, step=1e-3, chains=3, draws=20, burn_in=5)
    starts = [net.init(jax.random.key(s)) for s in (0, 1)]
    result = train(params0=jax.tree.map(lambda *a: jnp.stack(a), *starts), loss=loss, data=data, seeds=[0, 1],
                   optimizer=OptimizerSpec("sgd", {"learning_rate": 0.1}), steps=[0, 15],
                   probes=[probe := llc_probe(loss, steps=[0, 15], **settings)])
    assert probe.map_from == 0  # members mapped at every size (measured in llc_probe's docstring)
    series = result.probes["llc"]
    np.testing.assert_array_equal(series.steps, [0, 15])
    assert set(result.probes) == {"llc", "llc_spread", "llc_runaway", "llc_acceptance"}
    for member in range(2):
        final = jax.tree.map(lambda a: a[member], result.params)
        for t, params in ((0, starts[member]), (1, final)):
            est = estimate_llc(loss, params, data, **settings)
            np.testing.assert_allclose(series.values[member, t], float(est.llc), rtol=1e-10)
            np.testing.assert_allclose(result.probes["llc_spread"].values[member, t], float(est.spread), rtol=1e-9)
            np.testing.assert_allclose(result.probes["llc_acceptance"].values[member, t],
                                       float(est.acceptance.mean()), rtol=1e-10)


def test_equinox_linear_regression_at_its_least_squares_solution():
    """``eqx.nn.Linear(2, 1)`` under squared loss is quadratic with Hessian ``A = [X 1]^T [X 1] / n``."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 2))
    y = X @ np.array([1.0, -2.0]) + 0.5 + 0.1 * rng.normal(size=40)
    design = np.hstack([X, np.ones((40, 1))])  # (n, 3)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    model = eqx.nn.Linear(2, 1, key=jax.random.key(0))
    model = eqx.tree_at(lambda m: (m.weight, m.bias), model, (jnp.asarray(coef[None, :2]), jnp.asarray(coef[2:])))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((jax.vmap(eqx.combine(p, static))(xb)[:, 0] - yb) ** 2)

    gamma, step = 10.0, 1e-3
    est = estimate_llc(loss, params, (jnp.asarray(X), jnp.asarray(y)), key=jax.random.key(12), n=N_THEORY,
                       gamma=gamma, step=step, chains=128, draws=300, burn_in=100)
    exact = lyapunov_llc(design.T @ design / 40, NBETA, gamma, step)
    assert abs(float(est.llc) - exact) < MC_SE * float(est.stderr), (float(est.llc), exact)


@pytest.mark.parametrize("field, value", [("chains", 0), ("draws", 0), ("step", 0.0), ("gamma", -1.0),
                                          ("beta", 0.0), ("burn_in", 10), ("batch_size", 11), ("batch_size", 0),
                                          ("n", 1), ("runaway_ratio", float("nan")), ("draws", 2**25)])
def test_bad_settings_raise_one_line_naming_the_field(field, value):
    kw = {"key": jax.random.key(0), "draws": 10, field: value, **({"chains": 2} if value == 2**25 else {})}
    with pytest.raises(ValueError, match=f"^{field}:"):
        estimate_llc(quadratic, {"w": jnp.asarray(W_STAR)}, jnp.ones(10), **kw)
    if field not in ("batch_size",) or value == 0:  # the data-dependent bound is checked when the probe runs
        with pytest.raises(ValueError, match=f"^{field}:"):
            llc_probe(quadratic, every=1, **kw)
