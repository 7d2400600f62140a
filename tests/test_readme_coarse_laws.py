"""The README's coarse-laws example on a user's own equinox MLP, run as a new user would, and its numbers
checked against independent numpy computations: the per-neuron GD identity (float32 rounding), NC1 and the
mean cosine from their definitions (Papyan, Han & Donoho 2020), and the AGOP of a one-hidden-layer ReLU
network from its closed-form Jacobian ``J_i = W_2 diag(1[W_1 x_i + b_1 > 0]) W_1``; then the same AGOP of a
flax nnx module."""

from __future__ import annotations

import numpy as np
import pytest

from test_readme_own_model import _run


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("equinox")
    return _run("coarse-laws")


def _closed_form_agop(w1, b1, w2, x):
    """``(1/n) sum_i J_i^T J_i`` with ``J_i = W_2 diag(relu'(W_1 x_i + b_1)) W_1`` (numpy, float64)."""
    active = (x @ w1.T + b1 > 0).astype(np.float64)  # (n, hidden)
    J = np.einsum("oh,nh,hd->nod", w2, active, w1)  # (n, out, d)
    return np.einsum("nod,noe->de", J, J) / len(x)


def test_one_gd_step_moves_each_neuron_by_the_predicted_amount(example):
    ns = example
    first = ns["stepped"].layers
    # float32: c_j = ||w_in||^2 + b^2 - ||w_out||^2 is rounded at ~1e-7 of the size of its terms
    scale = float(np.max(np.sum(np.asarray(first[0].weight) ** 2, axis=1) + np.asarray(first[0].bias) ** 2
                         + np.sum(np.asarray(first[1].weight) ** 2, axis=0)))
    residual, change = np.abs(np.asarray(ns["residual"])).max(), np.abs(np.asarray(ns["change"])).max()
    assert residual <= 1e-6 * scale
    assert change >= 10 * residual  # without the eta^2 term (gradient flow's "conserved") the error is 10x larger


def test_collapse_metrics_match_their_definitions(example):
    ns = example
    h = np.asarray(ns["hidden"], np.float64)
    y = np.asarray(ns["y"])
    K = 10
    means = np.stack([h[y == k].mean(axis=0) for k in range(K)])  # (K, p)
    mu_g = h.mean(axis=0)
    sw = sum(((h[y == k] - means[k]).T @ (h[y == k] - means[k])) for k in range(K)) / len(h)
    m = means - mu_g
    sb = m.T @ m / K
    nc1 = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / K
    nc = ns["nc"]
    np.testing.assert_allclose(float(nc.nc1), nc1, rtol=1e-3)  # float32 features vs float64 numpy
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.testing.assert_allclose(float(nc.mean_cosine), cos[~np.eye(K, dtype=bool)].mean(), atol=1e-5)
    ncc = np.argmin(((h[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(float(nc.nc4), np.mean(ncc != np.asarray(ns["logits"]).argmax(1)), atol=1e-12)


def test_agop_matches_the_closed_form_jacobian(example):
    ns = example
    model, x = ns["model"], np.asarray(ns["x"], np.float64)
    w1, b1 = np.asarray(model.layers[0].weight, np.float64), np.asarray(model.layers[0].bias, np.float64)
    w2 = np.asarray(model.layers[1].weight, np.float64)
    np.testing.assert_allclose(np.asarray(ns["G"]), _closed_form_agop(w1, b1, w2, x), rtol=2e-4,
                               atol=2e-6 * np.abs(np.asarray(ns["G"])).max())  # float32 Jacobians
    assert 0.0 < float(ns["feature_correlation"](ns["nfm"], ns["matrix_power"](ns["G"], 0.5))) <= 1.0


def test_agop_of_a_flax_nnx_module():
    pytest.importorskip("flax")
    from flax import nnx

    from learnmech.observe import agop

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(5, 7, rngs=rngs)
            self.l2 = nnx.Linear(7, 3, rngs=rngs)

        def __call__(self, v):
            return self.l2(nnx.relu(self.l1(v)))

    net = Net(nnx.Rngs(0))
    x = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    G = agop(lambda m, v: m(v), net, x, block=16)
    # nnx.Linear computes v @ kernel: kernel (in, out), so W = kernel^T in the (out, in) convention
    w1, b1 = np.asarray(net.l1.kernel[...], np.float64).T, np.asarray(net.l1.bias[...], np.float64)
    w2 = np.asarray(net.l2.kernel[...], np.float64).T
    np.testing.assert_allclose(np.asarray(G), _closed_form_agop(w1, b1, w2, x.astype(np.float64)), rtol=1e-4,
                               atol=1e-6)
