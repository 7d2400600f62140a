"""The ensemble driver: ensembles over seeds and hyperparameters in one compiled program.

- :func:`train` (:mod:`.trainer`): the one driver; :class:`TrainResult`.
- :class:`Probe` (:mod:`.probes`): costly measurements on their own schedule; ready-made probe
  functions are in :mod:`learnmech.observe.probes`.
- Update rules as data (:mod:`.optimizers`, :mod:`.member`, :mod:`.sampling`): :class:`OptimizerSpec`
  or any optax transformation; full batch, minibatches with or without replacement, a shared stream
  with gradient accumulation, shuffled epochs (:mod:`.shuffle`); AdamW with language-model schedules
  (:mod:`.lm_optimizer`).
- Members (:mod:`.ensemble`) and observation schedules (:mod:`.schedule`).
"""

from learnmech.train.ensemble import TrainResult, ensemble_members
from learnmech.train.lm_optimizer import LM_SCHEDULES, lm_update_rule, schedule_value
from learnmech.train.member import SAMPLINGS, MemberProgram, MemberState
from learnmech.train.optimizers import (OPTIMIZERS, OneOf, OptimizerSpec, UpdateRule, build_optimizer, preconditioner,
                                        scale_by_multipliers)
from learnmech.train.probes import Probe, ProbeSeries
from learnmech.train.sampling import epochs_read
from learnmech.train.schedule import linear_schedule, log_schedule, validate_schedule
from learnmech.train.shuffle import permute
from learnmech.train.trainer import train

__all__ = [
    # the driver
    "Probe",
    "ProbeSeries",
    "TrainResult",
    "train",
    # update rules
    "MemberProgram",
    "MemberState",
    "OPTIMIZERS",
    "OneOf",
    "OptimizerSpec",
    "SAMPLINGS",
    "UpdateRule",
    "build_optimizer",
    "preconditioner",
    "scale_by_multipliers",
    "LM_SCHEDULES",
    "lm_update_rule",
    "schedule_value",
    # minibatches
    "epochs_read",
    "permute",
    # members and schedules
    "ensemble_members",
    "linear_schedule",
    "log_schedule",
    "validate_schedule",
]
