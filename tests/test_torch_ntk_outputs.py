"""learnmech.torch.empirical_ntk on outputs ``(n, T, O)``: every ``extra_axes`` rule x ``outputs`` mode
against a hand-written Jacobian (``torch.autograd.functional.jacobian`` of the flattened parameters,
contracted by ``einsum``), and against the JAX function on a JAX twin holding the same weights.

float64 throughout (conftest enables JAX's x64). Cheap: a 40-parameter model, 4 + 3 sequences of
3 positions, all JAX kernels of a test inside one jit compiled without LLVM optimisation.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from learnmech.observe import empirical_ntk as jax_ntk  # noqa: E402
from learnmech.observe.ntk_strategies import jacobian_plan  # noqa: E402
from learnmech.torch import empirical_ntk  # noqa: E402

torch.set_num_threads(1)

EXACT = 1e-10  # float64 agreement of exact kernels, relative to the kernel's largest entry
FAST_COMPILE = {"xla_backend_optimization_level": "0"}
T, D, H, O = 3, 3, 4, 2  # positions, input features, hidden width, outputs per position
RULES = [(e, o) for e in ("outputs", "examples", "mean") for o in ("mean", "full")]

RNG = np.random.default_rng(7)
X1 = RNG.normal(size=(4, T, D))
X2 = RNG.normal(size=(3, T, D))
WEIGHTS = {
    "w_in": RNG.normal(size=(D, H)) / np.sqrt(D),
    "b": 0.3 * RNG.normal(size=H),
    "w_mid": RNG.normal(size=(H, H)) / np.sqrt(H),
    "w_out": RNG.normal(size=(H, O)),
}  # 12 + 4 + 16 + 8 = 40 parameters
MULTS = {"w_in": 2.0, "b": np.linspace(0.5, 1.5, H), "w_mid": 0.25, "w_out": 1.0}  # one elementwise


class SeqNet(torch.nn.Module):
    """``(n, T, D) -> (n, T, O)``; a causal running mean mixes the positions of one example."""

    def __init__(self):
        super().__init__()
        for name, w in WEIGHTS.items():
            setattr(self, name, torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)))

    def forward(self, x):
        h = torch.tanh(x @ self.w_in + self.b)  # (n, T, H)
        mixed = torch.cumsum(h, dim=1) / torch.arange(1, x.shape[1] + 1, dtype=h.dtype)[:, None]
        return torch.tanh(mixed @ self.w_mid) @ self.w_out  # (n, T, O)


def jax_seq_net(params, x):
    """The JAX twin of :class:`SeqNet`."""
    h = jnp.tanh(x @ params["w_in"] + params["b"])
    mixed = jnp.cumsum(h, axis=1) / jnp.arange(1, x.shape[1] + 1)[:, None]
    return jnp.tanh(mixed @ params["w_mid"]) @ params["w_out"]


def _torch_mults():
    return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in MULTS.items()}


def _jacobian(model, x, mults):
    """``sqrt(m) dF/dp`` ``(n, T, O, P)`` by autograd.functional.jacobian on the flat parameter vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    root = torch.cat([torch.broadcast_to(torch.as_tensor(mults[n], dtype=torch.float64), s).reshape(-1).sqrt()
                      for n, s in zip(names, shapes)])

    def f(v):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = v[i:i + s.numel()].view(s)
            i += s.numel()
        return torch.func.functional_call(model, parts, (x,))

    return torch.autograd.functional.jacobian(f, flat) * root  # (n, T, O, P)


def _reference(j1, j2, extra_axes, outputs):
    """The kernel by ``einsum`` per flattening rule (the JAX module's docstring states the rules)."""
    (n1, g, o, _), n2 = j1.shape, j2.shape[0]
    if extra_axes == "mean":
        j1, j2, g = j1.mean(1, keepdim=True), j2.mean(1, keepdim=True), 1
    if extra_axes in ("outputs", "mean"):  # one vector of K = G O outputs, C order
        a, b = j1.reshape(n1, g * o, -1), j2.reshape(n2, g * o, -1)
        if outputs == "mean":
            return torch.einsum("ikp,jkp->ij", a, b) / (g * o)
        return torch.einsum("ikp,jlp->ijkl", a, b)
    if outputs == "mean":  # positions as examples: rows (i, s)
        return torch.einsum("isop,jtop->isjt", j1, j2).reshape(n1 * g, n2 * g) / o
    return torch.einsum("isop,jtqp->isjtoq", j1, j2).reshape(n1 * g, n2 * g, o, o)


def _close(got, want, label):
    want = np.asarray(want)
    assert tuple(got.shape) == want.shape, (label, tuple(got.shape), want.shape)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=EXACT * np.abs(want).max(), err_msg=str(label))


def _symmetric(kernel, outputs):
    k = kernel if outputs == "mean" else kernel.permute(0, 2, 1, 3).reshape(kernel.shape[0] * kernel.shape[2], -1)
    assert torch.equal(k, k.T)


