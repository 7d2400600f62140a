"""Estimators fitted to measurements: scaling laws, isoFLOP profiles, transfer, spectra, batch trade-off.

Every estimator class here keeps scikit-learn's contract: the constructor only stores its keyword
settings (``get_params``, ``set_params`` and ``sklearn.base.clone`` work), ``fit`` does the work and
returns ``self``, fitted results end in ``_`` (tests/test_fit_conformance.py checks every class of
``__all__`` that has a ``fit``). Beside them, the function API the estimators wrap. The forms fitted
(a scaling law's equation, the steps hyperbola, the compute-optimal frontier) are predictions and
live in :mod:`learnmech.theory`; the bootstrap, the optimisers and anything else that touches data
live here.
"""

from learnmech.fit.batch_tradeoff import StepsHyperbola
from learnmech.fit.isoflop import IsoflopExponent, IsoflopLaw, IsoflopOptima, isoflop_exponent, isoflop_optima
from learnmech.fit.power_law import PowerLaw
from learnmech.fit.scaling_fit import (
    Basin,
    Bootstrap,
    Diagnostic,
    FitResult,
    HoldoutReport,
    bootstrap_fit,
    fit_batch,
    fit_form,
    holdout_report,
)
from learnmech.fit.scaling_law import ScalingLaw
from learnmech.fit.transfer_fit import LearningRateTransfer, TransferFit, fit_transfer, mean_loss, optimal_learning_rate

__all__ = [
    # scaling laws (Huber on log-loss from a grid of starts; other basins; bootstrap; hold-out)
    "Basin",
    "Bootstrap",
    "Diagnostic",
    "FitResult",
    "HoldoutReport",
    "ScalingLaw",
    "bootstrap_fit",
    "fit_batch",
    "fit_form",
    "holdout_report",
    # isoFLOP profiles (Approach 2)
    "IsoflopExponent",
    "IsoflopLaw",
    "IsoflopOptima",
    "isoflop_exponent",
    "isoflop_optima",
    # learning-rate transfer across width
    "LearningRateTransfer",
    "TransferFit",
    "fit_transfer",
    "mean_loss",
    "optimal_learning_rate",
    # steps-examples trade-off of minibatch SGD
    "StepsHyperbola",
    # spectra
    "PowerLaw",
]
