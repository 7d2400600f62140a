"""Aggregate statistics of training, for any JAX pytree model given its apply function."""

from learnmech.observe.activations import activation_change_rms, activation_rms
from learnmech.observe.loss import mse, mse_loss
from learnmech.observe.modes import input_output_map, mode_strengths
from learnmech.observe.norms import leaf_names, parameter_norms, relative_movement
from learnmech.observe.rank import numerical_rank, singular_values

__all__ = [
    "activation_change_rms",
    "activation_rms",
    "input_output_map",
    "leaf_names",
    "mode_strengths",
    "mse",
    "mse_loss",
    "numerical_rank",
    "parameter_norms",
    "relative_movement",
    "singular_values",
]
