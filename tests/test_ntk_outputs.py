"""Empirical NTK of models with outputs ``(n, ..., O)`` (observe/ntk.py, ``extra_axes``).

Reference: a hand-written full Jacobian, ``jax.jacrev`` of one example's outputs with respect to
the raveled parameter vector, reshaped to ``(n, G, O, P)`` (``G`` = the product of the middle axes)
and contracted by ``einsum`` for each flattening rule, with the learning-rate multipliers as a
diagonal metric on ``P``. Every strategy, memory plan (outputs in chunks, examples in blocks,
chunks of positions meeting each other) and case (``x2`` given or ``None``) must equal it to
``EXACT``. float64 (conftest enables x64).

Cheap by construction: a 40-parameter model, all kernels of a test inside one jit compiled without
LLVM optimisation (``_run``), inputs from numpy's generator.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from learnmech.observe import empirical_ntk, ntk_full_jacobian, select_ntk_strategy
from learnmech.observe import ntk_strategies

EXACT = 1e-10  # float64 agreement of exact kernels, relative to the kernel's largest entry
FAST_COMPILE = {"xla_backend_optimization_level": "0"}
T, D, H, O = 3, 3, 4, 2  # positions, input features, hidden width, outputs per position

RNG = np.random.default_rng(31)
X1 = jnp.asarray(RNG.normal(size=(4, T, D)))
X2 = jnp.asarray(RNG.normal(size=(3, T, D)))
PARAMS = {
    "w_in": jnp.asarray(RNG.normal(size=(D, H)) / np.sqrt(D)),
    "b": jnp.asarray(0.3 * RNG.normal(size=H)),
    "w_mid": jnp.asarray(RNG.normal(size=(H, H)) / np.sqrt(H)),
    "w_out": jnp.asarray(RNG.normal(size=(H, O))),
}
MULTS = {"w_in": 2.0, "b": jnp.linspace(0.5, 1.5, H), "w_mid": 0.25, "w_out": 1.0}  # one elementwise leaf


def _run(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with ``FAST_COMPILE``."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args)


def _seq_net(params, x):
    """``(n, T, D) -> (n, T, O)``: a causal running mean mixes the positions of one example."""
    h = jnp.tanh(x @ params["w_in"] + params["b"])  # (n, T, H)
    mixed = jnp.cumsum(h, axis=1) / jnp.arange(1, x.shape[1] + 1)[:, None]  # position t sees 0..t
    return jnp.tanh(mixed @ params["w_mid"]) @ params["w_out"]  # (n, T, O)


def _grid_net(params, x):
    """The same outputs with two middle axes, ``(n, T, 1, O)``."""
    return _seq_net(params, x)[:, :, None, :]


def _jacobians(apply, mults):
    """``sqrt(m) dF/dp`` on ``X1`` and ``X2``, numpy ``(n, G, O, P)``: per-example ``jacrev`` on the
    raveled parameters (one small jit)."""
    flat, unravel = ravel_pytree(PARAMS)
    root = jnp.sqrt(ravel_pytree(jax.tree.map(lambda m, p: jnp.broadcast_to(m, p.shape), mults, PARAMS))[0])

    def jac(x):
        j = jax.vmap(jax.jacrev(lambda p, xi: apply(unravel(p), xi[None])[0]), in_axes=(None, 0))(flat, x)
        return (j * root).reshape(x.shape[0], -1, O, flat.size)

    return [np.asarray(j) for j in _run(lambda a, b: (jac(a), jac(b)), X1, X2)]


def _reference(jacobians, extra_axes, outputs, case):
    """The kernel by ``einsum`` on the full Jacobians, per flattening rule (see ntk.py's docstring)."""
    j1, j2 = jacobians if case == "x2" else (jacobians[0], jacobians[0])
    (n1, g, o, _), n2 = j1.shape, j2.shape[0]
    if extra_axes == "mean":  # fbar = mean over positions, then an (n, O) model
        j1, j2, g = j1.mean(1, keepdims=True), j2.mean(1, keepdims=True), 1
    if extra_axes in ("outputs", "mean"):  # one vector of K = G O outputs
        a, b = j1.reshape(n1, g * o, -1), j2.reshape(n2, g * o, -1)
        if outputs == "mean":
            return np.einsum("ikp,jkp->ij", a, b) / (g * o)
        return np.einsum("ikp,jlp->ijkl", a, b)
    if outputs == "mean":  # positions as examples: rows (i, s)
        return np.einsum("isop,jtop->isjt", j1, j2).reshape(n1 * g, n2 * g) / o
    return np.einsum("isop,jtqp->isjtoq", j1, j2).reshape(n1 * g, n2 * g, o, o)


# every rule and output mode with x2 given; x2 = None (exact symmetry) once per rule
CASES = [(e, o, "x2") for e in ("outputs", "examples", "mean") for o in ("mean", "full")]
CASES += [("outputs", "mean", "none"), ("examples", "full", "none"), ("mean", "full", "none")]


def _check(apply, strategies, mults=None, cases=CASES, **kwargs):
    """Every strategy x case in one jit against ``_reference``."""
    jacobians = _jacobians(apply, jax.tree.map(lambda p: 1.0, PARAMS) if mults is None else mults)

    def run(params):
        return {
            (s, e, o, c): empirical_ntk(apply, params, X1, X2 if c == "x2" else None, strategy=s, outputs=o,
                                        extra_axes=e, lr_multipliers=mults, **kwargs)
            for s in strategies for e, o, c in cases
        }

    for (s, e, o, c), kernel in _run(run, PARAMS).items():
        want = _reference(jacobians, e, o, c)
        assert kernel.shape == want.shape, (s, e, o, c, kernel.shape, want.shape)
        np.testing.assert_allclose(np.asarray(kernel), want, rtol=0, atol=EXACT * np.abs(want).max(), err_msg=str((s, e, o, c)))
        if c == "none":  # x2 = None: symmetrised exactly
            k = np.asarray(kernel)
            k = k if o == "mean" else k.transpose(0, 2, 1, 3).reshape(k.shape[0] * k.shape[2], -1)
            np.testing.assert_array_equal(k, k.T)


def test_every_flattening_rule_matches_a_hand_written_jacobian():
    _check(_seq_net, ("jacobian", "ntvp"), MULTS)


def test_two_middle_axes_fold_like_one():
    # (n, T, 1, O): G = T * 1; auto picks a strategy, the kernels are the reference's
    _check(_grid_net, ("auto",), cases=[("outputs", "mean", "x2"), ("examples", "mean", "x2")])


def test_memory_plans_match_the_reference(monkeypatch):
    # budgets of 5 Jacobian rows (40 parameters x 8 bytes each) force every plan: outputs in
    # chunks summed (blocked for x2 given), positions in chunks meeting each other in example
    # blocks; ntvp with 4 basis vectors per chunk (the last chunk padded)
    monkeypatch.setattr(ntk_strategies, "JACOBIAN_BUDGET_BYTES", 5 * 40 * 8)
    monkeypatch.setattr(ntk_strategies, "NTVP_MAX_CHUNK", 4)
    plans = {(u, w, s): ntk_strategies.jacobian_plan(4, 3, s, u, w, 40, 8) for u, w in ((1, 6), (6, 1), (3, 2)) for s in (False, True)}
    assert plans[1, 6, True].block is None and plans[1, 6, True].n_chunks == 6  # chunked, each row once
    assert plans[1, 6, False].block == 2 and plans[6, 1, False].n_chunks == 3  # blocked; cross chunks
    cases = [("outputs", "mean", "x2"), ("outputs", "mean", "none"), ("outputs", "full", "x2"), ("examples", "mean", "x2")]
    _check(_seq_net, ("jacobian", "ntvp"), MULTS, cases=cases)


def test_full_jacobian_reference_folds_the_middle_axes():
    got = _run(lambda p: ntk_full_jacobian(_seq_net, p, X1, X2, outputs="full"), PARAMS)
    want = _reference(_jacobians(_seq_net, jax.tree.map(lambda a: 1.0, PARAMS)), "outputs", "full", "x2")
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=EXACT * np.abs(want).max())