def test_every_rule_matches_a_hand_written_jacobian_and_the_jax_twin():
    model, mults = SeqNet(), _torch_mults()
    x1, x2 = torch.tensor(X1), torch.tensor(X2)
    j1, j2 = _jacobian(model, x1, mults), _jacobian(model, x2, mults)
    j11 = _jacobian(model, x1, {k: 1.0 for k in WEIGHTS})
    params = {k: jnp.asarray(v) for k, v in WEIGHTS.items()}
    twin_cases = [(e, o, "x2") for e, o in RULES] + [("examples", "full", "none")]

    def run(p):  # the JAX kernels in one jit
        return {(e, o, c): jax_ntk(jax_seq_net, p, jnp.asarray(X1), jnp.asarray(X2) if c == "x2" else None,
                                   strategy="jacobian", outputs=o, extra_axes=e,
                                   lr_multipliers=MULTS if c == "x2" else None)
                for e, o, c in twin_cases}

    twin = jax.jit(run).lower(params).compile(compiler_options=FAST_COMPILE)(params)
    for e, o in RULES:
        got = empirical_ntk(model, x1, x2, outputs=o, extra_axes=e, lr_multipliers=mults)
        _close(got, _reference(j1, j2, e, o), (e, o, "reference"))
        _close(got, twin[e, o, "x2"], (e, o, "jax"))
        sym = empirical_ntk(model, x1, outputs=o, extra_axes=e)
        _close(sym, _reference(j11, j11, e, o), (e, o, "reference, x2=None"))
        _symmetric(sym, o)
        if (e, o, "none") in twin:
            _close(sym, twin[e, o, "none"], (e, o, "jax, x2=None"))


def test_memory_plans_give_the_same_kernel():
    # a budget of 5 Jacobian rows (40 parameters x 8 bytes) forces every plan of jacobian_plan: outputs in
    # chunks summed (x2 = None: all examples, each row once; x2 given: blocks of 2 examples), whole positions
    # or outputs in chunks meeting each other in blocks of one example; block_size given explicitly once
    budget = 5 * 40 * 8
    plans = {(u, w, s): jacobian_plan(4, 3, s, u, w, 40, 8, None, budget) for u, w in ((1, 6), (6, 1), (3, 2))
             for s in (False, True)}
    assert (plans[1, 6, True].block, plans[1, 6, True].n_chunks) == (None, 6)
    assert (plans[1, 6, False].block, plans[6, 1, False].n_chunks, plans[3, 2, False].n_chunks) == (2, 3, 3)
    model, mults = SeqNet(), _torch_mults()
    x1, x2 = torch.tensor(X1), torch.tensor(X2)
    j1, j2 = _jacobian(model, x1, mults), _jacobian(model, x2, mults)
    cases = [(e, o, "x2", {"jacobian_bytes": budget}) for e, o in RULES]
    cases += [(e, o, "none", {"jacobian_bytes": budget}) for e, o in (("outputs", "mean"), ("examples", "mean"))]
    cases += [("outputs", "full", "x2", {"block_size": 2}), ("examples", "mean", "none", {"block_size": 2})]
    for e, o, c, kwargs in cases:
        got = empirical_ntk(model, x1, x2 if c == "x2" else None, outputs=o, extra_axes=e, lr_multipliers=mults,
                            **kwargs)
        _close(got, _reference(j1, j2 if c == "x2" else j1, e, o), (e, o, c, kwargs))
        if c == "none":
            _symmetric(got, o)


def test_two_middle_axes_fold_like_one():
    class Grid(SeqNet):  # (n, T, 1, O): G = T * 1
        def forward(self, x):
            return super().forward(x)[:, :, None, :]

    x1, x2 = torch.tensor(X1), torch.tensor(X2)
    for e, o in RULES:
        want = empirical_ntk(SeqNet(), x1, x2, outputs=o, extra_axes=e)
        assert torch.equal(empirical_ntk(Grid(), x1, x2, outputs=o, extra_axes=e), want)  # same sums, same order


def test_bad_input_names_the_field():
    model, x = SeqNet(), torch.tensor(X1)

    class Swapped(SeqNet):
        def forward(self, x):
            return super().forward(x).transpose(0, 1)  # (T, n, O)

    cases = [
        (lambda: empirical_ntk(model, x, extra_axes="positions"), "extra_axes:"),
        (lambda: empirical_ntk(model, x, outputs="trace"), "outputs:"),
        (lambda: empirical_ntk(model, x, jacobian_bytes=0), "jacobian_bytes:"),
        (lambda: empirical_ntk(model, x, block_size=0), "block_size:"),
        (lambda: empirical_ntk(Swapped(), x), "model:"),
        (lambda: empirical_ntk(model, x, torch.ones(2, T, D + 1)), "x2:"),
        (lambda: empirical_ntk(model, x, lr_multipliers={"b": torch.ones(3)}), "lr_multipliers:"),
    ]
    for call, field in cases:
        with pytest.raises(ValueError, match=f"^{field}"):
            call()
