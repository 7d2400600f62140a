"""muP for any JAX model: per-leaf init multipliers and learning-rate multipliers from base shapes.

The user builds their model twice, at a small *base* width and at the *target* width, and passes
both to :func:`mup`: plain parameter pytrees and haiku dicts (arrays or ``jax.ShapeDtypeStruct``
from ``jax.eval_shape``), equinox Modules, flax nnx Modules or ``nnx.State`` (read through
:mod:`learnmech.adapters`, which names every trainable array by its path). Each leaf is classified
by which of its dimensions differ between the two (:func:`~learnmech.nets.mup_shapes.classify_leaf`;
Yang et al. 2022, TP-V, arXiv:2203.03466, Section J.2, "base shapes"):

- no dimension grows: ``scalar`` — left alone;
- a 1-D leaf whose length grows: ``vector`` (biases, gains);
- only the fan-out grows: ``input`` (first layer, embeddings);
- only fan-in dimensions grow: ``output`` (the readout);
- fan-in and fan-out grow: ``hidden``.

Which axis is the fan-out is read per leaf (``weight_layout="auto"``): last for plain pytrees,
flax kernels and every embedding table; first for ``equinox.nn.Linear`` and ``Conv`` weights.
Leaves also get a *role* (:mod:`learnmech.nets.roles`: embedding, query, key, value, attn_output,
readout, tied_embedding), inferred from the path or tagged by the user; a role fixes the kind
and enables the role-specific options (``zero_query``, ``zero_readout``, tied embeddings). The
width multiplier ``m`` of a leaf is the ratio of its fan-outs for ``input`` and ``vector`` and of
its fan-ins for ``hidden`` and ``output``.

From the kind and ``m`` the abc table of :mod:`learnmech.theory.parameterization` gives

- the *init multiplier*: what to multiply the user's own initialisation by, given how that
  initialisation already scales (``init_convention``, :mod:`learnmech.nets.mup_gauge`): under
  ``"fan_in"`` it is ``m^{-b} / m^{-b_SP}`` (1 except the readout, whose std gets an extra
  ``1/sqrt(m)``), under ``"fixed"`` the full ``m^{-b}``, under ``"base"`` whatever makes the
  target leaf's RMS equal to the base leaf's times ``m^{-b}``;
- the *learning-rate multiplier* ``m^{-c}``, applied by an optax transformation chained after
  the user's optimiser (it multiplies the update, hence the effective learning rate; for
  ``adamw`` it also multiplies the decoupled weight decay, which optax scales by the learning
  rate).

Only rows with width-independent forward multipliers (``a = 0``: ``mup-adam``, ``mup-sgd``,
``sp``) can be applied from outside a model; ``ntk`` and ``mean-field`` are refused.

Applying muP twice changes nothing: :meth:`MuP.init` and :meth:`MuP.optimizer` return their
argument unchanged when it already carries these multipliers, and refuse one that carries
multipliers from other base shapes (:meth:`MuP.rescale` is for a freshly initialised model and
multiplies every time it is called). Multipliers are matched to a container's leaves by path,
so the optimiser works on plain pytrees, equinox filtered updates (``None`` for non-arrays) and
the pure states ``nnx.Optimizer`` hands to optax alike. At ``m = 1`` every multiplier is 1.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, NamedTuple

import jax
import numpy as np
import optax

from learnmech.nets.mup_gauge import CONVENTIONS
from learnmech.nets.mup_shapes import classify_leaf
from learnmech.nets.mup_table import leaf_table

__all__ = ["LeafScaling", "MuP", "classify_leaf", "mup", "scale_by_multipliers"]


class LeafScaling(NamedTuple):
    """How one leaf scales: its kind, width multiplier, the two muP multipliers, and its role."""

    kind: str
    width_multiplier: float
    init_multiplier: float
    lr_multiplier: float
    role: str | None = None


def scale_by_multipliers(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each update leaf by the matching leaf of ``multipliers`` (a prefix pytree)."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda m, u: m * u, multipliers, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _align(paths: tuple[str, ...], values: tuple[float, ...], tree: Any, what: str):
    """``(flat leaves of tree, treedef, the value for each leaf)``, matched by path.

    The tree may hold the table's leaves in another order or a subset of them (an optimiser's
    ``wrt`` filter); a tree whose paths are all unknown but as many is matched by order (another
    container of the same arrays).
    """
    from learnmech.adapters import leaf_paths

    flat, treedef = jax.tree.flatten(tree)
    names = tuple(leaf_paths(tree))
    if names == paths or (len(names) == len(paths) and not set(names) & set(paths)):
        return flat, treedef, list(values)  # the same paths, or another container's names for them
    if set(names) <= set(paths) and len(set(names)) == len(names):  # any order, or a subset (a wrt filter)
        by_path = dict(zip(paths, values))
        return flat, treedef, [by_path[n] for n in names]
    missing, extra = sorted(set(paths) - set(names)), sorted(set(names) - set(paths))
    raise ValueError(f"{what}: {len(names)} leaves, the muP table has {len(paths)}; missing {missing[:4]}, "
                     f"not in the table {extra[:4]} (pass what mup() was given, or its updates)")


# Functions and transformations already wrapped, mapped to the MuP that wrapped them.
_WRAPPED: "weakref.WeakKeyDictionary[Callable, MuP]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class MuP:
    """Per-leaf muP scalings of one model between its base and target widths (see :func:`mup`)."""

    parameterization: str
    treedef: Any
    leaves: tuple[LeafScaling, ...]
    paths: tuple[str, ...]
    layouts: tuple[str, ...] = ()

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
        """One row per leaf: path, role, kind, width multiplier, init and learning-rate multipliers, layout."""
        layouts = self.layouts or ("in_out",) * len(self.paths)
        return [{"path": p, "role": s.role, "kind": s.kind, "width_multiplier": s.width_multiplier,
                 "init_multiplier": s.init_multiplier, "lr_multiplier": s.lr_multiplier, "layout": lay}
                for p, s, lay in zip(self.paths, self.leaves, layouts)]

    @property
    def tied_readout_multiplier(self) -> float:
        """``base width / width`` for the logits of a tied embedding (``mup``'s ``MuSharedReadout``).

        A tensor tagged ``tied_embedding`` keeps the embedding's init and learning rate; the user's
        forward pass multiplies the readout logits ``h @ E.T`` by this number.
        """
        tied = {s.width_multiplier for s in self.leaves if s.role == "tied_embedding"}
        if not tied:
            raise ValueError("roles: no leaf is tagged 'tied_embedding' (pass roles={path: 'tied_embedding'})")
        if len(tied) > 1:
            raise ValueError(f"roles: tied embeddings with different width multipliers {sorted(tied)}")
        return 1.0 / tied.pop()

    def rescale(self, model_or_params: Any) -> Any:
        """The model (or parameters) with the init multipliers applied, of the same type.

        Plain pytrees, ``nnx.State`` and equinox Modules: a new object. An nnx Module: updated in
        place (``nnx.update``) and returned. Call it once, on a freshly initialised model.
        """
        from learnmech.adapters import framework, split

        params, rebuild = split(model_or_params)
        flat, treedef, mults = _align(self.paths, tuple(s.init_multiplier for s in self.leaves), params,
                                      "model_or_params")
        scaled = jax.tree.unflatten(treedef, [p if m == 1.0 else p * np.asarray(m, dtype=p.dtype)
                                              for p, m in zip(flat, mults)])
        if framework(model_or_params) == "flax_nnx" and not _is_state(model_or_params):
            from flax import nnx

            nnx.update(model_or_params, scaled)
            return model_or_params
        return rebuild(scaled)

    def init(self, init_fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``init_fn(*args) -> params or model`` so that it returns a muP-initialised one.

        The wrapper has ``init_fn``'s signature (``functools.wraps``), so learnmech's ``train``
        passes it the same arguments. Wrapping a function this object already wrapped returns it.
        """
        owner = _WRAPPED.get(init_fn)
        if owner is not None:
            if owner == self:
                return init_fn
            raise ValueError("init_fn: already carries muP multipliers from other base shapes")

        @functools.wraps(init_fn)
        def wrapped(*args, **kwargs):
            return self.rescale(init_fn(*args, **kwargs))

        wrapped.__doc__ = f"{getattr(init_fn, '__name__', 'init')} with muP ({self.parameterization}) multipliers"
        _WRAPPED[wrapped] = self
        return wrapped

    def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """``tx`` followed by the per-leaf learning-rate multipliers (unchanged if already applied).

        The multipliers are matched to the updates' leaves by path (or by order when a container
        names them differently), so any container of the model's arrays works.
        """
        owner = _WRAPPED.get(tx.update)
        if owner is not None:
            if owner == self:
                return tx
            raise ValueError("tx: already carries muP learning-rate multipliers from other base shapes")
        lrs = tuple(s.lr_multiplier for s in self.leaves)

        def update(updates, state, params=None):
            del params
            flat, treedef, mults = _align(self.paths, lrs, updates, "updates")
            return jax.tree.unflatten(treedef, [m * u for u, m in zip(flat, mults)]), state

        chained = optax.chain(tx, optax.GradientTransformation(lambda params: optax.EmptyState(), update))
        _WRAPPED[chained.update] = self
        return chained


def _is_state(obj: Any) -> bool:
    from flax import nnx

    return isinstance(obj, nnx.State)


def mup(
    base,
    target,
    *,
    optimizer: Literal["adam", "sgd"] = "adam",
    parameterization: str | None = None,
    kinds: Mapping[str, str] | Callable[[str], str | None] | None = None,
    roles: Mapping[str, str] | Callable[[str], str | None] | None = None,
    weight_layout: str | Mapping[str, str] | Callable[[str], str | None] = "auto",
    init_convention: Literal["fan_in", "fixed", "base"] = "fan_in",
    zero_readout: bool = False,
    zero_query: bool = False,
) -> MuP:
    """muP scalings for the model whose base- and target-width instances are ``base``, ``target``.

    Args:
      base, target: the same model at two widths: parameter pytrees (arrays or shape structs),
        equinox Modules, flax nnx Modules or ``nnx.State`` (both of one kind).
      optimizer: selects the row ``mup-adam`` (Adam and its relatives) or ``mup-sgd``.
      parameterization: any row of the table with ``a = 0`` instead (``sp`` gives the identity
        for a fan-in initialiser).
      kinds: tags for leaves whose kind should not be inferred: ``{path: kind}`` with paths as
        ``MuP.table()`` lists them, or a function of the path returning a kind or ``None``.
      roles: tags ``{path: role}`` (or a function) with roles from
        :data:`learnmech.nets.roles.ROLES`; untagged weights get :func:`~learnmech.nets.roles.infer_role`
        of their path when it agrees with their shapes. A tagged role fixes the kind.
      weight_layout: ``"auto"`` (per leaf, from the model's library), ``"in_out"`` (fan-out last),
        ``"out_in"`` (fan-out first), or per path (a mapping or function; unnamed leaves: auto).
      init_convention: ``"fan_in"`` if the user's initialiser scales as ``1/sqrt(fan_in)``,
        ``"fixed"`` if its std does not depend on width, ``"base"`` to measure it from the two
        models' own arrays (see :mod:`learnmech.nets.mup_gauge`). With concrete arrays, a weight
        whose measured scaling contradicts ``"fan_in"``/``"fixed"`` is named in a warning.
      zero_readout: initialise ``output`` leaves at zero (TP-V Appendix D.2).
      zero_query: initialise leaves whose role is ``query`` at zero (TP-V Appendix D.2).

    Returns:
      a :class:`MuP` with the per-leaf scalings and the ``init``/``rescale``/``optimizer`` wrappers.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: must be 'adam' or 'sgd', got {optimizer!r}")
    if init_convention not in CONVENTIONS:
        raise ValueError(f"init_convention: must be one of {list(CONVENTIONS)}, got {init_convention!r}")
    name = parameterization or f"mup-{optimizer}"
    treedef, rows = leaf_table(base, target, name, kinds=kinds, roles=roles, weight_layout=weight_layout,
                               init_convention=init_convention, zero_readout=zero_readout, zero_query=zero_query)
    leaves = tuple(LeafScaling(r.kind, r.m, r.init, r.lr, r.role) for r in rows)
    return MuP(name, treedef, leaves, tuple(r.path for r in rows), tuple(r.layout for r in rows))
