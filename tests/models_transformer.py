"""A user's flax nnx decoder-only transformer on characters of Python source (shared by tests and bench).

Written the way a new user writes one: 2 pre-LayerNorm blocks, 4 heads, an MLP 4x wide, learned
token and position embeddings, causal attention through :mod:`learnmech.nets.attention` with the
logit rule selectable (``"sp"``: ``1/sqrt(d_head)``; ``"mup"``: ``c/d_head`` with
``c = sqrt(base_d_head)``), an optional readout tied to the token embedding. Tokens are the
96 characters of printable Python source: ``"\\n"`` is 0 and ASCII 32..126 are 1..95 (tabs become
a space, anything else is dropped). The text is the source of a fixed list of standard-library
modules (``inspect.getsource``), so the data are deterministic for a given Python version.

Parameter count (untied, vocab 96, sequence 32): ``12 d^2 + 13 d`` per block,
``(96 + 32) d`` for the embeddings, ``2 d`` for the final LayerNorm, ``96 d + 96`` for the
readout; at ``d_model = 256`` that is 1,637,472 (tied: 1,612,800).
"""

from __future__ import annotations

import inspect
import importlib
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from learnmech.nets.attention import attention_logits, attention_scale, causal_mask, dot_product_attention, \
    tied_readout

__all__ = ["Config", "LAYER_NAMES", "N_HEADS", "N_LAYERS", "SEQ_LEN", "SOURCE_MODULES", "Transformer", "VOCAB",
           "as_pure", "coord_model", "encode", "layer_names", "layers", "loss", "n_params", "python_source_tokens", "sequences"]

VOCAB = 96  # "\n" and the 95 printable ASCII characters
SEQ_LEN = 32
N_LAYERS = 2
N_HEADS = 4
SOURCE_MODULES = ("textwrap", "string", "fnmatch", "json.decoder", "json.encoder", "shlex")


def layer_names(n_layers: int = N_LAYERS) -> tuple[str, ...]:
    """Names of the activations :func:`layers` returns, in order."""
    blocks = tuple(f"{name}_{i}" for i in range(n_layers) for name in ("attn_logits", "attn_out", "block"))
    return ("embedding",) + blocks + ("readout",)


LAYER_NAMES = layer_names()


def encode(text: str) -> np.ndarray:
    """Characters -> int32 tokens: ``"\\n"`` -> 0, ASCII 32..126 -> 1..95, tab -> space, others dropped."""
    codes = np.frombuffer(text.replace("\t", " ").encode("ascii", "ignore"), np.uint8).astype(np.int32)
    codes = codes[(codes == 10) | ((codes >= 32) & (codes <= 126))]
    return np.where(codes == 10, 0, codes - 31).astype(np.int32)


def python_source_tokens(modules=SOURCE_MODULES) -> np.ndarray:
    """The concatenated, encoded source of ``modules`` (standard library, fixed order)."""
    return encode("\n".join(inspect.getsource(importlib.import_module(m)) for m in modules))


