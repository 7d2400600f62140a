"""The torch probes (learnmech.torch: sharpness, noise_scale, empirical_ntk, coord_check) against independent
references: the dense Hessian's eigenvalues, a hand-written per-example gradient loop, a hand-written Jacobian,
and a hand-written training loop with hooks-free forward passes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import models_torch  # noqa: E402

from learnmech.torch import coord_check, empirical_ntk, mup, noise_scale, per_example_gradients, sharpness  # noqa: E402

torch.set_num_threads(1)


def _mse(model, batch):
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).mean()


def _batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, models_torch.D_IN, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :models_torch.D_OUT]) + 0.3 * torch.randn(n, models_torch.D_OUT, generator=g, dtype=torch.float64)


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _with_flat(model, flat):
    """``{name: tensor}`` views of a flat vector, in named_parameters order."""
    out, i = {}, 0
    for name, p in model.named_parameters():
        out[name] = flat[i:i + p.numel()].view(p.shape)
        i += p.numel()
    return out


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sharpness_is_the_top_eigenvalue_of_the_dense_hessian(method):
    model, batch = models_torch.make(5, 1), _batch()  # P = 6*5+5 + 5*5+5 + 5*3+3 = 83
    loss = lambda flat: _mse(lambda x: torch.func.functional_call(model, _with_flat(model, flat), (x,)), batch)  # noqa: E731
    dense = torch.autograd.functional.hessian(loss, _flat(model))  # (83, 83), the reference
    top = float(torch.linalg.eigvalsh(dense)[-1])
    got = sharpness(model, _mse, batch, method=method, iterations=83 if method == "lanczos" else 400, tol=1e-10)
    # Lanczos over the full Krylov space is exact to round-off; power iteration to its tolerance (1e-10 relative
    # change of the Rayleigh quotient, several times that in the eigenvalue): 1e-6 relative for both.
    assert got.eigenvalue == pytest.approx(top, rel=1e-6)
    assert got.converged
    assert sharpness(model, _mse, batch, iterations=20).eigenvalue == pytest.approx(top, rel=1e-6)  # default path


def test_noise_scale_matches_a_per_example_loop():
    model = models_torch.make(7, 2)
    batches = [_batch(8, seed) for seed in (1, 2, 3)]
    traces, norms = [], []
    for x, y in batches:  # the reference: autograd once per example, then the unbiased estimators by hand
        g = []
        for i in range(len(x)):
            model.zero_grad()
            _mse(model, (x[i:i + 1], y[i:i + 1])).backward()
            g.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        g = torch.stack(g)  # (B, P)
        b, mean = len(g), g.mean(0)
        traces.append(float(((g - mean) ** 2).sum() / (b - 1)))  # tr of the unbiased sample covariance
        off = (g.sum(0) @ g.sum(0) - (g * g).sum()) / (b * (b - 1))  # mean of g_i . g_j over i != j
        norms.append(float(off))
        per = per_example_gradients(model, _mse, (x, y))
        np.testing.assert_allclose(torch.cat([t.reshape(b, -1) for t in per.values()], 1), g, rtol=1e-10, atol=1e-13)
    got = noise_scale(model, _mse, batches)
    # float64 on both sides; the two estimators are algebraically identical: 1e-9 relative
    assert got.trace_cov == pytest.approx(np.mean(traces), rel=1e-9)
    assert got.grad_sq_norm == pytest.approx(np.mean(norms), rel=1e-9)
    assert got.b_simple == pytest.approx(np.mean(traces) / np.mean(norms), rel=1e-9)


@pytest.mark.parametrize("outputs", ["mean", "full"])
def test_empirical_ntk_matches_a_hand_written_jacobian(outputs):
    model = models_torch.make(6, 3)
    x1, x2 = _batch(5, 4)[0], _batch(4, 5)[0]
    P = mup(models_torch.MLP(2, device="meta"), models_torch.MLP(6, device="meta"))
    m = torch.cat([torch.full((p.numel(),), P.lr_multipliers()[n], dtype=torch.float64) for n, p in model.named_parameters()])

    def jac(x):  # (n, O, P) from autograd.functional.jacobian of the flat parameters
        f = lambda flat: torch.func.functional_call(model, _with_flat(model, flat), (x,))  # noqa: E731
        return torch.autograd.functional.jacobian(f, _flat(model))

    j1, j2 = jac(x1), jac(x2)
    full = torch.einsum("iap,p,jbp->ijab", j1, m, j2)  # Theta_{ij,ab} = sum_p m_p J1 J2
    want = full if outputs == "full" else torch.einsum("ijaa->ij", full) / j1.shape[1]
    got = empirical_ntk(model, x1, x2, outputs=outputs, lr_multipliers=P, block_size=2)  # blocks of 2: several
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)  # float64, same sums in another order
    sym = empirical_ntk(model, x1, outputs=outputs)
    full11 = torch.einsum("iap,jbp->ijab", j1, j1)
    np.testing.assert_allclose(sym, full11 if outputs == "full" else torch.einsum("ijaa->ij", full11) / 3, rtol=1e-10,
                               atol=1e-12)
    assert torch.equal(sym, sym.transpose(0, 1) if outputs == "mean" else sym.permute(1, 0, 3, 2))  # exactly symmetric


def test_coord_check_matches_a_hand_written_loop_and_sees_sp_blow_up():
    batch = _batch(16, 6)
    probe = batch[0][:8]

    def build(parameterization):
        def make(width, seed):
            model = models_torch.make(width, seed)
            P = mup(models_torch.MLP(8, device="meta"), models_torch.MLP(width, device="meta"),
                    parameterization=parameterization)
            return P.rescale_(model), torch.optim.Adam(P.param_groups(model, 1e-2))
        return make

    mu = coord_check(build(None), (8, 64), data=batch, probe=probe, loss_fn=_mse, steps=2, seeds=(0, 1))
    sp = coord_check(build("sp"), (8, 64), data=batch, probe=probe, loss_fn=_mse, steps=2, seeds=(0, 1))
    # reference for one cell: width 64, seed 1, layer l3 (the output) after step 2, without hooks
    model, opt = build(None)(64, 1)
    h0 = model(probe).detach()
    rms0 = float(h0.pow(2).mean().sqrt())
    for _ in range(2):
        opt.zero_grad()
        _mse(model, batch).backward()
        opt.step()
    change = float((model(probe).detach() - h0).pow(2).mean().sqrt())
    assert mu.rms_per_seed[1, 1, 2] == pytest.approx(rms0, rel=1e-12)
    assert mu.change_per_seed[1, 1, 1, 2] == pytest.approx(change, rel=1e-12)
    assert mu.change.shape == (2, 2, 3) and mu.rms.shape == (2, 3)
    assert mu.names == ("l1", "l2", "l3")  # the nn.Linear modules, in call order
    # Bands of the JAX coordinate check (tests/test_mup.py): muP within [0.75, 1.33] from width 8 to 64, SP's
    # output change > 2x (it grows ~ width at lr 1e-2 on Adam)
    assert np.all((mu.change[-1, -1] / mu.change[0, -1] >= 0.75) & (mu.change[-1, -1] / mu.change[0, -1] <= 1.33)), mu.change
    assert sp.change[-1, -1, 2] / sp.change[0, -1, 2] > 2.0, sp.change


def test_bad_input_gives_one_clear_error():
    model, batch = models_torch.make(4), _batch(4)
    with pytest.raises(ValueError, match="method: must be"):
        sharpness(model, _mse, batch, method="arnoldi")
    with pytest.raises(ValueError, match="batches: must be a non-empty list"):
        noise_scale(model, _mse, batch)
    with pytest.raises(ValueError, match="needs at least 2 examples"):
        noise_scale(model, _mse, [(batch[0][:1], batch[1][:1])])
    with pytest.raises(ValueError, match="outputs: must be"):
        empirical_ntk(model, batch[0], outputs="trace")
    with pytest.raises(ValueError, match=r"shape \(n, O\)"):
        empirical_ntk(torch.nn.Flatten(0), batch[0])
    with pytest.raises(ValueError, match="lr_multipliers: no trainable parameter"):
        empirical_ntk(model, batch[0], lr_multipliers={"l9.weight": 1.0})
    with pytest.raises(ValueError, match="layers: no module named"):
        coord_check(lambda w, s: (models_torch.make(w), torch.optim.SGD(models_torch.make(w).parameters(), 0.1)),
                    (4, 8), data=batch, probe=batch[0], loss_fn=_mse, layers=["l7"])