def test_strategy_choice_is_deterministic_and_follows_the_cost_model():
    # the same shapes give the same choice; a weight shared over 64 positions (F >> P) keeps
    # "jacobian"; the mean-output plan for the 1.6M-parameter transformer computes each of its
    # 16 x 96 Jacobian rows once (chunks of 2 GiB / (1,637,472 x 4 bytes) // 16 = 20 outputs, padded to 100)
    x = jnp.ones((8, 64, D))
    for extra in ("outputs", "examples", "mean"):
        first = select_ntk_strategy(_seq_net, PARAMS, x, extra_axes=extra)
        assert first == select_ntk_strategy(_seq_net, PARAMS, x, extra_axes=extra) == "jacobian"
    plan = ntk_strategies.jacobian_plan(16, 16, True, 1, 96, 1_637_472, 4)
    assert (plan.chunk, plan.n_chunks, plan.block, plan.rows) == (20, 5, None, 16 * 100)
    old = ntk_strategies.jacobian_plan(16, 16, True, 1, 96, 1_637_472, 4, block_size=1)  # the former plan
    assert (old.chunk, old.block, old.rows) == (96, 1, 96 * (16 + 16 * 16))
    big = ntk_strategies.jacobian_plan(16, 16, True, 1, 96, 1_637_472, 4, budget_bytes=6 * 2**30)  # jacobian_bytes
    assert (big.chunk, big.n_chunks, big.rows) == (48, 2, 16 * 96)


def test_bad_shapes_name_the_argument():
    cases = [
        (lambda: empirical_ntk(lambda p, x: _seq_net(p, x)[:, 0, 0], PARAMS, X1), "apply:"),  # (n,): no O axis
        (lambda: empirical_ntk(lambda p, x: _seq_net(p, x).sum(0, keepdims=True), PARAMS, X1), "apply:"),  # (1, T, O)
        (lambda: empirical_ntk(lambda p, x: jnp.swapaxes(_seq_net(p, x), 0, 1), PARAMS, X1), "apply:"),  # (T, n, O)
        (lambda: empirical_ntk(_seq_net, PARAMS, X1, extra_axes="positions"), "extra_axes:"),
        (lambda: select_ntk_strategy(_seq_net, PARAMS, X1, extra_axes="flatten"), "extra_axes:"),
        (lambda: empirical_ntk(_seq_net, PARAMS, X1, jacobian_bytes=0), "jacobian_bytes:"),
        (lambda: ntk_full_jacobian(lambda p, x: _seq_net(p, x)[:, :, :0], PARAMS, X1), "apply:"),  # no outputs
    ]
    for call, field in cases:
        with pytest.raises(ValueError, match=f"^{field}"):
            call()
