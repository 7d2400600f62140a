"""Models (nets/): the SP/NTK/muP table, its Monte Carlo consequences, and deep linear networks.

Expected numbers come from the parameterisation docstring (Yang & Hu 2021, arXiv:2011.14522;
Yang et al. 2022, arXiv:2203.03466, Table 3), written out here independently of the code's
exponent table, from Gaussian closed forms (the erf kernel of Williams 1997) and from numpy.
Monte Carlo tolerances are 5 standard errors, computed on the line.
"""

import jax
import numpy as np
import pytest

from learnmech.nets import MLP, PARAMETERIZATIONS, DeepLinear, end_to_end, layer_scalings

SIGMA = 1.5  # a non-unit weight scale, so that sigma is checked as well
BIG = (64, 2048, 2048, 256)  # input, hidden, output layers; shapes shared with the tests below
BASE = 512  # muP base width for BIG: m = 2048 / 512 = 4


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def _expected_init_std(parameterization, widths, base):
    """Init std per layer from the module docstring: sp/mup N(0, s^2/fan_in), ntk N(0, 1),
    muP output layer variance s^2 / (fan_in m) (the 1/fan_in^2 rule relative to the base)."""
    m = widths[1] / base
    fans = widths[:-1]
    if parameterization == "ntk":
        return [1.0] * len(fans)
    std = [SIGMA / np.sqrt(f) for f in fans]
    if parameterization.startswith("mup"):
        std[-1] = SIGMA / np.sqrt(fans[-1] * m)
    return std


@pytest.mark.parametrize("parameterization", ["sp", "ntk", "mup-adam", "mup-sgd"])
def test_init_std_by_monte_carlo(parameterization):
    model = MLP(BIG, parameterization=parameterization, base_width=BASE, sigma=SIGMA, dtype="float64")
    params = _np(model.init(jax.random.key(0)))
    for layer, std in zip(params, _expected_init_std(parameterization, BIG, BASE)):
        w = layer["w"]
        n = w.size
        # sample std of n iid normals: relative standard error 1/sqrt(2n) (<= 0.2% here)
        assert abs(w.std() / std - 1) < 5 / np.sqrt(2 * n), (parameterization, w.shape, w.std(), std)
        assert abs(w.mean()) < 5 * std / np.sqrt(n)  # zero mean
        np.testing.assert_array_equal(layer["b"], 0.0)  # biases start at zero


def test_mup_output_init_variance_scales_as_inverse_fan_in_squared():
    # muP at fixed base: var(W_out) = sigma^2 base / fan_in^2; two widths give the log-log slope.
    variances, sp_variances = [], []
    for widths in [(64, BASE, 256), (64, 2048, 256)]:  # fan_in of the output layer: 512, 2048
        mup = MLP(widths, parameterization="mup-adam", base_width=BASE, sigma=SIGMA, dtype="float64")
        sp = MLP(widths, parameterization="sp", sigma=SIGMA, dtype="float64")
        variances.append(np.var(np.asarray(mup.init(jax.random.key(1))[-1]["w"])))
        sp_variances.append(np.var(np.asarray(sp.init(jax.random.key(1))[-1]["w"])))
    log_ratio = np.log(2048 / BASE)
    slope = np.log(variances[1] / variances[0]) / log_ratio
    sp_slope = np.log(sp_variances[1] / sp_variances[0]) / log_ratio
    # each variance has relative s.e. sqrt(2/n) <= 0.9% (n = 512 * 256); slope s.e. <= 0.013/1.39
    assert abs(slope + 2) < 0.05, slope
    assert abs(sp_slope + 1) < 0.05, sp_slope  # SP: 1/fan_in
    np.testing.assert_allclose(variances[0], SIGMA**2 / BASE, rtol=5 * np.sqrt(2 / (BASE * 256)))  # m = 1


def test_mup_at_its_base_width_is_sp():
    widths = (7, 32, 32, 3)
    sp = layer_scalings(widths, "sp", sigma=SIGMA)
    for name in ("mup-adam", "mup-sgd", "mean-field"):  # m = 1: identical init, multipliers and learning rates
        assert layer_scalings(widths, name, sigma=SIGMA) == sp
        assert layer_scalings(widths, name, base_width=32, sigma=SIGMA) == sp


def _erf_second_moment(q):
    """E[erf(h)^2] for h ~ N(0, q): (2/pi) arcsin(2q / (1 + 2q)) (Williams 1997)."""
    return 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q))


