"""Predictions as pure functions: no training, no I/O, no randomness, nothing else of learnmech.
"""

from learnmech.theory.batch_scaling import scaled_hyperparameters, SCALING_RULES
from learnmech.theory.batch_tradeoff import run_average, steps_hyperbola
from learnmech.theory.central_flow import (
    central_flow,
    complementarity,
    FlowPath,
    gradient_flow,
    one_eigenvalue_sigma2,
)
from learnmech.theory.central_flow import predicted_loss as central_flow_loss
from learnmech.theory.conservation import (
    chain_step_change,
    decay_recursion,
    kunin_momentum,
    kunin_weight_decay,
    momentum_recursion,
    neuron_step_change,
    scale_step_change,
)
from learnmech.theory.committee import (
    erf_integrals,
    escape_time,
    generalisation_error,
    integrate_overlaps,
    order_parameter_rhs,
    OverlapPath,
    plateau_error_small_lr,
    symmetric_fixed_point,
)
from learnmech.theory.coord_exponents import init_exponents, update_exponents
from learnmech.theory.dln import mode_trajectory, mode_trajectory_two_layer, predicted_loss, t_half, t_half_two_layer
from learnmech.theory.dual import (
    Activation,
    ACTIVATIONS,
    arc_cosine,
    arc_cosine_j,
    DualActivation,
    gauss_hermite,
    get_activation,
    named_activation,
    quadrature,
)
from learnmech.theory.eigenlearning import (
    effective_regularization,
    EigenlearningPrediction,
    kernel_eigensystem,
    KernelEigensystem,
    learnabilities,
    learning_curve,
    overfitting_coefficient,
    target_coefficients,
)
from learnmech.theory.hea import (
    gaussian_level_coefficients,
    gaussian_mehler_eigenvalues,
    hea_learning_curve,
    hea_modes,
    HeaModes,
    hermite_features,
    hermite_target_coefficients,
    principal_components,
)
from learnmech.theory.kernel_fluctuations import FluctuationConstants, kernel_fluctuations, mean_kernels
from learnmech.theory.kernels import Kernels, layer_coefficients, nngp_ntk
from learnmech.theory.krr import kernel_ridge, kernel_ridge_path
from learnmech.theory.lazy_rich import angle_to_nearest, isotropic_alignment, linearised_movement
from learnmech.theory.learning_coefficient import Coefficient as LearningCoefficient
from learnmech.theory.learning_coefficient import normal_crossing, reduced_rank_regression, rrr_case
from learnmech.theory.learning_coefficient import regular as regular_coefficient
from learnmech.theory.localised_posterior import crossing_expectation, gaussian_expectation
from learnmech.theory.modular import fourier_concentration, gromov_accuracy, gromov_weights, grid_phases, pair_power
from learnmech.theory.linearized import (
    linearized_loss,
    linearized_loss_gd,
    linearized_test_outputs,
    linearized_test_outputs_gd,
    linearized_train_outputs,
    linearized_train_outputs_gd,
)
from learnmech.theory.lr_transfer import ADAM_LR_SLOPES, predicted_lr_shift
from learnmech.theory.max_margin import (
    hard_margin,
    HardMargin,
    kkt_residuals,
    norm_offset,
    predicted_angle,
    predicted_norm_ratio,
)
from learnmech.theory.parameterization import (
    Exponents,
    get_parameterization,
    KINDS,
    Parameterization,
    PARAMETERIZATIONS,
    shift,
)
from learnmech.theory.richness import (
    crossover_gamma,
    lazy_edge_coefficient,
    lr_exponents,
    predicted_optimal_lr,
    toy_optimal_lr,
    toy_sharpness,
)
from learnmech.theory.scaling_forms import FORMS, get_form, reduced_form, ScalingForm, user_form
from learnmech.theory.scaling_limits import first_limit, mean_square_limit_linear, noise_limit, stability_limit
from learnmech.theory.scaling_forms import predict as predict_scaling
from learnmech.theory.scaling_frontier import compute_optimal, frontier_problem, tokens_per_parameter
from learnmech.theory.sgd_linear import b_crit_linear, b_simple_linear, sgd_second_moments
from learnmech.theory.signal_propagation import (
    chi_1,
    correlation_map,
    critical_sigma_w2,
    length_fixed_point,
    length_map,
    mean_field,
    MeanField,
)
from learnmech.theory.spectral import predicted_learning_curve_exponent
from learnmech.theory.stability import adam_preconditioner, stability_threshold

