"""muP for attention: the logit scale, attention against a hand-written softmax, the tied readout, and
the attention-logit update slope of the user's nnx transformer under the two logit rules.

Why the two rules' logit-update slopes differ by exactly 1/2 at step 1 with a zero query. With
``W_q = 0`` every logit is 0 at initialisation under either rule, so both models compute the same
forward pass and the same gradients up to the factor ``scale`` on the query and key gradients.
Adam's first update is ``-lr g / (|g| + eps)``, independent of that factor (up to ``eps``), so
after one step both models hold identical parameters and their logits ``scale * q . k`` differ
exactly by ``scale_sp / scale_mup = sqrt(d_head) / c``, i.e. by ``d_head^{1/2}`` with ``d_head``
proportional to width: the log-log slopes differ by 1/2 (TP-V, Yang et al. 2022,
arXiv:2203.03466, Section 4). Which rule is *flat* needs the query and key updates to be
correlated (``q . k ~ d_head``); at these tiny widths after one step they are not yet (measured,
1 block, widths 32 and 128, zero query, step 1: slope +0.199 for ``1/sqrt(d_head)``, -0.301 for
``c/d_head``, difference 0.50000), so only the difference is asserted here, on one block and two
widths to keep the compiles short; ``bench/transformer_coord_check.py`` reports the slopes of the
2-block model at widths 64..512.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.nets.attention import attention_logits, attention_scale, causal_mask, dot_product_attention, \
    tied_readout

FAST = {"xla_backend_optimization_level": 0}


def _softmax_attention_reference(q, k, v, scale, allowed):
    """Hand-written numpy: ``softmax(q k^T * scale, masked) v`` per batch and head, float64."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, tq, h, _ = q.shape
    out = np.zeros((b, tq, h, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            logits = q[bi, :, hi] @ k[bi, :, hi].T * scale  # (T_q, T_k)
            for i in range(tq):
                ok = allowed[i]
                if not ok.any():
                    continue
                w = np.exp(logits[i, ok] - logits[i, ok].max())
                out[bi, i, hi] = (w / w.sum()) @ v[bi, ok, hi]
    return out


# ----- attention_scale -----

@pytest.mark.parametrize("d", [1, 7, 16, 64, 96, 512])
def test_attention_scale_values(d):
    assert attention_scale(d, rule="sp") == 1 / math.sqrt(d)  # Vaswani et al. 2017
    assert attention_scale(d, rule="mup") == 1 / d  # c = 1 without a base
    assert attention_scale(d, rule="mup", c=8.0) == 8.0 / d  # the mup README's 8/d
    assert math.isclose(attention_scale(d, rule="mup", base_d_head=64), 8.0 / d, rel_tol=1e-15)  # c = sqrt(64)
    assert attention_scale(d, rule="mup", base_d_head=d) == attention_scale(d, rule="sp")  # exact at the base


@pytest.mark.parametrize("kwargs, field", [
    ({"d_head": 0}, "d_head"), ({"d_head": -4}, "d_head"), ({"d_head": 2.5}, "d_head"), ({"d_head": True}, "d_head"),
    ({"d_head": 8, "rule": "ntk"}, "rule"), ({"d_head": 8, "base_d_head": 0}, "base_d_head"),
    ({"d_head": 8, "c": 0.0}, "c"), ({"d_head": 8, "c": float("nan")}, "c"), ({"d_head": 8, "c": -1.0}, "c"),
    ({"d_head": 8, "rule": "sp", "c": 2.0}, "c"),
])
def test_attention_scale_refusals(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        attention_scale(**kwargs)


# ----- attention and logits against numpy -----

def _qkv(t_q=5, t_k=5, seed=0):
    """Random ``q (2, t_q, 3, 4)``, ``k (2, t_k, 3, 4)``, ``v (2, t_k, 3, 6)``: (B, T, H, d_head), d_v = 6."""
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal(s)) for s in ((2, t_q, 3, 4), (2, t_k, 3, 4), (2, t_k, 3, 6)))


@pytest.mark.parametrize("causal", [True, False])
def test_dot_product_attention_matches_numpy(causal):
    q, k, v = _qkv()
    scale = attention_scale(4, rule="mup", base_d_head=2)
    allowed = np.tril(np.ones((5, 5), bool)) if causal else np.ones((5, 5), bool)
    got = dot_product_attention(q, k, v, scale=scale, causal=causal)
    np.testing.assert_allclose(got, _softmax_attention_reference(q, k, v, scale, allowed), atol=1e-12)  # float64: conftest enables x64


def test_mask_combines_with_causal_and_longer_keys():
    q, k, v = _qkv(t_q=3, t_k=6)
    mask = np.ones((3, 6), bool)
    mask[:, 0] = False  # nobody sees key 0
    allowed = np.tril(np.ones((3, 6), bool), k=3) & mask  # causal aligned at the end: query i sees keys <= i + 3
    got = dot_product_attention(q, k, v, scale=0.5, causal=True, mask=jnp.asarray(mask))
    np.testing.assert_allclose(got, _softmax_attention_reference(q, k, v, 0.5, allowed), atol=1e-12)  # float64: conftest enables x64
    assert np.array_equal(causal_mask(3, 6), np.tril(np.ones((3, 6), bool), k=3))


def test_query_with_nothing_allowed_gets_zero():
    q, k, v = _qkv()
    mask = np.ones((5, 5), bool)
    mask[2] = False
    got = np.asarray(dot_product_attention(q, k, v, scale=0.5, causal=False, mask=jnp.asarray(mask)))
    assert np.all(got[:, 2] == 0.0) and np.all(np.isfinite(got))


def test_attention_logits_layout():
    q, k, _ = _qkv(t_q=3, t_k=5)
    got = attention_logits(q, k, scale=0.25)  # (B, H, T_q, T_k)
    want = np.einsum("bqhd,bkhd->bhqk", np.asarray(q, np.float64), np.asarray(k, np.float64)) * 0.25
    np.testing.assert_allclose(got, want, atol=1e-12)  # float64: conftest enables x64


@pytest.mark.parametrize("call, field", [
    (lambda q, k, v: dot_product_attention(q, k, v, scale=0.0), "scale"),
    (lambda q, k, v: dot_product_attention(q, k, v[..., :4, :, :], scale=1.0), "v"),
    (lambda q, k, v: dot_product_attention(q[0, 0], k[0, 0], v[0, 0], scale=1.0), "q, k"),
    (lambda q, k, v: dot_product_attention(q, k[..., :2, :], v[..., :2, :], scale=1.0), "q, k"),
    (lambda q, k, v: dot_product_attention(q, k, v, scale=1.0, mask=jnp.ones((5, 5))), "mask"),
    (lambda q, k, v: dot_product_attention(q, k, v, scale=1.0, mask=jnp.ones((4, 5), bool)), "mask"),
])
def test_attention_refusals(call, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        call(*_qkv())


# ----- tied readout -----

def test_tied_readout_matches_numpy_and_refuses():
    rng = np.random.default_rng(1)
    h, emb = jnp.asarray(rng.standard_normal((2, 3, 8))), jnp.asarray(rng.standard_normal((10, 8)))  # (B, T, w), (V, w)
    want = 0.25 * np.asarray(h, np.float64) @ np.asarray(emb, np.float64).T  # muP: base 2 / width 8
    np.testing.assert_allclose(tied_readout(h, emb, multiplier=0.25), want, atol=1e-12)  # float64: conftest enables x64
    with pytest.raises(ValueError, match="^multiplier:"):
        tied_readout(h, emb, multiplier=-1.0)
    with pytest.raises(ValueError, match="^embedding:"):
        tied_readout(h, emb.T, multiplier=1.0)


# ----- the user's nnx transformer -----

def test_mup_rule_at_base_width_is_standard_attention_exactly():
    pytest.importorskip("flax")
    from flax import nnx
    import models_transformer as mt

    tokens = jnp.asarray(mt.sequences(2, seed=3)[0])

    def forward(cfg):
        def both(x):
            model = mt.Transformer(cfg, rngs=nnx.Rngs(0))
            params, apply = mt.as_pure(model)
            return model(x), apply(params, x)

        return jax.jit(both, compiler_options=FAST)(tokens)

    out = {rule: forward(mt.Config(d_model=32, base_d_model=32, rule=rule, n_layers=1)) for rule in ("sp", "mup")}
    assert np.array_equal(out["sp"][0], out["mup"][0])
    assert np.array_equal(out["sp"][0], out["sp"][1])  # as_pure's apply is the model
    wider = {rule: mt.Config(d_model=64, base_d_model=32, rule=rule).scale for rule in ("sp", "mup")}
    assert math.isclose(wider["sp"] / wider["mup"], math.sqrt(2), rel_tol=1e-12)  # sqrt(d_head / base_d_head)


@pytest.mark.parametrize("d, tied", [(256, False), (256, True), (64, False)])
def test_parameter_count(d, tied):
    pytest.importorskip("flax")
    from flax import nnx
    import models_transformer as mt

    model = nnx.eval_shape(lambda: mt.Transformer(mt.Config(d_model=d, tied=tied), rngs=nnx.Rngs(0)))
    # closed form: 2 blocks of 12 d^2 + 13 d, embeddings (96 + 32) d, final LayerNorm 2 d, readout 96 d + 96
    want = 2 * (12 * d * d + 13 * d) + (96 + 32) * d + 2 * d + (0 if tied else 96 * d + 96)
    assert mt.n_params(model) == want
    if d == 256:
        assert mt.n_params(model) == (1_612_800 if tied else 1_637_472)  # the counts the model's docstring states


def _logit_changes(width: int, batch, probe) -> dict[str, float]:
    """RMS change of block 0's logits on ``probe`` after one muP Adam step, per rule (1 block, zero query).

    A hand-written coordinate check (TP-V, arXiv:2203.03466, Appendix "coordinate check") with
    the logit scale as an argument, so that the two rules share one compiled program per width.
    """
    from flax import nnx
    import models_transformer as mt

    cfg = mt.Config(d_model=width, base_d_model=32, zero_query=True, embed_std=32 ** -0.5, n_layers=1)
    cm = mt.coord_model(cfg, lr=1e-2)  # muP init and Adam from learnmech.nets.mup; rule-independent
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: mt.Transformer(cfg, rngs=nnx.Rngs(0))))
    at = mt.layer_names(1).index("attn_logits_0")

    @functools.partial(jax.jit, compiler_options=FAST)
    def change(scale):
        params0 = cm.init(jax.random.key(0))
        grads = jax.grad(lambda p: mt.loss(nnx.merge(graphdef, p), batch, scale))(params0)
        updates, _ = cm.optimizer.update(grads, cm.optimizer.init(params0), params0)
        params1 = optax.apply_updates(params0, updates)
        logits = [mt.layers(nnx.merge(graphdef, p), probe, scale)[at] for p in (params0, params1)]  # (B, H, T, T)
        return jnp.sqrt(jnp.mean(jnp.square(logits[1] - logits[0])))

    return {rule: float(change(replace(cfg, rule=rule).scale)) for rule in ("sp", "mup")}


def test_logit_update_slope_drops_by_one_half_under_c_over_d():
    pytest.importorskip("flax")
    import models_transformer as mt

    x, y = mt.sequences(24, seed=0)
    batch, probe = (jnp.asarray(x[:16]), jnp.asarray(y[:16])), jnp.asarray(x[16:])
    small, large = _logit_changes(32, batch, probe), _logit_changes(128, batch, probe)
    slope = {rule: math.log(large[rule] / small[rule]) / math.log(128 / 32) for rule in ("sp", "mup")}
    # derivation in the module docstring: exactly 1/2 up to Adam's eps (1e-8 against gradients >~1e-6)
    assert abs((slope["sp"] - slope["mup"]) - 0.5) < 0.01, slope