@pytest.mark.parametrize("activation", ["erf", "linear"])
@pytest.mark.parametrize("parameterization", ["sp", "ntk"])
def test_output_variance_at_init_matches_closed_form(parameterization, activation):
    widths = (64, 2048, 256)  # one hidden layer of width 2048
    model = MLP(widths, activation=activation, parameterization=parameterization,
                sigma=SIGMA, bias=False, dtype="float64")
    params = model.init(jax.random.key(2 if parameterization == "sp" else 3))
    x = np.sqrt(64) * np.eye(64)  # (64, 64) inputs with ||x||^2 = d_in: pre-activations are iid N(0, sigma^2)
    f = np.asarray(model.apply(params, x))  # (64, 256)
    q = SIGMA**2  # Var h = sigma^2 ||x||^2 / d_in, for SP and (via 1/sqrt(fan_in)) for NTK alike
    second = _erf_second_moment(q) if activation == "erf" else q
    expected = SIGMA**2 * second  # E f^2 = sigma^2 E[phi(h)^2]
    # 16384 outputs, uncorrelated across inputs (orthogonal x, odd phi) and units: s.e. sqrt(2/16384) = 1.1%
    assert abs(np.mean(f**2) / expected - 1) < 5 * np.sqrt(2 / f.size), (np.mean(f**2), expected)


def test_ntk_and_sp_give_identical_outputs_from_one_key():
    # w_ntk = g with multiplier sigma/sqrt(fan_in) vs w_sp = sigma g / sqrt(fan_in): the same function.
    x = np.random.default_rng(0).standard_normal((5, 64))
    outs = []
    for name in ("sp", "ntk"):
        model = MLP((64, 2048, 256), activation="erf", parameterization=name, sigma=SIGMA, dtype="float64")
        outs.append(np.asarray(model.apply(model.init(jax.random.key(4)), x)))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-12, atol=1e-13)  # float64 rounding only


def test_forward_pass_matches_numpy():
    widths = (3, 6, 5, 2)
    model = MLP(widths, activation="tanh", parameterization="ntk", sigma=SIGMA, dtype="float64")
    rng = np.random.default_rng(1)
    params = [{"w": rng.standard_normal((a, b)), "b": rng.standard_normal(b)} for a, b in zip(widths[:-1], widths[1:])]
    x = rng.standard_normal((4, 3))
    z = x
    for i, layer in enumerate(params):  # h = (sigma/sqrt(fan_in)) z w + b; tanh on hidden layers only
        h = SIGMA * (z @ layer["w"]) / np.sqrt(widths[i]) + layer["b"]
        z = np.tanh(h) if i < len(params) - 1 else h
    np.testing.assert_allclose(np.asarray(model.apply(params, x)), z, rtol=1e-13)
    acts = model.activations(params, x)
    assert [a.shape for a in acts] == [(4, 6), (4, 5), (4, 2)]
    np.testing.assert_allclose(np.asarray(acts[-1]), z, rtol=1e-13)


def test_mup_learning_rate_multipliers_per_layer_kind():
    widths, base = (10, 128, 128, 128, 3), 32
    m = 128 / base
    # TP-V Table 3: Adam  w: input eta, hidden eta/m, output eta/m; biases eta
    #               SGD   w: input eta m, hidden eta, output eta/m; biases eta m (width-sized) / eta (output)
    expected = {
        "sp": ([1, 1, 1, 1], [1, 1, 1, 1]),
        "ntk": ([1, 1, 1, 1], [1, 1, 1, 1]),
        "mup-adam": ([1, 1 / m, 1 / m, 1 / m], [1, 1, 1, 1]),
        "mup-sgd": ([m, 1, 1, 1 / m], [m, m, m, 1]),
        "mean-field": ([m, m, m, m], [m, m, m, 1]),  # TP-IV: eta n on every tensor, with 1/sqrt(n), 1/n multipliers
    }
    # forward multipliers relative to the base: 1/sqrt(fan_in) for NTK; m^{-1/2} (hidden), m^{-1} (output) for mean-field
    forward = {"ntk": [w ** -0.5 for w in widths[:-1]], "mean-field": [1, m ** -0.5, m ** -0.5, 1 / m]}
    assert set(expected) == set(PARAMETERIZATIONS)
    for name, (w_lr, b_lr) in expected.items():
        model = MLP(widths, parameterization=name, base_width=base, dtype="float64")
        mults = model.lr_multipliers()
        np.testing.assert_allclose([layer["w"] for layer in mults], w_lr, rtol=1e-15, err_msg=name)
        np.testing.assert_allclose([layer["b"] for layer in mults], b_lr, rtol=1e-15, err_msg=name)
        multipliers = [sc.multiplier for sc in model.scalings]  # forward multipliers: sigma/sqrt(fan_in) for NTK only
        np.testing.assert_allclose(multipliers, forward.get(name, [1.0] * 4), rtol=1e-15, err_msg=name)
    ntk = MLP(widths, parameterization="ntk", sigma=SIGMA)
    np.testing.assert_allclose([sc.multiplier for sc in ntk.scalings], [SIGMA * w ** -0.5 for w in widths[:-1]], rtol=1e-15)
    np.testing.assert_allclose([sc.init_std for sc in ntk.scalings], 1.0, rtol=0)
    no_bias = MLP(widths, bias=False)
    params = jax.eval_shape(no_bias.init, jax.random.key(0))
    assert jax.tree.structure(no_bias.lr_multipliers()) == jax.tree.structure(params)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP((3, 4, 1), parameterization="mup"),
        lambda: MLP((3, 4, 1), activation="swish"),  # not in the activation table
        lambda: MLP((3,)),
        lambda: MLP((3, 0, 1)),
        lambda: layer_scalings((3, 4, 1), "standard"),
        lambda: DeepLinear((3,)),
    ],
)
def test_invalid_models_raise(make):
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------- deep linear networks


