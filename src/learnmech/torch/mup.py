"""muP for any ``torch.nn.Module``: init multipliers applied in place and one optimiser group per learning rate.

The same rule as :func:`learnmech.nets.mup` for JAX pytrees, read off the same abc table
(:mod:`learnmech.theory.parameterization`; Yang et al. 2022, TP-V, arXiv:2203.03466, Table 3 and
Section J.2 "base shapes"). The user builds the model at a small *base* width and at the *target*
width (on ``torch.device("meta")`` if only the shapes are wanted) and passes both; each named
parameter is classified by which of its dimensions grow (:func:`learnmech.nets.classify_leaf`):

- layout: ``nn.Embedding`` weights are ``(num, dim)``, fan-out last (``"in_out"``); every other
  weight is read fan-out first (``"out_in"``, PyTorch's ``nn.Linear`` / ``nn.Conv*`` layout);
- roles (:mod:`learnmech.nets.roles`) tagged by the user (a tag fixes the kind), or read off the
  name (``q_proj``, ``lm_head``, ...) where the shapes agree; a weight shared by an
  ``nn.Embedding`` and another module is a ``tied_embedding``.

Per parameter of kind ``k`` with width multiplier ``m`` the row gives

- the init multiplier: ``m^{-b_k}`` over how the user's own initialisation already scales
  (``init_convention``, :mod:`learnmech.nets.mup_gauge`: ``"fan_in"`` for PyTorch's defaults);
  zero for readouts with ``zero_readout`` and for the query with ``zero_query``;
- the learning-rate multiplier ``m^{-c_k}``: :meth:`TorchMuP.param_groups` puts every parameter in
  the group of its multiplier, with ``lr * m^{-c_k}``.

Weight decay convention: each group carries the caller's ``weight_decay`` unchanged. ``AdamW``'s
decoupled decay is ``p <- p - lr_group * weight_decay * p`` with ``lr_group = lr * m^{-c}``, i.e.
scaled by the muP multiplier exactly as ``optax.adamw`` followed by
:func:`learnmech.nets.scale_by_multipliers` scales it (optax multiplies the decay by the learning
rate, then the multiplier scales the whole update). ``Adam`` / ``SGD``'s coupled ``weight_decay``
enters the gradient, as ``optax.add_decayed_weights`` before the optimiser.

:meth:`TorchMuP.rescale_` is idempotent: a model it has already rescaled is returned untouched; a
model rescaled by muP from other base shapes is refused. At ``m = 1`` every multiplier is 1.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import torch
from torch import nn

from learnmech.nets.mup import LeafScaling
from learnmech.nets.mup_gauge import CONVENTIONS, gauge_mismatch, init_multiplier, rms
from learnmech.nets.mup_shapes import classify_leaf
from learnmech.nets.mup_table import tag_lookup
from learnmech.nets.roles import ROLES, infer_role, role_kind
from learnmech.theory.parameterization import get_parameterization

__all__ = ["TorchMuP", "mup"]

LAYOUTS = ("auto", "in_out", "out_in")

# Models rescaled in place, mapped to the TorchMuP that rescaled them (nothing is attached to the model).
_RESCALED: "weakref.WeakKeyDictionary[nn.Module, TorchMuP]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class TorchMuP:
    """Per-parameter muP scalings of one torch model between its base and target widths (see :func:`mup`)."""

    parameterization: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # at the target width
    leaves: tuple[LeafScaling, ...]
    layouts: tuple[str, ...]

    def table(self) -> list[dict[str, Any]]:
        """One row per parameter, the columns of the JAX ``MuP.table()``: path, role, kind, width
        multiplier, init and learning-rate multipliers, layout."""
        return [{"path": n, "role": s.role, "kind": s.kind, "width_multiplier": s.width_multiplier,
                 "init_multiplier": s.init_multiplier, "lr_multiplier": s.lr_multiplier, "layout": lay}
                for n, s, lay in zip(self.names, self.leaves, self.layouts)]

    def init_multipliers(self) -> dict[str, float]:
        """``{name: init multiplier}``."""
        return {n: s.init_multiplier for n, s in zip(self.names, self.leaves)}

    def lr_multipliers(self) -> dict[str, float]:
        """``{name: learning-rate multiplier}`` (also what :func:`learnmech.torch.empirical_ntk` accepts)."""
        return {n: s.lr_multiplier for n, s in zip(self.names, self.leaves)}

    @property
    def tied_readout_multiplier(self) -> float:
        """``base width / width`` of the tied embedding: the forward multiplier of readout logits computed
        with it (``logits = (h @ E.T) * tied_readout_multiplier``, as ``mup``'s ``MuSharedReadout``;
        the tensor itself keeps the embedding's init and learning rate). ``ValueError`` when no
        parameter has the role ``tied_embedding`` (an embedding weight shared with another module
        gets it automatically)."""
        tied = {s.width_multiplier for s in self.leaves if s.role == "tied_embedding"}
        if not tied:
            raise ValueError("roles: no parameter is a tied embedding (pass roles={name: 'tied_embedding'})")
        if len(tied) > 1:
            raise ValueError(f"roles: tied embeddings with different width multipliers {sorted(tied)}")
        return 1.0 / tied.pop()

    def _check_model(self, model: nn.Module, field: str = "model") -> dict[str, nn.Parameter]:
        if not isinstance(model, nn.Module):
            raise ValueError(f"{field}: must be a torch.nn.Module, got {type(model).__name__}")
        params = dict(model.named_parameters())
        got = tuple((n, tuple(p.shape)) for n, p in params.items())
        want = tuple(zip(self.names, self.shapes))
        if got != want:
            diff = sorted(set(got) ^ set(want))
            raise ValueError(f"{field}: its parameters differ from the target model's: {diff[:6]}")
        return params

    def rescale_(self, model: nn.Module) -> nn.Module:
        """Multiply each parameter of ``model`` (a fresh target-width model) by its init multiplier, in place.

        Idempotent: a model this (or an equal) ``TorchMuP`` rescaled is returned unchanged; one
        rescaled from other base shapes raises ``ValueError``. Returns ``model``.
        """
        params = self._check_model(model)
        owner = _RESCALED.get(model)
        if owner is not None:
            if owner == self:
                return model
            raise ValueError("model: already rescaled by muP from other base shapes")
        with torch.no_grad():
            for name, s in zip(self.names, self.leaves):
                if s.init_multiplier == 0.0:
                    params[name].zero_()
                elif s.init_multiplier != 1.0:
                    params[name].mul_(s.init_multiplier)
        _RESCALED[model] = self
        return model

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        """Parameter groups for ``torch.optim.Adam`` / ``AdamW`` / ``SGD``: one per learning-rate multiplier.

        Each group: ``params``, ``lr = lr * multiplier``, ``weight_decay`` (unchanged; see the
        module docstring for the convention), and for reading ``lr_multiplier`` and ``names``.
        Parameters with ``requires_grad=False`` are left out. LR schedulers scale every group's
        ``lr`` by the same factor, so the multipliers survive them.
        """
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr: must be a positive number, got {lr!r}")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise ValueError(f"weight_decay: must be a number >= 0, got {weight_decay!r}")
        params = self._check_model(model)
        groups: dict[float, dict[str, Any]] = {}
        for name, s in zip(self.names, self.leaves):
            if not params[name].requires_grad:
                continue
            group = groups.setdefault(s.lr_multiplier, {"params": [], "names": [], "lr": lr * s.lr_multiplier,
                                                        "weight_decay": weight_decay,
                                                        "lr_multiplier": s.lr_multiplier})
            group["params"].append(params[name])
            group["names"].append(name)
        return list(groups.values())


def _layouts(model: nn.Module, names, weight_layout: str) -> dict[str, str]:
    """Per parameter: ``"in_out"`` for ``nn.Embedding`` weights, ``"out_in"`` otherwise (``"auto"``)."""
    if weight_layout != "auto":
        return dict.fromkeys(names, weight_layout)
    modules = dict(model.named_modules())
    return {n: "in_out" if isinstance(modules.get(n.rpartition(".")[0]), nn.Embedding) else "out_in" for n in names}


def _tied(model: nn.Module) -> set[str]:
    """Names (as ``named_parameters`` keeps them) of parameters shared with an ``nn.Embedding`` elsewhere."""
    modules = dict(model.named_modules())
    owners: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(name)
    kept = {id(p): n for n, p in model.named_parameters()}
    return {kept[i] for i, ns in owners.items() if len(ns) > 1
            and any(isinstance(modules.get(n.rpartition(".")[0]), nn.Embedding) for n in ns)}


def _role(name: str, tagged: str | None, tied: bool, kind: str, ndim: int) -> str | None:
    """The tagged role, else ``tied_embedding`` for a shared embedding, else the role the name suggests
    when the parameter is a weight whose shapes give that role's kind (the JAX table's rule)."""
    if tagged is not None:
        return tagged
    inferred = "tied_embedding" if tied else infer_role(name)
    if inferred is None or ndim < 2 or role_kind(inferred) != kind:
        return None
    return inferred


def _array(p: torch.Tensor):
    """A float64 numpy copy of a parameter with values, ``None`` for one on the meta device."""
    return None if p.is_meta else p.detach().to("cpu", torch.float64).numpy()


def mup(base: nn.Module, target: nn.Module, *, optimizer: Literal["adam", "sgd"] = "adam",
        parameterization: str | None = None, kinds: Mapping[str, str] | Callable[[str], str | None] | None = None,
        roles: Mapping[str, str] | Callable[[str], str | None] | None = None, weight_layout: str = "auto",
        init_convention: Literal["fan_in", "fixed", "base"] = "fan_in", zero_readout: bool = False,
        zero_query: bool = False) -> TorchMuP:
    """muP scalings of the torch model built as ``base`` (small width) and ``target`` (the width to train).

    Args:
      base, target: the same ``nn.Module`` class at two widths (parameters may live on ``meta``).
      optimizer: the row ``mup-adam`` (Adam, AdamW) or ``mup-sgd``.
      parameterization: any row with ``a = 0`` instead (``"sp"``: the identity for a fan-in init).
      kinds: ``{parameter name: kind}`` or a function of the name, overriding the shapes' kind.
      roles: ``{parameter name: role}`` (:data:`learnmech.nets.roles.ROLES`) or a function; a tagged
        role fixes the kind. Untagged weights: ``tied_embedding`` for an embedding weight shared with
        another module, else :func:`learnmech.nets.roles.infer_role` of the name when the shapes
        give that role's kind (the JAX table's rule).
      weight_layout: ``"auto"`` (per module type), or ``"in_out"`` / ``"out_in"`` for every weight.
      init_convention: ``"fan_in"`` (the model's own init scales as ``1/sqrt(fan_in)``: PyTorch's
        ``nn.Linear`` default), ``"fixed"`` (a width-independent std: ``nn.Embedding``'s ``N(0, 1)``
        is both), or ``"base"`` (measured: the target's RMS is made the base's times ``m^{-b}``,
        :mod:`learnmech.nets.mup_gauge`; needs parameters with values). With values under
        ``"fan_in"`` / ``"fixed"``, a weight whose measured scaling contradicts the convention is
        named in a ``UserWarning``.
      zero_readout: initialise ``output`` parameters at zero (TP-V Appendix D.2).
      zero_query: initialise ``query`` weights at zero (TP-V Appendix D.2).
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: must be 'adam' or 'sgd', got {optimizer!r}")
    if init_convention not in CONVENTIONS:
        raise ValueError(f"init_convention: must be one of {list(CONVENTIONS)}, got {init_convention!r}")
    if weight_layout not in LAYOUTS:
        raise ValueError(f"weight_layout: must be one of {list(LAYOUTS)}, got {weight_layout!r}")
    for field, model in (("base", base), ("target", target)):
        if not isinstance(model, nn.Module):
            raise ValueError(f"{field}: must be a torch.nn.Module, got {type(model).__name__}")
    name = parameterization or f"mup-{optimizer}"
    table = get_parameterization(name)
    if not table.multiplier_free:
        raise ValueError(f"parameterization: {name!r} changes forward multipliers and cannot be applied from "
                         "outside a model; use an equivalent row with a = 0 (mup-adam, mup-sgd, sp)")
    b_params, t_params = dict(base.named_parameters()), dict(target.named_parameters())
    if list(b_params) != list(t_params):
        raise ValueError(f"base, target: parameter names differ ({sorted(set(b_params) ^ set(t_params))[:6]})")
    names = list(t_params)
    kind_of = tag_lookup("kinds", kinds, names, None, noun="parameter")
    role_of = tag_lookup("roles", roles, names, ROLES, noun="parameter")
    layouts, tied = _layouts(target, names, weight_layout), _tied(target)
    arrays = {n: (_array(b_params[n]), _array(t_params[n])) for n in names}
    concrete = all(a is not None for pair in arrays.values() for a in pair)
    if init_convention == "base" and not concrete:
        raise ValueError("init_convention: 'base' measures the initial parameters; build base and target with "
                         "values (not on the meta device)")
    leaves, mismatches = [], []
    for n in names:
        tag_role, tag_kind = role_of(n), kind_of(n)
        if tag_role is not None and tag_kind is not None and role_kind(tag_role) != tag_kind:
            raise ValueError(f"{n}: tagged role {tag_role!r} (kind {role_kind(tag_role)!r}) and kind {tag_kind!r}")
        forced = tag_kind or (role_kind(tag_role) if tag_role is not None else None)
        shape = tuple(t_params[n].shape)
        kind, m = classify_leaf(tuple(b_params[n].shape), shape, weight_layout=layouts[n], kind=forced, path=n)
        role = _role(n, tag_role, n in tied, kind, len(shape))
        b, t = arrays[n]
        leaves.append(_leaf(kind, m, role, table, init_convention, zero_readout, zero_query, b, t))
        if concrete:
            mismatches.append(gauge_mismatch(n, kind, m, init_convention, b, t))
    _warn([s for s in mismatches if s])
    return TorchMuP(name, tuple(names), tuple(tuple(t_params[n].shape) for n in names), tuple(leaves),
                    tuple(layouts[n] for n in names))


def _warn(mismatches: list[str]) -> None:
    if mismatches:
        warnings.warn("learnmech.torch.mup: these weights are not initialised as init_convention assumes, so the "
                      "muP init multipliers are off by the same factor:\n  " + "\n  ".join(mismatches) +
                      "\nUse init_convention='base' (the base model's draw sets the scale), or draw them with a "
                      "width-independent std (embeddings) / 1/sqrt(fan_in) (matrices).", UserWarning, stacklevel=3)


def _leaf(kind, m, role, table, init_convention, zero_readout, zero_query, base, target) -> LeafScaling:
    """The row's init and learning-rate multipliers for one parameter (as the JAX table computes them)."""
    if kind == "scalar":
        return LeafScaling(kind, 1.0, 1.0, 1.0, role)
    _, std, lr = table.scales(kind, m)
    measured = (rms(base), rms(target)) if init_convention == "base" else (None, None)
    init = init_multiplier(init_convention, kind, m, std, *measured)
    if (zero_readout and kind == "output") or (zero_query and role == "query"):
        init = 0.0
    return LeafScaling(kind, m, init, lr, role)
