"""muP for any JAX pytree model: per-leaf init multipliers and learning-rate multipliers from base shapes.

The user builds their model twice, at a small *base* width and at the *target* width, and passes
the two parameter pytrees (arrays or ``jax.ShapeDtypeStruct`` from ``jax.eval_shape``) to
:func:`mup`. Each leaf is classified by which of its dimensions differ between the two (Yang et
al. 2022, TP-V, arXiv:2203.03466, Section J.2, "base shapes"):

- no dimension grows: ``scalar`` — left alone;
- a 1-D leaf whose length grows: ``vector`` (biases, gains);
- only the fan-out grows: ``input`` (first layer, embeddings);
- only fan-in dimensions grow: ``output`` (the readout);
- fan-in and fan-out grow: ``hidden``.

Weights are laid out ``(..., fan_in, fan_out)`` by default (flax, haiku and learnmech: the last
axis is the fan-out, every other axis is fan-in); ``weight_layout="out_in"`` reads the first axis
as the fan-out instead (equinox, PyTorch). The width multiplier ``m`` of a leaf is the ratio of
its fan-outs for ``input`` and ``vector`` and of its fan-ins for ``hidden`` and ``output``.

From the kind and ``m`` the abc table of :mod:`learnmech.theory.parameterization` gives

- the *init multiplier*: what to multiply the user's own initialisation by. With
  ``init_convention="fan_in"`` (the user's initialiser already has variance ``~1/fan_in``, as
  LeCun, He and flax's defaults do) it is ``m^{-b} / m^{-b_SP}``: 1 except the readout, whose
  standard deviation gets an extra ``1/m`` to ``1/sqrt(m)`` of SP (muP's ``1/fan_in^2`` variance);
  with ``"fixed"`` (a width-independent std such as 0.02) it is the full ``m^{-b}``;
- the *learning-rate multiplier* ``m^{-c}``, applied by an optax transformation chained after
  the user's optimiser (it multiplies the update, hence the effective learning rate; for
  ``adamw`` it also multiplies the decoupled weight decay, which optax scales by the learning
  rate).

Only rows with width-independent forward multipliers (``a = 0``: ``mup-adam``, ``mup-sgd``,
``sp``) can be applied from outside a model; the ``ntk`` and ``mean-field`` rows change the
forward pass and are refused (use their equivalent ``a = 0`` row, see
:func:`learnmech.theory.parameterization.shift`).

Applying muP twice changes nothing: :meth:`MuP.init` and :meth:`MuP.optimizer` return their
argument unchanged when it already carries these multipliers, and refuse one that carries
multipliers from other base shapes. Nothing the user passes in is mutated; at ``m = 1`` every
multiplier is exactly 1.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, NamedTuple

import jax
import numpy as np
import optax

from learnmech.theory.parameterization import get_parameterization

__all__ = ["LeafScaling", "MuP", "classify_leaf", "mup", "scale_by_multipliers"]

Kind = Literal["input", "hidden", "output", "vector", "scalar"]
_KINDS = ("input", "hidden", "output", "vector", "scalar")


class LeafScaling(NamedTuple):
    """How one leaf scales: its kind, width multiplier and the two multipliers muP gives it."""

    kind: str
    width_multiplier: float
    init_multiplier: float
    lr_multiplier: float


def scale_by_multipliers(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each update leaf by the matching leaf of ``multipliers`` (a prefix pytree)."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda m, u: m * u, multipliers, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _scaling_axes(base: tuple[int, ...], target: tuple[int, ...], path: str) -> dict[int, float]:
    """``{axis: target / base}`` for every axis whose length differs."""
    if len(base) != len(target):
        raise ValueError(f"{path}: base shape {base} and target shape {target} have different ranks")
    ratios = {i: t / b for i, (b, t) in enumerate(zip(base, target)) if b != t}
    if any(b < 1 for b in base) and ratios:
        raise ValueError(f"{path}: a scaling dimension is empty in the base shape {base}")
    if ratios and len({r > 1 for r in ratios.values()}) > 1:
        raise ValueError(f"{path}: dimensions scale in opposite directions ({base} -> {target}); "
                         "base and target must be the same model at two widths")
    return ratios


def classify_leaf(base: tuple[int, ...], target: tuple[int, ...], *, weight_layout: str = "in_out",
                  kind: str | None = None, path: str = "leaf") -> tuple[str, float]:
    """The kind of one leaf and its width multiplier, from its shapes at the base and target widths.

    ``kind`` forces a kind (a user tag); it must agree with the shapes, else ``ValueError``
    (e.g. a leaf tagged ``vector`` in which two dimensions scale).

    >>> classify_leaf((8, 64), (8, 256))
    ('input', 4.0)
    >>> classify_leaf((64, 64), (256, 256))
    ('hidden', 4.0)
    >>> classify_leaf((64, 10), (256, 10))
    ('output', 4.0)
    """
    if weight_layout not in ("in_out", "out_in"):
        raise ValueError(f"weight_layout: must be 'in_out' or 'out_in', got {weight_layout!r}")
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"{path}: kind must be one of {list(_KINDS)}, got {kind!r}")
    base, target = tuple(int(s) for s in base), tuple(int(s) for s in target)
    ratios = _scaling_axes(base, target, path)
    ndim = len(base)
    fan_out = ndim - 1 if weight_layout == "in_out" else 0
    grows_out = fan_out in ratios
    fan_in_ratio = math.prod(r for i, r in ratios.items() if i != fan_out)
    scaling = "no dimension" if not ratios else f"{len(ratios)} dimension(s) {sorted(ratios)}"
    if not ratios:
        inferred = "scalar"
    elif ndim == 1:
        inferred = "vector"
    elif grows_out and len(ratios) == 1:
        inferred = "input"
    elif not grows_out:
        inferred = "output"
    else:
        inferred = "hidden"
    chosen = kind or inferred
    allowed = {  # which shapes each tag can describe
        "scalar": not ratios,
        "vector": len(ratios) == 1,
        "input": len(ratios) == 1,
        "output": bool(ratios) and (ndim == 1 or not grows_out),
        "hidden": grows_out and len(ratios) >= 2,
    }
    if not allowed[chosen]:
        raise ValueError(f"{path}: tagged {chosen!r} but {scaling} of {base} -> {target} scale "
                         f"(the shapes say {inferred!r}); fix the tag or the base shapes")
    if chosen in ("vector", "input"):
        m = next(iter(ratios.values()))
    elif chosen in ("hidden", "output"):
        m = fan_in_ratio if ndim > 1 else next(iter(ratios.values()))
    else:
        m = 1.0
    return chosen, float(m)


def _shape(leaf) -> tuple[int, ...]:
    return tuple(np.shape(leaf)) if not hasattr(leaf, "shape") else tuple(leaf.shape)


# Functions and transformations already wrapped, mapped to the MuP that wrapped them.
_WRAPPED: "weakref.WeakKeyDictionary[Callable, MuP]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class MuP:
    """Per-leaf muP scalings of one model between its base and target widths (see :func:`mup`)."""

    parameterization: str
    treedef: Any
    leaves: tuple[LeafScaling, ...]
    paths: tuple[str, ...]

    @property
    def scalings(self):
        """A pytree shaped like the parameters, of :class:`LeafScaling`."""
        return jax.tree.unflatten(self.treedef, self.leaves)

    def init_multipliers(self):
        """A pytree of floats: multiply the user's initial leaves by these."""
        return jax.tree.unflatten(self.treedef, [s.init_multiplier for s in self.leaves])

    def lr_multipliers(self):
        """A pytree of floats: per-leaf learning-rate multipliers (for learnmech's trainer too)."""
        return jax.tree.unflatten(self.treedef, [s.lr_multiplier for s in self.leaves])

    def table(self) -> list[dict[str, Any]]:
        """One row per leaf: path, kind, width multiplier, init and learning-rate multipliers."""
        return [{"path": p, **s._asdict()} for p, s in zip(self.paths, self.leaves)]

    def _check_params(self, params) -> None:
        treedef = jax.tree.structure(params)
        if treedef != self.treedef:
            raise ValueError(f"params: structure {treedef} differs from the target model's {self.treedef}")

    def init(self, init_fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``init_fn(*args) -> params`` so that it returns muP-initialised parameters.

        Wrapping a function this object already wrapped returns it unchanged.
        """
        owner = _WRAPPED.get(init_fn)
        if owner is not None:
            if owner == self:
                return init_fn
            raise ValueError("init_fn: already carries muP multipliers from other base shapes")
        mults = self.init_multipliers()

        def wrapped(*args, **kwargs):
            params = init_fn(*args, **kwargs)
            self._check_params(params)
            return jax.tree.map(lambda m, p: p * np.asarray(m, dtype=p.dtype) if m != 1.0 else p, mults, params)

        wrapped.__doc__ = f"{getattr(init_fn, '__name__', 'init')} with muP ({self.parameterization}) multipliers"
        _WRAPPED[wrapped] = self
        return wrapped

    def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """``tx`` followed by the per-leaf learning-rate multipliers (unchanged if already applied)."""
        owner = _WRAPPED.get(tx.update)
        if owner is not None:
            if owner == self:
                return tx
            raise ValueError("tx: already carries muP learning-rate multipliers from other base shapes")
        chained = optax.chain(tx, scale_by_multipliers(self.lr_multipliers()))
        _WRAPPED[chained.update] = self
        return chained


def mup(
    base,
    target,
    *,
    optimizer: Literal["adam", "sgd"] = "adam",
    parameterization: str | None = None,
    kinds: Mapping[str, str] | Callable[[str], str | None] | None = None,
    weight_layout: str = "in_out",
    init_convention: Literal["fan_in", "fixed"] = "fan_in",
    zero_readout: bool = False,
) -> MuP:
    """muP scalings for the model whose parameters at the base and target widths are ``base``, ``target``.

    Args:
      base, target: the same model's parameter pytrees at two widths (arrays or shape structs).
      optimizer: selects the row ``mup-adam`` (Adam and its relatives) or ``mup-sgd``.
      parameterization: any row of the table with ``a = 0`` instead (``sp`` gives the identity
        for a fan-in initialiser).
      kinds: tags for leaves whose kind should not be inferred: ``{path: kind}`` with paths as
        ``jax.tree_util.keystr`` prints them (``MuP.table()`` lists them), or a function of the
        path returning a kind or ``None``.
      weight_layout: ``"in_out"`` (fan-out last) or ``"out_in"`` (fan-out first).
      init_convention: ``"fan_in"`` if the user's initialiser already scales as ``1/fan_in``,
        ``"fixed"`` if its std does not depend on width.
      zero_readout: initialise ``output`` leaves at zero (a common muP choice, TP-V Section D.2).

    Returns:
      a :class:`MuP` with the per-leaf scalings and the ``init``/``optimizer`` wrappers.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: must be 'adam' or 'sgd', got {optimizer!r}")
    if init_convention not in ("fan_in", "fixed"):
        raise ValueError(f"init_convention: must be 'fan_in' or 'fixed', got {init_convention!r}")
    name = parameterization or f"mup-{optimizer}"
    table = get_parameterization(name)
    if not table.multiplier_free:
        raise ValueError(f"parameterization: {name!r} changes forward multipliers and cannot be applied from "
                         "outside a model; use an equivalent row with a = 0 (mup-adam, mup-sgd, sp)")
    sp = get_parameterization("sp")
    base_paths, base_def = jax.tree_util.tree_flatten_with_path(base)
    target_paths, target_def = jax.tree_util.tree_flatten_with_path(target)
    if base_def != target_def:
        raise ValueError(f"base, target: the two pytrees differ in structure ({base_def} vs {target_def})")
    tag = kinds if callable(kinds) else (lambda p: (kinds or {}).get(p))
    if isinstance(kinds, Mapping):
        known = {jax.tree_util.keystr(p) for p, _ in target_paths}
        unknown = sorted(set(kinds) - known)
        if unknown:
            raise ValueError(f"kinds: no leaf at {unknown}; paths are {sorted(known)}")
    leaves, paths = [], []
    for (path, b), (_, t) in zip(base_paths, target_paths):
        name_ = jax.tree_util.keystr(path)
        kind, m = classify_leaf(_shape(b), _shape(t), weight_layout=weight_layout, kind=tag(name_), path=name_)
        if kind == "scalar":
            leaves.append(LeafScaling(kind, 1.0, 1.0, 1.0))
        else:
            _, std, lr = table.scales(kind, m)
            if init_convention == "fan_in":
                std /= sp.scales(kind, m)[1]
            if zero_readout and kind == "output":
                std = 0.0
            leaves.append(LeafScaling(kind, m, std, lr))
        paths.append(name_)
    return MuP(name, target_def, tuple(leaves), tuple(paths))