def _frames(d_out, d_in, r, seed):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d_out, r)))  # (d_out, r) orthonormal columns
    V, _ = np.linalg.qr(rng.standard_normal((d_in, r)))  # (d_in, r)
    return U, V


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_aligned_init_is_exact_and_balanced(depth):
    d_in, d_out, hidden = 5, 4, 6
    widths = (d_in,) + (hidden,) * (depth - 1) + (d_out,)
    U, V = _frames(d_out, d_in, 3, seed=depth)
    u0 = np.array([1e-2, 3e-3, 5e-4])
    params = _np(DeepLinear(widths, dtype="float64").init_aligned(jax.random.key(0), U, V, u0))
    assert [w.shape for w in params] == [(b, a) for a, b in zip(widths[:-1], widths[1:])]
    product = np.linalg.multi_dot(params[::-1]) if depth > 1 else params[0]  # numpy W_L ... W_1
    target = U @ np.diag(u0) @ V.T
    exact = 1e-13 * np.abs(target).max()  # "exactly": float64 roundoff of a few products, nothing more
    np.testing.assert_allclose(product, target, rtol=0, atol=exact)
    np.testing.assert_allclose(np.asarray(end_to_end(params)), product, rtol=0, atol=exact)
    for lower, upper in zip(params[:-1], params[1:]):  # W_{l+1}^T W_{l+1} = W_l W_l^T
        np.testing.assert_allclose(upper.T @ upper, lower @ lower.T, rtol=0, atol=1e-12)


def test_aligned_init_needs_enough_hidden_units():
    U, V = _frames(4, 5, 3, seed=0)
    with pytest.raises(ValueError):
        DeepLinear((5, 2, 4), dtype="float64").init_aligned(jax.random.key(0), U, V, 1e-3)


def test_deep_linear_apply_and_activations():
    model = DeepLinear((5, 6, 6, 4), dtype="float64")
    rng = np.random.default_rng(2)
    params = [rng.standard_normal(shape) for shape in [(6, 5), (6, 6), (4, 6)]]  # W_l: (n_l, n_{l-1})
    x = rng.standard_normal((7, 5))
    expected = x @ np.asarray(end_to_end(params)).T  # f(x) = W_L ... W_1 x, row-wise
    np.testing.assert_allclose(np.asarray(model.apply(params, x)), expected, rtol=1e-12)
    acts = model.activations(params, x)
    np.testing.assert_allclose(np.asarray(acts[0]), x @ np.asarray(params[0]).T, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(acts[-1]), expected, rtol=1e-12)
    assert model.lr_multipliers() == [1.0, 1.0, 1.0]


def test_deep_linear_init_scale_by_monte_carlo():
    model = DeepLinear((256, 2048), scale=1e-3, dtype="float64")  # one layer, shape (2048, 256)
    w = np.asarray(model.init(jax.random.key(6))[0])
    assert abs(w.std() / 1e-3 - 1) < 5 / np.sqrt(2 * w.size)  # relative s.e. of a sample std
