"""Base shapes: a leaf's muP kind and width multiplier from its shapes at two widths.

A leaf is classified by which of its dimensions differ between the base and the target model
(Yang et al. 2022, TP-V, arXiv:2203.03466, Section J.2, "base shapes"): none (``scalar``), the
length of a 1-D leaf (``vector``), only the fan-out (``input``), only fan-in dimensions
(``output``), or both (``hidden``). ``weight_layout`` says which axis is the fan-out.
"""

from __future__ import annotations

import math

__all__ = ["KINDS", "classify_leaf"]

KINDS = ("input", "hidden", "output", "vector", "scalar")


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
    if kind is not None and kind not in KINDS:
        raise ValueError(f"{path}: kind must be one of {list(KINDS)}, got {kind!r}")
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
