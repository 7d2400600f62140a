"""Tests of nets/transformer.py: forward pass vs a numpy re-implementation, causality, muP / depth rules, counts."""

from __future__ import annotations

import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.nets import transformer as tr

RTOL_F32 = 2e-5  # float32 model vs float64 numpy reference, relative to the largest logit
_init = jax.jit(tr.init, static_argnums=1)  # one compile per config instead of one per eager op
_apply = jax.jit(tr.apply, static_argnums=2)
_loss = jax.jit(tr.loss, static_argnums=2)
SMALL = tr.TransformerConfig(vocab=16, seq_len=8, d_model=16, n_layers=2, n_heads=2, base_d_model=16)


MUP_DEEP = replace(SMALL, positions="sinusoidal", tied=True, parameterization="mup", d_model=32, n_heads=4,
                   base_d_model=8, depth_scaling="completep", base_depth=1)  # m = 4, m_L = 2, r = 1/2


def _windows(cfg, batch=3, seed=1):
    return jax.random.randint(jax.random.key(seed), (batch, cfg.seq_len + 1), 0, cfg.vocab)


# ---------------------------------------------------------------- numpy reference of the whole model

def _np_ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * g + b


def _np_gelu(x):  # tanh approximation, Hendrycks & Gimpel 2016, arXiv:1606.08415
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _np_forward(params, tokens, cfg):
    """A loop-by-loop float64 re-implementation: every head, every query position, written out."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    B, T = tokens.shape
    H, dh, r = cfg.n_heads, cfg.d_head, cfg.residual_multiplier
    x = p["token_embedding"][tokens] + (p["position_embedding"][:T] if cfg.positions == "learned"
                                        else np.asarray(tr.sinusoidal_positions(T, cfg.d_model), np.float64))
    for l in range(cfg.n_layers):
        w = {k: v[l] for k, v in p["blocks"].items()}
        h = _np_ln(x, w["ln1_gain"], w["ln1_bias"])
        q, k, v = h @ w["wq"], h @ w["wk"], h @ w["wv"]
        att = np.zeros_like(x)
        for b in range(B):
            for head in range(H):
                sl = slice(head * dh, (head + 1) * dh)
                for t in range(T):
                    s = k[b, : t + 1, sl] @ q[b, t, sl] * cfg.attention_scale  # keys 0..t only
                    a = np.exp(s - s.max())
                    att[b, t, sl] = (a / a.sum()) @ v[b, : t + 1, sl]
        x = x + r * (att @ w["wo"])
        x = x + r * (_np_gelu(_np_ln(x, w["ln2_gain"], w["ln2_bias"]) @ w["mlp_in"]) @ w["mlp_out"])
    h = _np_ln(x, p["final_ln_gain"], p["final_ln_bias"])
    if cfg.tied:
        return h @ p["token_embedding"].T * cfg.tied_multiplier
    return h @ p["readout"]


def _randomized(params, seed=3):
    """Perturb every leaf (LN gains/biases included) so the reference comparison exercises them all."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: (np.asarray(x) + 0.1 * rng.standard_normal(x.shape)).astype(np.float32), params)


@pytest.mark.parametrize("cfg", [SMALL, MUP_DEEP])
def test_apply_matches_numpy_reference(cfg):
    params = _randomized(_init(jax.random.key(0), cfg))
    tokens = np.asarray(_windows(cfg, batch=2)[:, :-1])
    got = np.asarray(_apply(params, tokens, cfg))
    want = _np_forward(params, tokens, cfg)
    assert got.dtype == np.float32 and got.shape == (2, cfg.seq_len, cfg.vocab)
    np.testing.assert_allclose(got, want, atol=RTOL_F32 * np.abs(want).max() + 1e-6)


