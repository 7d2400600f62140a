"""Models as pure functions over plain pytrees, with their parameterisation as data."""

from learnmech.nets.dln import DeepLinear, end_to_end
from learnmech.nets.mlp import ACTIVATIONS, MLP
from learnmech.nets.parameterization import PARAMETERIZATIONS, LayerScaling, layer_scalings

__all__ = [
    "ACTIVATIONS",
    "DeepLinear",
    "LayerScaling",
    "MLP",
    "PARAMETERIZATIONS",
    "end_to_end",
    "layer_scalings",
]
