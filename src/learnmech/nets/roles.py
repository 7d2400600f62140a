"""Roles of a model's tensors (embedding, query, ..., readout) and the muP rule each role follows.

The abc table of :mod:`learnmech.theory.parameterization` knows *kinds* (input, hidden, output),
which follow from the shapes alone. A transformer's tensors also have *roles* that a shape cannot
tell: the query, key and value projections are all hidden matrices, but muP treats the query
differently (zero initialisation is recommended), the embedding is an input layer whose fan-in
(the vocabulary) does not grow, and a tied embedding is used both as input and as readout. This
module names the roles, maps each to its kind, and guesses a leaf's role from its path.

========================  ======  ===============================  ===============================
role                      kind    mup-adam (init std, lr)          mup-sgd (init std, lr)
========================  ======  ===============================  ===============================
``embedding``             input   const, const                     const, eta * m
``query``                 hidden  1/sqrt(fan_in) or 0, eta / m     1/sqrt(fan_in) or 0, eta
``key``                   hidden  1/sqrt(fan_in), eta / m          1/sqrt(fan_in), eta
``value``                 hidden  1/sqrt(fan_in), eta / m          1/sqrt(fan_in), eta
``attn_output``           hidden  1/sqrt(fan_in), eta / m          1/sqrt(fan_in), eta
``readout``               output  1/fan_in or 0, eta / m           1/fan_in or 0, eta / m
``tied_embedding``        input   const, const (+ logits / m)      const, eta * m (+ logits / m)
========================  ======  ===============================  ===============================

Sources and conventions (``m`` is the width multiplier, width / base width):

- The kinds and the init and learning-rate columns are TP-V Table 3 and Appendix D.2 (Yang et al.
  2022, "Tensor Programs V", arXiv:2203.03466), with the base width absorbed into the constants.
- Embeddings are *vector-like* (only their fan-out grows), as in Microsoft's ``mup`` package:
  init std and Adam learning rate constant in width. learnmech follows this convention.
- ``query``: TP-V Appendix D.2 recommends a zero initialisation of the query projection so that
  the attention starts uniform at every width; learnmech offers it as ``zero_query=True`` (off by
  default, as in ``mup``, where it is left to the user's model code).
- ``readout``: std ``1/fan_in`` (muP) or zero (``zero_readout=True``, TP-V Appendix D.2 and
  ``mup``'s recommendation for the output layer).
- ``tied_embedding``: one tensor is both the input embedding and the readout. learnmech follows
  ``mup``'s ``MuSharedReadout``: the tensor keeps the embedding's init and learning rate, and the
  readout logits are multiplied by ``1 / m`` in the forward pass (``MuP.tied_readout_multiplier``).
  The forward multiplier is the user's to apply, since it lives inside the model.

Nothing here imports jax: roles are names and strings.
"""

from __future__ import annotations

import re

__all__ = ["ROLES", "ROLE_KINDS", "infer_role", "role_kind"]

ROLES = ("embedding", "query", "key", "value", "attn_output", "readout", "tied_embedding")

ROLE_KINDS = {
    "embedding": "input",
    "tied_embedding": "input",
    "query": "hidden",
    "key": "hidden",
    "value": "hidden",
    "attn_output": "hidden",
    "readout": "output",
}

# Path components (lower-cased) that name a role on their own. Order matters only between roles
# whose names never overlap, so a dict is enough.
_NAMES = {
    "embedding": ("embed", "embeds", "embedding", "embeddings", "wte", "tok_emb", "tok_embeddings",
                  "token_embedding", "token_embeddings", "word_embeddings", "embed_tokens"),
    "query": ("q_proj", "query", "wq", "q", "to_q", "q_lin"),
    "key": ("k_proj", "key", "wk", "k", "to_k", "k_lin"),
    "value": ("v_proj", "value", "wv", "v", "to_v", "v_lin"),
    "attn_output": ("o_proj", "out_proj", "attn_out", "attn_output", "to_out", "out_lin"),
    "readout": ("lm_head", "readout", "unembed", "unembedding", "head", "output_layer"),
}
_BY_NAME = {name: role for role, names in _NAMES.items() for name in names}
# Names of the attention output only inside an attention block (a component containing "attn" or
# "attention", or "mha"): GPT-2's MLP has a ``c_proj`` and T5's feed-forward a ``wo`` too.
_IN_ATTENTION = ("c_proj", "wo", "o")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _components(path: str) -> list[str]:
    """The names in a leaf path, lower-cased: ``"['h'][0].attn.q_proj.weight"`` -> ``[h, attn, q_proj, weight]``."""
    return [t.lower() for t in _TOKEN.findall(path)]


def infer_role(path: str) -> str | None:
    """The role of the leaf at ``path`` (as ``jax.tree_util.keystr`` or a dotted name prints it), or ``None``.

    The last path component that names a role decides; ``c_proj``, ``wo`` and ``o`` count as the
    attention output only inside an attention block (GPT-2's MLP has a ``c_proj``, T5's a ``wo``). Returns
    ``None`` when no component names a role: the leaf's kind then comes from its shapes alone.

    >>> infer_role("['blocks'][0]['attn']['q_proj']['kernel']")
    'query'
    >>> infer_role(".transformer.h[1].attn.c_proj.weight")
    'attn_output'
    >>> infer_role(".transformer.h[1].mlp.c_proj.weight") is None
    True
    >>> infer_role("layers.0.attention.wo.weight"), infer_role("block.1.DenseReluDense.wo.weight")
    ('attn_output', None)
    >>> infer_role(".lm_head.weight"), infer_role("['wte']['embedding']")
    ('readout', 'embedding')
    """
    parts = _components(path)
    for i in range(len(parts) - 1, -1, -1):
        name = parts[i]
        if name in _IN_ATTENTION:
            if any("attn" in p or "attention" in p or p == "mha" for p in parts[:i]):
                return "attn_output"
            continue
        role = _BY_NAME.get(name)
        if role is not None:
            return role
    return None


def role_kind(role: str) -> str:
    """The abc kind of a role: ``"input"``, ``"hidden"`` or ``"output"``.

    >>> role_kind("embedding"), role_kind("value"), role_kind("readout")
    ('input', 'hidden', 'output')
    """
    if role not in ROLE_KINDS:
        raise ValueError(f"role: must be one of {list(ROLES)}, got {role!r}")
    return ROLE_KINDS[role]