def test_scan_equals_python_loop_over_layers():
    cfg = MUP_DEEP
    params = _randomized(_init(jax.random.key(0), cfg))
    tokens = _windows(cfg)[:, :-1]

    @jax.jit
    def loop(params, tokens):
        x = tr._embed(params, tokens, cfg)
        for l in range(cfg.n_layers):
            x = tr.block(x, jax.tree.map(lambda a: a[l], params["blocks"]), cfg)
        return tr._readout(params, x, cfg)

    np.testing.assert_allclose(loop(params, tokens), _apply(params, tokens, cfg), rtol=1e-5, atol=1e-6)


def test_causal_logits_ignore_future_tokens():
    cfg = SMALL
    params = _randomized(_init(jax.random.key(0), cfg))
    tokens = np.asarray(_windows(cfg)[:, :-1])
    changed = tokens.copy()
    t = 4
    changed[:, t + 1:] = (changed[:, t + 1:] + 7) % cfg.vocab
    a, b = _apply(params, tokens, cfg), _apply(params, changed, cfg)
    np.testing.assert_array_equal(a[:, : t + 1], b[:, : t + 1])  # positions <= t: bit-identical
    assert np.abs(np.asarray(a[:, t + 1:] - b[:, t + 1:])).max() > 1e-3  # later positions do change


def test_loss_at_init_is_ln_vocab():
    cfg = replace(SMALL, zero_readout=True)
    params = _init(jax.random.key(0), cfg)
    assert float(_loss(params, _windows(cfg), cfg)) == pytest.approx(math.log(cfg.vocab), abs=1e-6)  # logits 0
    # Readout std 1/sqrt(d) on an LN output with |h|^2 = d (gain 1, bias 0): given h, the vocab logits are
    # iid N(0, 1), so the expected loss is E[logsumexp(z) - z_0], z ~ N(0, I_V): Monte Carlo in numpy.
    z = np.random.default_rng(0).standard_normal((50_000, cfg.vocab))
    want = np.mean(np.log(np.exp(z).sum(-1)) - z[:, 0])  # ~ ln 16 + 0.4
    values = [float(_loss(_init(jax.random.key(s), SMALL), _windows(SMALL, seed=s), SMALL))
              for s in range(8)]
    assert abs(np.mean(values) - want) < 0.15  # 8 seeds x 24 positions; logits of one seed share one readout


def test_loss_equals_cross_entropy_of_apply():
    cfg = SMALL
    params = _randomized(_init(jax.random.key(0), cfg))
    w = np.asarray(_windows(cfg), np.uint8)  # uint8 bytes, as the data module gives them
    logits = np.asarray(_apply(params, w[:, :-1].astype(np.int32), cfg), np.float64)
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    want = np.mean(lse - np.take_along_axis(logits, w[:, 1:, None].astype(int), -1)[..., 0])
    assert float(_loss(params, w, cfg)) == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------- width: muP vs SP

def test_mup_equals_sp_at_base_width():
    sp = replace(SMALL, parameterization="sp")
    mup = replace(SMALL, parameterization="mup")
    p_sp, p_mup = _init(jax.random.key(5), sp), _init(jax.random.key(5), mup)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), p_sp, p_mup))
    w = _windows(sp)
    np.testing.assert_array_equal(_apply(p_sp, w[:, :-1], sp), _apply(p_mup, w[:, :-1], mup))
    assert set(jax.tree.leaves(tr.lr_multipliers(mup))) == {1.0}
    assert mup.attention_scale == sp.attention_scale == 1 / math.sqrt(mup.d_head)


def test_mup_lr_multipliers_at_width_4x():
    cfg = replace(SMALL, parameterization="mup", d_model=64, n_heads=2, base_d_model=16)  # m = 4
    lr = tr.lr_multipliers(cfg)
    for name in tr.BLOCK_MATRICES:
        assert lr["blocks"][name] == 0.25  # hidden: eta / m (TP-V Table 3, Adam)
    assert lr["readout"] == 0.25  # output: eta / m
    for name in tr.BLOCK_VECTORS:
        assert lr["blocks"][name] == 1.0  # vector: width-independent
    assert lr["token_embedding"] == lr["position_embedding"] == lr["final_ln_gain"] == 1.0  # input
    assert cfg.attention_scale == pytest.approx(math.sqrt(8) / 32)  # sqrt(base_d_head) / d_head
    assert set(jax.tree.leaves(tr.lr_multipliers(replace(cfg, parameterization="sp")))) == {1.0}


