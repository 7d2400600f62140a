"""The vectorised trainer: ensembles over seeds and hyperparameters in one compiled program."""

from learnmech.train.member import MemberProgram, MemberState
from learnmech.train.optimizers import OPTIMIZERS, OptimizerSpec, build_optimizer, scale_by_multipliers
from learnmech.train.stream import StreamProgram, advance_ensemble
from learnmech.train.schedule import linear_schedule, log_schedule, validate_schedule
from learnmech.train.trainer import TrainResult, ensemble_members, train

__all__ = [
    "MemberProgram",
    "MemberState",
    "OPTIMIZERS",
    "OptimizerSpec",
    "TrainResult",
    "build_optimizer",
    "ensemble_members",
    "linear_schedule",
    "log_schedule",
    "scale_by_multipliers",
    "StreamProgram",
    "advance_ensemble",
    "train",
    "validate_schedule",
]