def sequences(n: int, *, seq_len: int = SEQ_LEN, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows of the source at seeded random offsets: inputs and next-character targets, ``(n, seq_len)``."""
    tokens = python_source_tokens()
    starts = np.random.default_rng(seed).integers(0, tokens.size - seq_len - 1, size=n)
    windows = np.stack([tokens[s:s + seq_len + 1] for s in starts])  # (n, seq_len + 1)
    return windows[:, :-1], windows[:, 1:]


@dataclass(frozen=True)
class Config:
    """The transformer's hyperparameters.

    ``embed_std``: ``None`` keeps flax's ``nnx.Embed`` default (std ``1/sqrt(d_model)``, which
    shrinks with width); a number draws the token and position embeddings from ``N(0, embed_std^2)``
    at every width (the muP input-layer rule: a width-independent std).
    ``tied_multiplier``: the factor on ``h @ E^T`` when ``tied`` (muP: base width / width).
    ``n_layers``: 2 for the model of the issue; the tests use 1 to keep compiles short.
    """

    d_model: int = 256
    rule: str = "mup"
    base_d_model: int = 64
    tied: bool = False
    tied_multiplier: float = 1.0
    zero_query: bool = False
    embed_std: float | None = None
    n_layers: int = N_LAYERS

    @property
    def d_head(self) -> int:
        return self.d_model // N_HEADS

    @property
    def scale(self) -> float:
        return attention_scale(self.d_head, rule=self.rule, base_d_head=self.base_d_model // N_HEADS)


class Block(nnx.Module):
    """Pre-LayerNorm block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        d = cfg.d_model
        q_init = nnx.initializers.zeros if cfg.zero_query else nnx.initializers.lecun_normal()
        self.scale = cfg.scale
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.query = nnx.Linear(d, d, kernel_init=q_init, rngs=rngs)
        self.key = nnx.Linear(d, d, rngs=rngs)
        self.value = nnx.Linear(d, d, rngs=rngs)
        self.attn_out = nnx.Linear(d, d, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.mlp_in = nnx.Linear(d, 4 * d, rngs=rngs)
        self.mlp_out = nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, x: jax.Array, scale=None) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``x (B, T, D) -> (x_out (B, T, D), causal logits (B, H, T, T), attention output (B, T, D))``.

        ``scale`` overrides the configured logit scale (a float or a scalar array).
        """
        b, t, d = x.shape
        scale = self.scale if scale is None else scale
        h = self.ln1(x)
        q, k, v = (f(h).reshape(b, t, N_HEADS, d // N_HEADS) for f in (self.query, self.key, self.value))
        logits = jnp.where(causal_mask(t), attention_logits(q, k, scale=scale), 0.0)  # (B, H, T, T)
        att = self.attn_out(dot_product_attention(q, k, v, scale=scale).reshape(b, t, d))  # (B, T, D)
        x = x + att
        x = x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.ln2(x))))
        return x, logits, att


class Transformer(nnx.Module):
    """Decoder-only transformer over :data:`VOCAB` characters; ``tokens (B, T) -> logits (B, T, VOCAB)``."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        d = cfg.d_model
        # None: flax's own nnx.Embed default (std 1/sqrt(d_model)); else a width-independent std
        init = {} if cfg.embed_std is None else {"embedding_init": nnx.initializers.normal(cfg.embed_std)}
        self.tied, self.tied_multiplier = cfg.tied, cfg.tied_multiplier
        self.embed = nnx.Embed(VOCAB, d, rngs=rngs, **init)
        self.pos_embed = nnx.Embed(SEQ_LEN, d, rngs=rngs, **init)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        self.ln_f = nnx.LayerNorm(d, rngs=rngs)
        self.lm_head = None if cfg.tied else nnx.Linear(d, VOCAB, rngs=rngs)

    def activations(self, tokens: jax.Array, scale=None) -> list[jax.Array]:
        """Per-layer activations in the order of :func:`layer_names`; the last is the output logits.

        ``scale`` overrides every block's logit scale (a float or a scalar array).
        """
        x = self.embed(tokens) + self.pos_embed(jnp.arange(tokens.shape[-1]))  # (B, T, D)
        out = [x]
        for block in self.blocks:
            x, logits, att = block(x, scale)
            out += [logits, att, x]
        h = self.ln_f(x)
        if self.tied:
            out.append(tied_readout(h, self.embed.embedding[...], multiplier=self.tied_multiplier))
        else:
            out.append(self.lm_head(h))  # (B, T, VOCAB)
        return out

    def __call__(self, tokens: jax.Array, scale=None) -> jax.Array:
        return self.activations(tokens, scale)[-1]


def layers(model: Transformer, tokens: jax.Array, scale=None) -> list[jax.Array]:
    """Activations for the coordinate check, attention logits (causal entries, others 0) included."""
    return model.activations(tokens, scale)


def loss(model: Transformer, batch, scale=None) -> jax.Array:
    """Mean next-character cross-entropy on ``batch = (inputs, targets)``, each ``(B, T)`` int."""
    inputs, targets = batch
    logp = jax.nn.log_softmax(model(inputs, scale))  # (B, T, VOCAB)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def as_pure(model: Transformer):
    """``(params, apply)`` with ``apply(params, tokens) -> logits``, for pure-function probes (nnx.split)."""
    graphdef, params = nnx.split(model)

    def apply(params, tokens):
        return nnx.merge(graphdef, params)(tokens)

    return params, apply


def n_params(model: Transformer) -> int:
    """Number of trainable scalars."""
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _abstract_params(cfg: Config):
    """The parameter state of the model at ``cfg``, as shape structs (nothing is drawn)."""
    return nnx.state(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param)


def coord_model(cfg: Config, *, lr: float, parameterization: str = "mup-adam", zero_readout: bool = False):
    """A :class:`learnmech.observe.coords.CoordModel` of this transformer with muP applied in one call.

    ``learnmech.nets.mup`` is given the parameter states at ``cfg.base_d_model`` and at
    ``cfg.d_model``; its ``init`` wrapper rescales the model's own initialisation and its
    ``optimizer`` wrapper adds the per-leaf learning-rate multipliers to ``optax.adam(lr)``.
    """
    from learnmech.nets import mup
    from learnmech.observe.coords import CoordModel

    P = mup(_abstract_params(replace(cfg, d_model=cfg.base_d_model)), _abstract_params(cfg),
            parameterization=parameterization, zero_readout=zero_readout)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))

    @P.init
    def init(key):
        return nnx.state(Transformer(cfg, rngs=nnx.Rngs(key)), nnx.Param)

    return CoordModel(init=init,
                      layers=lambda params, x: layers(nnx.merge(graphdef, params), x),
                      loss=lambda params, batch: loss(nnx.merge(graphdef, params), batch),
                      optimizer=P.optimizer(optax.adam(lr)))
