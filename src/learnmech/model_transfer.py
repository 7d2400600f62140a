"""A user's model as a family of widths for :func:`learnmech.transfer`: build, apply and muP at each width.

A model enters :func:`learnmech.width_transfer.transfer` in one of two forms:

- ``init``/``apply``: ``init(key, width) -> params`` (a plain pytree) and ``apply(params, x, width)``;
- ``build``: ``build(width, key) -> model``, where the model is an equinox ``Module``, a flax nnx
  ``Module`` or a plain pytree of arrays, and ``apply(model, x) -> outputs``.

The default ``apply`` of the ``build`` form (the rule): an equinox ``Module`` is written for one
example, so it is vmapped over the leading (example) axis, ``jax.vmap(model)(x)``; any other
callable model (a flax nnx ``Module``, a callable pytree) is called on the whole batch,
``model(x)``; a plain pytree is not callable and needs ``apply``.

Either form becomes one :class:`WidthModel` per width: ``init(key) -> params`` (the model's
trainable array leaves, :func:`learnmech.adapters.split`), ``apply(params, x)`` (the model rebuilt
from them) and per-leaf learning-rate multipliers, which :func:`learnmech.train.train` trains as one
vmapped ensemble (one compiled program per width). Nothing is built outside that program: the
structure, the shapes and muP's multipliers come from abstract traces (:func:`jax.eval_shape`), since
building a model eagerly runs (and compiles) its initialisers op by op. The forward pass must be a
pure function of the parameters: a model that changes its own state there (``nnx.Dropout`` drawing
from its ``rngs``, running batch statistics) is refused with a ``ValueError`` naming ``build``.

muP. ``parameterization`` ``"mup-adam"``, ``"mup-sgd"`` or ``"sp"`` applies :func:`learnmech.nets.mup`
between the model at the first width (the base) and the model at each width (Yang et al. 2022,
"Tensor Programs V", arXiv:2203.03466, Table 3 and Section J.2, base shapes): every member's
initial parameters are multiplied by the init multipliers and each leaf's update by its
learning-rate multiplier. At the base width every multiplier is 1, so there the network is the
model as built. ``None`` trains the model as built (with ``lr_multipliers`` given by hand, if any).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax
import numpy as np

__all__ = ["PARAMETERIZATIONS", "WidthModel", "batch_apply", "model_family", "params_bytes"]

PARAMETERIZATIONS = ("mup-adam", "mup-sgd", "sp")  # rows of the abc table muP can apply from outside a model


@dataclass(frozen=True)
class WidthModel:
    """The model at one width as the trainer takes it.

    Attributes:
      init: ``init(key) -> params``, a pytree of arrays (muP's init multipliers applied).
      apply: ``apply(params, x) -> outputs`` on a batch.
      lr_multipliers: a pytree prefix of ``params`` of per-leaf learning-rate multipliers, or None.
    """

    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, Any], Any]
    lr_multipliers: Any = None


def _is_equinox_module(model) -> bool:
    eqx = sys.modules.get("equinox")  # a model can only be an equinox Module if equinox is imported
    return eqx is not None and isinstance(model, eqx.Module)


def batch_apply(model, x):
    """The default ``apply(model, x)``: ``jax.vmap(model)(x)`` for an equinox Module, else ``model(x)``."""
    if _is_equinox_module(model):
        return jax.vmap(model)(x)  # equinox layers take one example: map over the leading axis
    return model(x)


def _split(model, where: str):
    from learnmech.adapters import split

    try:
        params, rebuild = split(model)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: returned a model learnmech cannot split into parameters "
                         f"({type(model).__name__}): {exc}") from None
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    odd = [(jax.tree_util.keystr(path), leaf) for path, leaf in flat if not isinstance(leaf, (jax.Array, np.ndarray))]
    if odd or not flat:
        what = f"its leaf {odd[0][0] or '(the root)'} is a {type(odd[0][1]).__name__}" if odd else "it has no arrays"
        raise ValueError(f"{where}: returned a model learnmech cannot split into parameters "
                         f"({type(model).__name__}): {what}, not an array")
    return params, rebuild


def _build_params(build, width: int):
    """``key -> params`` of ``build(width, key)`` (traced by the trainer: the rebuild function is dropped)."""
    return lambda key: _split(build(width, key), "build")[0]


def params_bytes(init_params: Callable[[jax.Array], Any]) -> int:
    """Bytes of one member's parameters from the shapes ``init_params(key)`` would build (nothing allocated)."""
    shapes = jax.eval_shape(init_params, jax.random.key(0))
    return sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in jax.tree.leaves(shapes))


def _check_apply(model, apply) -> Callable:
    if apply is not None:
        return apply
    if not callable(model):
        raise ValueError(f"apply: build(width, key) returned a {type(model).__name__}, which is not callable; "
                         "pass apply(model, x) -> outputs")
    return batch_apply


def _check_parameterization(parameterization, lr_multipliers, mup_options) -> dict:
    if parameterization is not None and parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: must be one of {list(PARAMETERIZATIONS)} or None, "
                         f"got {parameterization!r}")
    if parameterization is not None and lr_multipliers is not None:
        raise ValueError("lr_multipliers: give either lr_multipliers or parameterization (which computes them), "
                         "not both")
    options = dict(mup_options or {})
    if options and parameterization is None:
        raise ValueError("mup_options: only used with parameterization='mup-adam', 'mup-sgd' or 'sp'")
    taken = {"parameterization", "optimizer"} & set(options)
    if taken:
        raise ValueError(f"mup_options: {sorted(taken)} are set by transfer's parameterization argument")
    return options


