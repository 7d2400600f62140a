"""A decoder-only transformer as a pure pytree model, with SP / muP in width and depth-muP / CompleteP in depth.

Contract: a frozen, hashable :class:`TransformerConfig` (pass it as a static argument to ``jax.jit``);
``init(key, cfg) -> params`` (a plain dict pytree), ``apply(params, tokens, cfg) -> logits`` and
``loss(params, windows, cfg) -> nats``; ``lr_multipliers(cfg)`` and ``decay_mask(cfg)`` are pytrees
shaped like ``params`` for the trainer. Every per-tensor number (shape, kind, init std, learning-rate
multiplier, weight decay) is read off one table, :func:`tensor_specs`, built from the project's
abc-parameterisation rows (:mod:`learnmech.theory.parameterization`) and the depth rule.

Architecture (pre-LayerNorm, GPT-2 style; Radford et al. 2019; no biases in linear layers)::

    x_0 = E[tokens] + P                                  # (B, T, d)
    x   = x + r * Attn(LN1(x))                           # per layer, r = residual multiplier
    x   = x + r * W_out gelu(W_in LN2(x))                # hidden ff_ratio * d, tanh-approximate gelu
    logits = LN_f(x) @ W_readout                         # untied
    logits = (LN_f(x) @ E^T) * base_d_model / d_model    # tied, muP (1 under SP)

Per-layer tensors are stacked on a leading layer axis (``params["blocks"]["wq"]`` is
``(n_layers, d, d)``) and the layers run under ``jax.lax.scan``, so compile time does not grow with
depth. Attention heads: ``d_head = d_model // n_heads``; logits scaled by
:func:`learnmech.nets.attention.attention_scale` (``rule="sp"``: ``1/sqrt(d_head)``; ``"mup"``:
``sqrt(base_d_head)/d_head`` with ``base_d_head = base_d_model // n_heads``, TP-V, Yang et al. 2022,
arXiv:2203.03466, Section 4).

Width (``m = d_model / base_d_model``). Each tensor has a kind of the abc table: token and position
embeddings ``input``; ``wq, wk, wv, wo, mlp_in, mlp_out`` ``hidden``; the untied readout ``output``;
LayerNorm gains and biases ``vector``. With ``(mult, std_factor, lr_factor) = row.scales(kind, m)`` of row
``"mup-adam"`` (``parameterization="mup"``) or ``"sp"``:

- init std = base std * std_factor. Base stds: hidden and readout ``1/sqrt(fan_in_0)`` with
  ``fan_in_0`` the fan-in at the base width (so a hidden matrix has std ``1/sqrt(fan_in)`` at every
  width, and a muP readout ``1/sqrt(fan_in) * m^{-1/2}``); embeddings ``embed_std`` (width-independent,
  the muP ``input`` rule, b = 0); LayerNorm gain 1, bias 0.
- learning-rate multiplier = lr_factor (Adam: muP hidden and readout ``1/m``, the rest 1).
- both rows used here have width-independent forward multipliers (``a = 0``), checked at import.

``embed_std = 0.02`` by default: GPT-2 / nanoGPT's value. It is a constant, so muP's input rule holds,
and it keeps a *tied* readout's logits small at initialisation (``LN(x) . E_v`` has std ``0.02 sqrt(d)``;
with an O(1) embedding it would be ``sqrt(d)`` and the initial loss far above ``ln vocab``).

At ``d_model == base_d_model`` every factor is exactly 1 and the attention scale is ``1/sqrt(d_head)``
under both rules: muP is SP there, parameter for parameter (same key, same arrays, same logits).

Depth (``m_L = n_layers / base_depth``). The residual branches are multiplied by ``r = m_L^{-alpha}``:

==============  =====  ==========================================================================
depth_scaling   alpha  reference
==============  =====  ==========================================================================
``none``        0      no depth rule: r = 1 and no learning-rate correction
``depth-mup``   1/2    Yang, Yu, Zhu & Hayou 2023, arXiv:2310.02244 (Depth-muP, branch / sqrt(L))
``completep``   1      Dey et al. 2025, arXiv:2505.01618 (CompleteP, branch / L)
==============  =====  ==========================================================================

Adam learning rates of every tensor *inside the residual blocks* (the hidden matrices and the
LayerNorm gains and biases of LN1 / LN2) are multiplied by ``m_L^{alpha - 1}`` (CompleteP, Table 1:
``eta m_N^{-1} m_L^{alpha-1}`` for hidden weights; Depth-muP's Adam rule ``eta / sqrt(L)`` at
alpha = 1/2, which it applies to the block's weights). Applying the same factor to the blocks'
LayerNorm parameters is our reading of CompleteP's table for the parameters of a residual block.
Embeddings, the final LayerNorm and the readout get no depth correction. Initialisation does not
depend on depth. Left out (not expressible by an init std or a learning-rate multiplier): CompleteP's
scaling of AdamW's epsilon for hidden weights (``eps m_N^{-1} m_L^{-alpha}``) and of the weight decay
(``lambda m_N`` for hidden weights, independent of depth); a trainer that wants them must scale those
itself.

Counts. ``n_params(cfg)`` is every parameter; ``non_embedding_params(cfg)`` leaves out the token and
position tables (the untied readout IS counted; a tied matrix counts once, as embedding).
``flops_per_token`` is the training cost ``6 N_matmul + 6 n_layers seq_len d_model`` (Kaplan et al. 2020,
arXiv:2001.08361, Section 2.1), with ``N_matmul`` every matrix a token multiplies through, the readout
included (Kaplan's ``N`` leaves the de-embedding out; we count it, as it dominates at small widths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.nets.attention import attention_scale, dot_product_attention, tied_readout
from learnmech.theory.parameterization import get_parameterization

__all__ = ["DEPTH_ALPHA", "PARAMETERIZATION_ROWS", "TensorSpec", "TransformerConfig", "apply", "block",
           "decay_mask", "flops_per_token", "init", "init_numpy", "loss", "lr_multipliers", "n_params", "non_embedding_params",
           "parameterization_table", "same_network", "sinusoidal_positions", "tensor_specs"]

PARAMETERIZATION_ROWS = {"sp": "sp", "mup": "mup-adam"}  # cfg.parameterization -> row of the abc table
DEPTH_ALPHA = {"none": 0.0, "depth-mup": 0.5, "completep": 1.0}
POSITIONS = ("learned", "sinusoidal")
DTYPES = ("float32", "float64")
LN_EPS = 1e-5  # LayerNorm epsilon (PyTorch's and flax's default)
BLOCK_MATRICES = ("wq", "wk", "wv", "wo", "mlp_in", "mlp_out")
BLOCK_VECTORS = ("ln1_gain", "ln1_bias", "ln2_gain", "ln2_bias")

for _row in PARAMETERIZATION_ROWS.values():  # the forward pass below applies no width multiplier
    assert get_parameterization(_row).multiplier_free, _row


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _choice(value, name: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of the decoder (see the module docstring for the conventions).

    Attributes:
      vocab: number of token ids (256 for bytes).
      seq_len: context length T (learned position table has T rows; inputs may be shorter).
      d_model, n_layers, n_heads: width, depth, heads (``d_model % n_heads == 0``).
      ff_ratio: MLP hidden width / d_model.
      positions: ``"learned"`` table ``(seq_len, d)`` or ``"sinusoidal"`` (no parameters).
      tied: readout tied to the token embedding.
      parameterization: ``"sp"`` or ``"mup"`` (row ``mup-adam``).
      base_d_model: muP base width (``base_d_model % n_heads == 0``).
      depth_scaling: ``"none" | "depth-mup" | "completep"``; base_depth its base number of layers.
      zero_query, zero_readout: start the query projection / the untied readout at zero (TP-V,
        arXiv:2203.03466, Appendix D.2).
      embed_std: std of the token and position tables (width-independent).
      dtype: parameter and activation dtype.
    """

    vocab: int = 256
    seq_len: int = 64
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_ratio: int = 4
    positions: str = "learned"
    tied: bool = False
    parameterization: str = "sp"
    base_d_model: int = 64
    depth_scaling: str = "none"
    base_depth: int = 2
    zero_query: bool = False
    zero_readout: bool = False
    embed_std: float = 0.02
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("vocab", "seq_len", "d_model", "n_layers", "n_heads", "ff_ratio", "base_d_model", "base_depth"):
            _positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model: must be divisible by n_heads={self.n_heads}, got {self.d_model}")
        if self.base_d_model % self.n_heads:
            raise ValueError(f"base_d_model: must be divisible by n_heads={self.n_heads}, got {self.base_d_model}")
        _choice(self.positions, "positions", POSITIONS)
        _choice(self.parameterization, "parameterization", tuple(PARAMETERIZATION_ROWS))
        _choice(self.depth_scaling, "depth_scaling", tuple(DEPTH_ALPHA))
        _choice(self.dtype, "dtype", DTYPES)
        for name in ("tied", "zero_query", "zero_readout"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be True or False, got {getattr(self, name)!r}")
        if self.tied and self.zero_readout:
            raise ValueError("zero_readout: a tied readout is the token embedding and cannot start at zero")
        if self.positions == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"d_model: sinusoidal positions need an even width, got {self.d_model}")
        e = self.embed_std
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0:
            raise ValueError(f"embed_std: must be a finite positive number, got {e!r}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def d_ff(self) -> int:
        return self.ff_ratio * self.d_model

    @property
    def width_multiplier(self) -> float:
        """``m = d_model / base_d_model``."""
        return self.d_model / self.base_d_model

    @property
    def depth_multiplier(self) -> float:
        """``m_L = n_layers / base_depth``."""
        return self.n_layers / self.base_depth

    @property
    def alpha(self) -> float:
        return DEPTH_ALPHA[self.depth_scaling]

    @property
    def residual_multiplier(self) -> float:
        """``r = m_L^{-alpha}`` (alpha 0 / 1/2 / 1 for none / depth-mup / completep)."""
        return self.depth_multiplier ** (-self.alpha)

    @property
    def attention_scale(self) -> float:
        """Logit factor: ``1/sqrt(d_head)`` (SP) or ``sqrt(base_d_head)/d_head`` (muP)."""
        rule = "mup" if self.parameterization == "mup" else "sp"
        return attention_scale(self.d_head, rule=rule, base_d_head=self.base_d_model // self.n_heads)

    @property
    def tied_multiplier(self) -> float:
        """Factor on ``LN(x) @ E^T`` of a tied readout: ``base_d_model / d_model`` (muP), 1 (SP)."""
        return self.base_d_model / self.d_model if self.parameterization == "mup" else 1.0


@dataclass(frozen=True)
class TensorSpec:
    """One parameter tensor: where it lives and how it is initialised, trained and decayed.

    ``shape`` includes the leading layer axis for block tensors; ``fan_in`` and ``base_fan_in`` are
    those of one layer's matrix (None for tables and vectors); ``init`` is ``"normal" | "zeros" | "ones"``.
    """

    path: str
    shape: tuple[int, ...]
    kind: str
    role: str
    init: str
    init_std: float
    lr_multiplier: float
    weight_decay: bool
    in_block: bool
    forward_multiplier: float = 1.0


def _matrix_spec(cfg: TransformerConfig, path: str, shape, kind: str, role: str, base_fan_in: int,
                 *, zero: bool = False, in_block: bool = True, forward_multiplier: float = 1.0) -> TensorSpec:
    """A weight matrix: std ``std_factor(kind, m) / sqrt(base_fan_in)``, lr ``lr_factor(kind, m)`` (x depth)."""
    row = get_parameterization(PARAMETERIZATION_ROWS[cfg.parameterization])
    _, std_factor, lr_factor = row.scales(kind, cfg.width_multiplier)
    depth_lr = _depth_lr_factor(cfg) if in_block else 1.0
    std = 0.0 if zero else std_factor / math.sqrt(base_fan_in)
    return TensorSpec(path, tuple(shape), kind, role, "zeros" if zero else "normal", std, lr_factor * depth_lr,
                      True, in_block, forward_multiplier)


def _vector_spec(cfg: TransformerConfig, path: str, shape, role: str, *, in_block: bool) -> TensorSpec:
    """A LayerNorm gain (ones) or bias (zeros): kind ``vector``, lr ``lr_factor(vector, m)`` (x depth), no decay."""
    row = get_parameterization(PARAMETERIZATION_ROWS[cfg.parameterization])
    lr_factor = row.scales("vector", cfg.width_multiplier)[2]
    depth_lr = _depth_lr_factor(cfg) if in_block else 1.0
    init = "ones" if role == "ln_gain" else "zeros"
    r = cfg.residual_multiplier if in_block else 1.0
    return TensorSpec(path, tuple(shape), "vector", role, init, 0.0, lr_factor * depth_lr, False, in_block, r)


def _embedding_spec(cfg: TransformerConfig, path: str, shape, role: str, forward_multiplier: float) -> TensorSpec:
    """A lookup table: std ``embed_std * std_factor(input, m)`` (= embed_std), lr ``lr_factor(input, m)``."""
    row = get_parameterization(PARAMETERIZATION_ROWS[cfg.parameterization])
    _, std_factor, lr_factor = row.scales("input", cfg.width_multiplier)
    return TensorSpec(path, tuple(shape), "input", role, "normal", cfg.embed_std * std_factor, lr_factor, True,
                      False, forward_multiplier)


def _depth_lr_factor(cfg: TransformerConfig) -> float:
    """Adam lr factor of tensors inside residual blocks: ``m_L^{alpha-1}``, 1 without a depth rule.

    CompleteP (Dey et al. 2025, arXiv:2505.01618, Table 1) and Depth-muP (Yang et al. 2023,
    arXiv:2310.02244; ``1/sqrt(L)`` at alpha = 1/2).
    """
    if cfg.depth_scaling == "none":
        return 1.0
    return cfg.depth_multiplier ** (cfg.alpha - 1.0)


def tensor_specs(cfg: TransformerConfig) -> dict[str, TensorSpec]:
    """Every parameter tensor of the model, keyed by path (``"blocks/wq"``), in a fixed order.

    The single source of the model's shapes, kinds, init stds, lr multipliers and decay flags:
    :func:`init`, :func:`lr_multipliers`, :func:`decay_mask`, :func:`n_params` and
    :func:`parameterization_table` all read it.
    """
    d, f, L, V, T = cfg.d_model, cfg.d_ff, cfg.n_layers, cfg.vocab, cfg.seq_len
    d0, f0, r = cfg.base_d_model, cfg.ff_ratio * cfg.base_d_model, cfg.residual_multiplier
    specs = [_embedding_spec(cfg, "token_embedding", (V, d), "tied_embedding" if cfg.tied else "embedding",
                             cfg.tied_multiplier if cfg.tied else 1.0)]
    if cfg.positions == "learned":
        specs.append(_embedding_spec(cfg, "position_embedding", (T, d), "embedding", 1.0))
    for name in BLOCK_VECTORS:
        specs.append(_vector_spec(cfg, f"blocks/{name}", (L, d), "ln_" + name.split("_")[1], in_block=True))
    specs += [
        _matrix_spec(cfg, "blocks/wq", (L, d, d), "hidden", "query", d0, zero=cfg.zero_query, forward_multiplier=r),
        _matrix_spec(cfg, "blocks/wk", (L, d, d), "hidden", "key", d0, forward_multiplier=r),
        _matrix_spec(cfg, "blocks/wv", (L, d, d), "hidden", "value", d0, forward_multiplier=r),
        _matrix_spec(cfg, "blocks/wo", (L, d, d), "hidden", "attn_output", d0, forward_multiplier=r),
        _matrix_spec(cfg, "blocks/mlp_in", (L, d, f), "hidden", "mlp_in", d0, forward_multiplier=r),
        _matrix_spec(cfg, "blocks/mlp_out", (L, f, d), "hidden", "mlp_out", f0, forward_multiplier=r),
        _vector_spec(cfg, "final_ln_gain", (d,), "ln_gain", in_block=False),
        _vector_spec(cfg, "final_ln_bias", (d,), "ln_bias", in_block=False),
    ]
    if not cfg.tied:
        specs.append(_matrix_spec(cfg, "readout", (d, V), "output", "readout", d0, zero=cfg.zero_readout,
                                  in_block=False))
    return {s.path: s for s in specs}


def _nest(flat: dict[str, object]) -> dict:
    """``{"blocks/wq": x, "readout": y} -> {"blocks": {"wq": x}, "readout": y}``."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def init(key: jax.Array, cfg: TransformerConfig) -> dict:
    """Parameters, a nested dict of arrays in ``cfg.dtype`` (block tensors stacked on a layer axis).

    Normal tensors are ``init_std * N(0, 1)`` drawn with one subkey per path (the order of
    :func:`tensor_specs`), so two configs that differ only in their scaling rules draw the same noise.
    """
    specs = tensor_specs(cfg)
    keys = jax.random.split(key, len(specs))
    return _build(cfg, lambda i, shape: jax.random.normal(keys[i], shape, cfg.dtype), jnp)


def init_numpy(seed: int, cfg: TransformerConfig) -> dict:
    """:func:`init` with the standard normals drawn by numpy (``np.random.default_rng(seed)``, PCG64), tensor by
    tensor in the order of :func:`tensor_specs`; numpy arrays in ``cfg.dtype``.

    The same distribution as :func:`init`, not the same numbers. It compiles nothing: every ``jax.random`` draw of
    a new shape is a program XLA compiles (about 0.1-0.4 s each on a 2-core CPU), which for a small model costs
    far more than drawing its weights. :func:`learnmech.lm_train.train_lm` starts its members from it.
    """
    rng = np.random.default_rng(int(seed))
    return _build(cfg, lambda i, shape: rng.standard_normal(shape).astype(cfg.dtype), np)


def _build(cfg: TransformerConfig, normal, xp) -> dict:
    """The parameters from ``normal(index, shape)`` standard normals (``xp``: jax.numpy or numpy)."""
    flat = {}
    for i, spec in enumerate(tensor_specs(cfg).values()):
        if spec.init == "normal":
            flat[spec.path] = (normal(i, spec.shape) * np.asarray(spec.init_std, cfg.dtype)).astype(cfg.dtype)
        elif spec.init == "ones":
            flat[spec.path] = xp.ones(spec.shape, cfg.dtype)
        else:
            flat[spec.path] = xp.zeros(spec.shape, cfg.dtype)
    return _nest(flat)


def sinusoidal_positions(seq_len: int, d_model: int, dtype="float32") -> jax.Array:
    """``(seq_len, d_model)``: ``P[p, 2i] = sin(p / 10000^{2i/d})``, ``P[p, 2i+1] = cos(p / 10000^{2i/d})``.

    Vaswani et al. 2017, arXiv:1706.03762, Section 3.5. Computed in float64 numpy, returned in ``dtype``.
    """
    pos = np.arange(seq_len, dtype=np.float64)[:, None]  # (T, 1)
    freq = 10000.0 ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # (d/2,)
    table = np.zeros((seq_len, d_model))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq)
    return jnp.asarray(table, dtype=dtype)


def _layer_norm(x: jax.Array, gain: jax.Array, bias: jax.Array) -> jax.Array:
    """``(x - mean) / sqrt(var + eps) * gain + bias`` over the last axis (Ba, Kiros & Hinton 2016, arXiv:1607.06450)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LN_EPS) * gain + bias


def _attention(h: jax.Array, layer: dict, cfg: TransformerConfig) -> jax.Array:
    """Causal multi-head self-attention of ``h (B, T, d)``, no biases; returns ``(B, T, d)``."""
    b, t, _ = h.shape
    heads = lambda w: (h @ w).reshape(b, t, cfg.n_heads, cfg.d_head)  # (B, T, H, d_head)
    out = dot_product_attention(heads(layer["wq"]), heads(layer["wk"]), heads(layer["wv"]),
                                scale=cfg.attention_scale, causal=True)  # (B, T, H, d_head)
    return out.reshape(b, t, cfg.d_model) @ layer["wo"]


def block(x: jax.Array, layer: dict, cfg: TransformerConfig) -> jax.Array:
    """One pre-LN layer: ``x + r Attn(LN1 x)``, then ``+ r W_out gelu(W_in LN2 x)``; ``layer`` unstacked."""
    r = cfg.residual_multiplier
    x = x + r * _attention(_layer_norm(x, layer["ln1_gain"], layer["ln1_bias"]), layer, cfg)
    h = _layer_norm(x, layer["ln2_gain"], layer["ln2_bias"]) @ layer["mlp_in"]  # (B, T, d_ff)
    return x + r * (jax.nn.gelu(h, approximate=True) @ layer["mlp_out"])


def _embed(params: dict, tokens: jax.Array, cfg: TransformerConfig) -> jax.Array:
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens: must be an integer array (batch, time), got {tokens.dtype} {tokens.shape}")
    t = tokens.shape[1]
    if t > cfg.seq_len:
        raise ValueError(f"tokens: at most seq_len={cfg.seq_len} positions, got {t}")
    x = params["token_embedding"][tokens.astype(jnp.int32)]  # (B, T, d)
    if cfg.positions == "learned":
        return x + params["position_embedding"][:t]
    return x + sinusoidal_positions(t, cfg.d_model, cfg.dtype)


def _readout(params: dict, x: jax.Array, cfg: TransformerConfig) -> jax.Array:
    h = _layer_norm(x, params["final_ln_gain"], params["final_ln_bias"])  # (B, T, d)
    if cfg.tied:
        return tied_readout(h, params["token_embedding"], multiplier=cfg.tied_multiplier)
    return h @ params["readout"]  # (B, T, V)


def apply(params: dict, tokens: jax.Array, cfg: TransformerConfig) -> jax.Array:
    """Next-token logits ``(B, T, vocab)`` of integer ``tokens (B, T)``, ``T <= seq_len``; layers under ``lax.scan``."""
    x = _embed(params, tokens, cfg)  # (B, T, d)
    x, _ = jax.lax.scan(lambda carry, layer: (block(carry, layer, cfg), None), x, params["blocks"])
    return _readout(params, x, cfg)


def loss(params: dict, windows: jax.Array, cfg: TransformerConfig) -> jax.Array:
    """Mean next-token cross-entropy in nats: inputs ``windows[:, :-1]``, targets ``windows[:, 1:]``.

    ``windows`` is ``(B, T + 1)`` integers (e.g. ``uint8`` bytes); returns a scalar in ``cfg.dtype``.
    """
    windows = jnp.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"windows: must be (batch, T + 1) with T >= 1, got shape {windows.shape}")
    windows = windows.astype(jnp.int32)
    logits = apply(params, windows[:, :-1], cfg)  # (B, T, V)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, windows[:, 1:, None], axis=-1))


