"""AdamW with the learning-rate schedules of language-model training, as an update rule of the driver.

Contract. ``lm_update_rule(...)`` returns a function ``hp -> optax.GradientTransformation`` (an
:data:`~learnmech.train.optimizers.UpdateRule`): ``hp["learning_rate"]`` is the peak rate
``eta`` and ``hp[steps_key]`` the member's total number of optimiser updates ``T``; either may be a
traced scalar, so one compiled ensemble sweeps peak rates and run lengths. ``hp["weight_decay"]``, when
present, overrides the rule's ``weight_decay``. The update of parameters ``w`` at update ``t`` (0-based,
the optimiser's own count) is

    g   <- g * min(1, clip / ||g||_2)                         (global-norm clipping; clip=None: off)
    m, v: Adam's moments of g (b1, b2), m_hat, v_hat bias-corrected (Kingma & Ba 2015, arXiv:1412.6980)
    w   <- w - eta s(t) (m_hat / (sqrt(v_hat) + eps) + lambda w)      (lambda only where decay_mask)

with decoupled weight decay ``lambda`` (AdamW, Loshchilov & Hutter 2019, arXiv:1711.05101). As in
optax's ``adamw`` the decay is multiplied by the scheduled rate ``eta s(t)``; the paper's Algorithm 2
multiplies it by the schedule multiplier alone (``lambda`` here = its ``lambda / alpha``).

The schedule multiplier ``s(t)`` (:func:`schedule_value`), with ``W = warmup T`` warm-up updates and
final value ``f`` (``final_fraction``):

- warm-up, ``t < W``: ``s = t / W``, linear from 0 (the first update has rate 0, as ``optax.linear_schedule``);
- ``"cosine"``: ``s = f + (1 - f) (1 + cos(pi u)) / 2``, ``u = (t - W) / (T - W)`` clipped to ``[0, 1]``
  (Loshchilov & Hutter 2017, SGDR, arXiv:1608.03983, one cycle without restarts);
- ``"wsd"`` (warmup-stable-decay): ``s = 1`` up to ``T - D``, ``D = decay_fraction T``, then linear to
  ``f`` at ``T`` (Hu et al. 2024, MiniCPM, arXiv:2404.06395; Hägele et al. 2024, arXiv:2405.18392);
- ``"constant"``: ``s = 1`` after warm-up (``final_fraction`` unused).

Past ``T`` the multiplier stays at its value at ``T``. The schedule counts optimiser updates: under
gradient accumulation by ``k`` (``MemberProgram.accumulate``) ``hp[steps_key]`` must be the number of
updates, micro-steps / ``k``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["LM_SCHEDULES", "lm_update_rule", "schedule_value"]

LM_SCHEDULES = ("cosine", "wsd", "constant")


def _multiplier(xp, t, total, schedule: str, warmup: float, decay_fraction: float, final_fraction: float):
    """``s(t)`` of the module docstring with the array module ``xp`` (numpy or jax.numpy)."""
    total = xp.maximum(total, 1)
    W = warmup * total
    warm = xp.where(t < W, t / xp.maximum(W, 1e-30), 1.0)
    if schedule == "constant":
        return warm
    if schedule == "cosine":
        u = xp.clip((t - W) / xp.maximum(total - W, 1e-30), 0.0, 1.0)
        after = final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + xp.cos(np.pi * u))
    else:  # wsd
        D = decay_fraction * total
        u = xp.clip((t - (total - D)) / xp.maximum(D, 1e-30), 0.0, 1.0)
        after = 1.0 - (1.0 - final_fraction) * u
    return xp.where(t < W, warm, after)


def _decoupled_decay(lam, mask) -> optax.GradientTransformation:
    """``u <- u + lambda w`` on the leaves where ``mask`` is True, ``lambda`` cast to each leaf's dtype
    (a float64 hyperparameter under x64 must not turn float32 updates into float64 ones)."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("optimizer: decoupled weight decay needs the parameters")
        return jax.tree.map(lambda u, w: u + jnp.asarray(lam, u.dtype) * w, updates, params), state

    decay = optax.GradientTransformation(lambda params: optax.EmptyState(), update)
    return decay if mask is None else optax.masked(decay, mask)


