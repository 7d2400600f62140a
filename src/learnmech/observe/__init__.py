"""Aggregate statistics of training, for any JAX pytree model given its apply function."""

from learnmech.observe.activations import activation_change_rms, activation_rms
from learnmech.observe.coords import CoordCheck, CoordModel, coord_check, layer_coordinates, minibatch_indices
from learnmech.observe.curvature import (
    SharpnessEstimate,
    adam_preconditioner,
    hvp,
    preconditioned_sharpness,
    sharpness,
    top_eigenvalues,
)
from learnmech.observe.loss import mse, mse_loss
from learnmech.observe.modes import input_output_map, mode_strengths
from learnmech.observe.norms import leaf_names, parameter_norms, relative_movement
from learnmech.observe.ensemble_curvature import ensemble_sharpness
from learnmech.observe.kernel_metrics import kernel_alignment, ntk_drift
from learnmech.observe.noise import (
    NoiseScale,
    average_noise_scale,
    gradient_noise_scale,
    noise_scale_from_batch_sizes,
    noise_scale_two_batch,
    per_example_gradients,
)
from learnmech.observe.nngp import empirical_nngp, readout_nngp
from learnmech.observe.ntk import empirical_ntk, mlp_ntk, ntk_full_jacobian, select_ntk_strategy
from learnmech.observe.rank import numerical_rank, singular_values
from learnmech.observe.representation import debiased_cka, linear_cka, mutual_knn, rbf_cka
from learnmech.observe.spectra import (
    covariance_spectrum,
    cumulative_power,
    kernel_spectrum,
    linear_kernel_eigensystem,
    target_power,
)

__all__ = [
    "CoordCheck",
    "CoordModel",
    "coord_check",
    "layer_coordinates",
    "minibatch_indices",
    "NoiseScale",
    "SharpnessEstimate",
    "activation_change_rms",
    "activation_rms",
    "adam_preconditioner",
    "average_noise_scale",
    "empirical_nngp",
    "ensemble_sharpness",
    "empirical_ntk",
    "gradient_noise_scale",
    "hvp",
    "input_output_map",
    "kernel_alignment",
    "leaf_names",
    "mlp_ntk",
    "mode_strengths",
    "mse",
    "mse_loss",
    "noise_scale_from_batch_sizes",
    "noise_scale_two_batch",
    "debiased_cka",
    "linear_cka",
    "mutual_knn",
    "rbf_cka",
    "covariance_spectrum",
    "cumulative_power",
    "kernel_spectrum",
    "linear_kernel_eigensystem",
    "target_power",
    "ntk_drift",
    "ntk_full_jacobian",
    "numerical_rank",
    "parameter_norms",
    "per_example_gradients",
    "preconditioned_sharpness",
    "readout_nngp",
    "relative_movement",
    "select_ntk_strategy",
    "sharpness",
    "singular_values",
    "top_eigenvalues",
]
