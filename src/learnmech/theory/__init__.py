"""Predictions as pure functions: no training, no I/O, no randomness, nothing else of learnmech."""

from learnmech.theory.batch_scaling import SCALING_RULES, scaled_hyperparameters
from learnmech.theory.batch_tradeoff import run_average, steps_hyperbola
from learnmech.theory.dln import (
    mode_trajectory,
    mode_trajectory_two_layer,
    predicted_loss,
    t_half,
    t_half_two_layer,
)
from learnmech.theory.dual import DualActivation, arc_cosine, arc_cosine_j, gauss_hermite, get_activation
from learnmech.theory.eigenlearning import (
    EigenlearningPrediction,
    KernelEigensystem,
    effective_regularization,
    kernel_eigensystem,
    learnabilities,
    learning_curve,
    overfitting_coefficient,
    target_coefficients,
)
from learnmech.theory.kernels import Kernels, layer_coefficients, nngp_ntk
from learnmech.theory.parameterization import (
    KINDS,
    PARAMETERIZATIONS,
    Exponents,
    Parameterization,
    get_parameterization,
    shift,
)
from learnmech.theory.krr import kernel_ridge, kernel_ridge_path
from learnmech.theory.scaling_forms import FORMS, ScalingForm, get_form, user_form
from learnmech.theory.scaling_forms import predict as predict_scaling
from learnmech.theory.scaling_frontier import compute_optimal, frontier_problem, tokens_per_parameter
from learnmech.theory.sgd_linear import b_crit_linear, b_simple_linear, sgd_second_moments
from learnmech.theory.spectral import predicted_learning_curve_exponent
from learnmech.theory.linearized import (
    linearized_loss,
    linearized_loss_gd,
    linearized_test_outputs,
    linearized_test_outputs_gd,
    linearized_train_outputs,
    linearized_train_outputs_gd,
)

__all__ = [
    "compute_optimal",
    "frontier_problem",
    "tokens_per_parameter",
    "FORMS",
    "ScalingForm",
    "get_form",
    "user_form",
    "predict_scaling",
    "SCALING_RULES",
    "scaled_hyperparameters",
    "run_average",
    "steps_hyperbola",
    "b_crit_linear",
    "b_simple_linear",
    "sgd_second_moments",
    "predicted_learning_curve_exponent",
    "KINDS",
    "PARAMETERIZATIONS",
    "Exponents",
    "Parameterization",
    "get_parameterization",
    "shift",
    "DualActivation",
    "Kernels",
    "arc_cosine",
    "arc_cosine_j",
    "gauss_hermite",
    "get_activation",
    "layer_coefficients",
    "nngp_ntk",
    "EigenlearningPrediction",
    "KernelEigensystem",
    "effective_regularization",
    "kernel_eigensystem",
    "kernel_ridge",
    "kernel_ridge_path",
    "learnabilities",
    "learning_curve",
    "overfitting_coefficient",
    "target_coefficients",
    "linearized_loss",
    "linearized_loss_gd",
    "linearized_test_outputs",
    "linearized_test_outputs_gd",
    "linearized_train_outputs",
    "linearized_train_outputs_gd",
    "mode_trajectory",
    "mode_trajectory_two_layer",
    "predicted_loss",
    "t_half",
    "t_half_two_layer",
]
