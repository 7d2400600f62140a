"""learnmech for PyTorch models: muP, the coordinate check and the probes on any ``torch.nn.Module``.

The same numbers as the JAX path, computed on a user's own PyTorch model:

- :func:`mup` -> :class:`TorchMuP`: kinds and multipliers from the abc table of
  :mod:`learnmech.theory.parameterization` (the rows of :func:`learnmech.nets.mup`), applied by
  rescaling the initialisation in place (:meth:`TorchMuP.rescale_`) and by one optimiser
  parameter group per learning-rate multiplier (:meth:`TorchMuP.param_groups`);
- :func:`coord_check`: activations recorded by forward hooks, returned as the
  :class:`learnmech.observe.coords.CoordCheck` of the JAX check;
- :func:`sharpness`, :func:`noise_scale`, :func:`empirical_ntk`: the probes of
  :mod:`learnmech.observe`, through ``torch.func``.

PyTorch is optional: ``import learnmech`` never imports it; this subpackage needs it
(``pip install 'learnmech[torch]'``).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError("learnmech.torch needs PyTorch: pip install 'learnmech[torch]'") from None

from learnmech.torch.coords import coord_check, record_layers
from learnmech.torch.mup import TorchMuP, mup
from learnmech.torch.ntk import empirical_ntk
from learnmech.torch.probes import hvp, noise_scale, per_example_gradients, sharpness

__all__ = [
    "TorchMuP",
    "coord_check",
    "empirical_ntk",
    "hvp",
    "mup",
    "noise_scale",
    "per_example_gradients",
    "record_layers",
    "sharpness",
]