def _scalings(parameterization: str, base, target, options: Mapping):
    """:func:`learnmech.nets.mup` between the model at the base width and at this width (``ValueError`` named)."""
    from learnmech.nets import mup

    try:
        return mup(base, target, parameterization=parameterization, **options)
    except TypeError as exc:  # an unknown keyword in mup_options
        raise ValueError(f"mup_options: {exc}") from None


def _scaled_init(init_params, scalings):
    mults = scalings.init_multipliers()

    def init(key):
        params = init_params(key)
        return jax.tree.map(lambda m, p: p * np.asarray(m, p.dtype) if m != 1.0 else p, mults, params)

    return init


def model_family(*, init=None, apply=None, build=None, base_width: int, parameterization: str | None = None,
                 lr_multipliers: Callable[[int], Any] | None = None,
                 mup_options: Mapping[str, Any] | None = None,
                 example: Any = None) -> tuple[Callable[[int], WidthModel], Callable]:
    """The model of either form (module docstring) as ``(at, shapes)``, after checking its arguments.

    ``at(width) -> WidthModel`` makes the model at that width (the ``build`` form is traced abstractly,
    and ``apply`` checked on ``example``, a batch of inputs or its shape); ``shapes(width) -> key -> params``
    is traceable and allocates nothing under :func:`jax.eval_shape` (the memory check uses it before any work).
    """
    if (init is None) == (build is None):
        raise ValueError("init, build: give either init(key, width) with apply(params, x, width), "
                         "or build(width, key) -> model, not both")
    options = _check_parameterization(parameterization, lr_multipliers, mup_options)
    if build is not None:
        if not callable(build):
            raise ValueError(f"build: must be a function build(width, key) -> model, got {type(build).__name__}")
        family = _build_family(build, apply, base_width, parameterization, options, example)
        return family, lambda w: _build_params(build, w)
    if not callable(init) or not callable(apply):
        raise ValueError("init, apply: both must be functions, init(key, width) -> params and "
                         "apply(params, x, width) -> outputs")
    shapes = lambda w: (lambda key: init(key, w))  # noqa: E731
    return _init_family(init, apply, base_width, parameterization, lr_multipliers, options, shapes), shapes


def _init_family(init, apply, base_width, parameterization, lr_multipliers, options, shapes):
    def at(width: int) -> WidthModel:
        run = lambda params, x: apply(params, x, width)  # noqa: E731
        if parameterization is None:
            return WidthModel(shapes(width), run, None if lr_multipliers is None else lr_multipliers(width))
        key = jax.random.key(0)
        scalings = _scalings(parameterization, jax.eval_shape(shapes(base_width), key),
                             jax.eval_shape(shapes(width), key), options)
        return WidthModel(_scaled_init(shapes(width), scalings), run, scalings.lr_multipliers())

    return at


def _build_family(build, apply, base_width, parameterization, options, example):
    key = jax.random.key(0)

    def at(width: int) -> WidthModel:
        shapes, rebuild, run_model = _traced(build, width, apply, key)
        run = lambda p, x: run_model(rebuild(p), x)  # noqa: E731
        if example is None or not _runs_from_shapes(run, shapes, example):  # build one member for its rebuild
            rebuild = _split(build(width, key), "build")[1]
            run = lambda p, x: run_model(rebuild(p), x)  # noqa: E731
            if example is not None and not _runs_from_shapes(run, shapes, example):
                raise ValueError("build: the model changes its own state in its forward pass (e.g. nnx.Dropout "
                                 "drawing from its rngs); transfer trains a pure function of the parameters: "
                                 "build it deterministic (nnx.Dropout(..., deterministic=True))")
        init_params = _build_params(build, width)
        if parameterization is None:
            return WidthModel(init_params, run, None)
        scalings = _build_scalings(build, base_width, width, parameterization, options, key)
        return WidthModel(_scaled_init(init_params, scalings), run, scalings.lr_multipliers())

    return at


def _traced(build, width: int, apply, key):
    """``(parameter shapes, rebuild, apply)`` of ``build(width, key)``, traced abstractly (nothing allocated,
    nothing compiled: building concretely would run every initialiser op by op)."""
    found = {}

    def params(k):
        model = build(width, k)
        found["apply"] = _check_apply(model, apply)
        out, found["rebuild"] = _split(model, "build")
        return out

    shapes = jax.eval_shape(params, key)
    return shapes, found["rebuild"], found["apply"]


def _runs_from_shapes(run, shapes, example) -> bool:
    """Whether ``run(params, x)`` traces with the rebuild taken from the abstract trace; ``False`` when that
    rebuild holds arrays of the finished trace (e.g. an nnx Module's random-number state)."""
    leaked = [jax.errors.UnexpectedTracerError]
    if "flax.errors" in sys.modules:  # nnx says so in its own words
        leaked.append(sys.modules["flax.errors"].TraceContextError)
    try:
        jax.eval_shape(run, shapes, example)
    except tuple(leaked):
        return False
    return True


def _build_scalings(build, base_width: int, width: int, parameterization: str, options: Mapping, key):
    """:func:`learnmech.nets.mup` between ``build`` at the base width and at ``width``.

    The two models' parameters are traced, not computed: the multipliers depend on shapes only, and a
    concrete build would run every initialiser op by op. ``init_convention="base"`` measures the initial
    arrays, so there both are computed (one compiled program each).
    """
    base_params, params = _build_params(build, base_width), _build_params(build, width)
    if options.get("init_convention") == "base":
        return _scalings(parameterization, jax.jit(base_params)(key), jax.jit(params)(key), options)
    found = {}

    def trace(k):
        found["scalings"] = _scalings(parameterization, base_params(k), params(k), options)
        return 0  # the multipliers are Python floats: nothing of the trace is kept

    jax.eval_shape(trace, key)
    return found["scalings"]
