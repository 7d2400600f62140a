"""Predictions as pure functions: no training, no I/O, no randomness, nothing else of learnmech."""

from learnmech.theory.dln import (
    mode_trajectory,
    mode_trajectory_two_layer,
    predicted_loss,
    t_half,
    t_half_two_layer,
)

__all__ = [
    "mode_trajectory",
    "mode_trajectory_two_layer",
    "predicted_loss",
    "t_half",
    "t_half_two_layer",
]
