"""How a user's own initialiser scales with width, and the init multiplier muP then needs.

muP prescribes how each leaf's initial standard deviation scales with the width multiplier
``m``: ``std ∝ m^{-b}``, with ``b`` from the abc table (Yang et al. 2022, TP-V, arXiv:2203.03466,
Table 3). The user's initialiser already scales somehow; the init multiplier is the quotient of
the two. Three conventions say how the user's initialiser scales:

- ``"fan_in"``: like standard parameterisation, ``std ∝ m^{-b_SP}`` (LeCun, He, flax's and
  equinox's ``nn.Linear`` defaults: ``1/sqrt(fan_in)``, so a factor ``m^{-1/2}`` for a leaf
  whose fan-in grows and 1 for an input layer). Multiplier ``m^{-b} / m^{-b_SP}``.
- ``"fixed"``: a width-independent std (e.g. 0.02). Multiplier ``m^{-b}``.
- ``"base"``: measured. The base model's own draw sets the gauge: the target leaf's RMS is made
  ``RMS_base * m^{-b}``, i.e. multiplier ``RMS_base * m^{-b} / RMS_target``. This needs concrete
  arrays for both models; it takes any initialiser as it is, including ones whose scale follows
  neither rule (flax's ``nnx.Embed`` draws ``std = 1/sqrt(features)``, so its table shrinks as
  ``m^{-1/2}`` where muP wants it constant).

With concrete arrays under ``"fan_in"`` or ``"fixed"``, the measured ratio ``RMS_target / RMS_base``
of every weight (two or more axes, at least :data:`MIN_ENTRIES` entries in the base model, so the
RMS estimate is good to ~5%) is compared with what the convention assumes; a disagreement beyond a
factor :data:`TOLERANCE` is reported, naming the leaf. 1-D leaves are not checked: equinox and
PyTorch draw biases uniform in ``±1/sqrt(fan_in)``, which shrink with width but barely move any
coordinate.
"""

from __future__ import annotations

import math

import numpy as np

from learnmech.theory.parameterization import get_parameterization

__all__ = ["CONVENTIONS", "MIN_ENTRIES", "TOLERANCE", "assumed_ratio", "gauge_mismatch", "init_multiplier",
           "is_concrete", "rms"]

CONVENTIONS = ("fan_in", "fixed", "base")
TOLERANCE = 1.2  # a measured init ratio further than this factor from the assumed one is reported
MIN_ENTRIES = 256  # RMS of n Gaussian entries has relative error ~ 1/sqrt(2n): 4.4% at 256


def is_concrete(leaf) -> bool:
    """True for an array with values (not a shape struct or a tracer)."""
    import jax

    if isinstance(leaf, np.ndarray):
        return True
    return isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)


def rms(leaf) -> float:
    """Root mean square of a leaf's entries, in float64 (0 for an empty leaf)."""
    values = np.asarray(leaf, dtype=np.float64)
    return float(np.sqrt(np.mean(values**2))) if values.size else 0.0


def assumed_ratio(convention: str, kind: str, m: float) -> float:
    """``std_target / std_base`` that ``convention`` assumes of the user's initialiser."""
    if convention == "fan_in":
        return get_parameterization("sp").scales(kind, m)[1]
    return 1.0


def init_multiplier(convention: str, kind: str, m: float, std: float, rms_base: float | None,
                    rms_target: float | None) -> float:
    """Multiply the user's initial leaf by this so that its std scales as ``std = m^{-b}`` demands.

    ``rms_base``, ``rms_target`` are only read under ``"base"``; a target leaf drawn at zero
    (or a ``scalar`` leaf) is left alone.
    """
    if convention != "base":
        return std / assumed_ratio(convention, kind, m)
    if kind == "scalar" or not rms_target:
        return 1.0
    return rms_base * std / rms_target


def gauge_mismatch(path: str, kind: str, m: float, convention: str, base, target) -> str | None:
    """A sentence naming the leaf when its measured init ratio contradicts ``convention``, else ``None``."""
    if convention == "base" or kind == "scalar" or np.ndim(base) < 2 or np.size(base) < MIN_ENTRIES:
        return None
    rms_base, rms_target = rms(base), rms(target)
    if rms_base == 0.0 or rms_target == 0.0:
        return None
    measured, assumed = rms_target / rms_base, assumed_ratio(convention, kind, m)
    if abs(math.log(measured / assumed)) <= math.log(TOLERANCE):
        return None
    slope = math.log(measured) / math.log(m)
    hint = ": std 1/sqrt(features), as flax's nnx.Embed draws an embedding" if (
        kind == "input" and abs(slope + 0.5) < 0.15) else ""
    return (f"{path} ({kind}): init RMS ratio target/base {measured:.3g} at width multiplier {m:g} "
            f"(scales as m^{slope:+.2f}{hint}), but init_convention={convention!r} assumes {assumed:.3g}")