def _check(schedule, warmup, decay_fraction, final_fraction, clip):
    if schedule not in LM_SCHEDULES:
        raise ValueError(f"schedule: must be one of {list(LM_SCHEDULES)}, got {schedule!r}")
    for name, value in (("warmup", warmup), ("decay_fraction", decay_fraction), ("final_fraction", final_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: must be a fraction in [0, 1], got {value!r}")
    if schedule == "wsd" and warmup + decay_fraction > 1.0:
        raise ValueError(f"warmup + decay_fraction: must be <= 1 for wsd, got {warmup} + {decay_fraction}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: must be None or > 0, got {clip!r}")


def schedule_value(step, total, peak: float = 1.0, *, schedule: str = "cosine", warmup: float = 0.05,
                   decay_fraction: float = 0.2, final_fraction: float = 0.1) -> np.ndarray:
    """Learning rate ``peak s(step)`` of a run of ``total`` updates, in numpy (module docstring for ``s``).

    The same formula as the compiled schedule of :func:`lm_update_rule`, for tests and figures.

    >>> schedule_value([0, 50, 100], 100, 1.0, schedule="cosine", warmup=0.0, final_fraction=0.0).tolist()
    [1.0, 0.5, 0.0]
    """
    _check(schedule, warmup, decay_fraction, final_fraction, None)
    t = np.asarray(step, np.float64)
    return peak * _multiplier(np, t, np.float64(total), schedule, warmup, decay_fraction, final_fraction)


def lm_update_rule(schedule: str = "cosine", *, warmup: float = 0.05, decay_fraction: float = 0.2,
                   final_fraction: float = 0.1, clip: float | None = 1.0, weight_decay: float = 0.0,
                   b1: float = 0.9, b2: float = 0.95, eps: float = 1e-8, decay_mask: Any = None,
                   steps_key: str = "steps") -> Callable[[Mapping[str, Any]], optax.GradientTransformation]:
    """AdamW with global-norm clipping and an LM schedule: ``hp -> optax.GradientTransformation``.

    Args (symbols of the module docstring):
      schedule: ``"cosine" | "wsd" | "constant"``.
      warmup: ``W / T``, the warm-up fraction of the member's updates (linear from 0).
      decay_fraction: ``D / T`` of ``"wsd"``, the final fraction of updates that decays linearly.
      final_fraction: ``f``, the rate at ``T`` relative to the peak (``"cosine"`` and ``"wsd"``).
      clip: global-norm threshold of the gradient before Adam; ``None``: no clipping.
      weight_decay: ``lambda`` (decoupled); ``hp["weight_decay"]`` overrides it per member.
      b1, b2, eps: Adam's (``b2 = 0.95`` as in GPT-3 style training, optax's default is 0.999).
      decay_mask: pytree of bools like the parameters (True: decayed), e.g. matrices only; ``None``: all.
      steps_key: the ``hp`` entry holding ``T``.

    ``hp["learning_rate"]`` is the peak ``eta``; it and ``hp[steps_key]`` may be traced scalars.
    """
    _check(schedule, warmup, decay_fraction, final_fraction, clip)
    for name, value in (("b1", b1), ("b2", b2)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}: must lie in [0, 1), got {value!r}")

    def rule(hp: Mapping[str, Any]) -> optax.GradientTransformation:
        for key in ("learning_rate", steps_key):
            if key not in hp:
                raise ValueError(f"optimizer: lm_update_rule reads hp[{key!r}]; put it in the grid")
        peak, total = jnp.asarray(hp["learning_rate"]), jnp.asarray(hp[steps_key])
        lam = hp.get("weight_decay", weight_decay)

        def rate(count):  # eta s(t), t = the number of updates already applied
            t = count.astype(peak.dtype)
            return peak * _multiplier(jnp, t, total.astype(peak.dtype), schedule, warmup, decay_fraction,
                                      final_fraction)

        parts = [] if clip is None else [optax.clip_by_global_norm(clip)]
        parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps))
        if "weight_decay" in hp or weight_decay != 0.0:
            parts.append(_decoupled_decay(lam, decay_mask))
        parts.append(optax.scale_by_learning_rate(rate))
        return optax.chain(*parts)

    return rule