def test_init_std_measured_on_arrays():
    cfg = replace(SMALL, parameterization="mup", d_model=64, n_heads=2, base_d_model=16, vocab=256,
                  zero_query=True)  # m = 4
    p = _init(jax.random.key(0), cfg)
    for name, fan_in in [("wk", 64), ("wv", 64), ("mlp_in", 64), ("mlp_out", 256)]:
        # >= 8192 draws: the sample std is within 3 % of the truth (4 / sqrt(2n) standard errors)
        assert float(jnp.std(p["blocks"][name])) == pytest.approx(1 / math.sqrt(fan_in), rel=0.03), name
    # readout: 1/sqrt(fan_in) times the extra 1/sqrt(m) of muP (std ~ 1/fan_in relative to the base)
    assert float(jnp.std(p["readout"])) == pytest.approx(1 / math.sqrt(64) / 2, rel=0.03)
    assert float(jnp.std(p["token_embedding"])) == pytest.approx(0.02, rel=0.03)  # width-independent
    assert not np.any(np.asarray(p["blocks"]["wq"]))  # zero_query
    sp = {row["path"]: row for row in tr.parameterization_table(replace(cfg, parameterization="sp"))}
    assert sp["readout"]["init_std"] == pytest.approx(1 / 8) and sp["blocks/wk"]["init_std"] == pytest.approx(1 / 8)


# ---------------------------------------------------------------- depth rules at L = 4, base 2

@pytest.mark.parametrize("rule, r, hidden_lr", [
    ("none", 1.0, 1.0),
    ("depth-mup", 2 ** -0.5, 2 ** -0.5),  # branch / sqrt(L/L0); Adam lr (L/L0)^(-1/2)
    ("completep", 0.5, 1.0),  # branch / (L/L0); Adam lr (L/L0)^0
])
def test_depth_rules(rule, r, hidden_lr):
    cfg = replace(SMALL, n_layers=4, base_depth=2, depth_scaling=rule, parameterization="mup", d_model=32,
                  base_d_model=16)  # m = 2, m_L = 2
    assert cfg.residual_multiplier == pytest.approx(r)
    lr = tr.lr_multipliers(cfg)
    assert lr["blocks"]["wo"] == pytest.approx(0.5 * hidden_lr)  # width 1/m times the depth factor
    assert lr["blocks"]["ln1_gain"] == pytest.approx(hidden_lr)  # block LayerNorms: depth factor only
    assert lr["readout"] == 0.5 and lr["final_ln_bias"] == 1.0 and lr["token_embedding"] == 1.0
    table = {row["path"]: row for row in tr.parameterization_table(cfg)}
    assert table["blocks/mlp_out"]["forward_multiplier"] == pytest.approx(r)


# ---------------------------------------------------------------- counts, flops, positions, masks

@pytest.mark.parametrize("cfg", [SMALL, replace(SMALL, tied=True, positions="sinusoidal")])
def test_counts_match_leaves(cfg):
    params = _init(jax.random.key(0), cfg)
    assert tr.n_params(cfg) == sum(x.size for x in jax.tree.leaves(params))
    tables = params["token_embedding"].size + (params["position_embedding"].size if "position_embedding" in params
                                                else 0)
    assert tr.non_embedding_params(cfg) == tr.n_params(cfg) - tables
    d, L, V = cfg.d_model, cfg.n_layers, cfg.vocab  # closed form of the module docstring
    want = L * (12 * d * d + 4 * d) + V * d + (cfg.seq_len * d if cfg.positions == "learned" else 0) + 2 * d \
        + (0 if cfg.tied else d * V)
    assert tr.n_params(cfg) == want


