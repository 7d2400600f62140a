"""Aggregate statistics of training, for any JAX pytree model given its apply function.

Cheap observables run at every observation point of the driver; the costly ones are also
ready as :class:`learnmech.train.Probe` s (:mod:`.probes`) that the driver runs on their own schedule.
"""

from learnmech.observe.activations import activation_change_rms, activation_rms
from learnmech.observe.agop import (
    agop,
    best_exponent,
    dln_first_layer,
    ExponentFit,
    feature_correlation,
    jacobian_moments,
    matrix_power,
    mlp_first_layer,
    neural_feature_matrix,
    power_correlations,
    spectrum,
    Spectrum,
)
from learnmech.observe.collapse import (
    class_statistics,
    collapse_metrics,
    equiangularity,
    equinorm,
    etf_distance,
    nc1,
    ncc_disagreement,
    self_duality,
)
from learnmech.observe.conservation import (
    chain_balance,
    chain_euler_residual,
    chain_grams,
    neuron_balance,
    neuron_euler_residual,
    neuron_norms,
    scale_euler_residual,
    scale_norm,
)
from learnmech.observe.coords import coord_check, CoordCheck, CoordModel, layer_coordinates, minibatch_indices
from learnmech.observe.coords_summary import format_summary, SLOPE_TOLERANCE
from learnmech.observe.curvature import (
    adam_preconditioner,
    hvp,
    preconditioned_sharpness,
    sharpness,
    SharpnessEstimate,
    top_eigenvalues,
)
from learnmech.observe.ensemble_curvature import ensemble_sharpness
from learnmech.observe.kernel_metrics import kernel_alignment, ntk_drift
from learnmech.observe.llc import estimate_llc, llc_probe, LLCEstimate
from learnmech.observe.loss import mse, mse_loss
from learnmech.observe.modes import input_output_map, mode_strengths
from learnmech.observe.nngp import empirical_nngp, readout_nngp
from learnmech.observe.noise import (
    average_noise_scale,
    gradient_noise_scale,
    noise_scale_blocks,
    noise_scale_from_batch_sizes,
    noise_scale_two_batch,
    NoiseScale,
    per_example_gradients,
)
from learnmech.observe.norms import leaf_names, parameter_norms, relative_movement
from learnmech.observe.ntk import empirical_ntk, mlp_ntk, ntk_full_jacobian, select_ntk_strategy
from learnmech.observe.probes import noise_scale_probe, ntk_probe, preconditioned_sharpness_probe, sharpness_probe
from learnmech.observe.rank import numerical_rank, singular_values
from learnmech.observe.representation import debiased_cka, lazy_linear_cka, linear_cka, mutual_knn, rbf_cka
from learnmech.observe.spectra import (
    covariance_spectrum,
    cumulative_power,
    kernel_spectrum,
    linear_kernel_eigensystem,
    target_power,
)

__all__ = [
    # loss and parameters
    "input_output_map",
    "leaf_names",
    "mode_strengths",
    "mse",
    "mse_loss",
    "numerical_rank",
    "parameter_norms",
    "relative_movement",
    "singular_values",
    # activations and the coordinate check
    "format_summary",
    "SLOPE_TOLERANCE",
    "activation_change_rms",
    "activation_rms",
    "coord_check",
    "CoordCheck",
    "CoordModel",
    "layer_coordinates",
    "minibatch_indices",
    # curvature
    "adam_preconditioner",
    "ensemble_sharpness",
    "hvp",
    "preconditioned_sharpness",
    "sharpness",
    "SharpnessEstimate",
    "top_eigenvalues",
    # kernels of a network
    "empirical_nngp",
    "empirical_ntk",
    "kernel_alignment",
    "mlp_ntk",
    "ntk_drift",
    "ntk_full_jacobian",
    "readout_nngp",
    "select_ntk_strategy",
    # gradient noise
    "average_noise_scale",
    "gradient_noise_scale",
    "noise_scale_blocks",
    "noise_scale_from_batch_sizes",
    "noise_scale_two_batch",
    "NoiseScale",
    "per_example_gradients",
    # representations
    "debiased_cka",
    "lazy_linear_cka",
    "linear_cka",
    "mutual_knn",
    "rbf_cka",
    # spectra
    "covariance_spectrum",
    "cumulative_power",
    "kernel_spectrum",
    "linear_kernel_eigensystem",
    "target_power",
    # conserved quantities of gradient flow
    "chain_balance",
    "chain_euler_residual",
    "chain_grams",
    "neuron_balance",
    "neuron_euler_residual",
    "neuron_norms",
    "scale_euler_residual",
    "scale_norm",
    # neural collapse
    "class_statistics",
    "collapse_metrics",
    "equiangularity",
    "equinorm",
    "etf_distance",
    "nc1",
    "ncc_disagreement",
    "self_duality",
    # feature learning: the neural feature matrix and the AGOP
    "agop",
    "best_exponent",
    "dln_first_layer",
    "ExponentFit",
    "feature_correlation",
    "jacobian_moments",
    "matrix_power",
    "mlp_first_layer",
    "neural_feature_matrix",
    "power_correlations",
    "spectrum",
    "Spectrum",
    # the local learning coefficient (SGLD)
    "estimate_llc",
    "LLCEstimate",
    # probes for the driver's schedule
    "llc_probe",
    "noise_scale_probe",
    "ntk_probe",
    "preconditioned_sharpness_probe",
    "sharpness_probe",
]