def lr_multipliers(cfg: TransformerConfig) -> dict:
    """Per-tensor learning-rate multipliers (python floats), a pytree shaped like ``params``.

    Width factor of the ``mup-adam`` / ``sp`` row times ``m_L^{alpha-1}`` for tensors inside the blocks.
    """
    return _nest({p: s.lr_multiplier for p, s in tensor_specs(cfg).items()})


def decay_mask(cfg: TransformerConfig) -> dict:
    """AdamW weight-decay mask (python bools) shaped like ``params``.

    GPT convention (Radford et al. 2019; nanoGPT): decay every matrix, embeddings and readout included;
    never LayerNorm gains or biases (the blocks' stacked ``(L, d)`` gains are vectors, not matrices).
    """
    return _nest({p: s.weight_decay for p, s in tensor_specs(cfg).items()})


def n_params(cfg: TransformerConfig, embeddings: bool = True) -> int:
    """Number of scalar parameters; ``embeddings=False`` leaves out the token and position tables.

    Per layer ``(4 + 2 ff_ratio) d^2 + 4 d``; plus ``vocab d`` (+ ``seq_len d`` learned positions), ``2 d``
    final LayerNorm and ``d vocab`` untied readout (a tied matrix counts once, as embedding).
    """
    tables = ("token_embedding", "position_embedding")
    return sum(math.prod(s.shape) for p, s in tensor_specs(cfg).items() if embeddings or p not in tables)


