"""The per-leaf muP table of a model given at two widths: paths, roles, kinds and multipliers.

Steps, one per leaf of the model's trainable arrays (read through :mod:`learnmech.adapters`):
the weight layout (which axis is the fan-out), the role (tagged, or inferred from the path when
it agrees with the shapes), the kind and width multiplier (base shapes, TP-V Section J.2), the
abc exponents of the parameterisation's row (TP-V Table 3), the init multiplier under the user's
init convention (:mod:`learnmech.nets.mup_gauge`) and the role options (zero query, zero readout).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np

from learnmech.nets.mup_gauge import gauge_mismatch, init_multiplier, is_concrete, rms
from learnmech.nets.mup_shapes import classify_leaf
from learnmech.nets.roles import ROLES, infer_role, role_kind
from learnmech.theory.parameterization import get_parameterization

__all__ = ["LeafRow", "leaf_table", "tag_lookup"]

_LAYOUTS = ("in_out", "out_in")


class LeafRow(NamedTuple):
    """One leaf of the table."""

    path: str
    role: str | None
    kind: str
    m: float
    init: float
    lr: float
    layout: str


def _shape(leaf) -> tuple[int, ...]:
    return tuple(leaf.shape) if hasattr(leaf, "shape") else tuple(np.shape(leaf))


def tag_lookup(field: str, tags, names: list[str], allowed: tuple[str, ...] | None,
               noun: str = "leaf") -> Callable[[str], str | None]:
    """A function path -> tag from a mapping (checked now: known paths, allowed values) or a function
    (checked per call); ``noun`` names what the paths point at in messages (``leaf``, ``parameter``)."""
    if tags is None:
        return lambda path: None
    if callable(tags) and not isinstance(tags, Mapping):
        def checked(path: str) -> str | None:
            value = tags(path)
            if value is not None and allowed is not None and value not in allowed:
                raise ValueError(f"{field}: {path} got {value!r}; allowed: {list(allowed)}")
            return value
        return checked
    if not isinstance(tags, Mapping):
        raise ValueError(f"{field}: must be a mapping {{path: value}} or a function of the path, "
                         f"got {type(tags).__name__}")
    unknown = sorted(set(tags) - set(names))
    if unknown:
        raise ValueError(f"{field}: no {noun} at {unknown}; paths are {sorted(names)}")
    bad = {p: v for p, v in tags.items() if allowed is not None and v not in allowed}
    if bad:
        raise ValueError(f"{field}: {bad} not allowed; allowed: {list(allowed)}")
    return lambda path: tags.get(path)


def _leaves(base, target) -> tuple[list[str], list, list, Any, list[str]]:
    """Paths, base leaves, target leaves, the target's treedef and the auto layouts."""
    from learnmech.adapters import framework, leaf_paths, split, weight_layouts

    kind_b, kind_t = framework(base), framework(target)
    if kind_b != kind_t:
        raise ValueError(f"base, target: models of different kinds ({kind_b} and {kind_t})")
    (pb, _), (pt, _) = split(base), split(target)
    names_b, names_t = leaf_paths(pb), leaf_paths(pt)
    leaves_b, def_b = jax.tree.flatten(pb)
    leaves_t, def_t = jax.tree.flatten(pt)
    if names_b != names_t or (kind_t == "pytree" and def_b != def_t):
        only_b, only_t = sorted(set(names_b) - set(names_t)), sorted(set(names_t) - set(names_b))
        raise ValueError(f"base, target: the two models differ in structure (leaves only in base {only_b[:4]}, "
                         f"only in target {only_t[:4]}; {def_b} vs {def_t})")
    if not leaves_t:
        raise ValueError(f"base, target: no trainable arrays found in the {kind_t} model")
    return names_t, leaves_b, leaves_t, def_t, weight_layouts(target)


def _role(path: str, tagged: str | None, shape_kind: str, ndim: int) -> str | None:
    """The tagged role, else the inferred one if it is a weight whose shapes say the same kind."""
    if tagged is not None:
        return tagged
    inferred = infer_role(path)
    if inferred is None or ndim < 2 or role_kind(inferred) != shape_kind:
        return None
    return inferred


def leaf_table(base, target, parameterization: str, *, kinds=None, roles=None, weight_layout="auto",
               init_convention: str = "fan_in", zero_readout: bool = False,
               zero_query: bool = False) -> tuple[Any, list[LeafRow]]:
    """``(treedef of the target's parameters, one LeafRow per leaf)``; see :func:`learnmech.nets.mup`."""
    table = get_parameterization(parameterization)
    if not table.multiplier_free:
        raise ValueError(f"parameterization: {parameterization!r} changes forward multipliers and cannot be applied "
                         "from outside a model; use an equivalent row with a = 0 (mup-adam, mup-sgd, sp)")
    names, leaves_b, leaves_t, treedef, auto = _leaves(base, target)
    if isinstance(weight_layout, str) and weight_layout not in ("auto", *_LAYOUTS):
        raise ValueError(f"weight_layout: must be 'auto', 'in_out' or 'out_in' (or per path), got {weight_layout!r}")
    layout_of = (lambda p: None if weight_layout == "auto" else weight_layout) if isinstance(weight_layout, str) \
        else tag_lookup("weight_layout", weight_layout, names, _LAYOUTS)
    kind_of = tag_lookup("kinds", kinds, names, None)  # classify_leaf names the allowed kinds
    role_of = tag_lookup("roles", roles, names, ROLES)
    concrete = all(is_concrete(x) for x in (*leaves_b, *leaves_t))
    if init_convention == "base" and not concrete:
        raise ValueError("init_convention: 'base' measures the initial arrays; pass both models with concrete "
                         "arrays (not shape structs from jax.eval_shape)")
    rows, mismatches = [], []
    for path, b, t, default_layout in zip(names, leaves_b, leaves_t, auto):
        layout = layout_of(path) or default_layout
        tag_role, tag_kind = role_of(path), kind_of(path)
        if tag_role is not None and tag_kind is not None and role_kind(tag_role) != tag_kind:
            raise ValueError(f"{path}: tagged role {tag_role!r} (kind {role_kind(tag_role)!r}) and kind {tag_kind!r}")
        forced = tag_kind or (role_kind(tag_role) if tag_role is not None else None)
        kind, m = classify_leaf(_shape(b), _shape(t), weight_layout=layout, kind=forced, path=path)
        role = _role(path, tag_role, kind, len(_shape(t)))
        if kind == "scalar":
            rows.append(LeafRow(path, role, kind, 1.0, 1.0, 1.0, layout))
            continue
        _, std, lr = table.scales(kind, m)
        measured = (rms(b), rms(t)) if init_convention == "base" else (None, None)
        init = init_multiplier(init_convention, kind, m, std, *measured)
        if (zero_readout and kind == "output") or (zero_query and role == "query"):
            init = 0.0
        if concrete:
            mismatches.append(gauge_mismatch(path, kind, m, init_convention, b, t))
        rows.append(LeafRow(path, role, kind, m, init, lr, layout))
    _warn([s for s in mismatches if s])
    return treedef, rows


def _warn(mismatches: list[str]) -> None:
    if mismatches:
        warnings.warn("mup: the initialiser of these weights does not scale as init_convention assumes, so muP's "
                      "init multipliers will be off by the same factor:\n  " + "\n  ".join(mismatches) +
                      "\nPass init_convention='base' (the base model's draw sets the scale) or initialise these "
                      "leaves with a width-independent std (for an embedding) / 1/sqrt(fan_in) (for a matrix).",
                      UserWarning, stacklevel=4)