def test_flops_per_token_hand_count():
    cfg = replace(SMALL, tied=True)
    d, f, L, T, V = cfg.d_model, cfg.d_ff, cfg.n_layers, cfg.seq_len, cfg.vocab
    # matmuls a token goes through: q, k, v, o (d x d), mlp in (d x f), out (f x d), readout (d x V)
    forward = 2 * (L * (4 * d * d + d * f + f * d) + d * V)
    assert tr.flops_per_token(cfg, include_attention=False) == 3 * forward
    assert tr.flops_per_token(cfg) == 3 * forward + 6 * L * T * d  # Kaplan et al. 2020 attention term


def test_flops_against_xla_cost_analysis():
    cfg = MUP_DEEP  # d = 32: elementwise work (O(d + T) a token) is under 15 % of the matmuls' O(d^2)
    params = _init(jax.random.key(0), cfg)
    tokens = jnp.zeros((2, cfg.seq_len), jnp.int32)

    def unrolled(params, tokens):  # XLA counts a scan body once: unroll the layers for the count
        x = tr._embed(params, tokens, cfg)
        for l in range(cfg.n_layers):
            x = tr.block(x, jax.tree.map(lambda a: a[l], params["blocks"]), cfg)
        return tr._readout(params, x, cfg)

    cost = jax.jit(unrolled).lower(params, tokens).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    per_token = cost["flops"] / tokens.size
    # XLA counts dense attention (QK^T and AV: 4 L T d) plus elementwise work (LN, gelu, softmax)
    dense = tr.flops_per_token(cfg, include_attention=False) / 3 + 4 * cfg.n_layers * cfg.seq_len * cfg.d_model
    assert dense <= per_token <= 1.15 * dense


def test_sinusoidal_positions_formula_and_no_params():
    table = np.asarray(tr.sinusoidal_positions(8, 6), np.float64)
    p, i = 5, 1  # P[5, 2] = sin(5 / 10000^(2/6)), P[5, 3] = cos(same)
    assert table[p, 2 * i] == pytest.approx(math.sin(p / 10000 ** (2 * i / 6)), abs=1e-7)
    assert table[p, 2 * i + 1] == pytest.approx(math.cos(p / 10000 ** (2 * i / 6)), abs=1e-7)
    assert "position_embedding" not in _init(jax.random.key(0), replace(SMALL, positions="sinusoidal"))


def test_decay_mask_matrices_only():
    mask = tr.decay_mask(SMALL)
    assert all(mask["blocks"][n] for n in tr.BLOCK_MATRICES) and mask["readout"] and mask["token_embedding"]
    assert not any(mask["blocks"][n] for n in tr.BLOCK_VECTORS) and not mask["final_ln_gain"]


def test_float32_params_under_x64():
    with jax.enable_x64(True):
        params = _init(jax.random.key(0), SMALL)
        assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
        assert _loss(params, _windows(SMALL), SMALL).dtype == jnp.float32


@pytest.mark.parametrize("kwargs, field", [
    ({"d_model": 30, "n_heads": 4}, "d_model"), ({"positions": "rotary"}, "positions"),
    ({"tied": True, "zero_readout": True}, "zero_readout"), ({"depth_scaling": "sqrt"}, "depth_scaling"),
    ({"n_layers": 0}, "n_layers"), ({"embed_std": -1.0}, "embed_std"), ({"parameterization": "ntk"}, "parameterization"),
])
def test_bad_config_raises_one_line(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        tr.TransformerConfig(**kwargs)


def test_too_long_input_raises():
    with pytest.raises(ValueError, match="^tokens:"):
        tr.apply(_init(jax.random.key(0), SMALL), jnp.zeros((1, SMALL.seq_len + 1), jnp.int32), SMALL)
