"""The costly measurements a recorder takes on request: sharpness and gradient noise scale.

Contract. Each function takes what a user's loop already has and returns Python floats:

- :func:`sharpness_value`: ``lambda_max(H)`` of the loss Hessian (Cohen, Kaur, Li, Kolter &
  Talwalkar 2021, arXiv:2103.00065). For JAX, ``loss_fn(params, batch) -> scalar`` over a pytree
  of arrays, by :func:`learnmech.observe.curvature.sharpness`; for a ``torch.nn.Module``,
  ``loss_fn(model, batch) -> scalar``, by :func:`learnmech.torch.sharpness` (``torch.func``). Both
  run Lanczos (default, 20 steps) or power iteration on Hessian-vector products from a fixed start
  vector, so the same call gives the same number.
- :func:`noise_scale_values`: ``B_simple = tr(Sigma) / |G|^2`` with its numerator and denominator
  (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, App. A.1). For JAX, ``batches`` is a
  list of at least two i.i.d. batches of equal shapes (stacked) or one pytree whose leaves are
  ``(G, b, ...)``, fed to the two-batch-size estimator
  :func:`learnmech.observe.noise.noise_scale_two_batch`; for torch, a list of batches, fed to
  :func:`learnmech.torch.noise_scale` (per-example gradients of each batch, averaged).

Neither module is imported before it is needed: the recorder works without torch, and a torch
user's loop does not compile JAX programs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["NOISE_NAMES", "is_torch_module", "noise_scale_values", "sharpness_value"]

NOISE_NAMES = ("noise_scale", "noise_scale/trace_cov", "noise_scale/grad_sq_norm")


def is_torch_module(obj: Any) -> bool:
    """True for a ``torch.nn.Module`` (torch is not imported: a module object implies torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _check_loss(loss_fn: Callable) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: must be callable as loss_fn(params, batch), got {type(loss_fn).__name__}")


def sharpness_value(loss_fn: Callable, params: Any, batch: Any, *, method: str, iterations: int) -> float:
    """``lambda_max(H)`` of ``loss_fn`` at ``params`` on ``batch`` (JAX pytree or torch module)."""
    _check_loss(loss_fn)
    if is_torch_module(params):
        from learnmech.torch import sharpness

        return float(sharpness(params, loss_fn, batch, method=method, iterations=iterations).eigenvalue)
    from learnmech.observe.curvature import sharpness  # compiled once per loss function, method and steps

    return float(sharpness(loss_fn, params, batch, method=method, iterations=iterations).eigenvalue)


@cache
def _two_batch_program():
    """The two-batch noise-scale estimator compiled once per loss function (``loss_fn`` is static)."""
    import jax

    from learnmech.observe.noise import noise_scale_two_batch

    return jax.jit(noise_scale_two_batch, static_argnums=0)


def _groups(batches: Any):
    """A list of equal-shape batches stacked into leaves ``(G, b, ...)``; any other pytree as it is."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    if not isinstance(batches, list):
        return batches
    if len(batches) < 2:
        raise ValueError(f"batches: need at least 2 batches for the two-batch estimator, got {len(batches)}")
    structures = {jax.tree.structure(b) for b in batches}
    shapes = {tuple(jnp.shape(x) for x in jax.tree.leaves(b)) for b in batches}
    if len(structures) != 1 or len(shapes) != 1:
        raise ValueError("batches: every batch must have the same structure and shapes (stack equal-size batches)")
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)  # host stack: no small program


def _check_groups(groups: Any) -> None:
    import jax
    import jax.numpy as jnp

    leaves = jax.tree.leaves(groups)
    if not leaves or any(jnp.ndim(x) < 2 for x in leaves):
        raise ValueError("batches: a list of batches, or a pytree whose leaves are (G, b, ...) "
                         "(G >= 2 batches of b examples)")
    if len({jnp.shape(x)[:2] for x in leaves}) != 1 or jnp.shape(leaves[0])[0] < 2:
        raise ValueError(f"batches: every leaf needs the same leading (G, b) with G >= 2, got "
                         f"{sorted({tuple(jnp.shape(x)[:2]) for x in leaves})}")


def noise_scale_values(loss_fn: Callable, params: Any, batches: Any) -> dict[str, float]:
    """``{"noise_scale": B_simple, "noise_scale/trace_cov": ..., "noise_scale/grad_sq_norm": ...}``."""
    _check_loss(loss_fn)
    if is_torch_module(params):
        from learnmech.torch import noise_scale

        if not isinstance(batches, list):
            raise ValueError(f"batches: for a torch model, a list of batches, got {type(batches).__name__}")
        estimate = noise_scale(params, loss_fn, batches)
    else:
        groups = _groups(batches)
        _check_groups(groups)
        estimate = _two_batch_program()(loss_fn, params, groups)
    return dict(zip(NOISE_NAMES, (float(estimate.b_simple), float(estimate.trace_cov),
                                  float(estimate.grad_sq_norm))))