def non_embedding_params(cfg: TransformerConfig) -> int:
    """``n_params(cfg, embeddings=False)``: the untied readout counts, the token / position tables do not."""
    return n_params(cfg, embeddings=False)


def _matmul_params(cfg: TransformerConfig) -> int:
    """Entries of every matrix a token multiplies through: ``L (4 + 2 ff_ratio) d^2 + d vocab`` (readout)."""
    return cfg.n_layers * (4 + 2 * cfg.ff_ratio) * cfg.d_model ** 2 + cfg.d_model * cfg.vocab


def flops_per_token(cfg: TransformerConfig, include_attention: bool = True) -> float:
    """Training FLOPs per token: ``6 N_matmul + 6 n_layers seq_len d_model``.

    Kaplan et al. 2020, arXiv:2001.08361, Table 1: forward ``2 N + 2 n_layer n_ctx d_attn``, training
    3x forward. ``N_matmul`` includes the readout (tied or not), which Kaplan's ``N`` leaves out. The
    attention term is Kaplan's: half the dense ``4 n_layer n_ctx d`` of ``QK^T`` and ``AV``, i.e. the
    causal average.
    """
    attention = 6.0 * cfg.n_layers * cfg.seq_len * cfg.d_model if include_attention else 0.0
    return 6.0 * _matmul_params(cfg) + attention


