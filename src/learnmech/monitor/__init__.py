"""Monitoring a user's own training loop: :class:`Recorder` logs into the learnmech store.

A loop written with optax (or equinox, flax nnx, PyTorch) calls the recorder every few steps to
log its loss, the sharpness ``lambda_max(H)``, the gradient noise scale ``B_simple`` and the RMS
size of each layer's activations; the run then shows in ``learnmech runs``, ``learnmech show RUN``
and ``learnmech report`` beside the claims' runs, with its curves and a figure
(:mod:`learnmech.monitor.recorder` states the contract: durability, resuming, a busy store).

Modules: ``recorder`` (the :class:`Recorder`), ``records`` (checking what a call hands over),
``probes`` (sharpness and noise scale for JAX and torch), ``stored_run`` (the run's rows in the
store), ``figure`` (its figure). JAX, torch and matplotlib are imported only when a call needs them.
"""

from learnmech.monitor.recorder import Recorder

__all__ = ["Recorder"]
