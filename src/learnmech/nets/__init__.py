"""Models as pure functions over plain pytrees, with their parameterisation as data."""

from learnmech.nets.attention import (ATTENTION_RULES, attention_logits, attention_scale, causal_mask,
                                      dot_product_attention, tied_readout)
from learnmech.nets.dln import DeepLinear, end_to_end
from learnmech.nets.masked_mlp import MaskedMLP
from learnmech.nets.mlp import ACTIVATIONS, MLP
from learnmech.nets.mup import LeafScaling, MuP, classify_leaf, mup, scale_by_multipliers
from learnmech.nets.roles import ROLES, infer_role, role_kind
from learnmech.nets.parameterization import PARAMETERIZATIONS, LayerScaling, layer_kind, layer_scalings
from learnmech.nets.students import MUP_VS_SP, Student, one_draw_init
from learnmech.nets.transformer import TransformerConfig

__all__ = [
    # models
    "DeepLinear",
    "MaskedMLP",
    "MLP",
    "MUP_VS_SP",
    "one_draw_init",
    "Student",
    "TransformerConfig",  # the decoder-only transformer of learnmech.nets.transformer
    # muP for attention (logit scale c/d_head, tied readout)
    "ATTENTION_RULES",
    "attention_logits",
    "attention_scale",
    "causal_mask",
    "dot_product_attention",
    "tied_readout",
    # parameterisations and muP for any pytree
    "ACTIVATIONS",
    "classify_leaf",
    "end_to_end",
    "layer_kind",
    "layer_scalings",
    "LayerScaling",
    "LeafScaling",
    "mup",
    "MuP",
    "PARAMETERIZATIONS",
    # tensor roles in a transformer (query, key, value, embedding, readout, ...)
    "infer_role",
    "ROLES",
    "role_kind",
    "scale_by_multipliers",
]
