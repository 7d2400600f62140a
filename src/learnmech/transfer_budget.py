"""What one learning-rate transfer request may ask for: limits on its options and the memory it needs.

The limits are policies, stated here once, checked by :func:`learnmech.transfer` before any
work and named in the error messages of ``learnmech transfer``:

- :data:`MAX_WIDTHS` widths, each at most :data:`MAX_WIDTH`;
- :data:`MAX_LEARNING_RATES` learning rates, :data:`MAX_SEEDS` seeds and :data:`MAX_STEPS` steps
  (the bounds of the claim ``hparams.mup-transfer``'s config where it has them);
- ``--target-width`` at most :data:`MAX_TARGET_WIDTH` (it is only extrapolated to, never trained);
- the ensemble trained at once must fit in :data:`MEMORY_SHARE` of this machine's memory
  (:func:`ensemble_bytes` against :func:`machine_memory_bytes`).

Which ensemble is trained at once (:func:`learnmech.transfer`): one ``train`` call per
width, vectorised over every learning rate x seed; the widths (and, in ``learnmech transfer``, the
parameterisations) run one after the other. So the peak is the widest network times
``learning rates x seeds`` members.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Callable

__all__ = ["MAX_LEARNING_RATES", "MAX_SEEDS", "MAX_STEPS", "MAX_TARGET_WIDTH", "MAX_WIDTH", "MAX_WIDTHS",
           "MEMORY_SHARE", "PARAMETER_COPIES", "ensemble_bytes", "grid_size", "machine_memory_bytes",
           "memory_refusal", "mlp_memory"]

MAX_WIDTHS = 32  # widths per request: two XLA compilations (about 4 s each) per width
MAX_WIDTH = 2**31 - 1  # the largest int32; the memory check then refuses every width this machine cannot hold
MAX_LEARNING_RATES = 64  # the claim's full preset uses 21 (2^-13..2^-3 in half octaves)
MAX_SEEDS = 64  # as the claim's config (seeds <= 64)
MAX_STEPS = 100_000  # as the claim's config (steps <= 100,000)
MAX_TARGET_WIDTH = 2**20  # 1,048,576: 256x TP-V's largest transfer target (GPT-3 6.7B, width 4096)
MEMORY_SHARE = 0.75  # of the machine's memory one request may plan to use (XLA aborts when it runs out)

BYTES_PER_NUMBER = 4  # float32 (the students of hparams.mup-transfer and learnmech transfer)
# Copies of the weights held at the peak of training: parameters, gradients, Adam's two moments, the
# update, the initial normal draw and the copies brought to the host. Measured on CPU (float32, 40
# members, 5 steps): the peak resident memory grew by 1.84 GiB at width 1024 and 6.70 GiB at width
# 2048, 10.5 and 9.5 times the weights once the activations are taken off; 10 is what those two give.
PARAMETER_COPIES = 10
ACTIVATION_COPIES = 2  # each hidden layer's activations kept for the backward pass, and their gradients


def ensemble_bytes(width: int, members: int, *, d_in: int, hidden_layers: int, rows: int) -> int:
    """Bytes an ensemble of ``members`` students of ``width`` holds at the peak of training (an estimate).

    A student ``d_in -> width -> ... -> width -> 1`` without biases has
    ``P = d_in n + (hidden_layers - 1) n^2 + n`` weights; training holds about
    :data:`PARAMETER_COPIES` copies of them (measured) and :data:`ACTIVATION_COPIES` copies of the
    hidden activations of ``rows`` examples (the whole pool, on which the loss is evaluated), all
    float32. It came within 4% of the measured peak at widths 1024 and 2048.

    >>> round(ensemble_bytes(2048, 40, d_in=16, hidden_layers=2, rows=512) / 2**30, 2)  # measured: 6.70
    6.93
    """
    n = int(width)
    weights = d_in * n + (hidden_layers - 1) * n * n + n
    activations = rows * n * hidden_layers
    return members * BYTES_PER_NUMBER * (PARAMETER_COPIES * weights + ACTIVATION_COPIES * activations)


def mlp_memory(*, d_in: int, hidden_layers: int, rows: int) -> Callable[[int, int], int]:
    """:func:`ensemble_bytes` for one task, as ``(width, members) -> bytes`` (the ``memory`` argument of
    :func:`learnmech.transfer`)."""
    return partial(ensemble_bytes, d_in=d_in, hidden_layers=hidden_layers, rows=rows)


def grid_size(log2_min: float, log2_max: float, step: float) -> float:
    """``len(learnmech.width_transfer.log2_grid(log2_min, log2_max, step))`` without building the grid; ``inf`` if unbounded.

    >>> grid_size(-12, -3, 1.0), grid_size(-12, -3, 1e-9), grid_size(-12, -3, 1e-320), grid_size(-3, -12, 1.0)
    (10, 9000000001, inf, 0)
    """
    octaves = (log2_max - log2_min) / step  # inf when step underflows the span
    if not math.isfinite(octaves):
        return math.inf
    return max(0, math.floor(octaves + 1e-9) + 1)  # log2_grid's own count


def machine_memory_bytes() -> int | None:
    """This machine's physical memory in bytes (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None


def memory_refusal(width: int, need: float, what: str) -> str | None:
    """Why ``need`` bytes at ``width`` (training ``what``) may not be planned here, or ``None`` when they may.

    They may when they fit in :data:`MEMORY_SHARE` of :func:`machine_memory_bytes` (or the OS does
    not say how much there is).

    >>> memory_refusal(64, 1.0, "40 members") is None
    True
    """
    have = machine_memory_bytes()
    if have is None or need <= MEMORY_SHARE * have:
        return None
    return (f"width {width} needs about {need / 2**30:.3g} GiB for {what}; this machine has {have / 2**30:.1f} GiB "
            f"and a run may plan to use {MEMORY_SHARE:.0%} of it (MEMORY_SHARE)")
