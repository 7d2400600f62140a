"""Predictions as pure functions: no training, no I/O, no randomness, nothing else of learnmech."""

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
from learnmech.theory.linearized import (
    linearized_loss,
    linearized_loss_gd,
    linearized_test_outputs,
    linearized_test_outputs_gd,
    linearized_train_outputs,
    linearized_train_outputs_gd,
)

__all__ = [
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