def parameterization_table(cfg: TransformerConfig) -> list[dict]:
    """One row per tensor: path, shape, kind, role, init, init_std, lr_multiplier, forward_multiplier, weight_decay.

    ``forward_multiplier`` is the residual multiplier ``r`` for tensors inside the blocks (it scales their
    branch's output), ``base_d_model / d_model`` for a tied embedding under muP (its readout use), else 1.
    The attention logit scale is ``cfg.attention_scale``.
    """
    return [{"path": s.path, "shape": s.shape, "kind": s.kind, "role": s.role, "init": s.init,
             "init_std": s.init_std, "lr_multiplier": s.lr_multiplier, "forward_multiplier": s.forward_multiplier,
             "weight_decay": s.weight_decay} for s in tensor_specs(cfg).values()]


def same_network(a: TransformerConfig, b: TransformerConfig) -> bool:
    """Whether two configs build one network: equal :func:`parameterization_table` (every tensor's shape, init, init
    std, learning-rate and forward multiplier, weight decay), attention scale, residual and tied-readout
    multipliers. muP and SP at the base width, or the depth rules at the base depth, are one network: a sweep
    trains it once."""
    def key(c: TransformerConfig):
        return parameterization_table(c), c.attention_scale, c.residual_multiplier, c.tied_multiplier

    return key(a) == key(b)
