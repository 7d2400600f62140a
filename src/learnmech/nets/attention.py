"""muP for attention: the logit scale, scaled dot-product attention, and the tied readout.

The attention rule. Standard practice scales attention logits by ``1/sqrt(d_head)``
(Vaswani et al. 2017, arXiv:1706.03762): at initialisation the query and key of a head are
independent with Theta(1) coordinates, so ``q . k`` is a sum of ``d_head`` uncorrelated terms and
grows like ``sqrt(d_head)``. After a few steps of training the two are *correlated* (the update
of each is built from the other), ``q . k`` grows like ``d_head`` (law of large numbers), and
``1/sqrt(d_head)`` logits grow like ``sqrt(d_head)`` with width. muP therefore scales the logits by

    scale = c / d_head          (Yang et al. 2022, TP-V, arXiv:2203.03466, Section 4 and its
                                 appendix on attention logits)

so that the logit *updates* are Theta(1) at every width. Here ``c`` is a width-independent
constant. Its default is ``sqrt(base_d_head)`` when a base head dimension is given, which makes
``c / d_head == 1 / sqrt(d_head)`` at the base width: the base model is the standard one, and
muP only changes how the scale moves as the model grows. Without a base, ``c = 1``.

Conventions of Microsoft's ``mup`` package (github.com/microsoft/mup): its README writes the
logits as ``q @ k.T * 8 / d`` ("8/d instead of 1/d ... backward compatible with 1/d**0.5 when
d=64"), i.e. ``c = sqrt(64)``, the same convention as ours with ``base_d_head = 64``; its
Transformer example multiplies the query by ``attn_mult**0.5 / d_head`` (so ``c = sqrt(attn_mult)``
there) and initialises the query projection at zero. Its ``MuSharedReadout`` (a readout tied to
the input embedding) multiplies the last hidden state by ``output_mult / width_mult`` with
``width_mult = width / base_width``: :func:`tied_readout` with ``multiplier = base_width / width``.

Shapes. Queries, keys and values are ``(..., T, H, d_head)``: any batch axes, then sequence
position, head and head feature (the flax / JAX layout). Logits are ``(..., H, T_q, T_k)``.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

__all__ = ["ATTENTION_RULES", "attention_logits", "attention_scale", "causal_mask", "dot_product_attention",
           "tied_readout"]

ATTENTION_RULES = ("mup", "sp")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return value


def attention_scale(d_head: int, *, rule: Literal["mup", "sp"] = "mup", base_d_head: int | None = None,
                    c: float | None = None) -> float:
    """The factor multiplying ``q . k`` in attention logits.

    ``rule="sp"``: ``1 / sqrt(d_head)`` (Vaswani et al. 2017, arXiv:1706.03762).
    ``rule="mup"``: ``c / d_head`` (Yang et al. 2022, TP-V, arXiv:2203.03466, Section 4), with
    ``c = sqrt(base_d_head)`` by default when ``base_d_head`` is given (the base model keeps
    ``1 / sqrt(d_head)``, exactly: computed as ``(1 / sqrt(base_d_head)) * (base_d_head / d_head)``) and
    ``c = 1`` otherwise. ``c`` may only be given with ``rule="mup"``.

    >>> attention_scale(64, rule="sp")
    0.125
    >>> attention_scale(64, rule="mup", base_d_head=64)
    0.125
    >>> attention_scale(256, rule="mup", base_d_head=64)  # 8 / 256
    0.03125
    """
    d_head = _positive_int(d_head, "d_head")
    if rule not in ATTENTION_RULES:
        raise ValueError(f"rule: must be one of {list(ATTENTION_RULES)}, got {rule!r}")
    if base_d_head is not None:
        base_d_head = _positive_int(base_d_head, "base_d_head")
    if c is not None:
        if rule != "mup":
            raise ValueError(f"c: only the 'mup' rule takes a constant (c / d_head); rule {rule!r} is 1/sqrt(d_head)")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
            raise ValueError(f"c: must be a finite positive number, got {c!r}")
    if rule == "sp":
        return 1.0 / math.sqrt(d_head)
    if c is not None:
        return float(c) / d_head
    if base_d_head is not None:
        return (1.0 / math.sqrt(base_d_head)) * (base_d_head / d_head)  # == sqrt(base) / d_head; exact at the base
    return 1.0 / d_head


def causal_mask(t_q: int, t_k: int | None = None) -> jax.Array:
    """``(T_q, T_k)`` booleans, True where query ``i`` may attend to key ``j`` (``j <= i + T_k - T_q``)."""
    t_k = t_q if t_k is None else t_k
    return jnp.tril(jnp.ones((t_q, t_k), bool), k=t_k - t_q)


def _check_qk(q: jax.Array, k: jax.Array) -> None:
    if q.ndim < 3 or k.ndim < 3:
        raise ValueError(f"q, k: need shape (..., T, H, d_head), got {q.shape} and {k.shape}")
    if q.shape[-2:] != k.shape[-2:] or q.shape[:-3] != k.shape[:-3]:
        raise ValueError(f"q, k: heads, head dimension and batch axes must match, got {q.shape} and {k.shape}")


def _check_scale(scale):
    """A Python number must be finite and positive; a scalar array is passed through (it may be traced)."""
    if hasattr(scale, "shape") and hasattr(scale, "dtype") and not isinstance(scale, (bool, int, float)):
        if tuple(scale.shape) != ():
            raise ValueError(f"scale: must be a scalar, got an array of shape {tuple(scale.shape)}")
        return scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale: must be a finite positive number (see attention_scale), got {scale!r}")
    return float(scale)


def attention_logits(q: jax.Array, k: jax.Array, *, scale: float) -> jax.Array:
    """``scale * q . k`` per head: ``(..., T_q, H, d) x (..., T_k, H, d) -> (..., H, T_q, T_k)``, unmasked.

    ``scale`` as in :func:`dot_product_attention`.

    Record these in a coordinate check to see whether the attention rule keeps their updates
    Theta(1) with width (TP-V, arXiv:2203.03466, Section 4).
    """
    _check_qk(q, k)
    scale = _check_scale(scale)
    return jnp.einsum("...qhd,...khd->...hqk", q, k) * scale  # (..., H, T_q, T_k)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, scale: float, causal: bool = True,
                          mask: jax.Array | None = None) -> jax.Array:
    """``softmax(scale * q k^T + masks) v`` per head.

    Args:
      q: ``(..., T_q, H, d_head)``.
      k: ``(..., T_k, H, d_head)``.
      v: ``(..., T_k, H, d_v)``.
      scale: the logit factor, e.g. :func:`attention_scale`; a positive number, or a scalar array
        (e.g. traced, to share one compiled program between rules; its value is not checked).
      causal: query ``i`` sees keys ``j <= i`` (aligned at the end when ``T_k > T_q``).
      mask: optional booleans broadcastable to ``(..., H, T_q, T_k)``, True = may attend; combined
        with the causal mask by "and". A query that may attend nowhere gets zero output.

    Returns:
      ``(..., T_q, H, d_v)``.
    """
    if v.ndim != k.ndim or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"v: must be (..., T_k, H, d_v) matching k {k.shape}, got {v.shape}")
    logits = attention_logits(q, k, scale=scale)  # (..., H, T_q, T_k)
    allowed = jnp.ones(logits.shape[-2:], bool)
    if causal:
        allowed = causal_mask(*logits.shape[-2:])  # (T_q, T_k)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise ValueError(f"mask: must be booleans (True = may attend), got dtype {mask.dtype}")
        try:
            fits = jnp.broadcast_shapes(logits.shape, mask.shape) == logits.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"mask: shape {mask.shape} does not broadcast to the logits' {logits.shape} "
                             "(..., H, T_q, T_k)")
        allowed = allowed & mask
    logits = jnp.where(allowed, logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1) * allowed  # rows with nothing allowed -> 0
    return jnp.einsum("...hqk,...khd->...qhd", weights, v)  # (..., T_q, H, d_v)


def tied_readout(h: jax.Array, embedding: jax.Array, *, multiplier: float) -> jax.Array:
    """Logits of a readout tied to the input embedding: ``multiplier * h @ E^T``.

    ``h`` is ``(..., width)``, ``embedding`` ``E`` is ``(vocab, width)``; returns ``(..., vocab)``.
    muP: ``multiplier = base_width / width``, the ``1/fan_in`` output multiplier of TP-V
    (Yang et al. 2022, arXiv:2203.03466) relative to the base, as the ``mup`` package's
    ``MuSharedReadout`` applies it; 1 for SP.
    """
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not math.isfinite(multiplier) \
            or multiplier <= 0:
        raise ValueError(f"multiplier: must be a finite positive number (muP: base_width / width), got {multiplier!r}")
    if embedding.ndim != 2 or h.shape[-1:] != embedding.shape[-1:]:
        raise ValueError(f"embedding: must be (vocab, width) with width = h.shape[-1] = {h.shape[-1:]}, "
                         f"got {embedding.shape}")
    return jnp.einsum("...w,vw->...v", h, embedding) * float(multiplier)  # (..., vocab)