__all__ = [
    # deep linear networks
    "mode_trajectory",
    "mode_trajectory_two_layer",
    "predicted_loss",
    "t_half",
    "t_half_two_layer",
    # the soft committee machine (online SGD, order-parameter ODEs)
    "erf_integrals",
    "escape_time",
    "generalisation_error",
    "integrate_overlaps",
    "order_parameter_rhs",
    "OverlapPath",
    "plateau_error_small_lr",
    "symmetric_fixed_point",
    # the implicit bias of gradient descent: the max-margin direction
    "hard_margin",
    "HardMargin",
    "kkt_residuals",
    "norm_offset",
    "predicted_angle",
    "predicted_norm_ratio",
    # activations and their duals; infinite-width kernels
    "Activation",
    "ACTIVATIONS",
    "arc_cosine",
    "arc_cosine_j",
    "DualActivation",
    "gauss_hermite",
    "get_activation",
    "Kernels",
    "layer_coefficients",
    "named_activation",
    "nngp_ntk",
    "quadrature",
    # signal propagation in deep random networks: order, chaos and depth scales
    "chi_1",
    "correlation_map",
    "critical_sigma_w2",
    "length_fixed_point",
    "length_map",
    "mean_field",
    "MeanField",
    # finite-width fluctuations of the kernels
    "FluctuationConstants",
    "kernel_fluctuations",
    "mean_kernels",
    # kernel regression and eigenlearning
    "effective_regularization",
    "EigenlearningPrediction",
    "kernel_eigensystem",
    "kernel_ridge",
    "kernel_ridge_path",
    "KernelEigensystem",
    "learnabilities",
    "learning_curve",
    "overfitting_coefficient",
    "predicted_learning_curve_exponent",
    "target_coefficients",
    # the Hermite eigenstructure ansatz: kernel eigenvalues from the data covariance
    "gaussian_level_coefficients",
    "gaussian_mehler_eigenvalues",
    "hea_learning_curve",
    "hea_modes",
    "HeaModes",
    "hermite_features",
    "hermite_target_coefficients",
    "principal_components",
    # linearised training and the lazy/rich limits
    "angle_to_nearest",
    "isotropic_alignment",
    "linearised_movement",
    "linearized_loss",
    "linearized_loss_gd",
    "linearized_test_outputs",
    "linearized_test_outputs_gd",
    "linearized_train_outputs",
    "linearized_train_outputs_gd",
    # the optimal learning rate across richness
    "crossover_gamma",
    "lazy_edge_coefficient",
    "lr_exponents",
    "predicted_optimal_lr",
    "toy_optimal_lr",
    "toy_sharpness",
    # parameterisations (SP, NTK, muP) and what they predict
    "ADAM_LR_SLOPES",
    "Exponents",
    "get_parameterization",
    "init_exponents",
    "KINDS",
    "Parameterization",
    "PARAMETERIZATIONS",
    "predicted_lr_shift",
    "shift",
    "update_exponents",
    # optimisation: stability, batch size, SGD noise
    "adam_preconditioner",
    "b_crit_linear",
    "b_simple_linear",
    "run_average",
    "scaled_hyperparameters",
    "SCALING_RULES",
    "sgd_second_moments",
    "stability_threshold",
    "first_limit",
    "mean_square_limit_linear",
    "noise_limit",
    "stability_limit",
    "steps_hyperbola",
    # the central flow of gradient descent at the edge of stability
    "central_flow",
    "central_flow_loss",
    "complementarity",
    "FlowPath",
    "gradient_flow",
    "one_eigenvalue_sigma2",
    # conservation laws and how finite steps break them
    "chain_step_change",
    "decay_recursion",
    "kunin_momentum",
    "kunin_weight_decay",
    "momentum_recursion",
    "neuron_step_change",
    "scale_step_change",
    # singular learning theory: exact local learning coefficients
    "LearningCoefficient",
    "normal_crossing",
    "reduced_rank_regression",
    "regular_coefficient",
    "rrr_case",
    "crossing_expectation",
    "gaussian_expectation",
    # modular addition: Gromov's analytic network and the Fourier concentration of weights
    "fourier_concentration",
    "gromov_accuracy",
    "gromov_weights",
    "grid_phases",
    "pair_power",
    # scaling laws (the forms; fits live in learnmech.fit)
    "compute_optimal",
    "FORMS",
    "frontier_problem",
    "get_form",
    "reduced_form",
    "predict_scaling",
    "ScalingForm",
    "tokens_per_parameter",
    "user_form",
]
