"""learnmech: predict, measure and judge the mechanics of neural-network learning.

Layers (imports only go down): cli -> atlas -> report -> sweep -> store -> fit -> observe
-> train -> nets -> adapters -> data -> theory. See the README for a tour.

The entry points a user reaches for are names of this package, imported when first used (so
``import learnmech`` stays cheap and the command line starts fast):

>>> import learnmech
>>> learnmech.MLP.__module__, learnmech.ScalingLaw.__module__
('learnmech.nets.mlp', 'learnmech.fit.scaling_law')

The subpackages keep the rest: ``learnmech.train.train`` (the ensemble driver), ``learnmech.theory``,
``learnmech.observe``, ``learnmech.fit``, ``learnmech.nets``, ``learnmech.data``.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("learnmech")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.2.0"

# name -> module that defines it, grouped by what a user does with it
_ENTRY_POINTS = {
    # train an ensemble (the one driver) and its update rules
    "OptimizerSpec": "learnmech.train",
    "TrainResult": "learnmech.train",
    # models with their parameterisation as data, and muP for any pytree
    "DeepLinear": "learnmech.nets",
    "MLP": "learnmech.nets",
    "MaskedMLP": "learnmech.nets",
    "MuP": "learnmech.nets",
    "mup": "learnmech.nets",
    # probes of any (params, loss, batch) or apply function
    "coord_check": "learnmech.observe",
    "empirical_nngp": "learnmech.observe",
    "empirical_ntk": "learnmech.observe",
    "gradient_noise_scale": "learnmech.observe",
    "linear_cka": "learnmech.observe",
    "preconditioned_sharpness": "learnmech.observe",
    "sharpness": "learnmech.observe",
    # analytic kernels of infinitely wide networks
    "Kernels": "learnmech.theory",
    "nngp_ntk": "learnmech.theory",
    # estimators fitted to measurements (scikit-learn's contract)
    "IsoflopLaw": "learnmech.fit",
    "LearningRateTransfer": "learnmech.fit",
    "PowerLaw": "learnmech.fit",
    "ScalingLaw": "learnmech.fit",
    "StepsHyperbola": "learnmech.fit",
    # learning-rate transfer across width for your model
    "transfer": "learnmech.width_transfer",
    "log2_grid": "learnmech.width_transfer",
    "plot_coord_check": "learnmech.report",
    # log your own training loop into the store
    "Recorder": "learnmech.monitor",
    # the atlas of claims
    "all_claims": "learnmech.atlas",
    "get_claim": "learnmech.atlas",
}

__all__ = ["__version__", *sorted(_ENTRY_POINTS, key=str.lower)]


def __getattr__(name: str):
    """Import an entry point on first use (PEP 562)."""
    if name in _ENTRY_POINTS:
        value = getattr(import_module(_ENTRY_POINTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'learnmech' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_ENTRY_POINTS})
