"""The coordinate check of a PyTorch model, recorded by forward hooks.

The same measurement as :func:`learnmech.observe.coord_check` (Yang et al. 2022, TP-V,
arXiv:2203.03466, "coordinate check"): for each width ``n`` and seed, build the model and its
optimiser, record every chosen layer's output ``h_l`` on a fixed probe batch at initialisation,
take ``k`` optimiser steps, and after each step record again:

    rms_l(n)       = sqrt(mean(h_l(probe; w_0)^2))
    change_l(n, t) = sqrt(mean((h_l(probe; w_t) - h_l(probe; w_0))^2))

means over every entry of the layer's output, then over seeds. Under muP every line is flat in
width; a sloped one locates a parameterisation error. The result is the JAX check's
:class:`learnmech.observe.coords.CoordCheck`, so its summaries and plots apply unchanged.

Layers are modules of the model, named as ``model.named_modules()`` names them; by default
every ``nn.Linear`` and ``nn.Embedding``, in the order the forward pass calls them. A module
whose output is a tuple or list contributes its first element. Statistics are computed in
float64 from the model's own dtype.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from learnmech.increasing import increasing
from learnmech.observe.coords import CoordCheck, minibatch_indices
from learnmech.torch._functional import LossFn, tree_map
from learnmech.torch._functional import batch_size as _example_count

__all__ = ["coord_check", "record_layers"]

Build = Callable[[int, int], "tuple[nn.Module, torch.optim.Optimizer]"]
DEFAULT_LAYER_TYPES = (nn.Linear, nn.Embedding)


def _chosen_modules(model: nn.Module, layers: Sequence[str] | None) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    if layers is None:
        return {k: m for k, m in named.items() if isinstance(m, DEFAULT_LAYER_TYPES)}
    unknown = [k for k in layers if k not in named]
    if unknown:
        raise ValueError(f"layers: no module named {unknown}; modules are {[k for k in named if k]}")
    return {k: named[k] for k in layers}


def record_layers(model: nn.Module, x, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{name: output}`` of the chosen modules on ``model(x)``, in call order, detached.

    ``layers``: module names (default: every ``nn.Linear`` and ``nn.Embedding``); with explicit
    names the order is theirs. A module called twice keeps its last output.
    """
    modules = _chosen_modules(model, layers)
    if not modules:
        raise ValueError("layers: the model has no nn.Linear or nn.Embedding; name the modules to record")
    seen: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            seen[name] = out.detach().clone()
        return record

    handles = [m.register_forward_hook(hook(k)) for k, m in modules.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in modules if k not in seen]
    if missing:
        raise ValueError(f"layers: {missing} did not run in the forward pass on the probe")
    order = list(layers) if layers is not None else list(seen)
    return {k: seen[k] for k in order}


def _rms(t: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(t.double() ** 2)))


def _member(build: Build, width: int, seed: int, data, probe, loss_fn: LossFn, steps: int,
            layers, indices: np.ndarray | None) -> tuple[list[str], list[float], list[list[float]]]:
    """One seed at one width: layer names, ``rms`` ``(L,)`` and ``change`` ``(K, L)``."""
    model, optimizer = build(width, seed)
    h0 = record_layers(model, probe, layers)
    changes = []
    for t in range(steps):
        batch = data if indices is None else tree_map(lambda a: a[torch.as_tensor(indices[t])], data)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        optimizer.step()
        now = record_layers(model, probe, list(h0))
        changes.append([_rms(now[k] - h0[k]) for k in h0])
    return list(h0), [_rms(h) for h in h0.values()], changes


def coord_check(build: Build, widths: Sequence[int], *, data, probe, loss_fn: LossFn, steps: int = 3,
                seeds: Sequence[int] = (0, 1, 2), layers: Sequence[str] | None = None,
                batch_size: int | None = None) -> CoordCheck:
    """Per-layer activation RMS at init and its change over ``steps`` optimiser steps, across widths.

    Args:
      build: ``build(width, seed) -> (model, optimizer)``: the model at that width, initialised
        from that seed (muP applied by the user, e.g. :meth:`TorchMuP.rescale_` and
        :meth:`TorchMuP.param_groups`), and its ``torch.optim`` optimiser.
      widths: at least two, strictly increasing.
      data: the batch passed to ``loss_fn`` at every step (full batch), or with ``batch_size`` a
        tensor / tuple / dict of tensors cut into the minibatches of
        :func:`learnmech.observe.coords.minibatch_indices` (the JAX check's sequence, per seed).
      probe: the input ``model(probe)`` is evaluated on.
      loss_fn: ``loss_fn(model, batch) -> scalar``.
      steps: optimiser steps ``k``.
      seeds: passed to ``build``; the reported numbers are means over them.
      layers: module names to record (default: every ``nn.Linear`` / ``nn.Embedding``, call order).

    Returns:
      :class:`learnmech.observe.coords.CoordCheck` (``rms`` ``(W, L)``, ``change`` ``(W, K, L)``).
    """
    widths = list(increasing([int(w) for w in widths], at_least=2, name="widths", what="widths"))
    seeds = [int(s) for s in seeds]
    if isinstance(steps, bool) or int(steps) < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    steps = int(steps)
    n = None if batch_size is None else _example_count(data, "data")
    names, rms, change = None, [], []
    for width in widths:
        rows_r, rows_c = [], []
        for seed in seeds:
            idx = None if n is None else minibatch_indices(seed, n, int(batch_size), steps)
            got, r, c = _member(build, width, seed, data, probe, loss_fn, steps, layers, idx)
            if names is None:
                names = got
            elif got != names:
                raise ValueError(f"coord_check: the recorded layers differ between widths: {names} vs {got} "
                                 f"at width {width}; pass layers=[...]")
            rows_r.append(r)
            rows_c.append(c)
        rms.append(rows_r)
        change.append(rows_c)
    rms_s, change_s = np.asarray(rms, np.float64), np.asarray(change, np.float64)  # (W, S, L), (W, S, K, L)
    extra = {"layer_names": tuple(names)} if "layer_names" in {f.name for f in fields(CoordCheck)} else {}
    return CoordCheck(widths=np.asarray(widths), steps=np.arange(1, steps + 1), rms=rms_s.mean(axis=1),
                      change=change_s.mean(axis=1), rms_per_seed=rms_s, change_per_seed=change_s, **extra)

