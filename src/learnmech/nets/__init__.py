"""Models as pure functions over plain pytrees, with their parameterisation as data."""

from learnmech.nets.dln import DeepLinear, end_to_end
from learnmech.nets.masked_mlp import MaskedMLP
from learnmech.nets.mlp import ACTIVATIONS, MLP
from learnmech.nets.mup import LeafScaling, MuP, classify_leaf, mup, scale_by_multipliers
from learnmech.nets.parameterization import PARAMETERIZATIONS, LayerScaling, layer_kind, layer_scalings

__all__ = [
    "ACTIVATIONS",
    "DeepLinear",
    "LayerScaling",
    "LeafScaling",
    "MLP",
    "MaskedMLP",
    "MuP",
    "PARAMETERIZATIONS",
    "classify_leaf",
    "end_to_end",
    "layer_kind",
    "layer_scalings",
    "mup",
    "scale_by_multipliers",
]
