"""One suite, four frameworks: the common MLP as a plain JAX pytree, an equinox Module, a flax nnx Module and a
torch nn.Module, loaded with identical weights, must give the same numbers for the loss, the muP table, three
muP-Adam steps and the coordinate check. Everything runs in float64 (the suite enables x64; the torch twin is
float64), so the frameworks differ only by the order of floating-point sums: tolerance 1e-10 throughout."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.nets import MLP, mup
from learnmech.observe.coords import CoordModel, coord_check

D_IN, D_OUT = 6, 3
BASE, WIDTH, LR, STEPS = 4, 16, 1e-2, 3
COORD_WIDTHS, COORD_SEEDS = (8, 16), (0, 1)
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # tiny programs: compiling dominates running
TOL = 1e-10  # float64 on every side; only summation order differs
FRAMEWORKS = ["jax", "equinox", "nnx", "torch"]


def _net(width: int) -> MLP:
    return MLP((D_IN, width, width, D_OUT), "relu", "sp", dtype="float64")


@functools.lru_cache(maxsize=None)
def _init(width: int):
    """The JAX MLP's init at ``width``, compiled once (eager random draws would compile op by op)."""
    return jax.jit(_net(width).init)


def _raw(width: int, seed: int):
    """The plain twin's weights ``[{"w": (in, out), "b": (out,)}] * 3``: the JAX MLP's own init."""
    return _init(width)(jax.random.key(seed))


def _data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(16, D_IN))
    return (jnp.asarray(x), jnp.asarray(np.sin(x[:, :D_OUT]))), jnp.asarray(x[:8])


def _pre_activations(params, x):
    """``[h1, h2, out]`` pre-activations of the plain twin (what torch's forward hooks on nn.Linear see)."""
    outs, z = [], x
    for i, layer in enumerate(params):
        h = z @ layer["w"] + layer["b"]
        outs.append(h)
        z = jax.nn.relu(h)
    return outs


def _mse(params, batch):
    return 0.5 * jnp.mean((_pre_activations(params, batch[0])[-1] - batch[1]) ** 2)


def _canonical(path: str) -> tuple[int, str]:
    """``(layer index, "w" | "b")`` of a leaf path in any of the four frameworks."""
    torch_name = re.fullmatch(r"l(\d)\.(weight|bias)", path)
    layer = int(torch_name.group(1)) - 1 if torch_name else int(re.search(r"\[(\d+)\]", path).group(1))
    return layer, "b" if re.search(r"bias|\['b'\]", path) else "w"


class Twin(NamedTuple):
    """One framework's view of the common MLP, all through plain-pytree weights."""

    load: Callable[[Any], Any]  # plain weights -> framework model (float64)
    plain: Callable[[Any], Any]  # framework model -> plain weights
    mup: Callable[[Any, Any], Any]  # (base model, target model) -> MuP / TorchMuP
    loss: Callable[[Any, Any], float]  # (model, batch) -> loss
    train: Callable[[Any, Any, Any], Any]  # (muP, model, batch) -> plain weights after STEPS muP-Adam steps
    coord: Callable[[Any, Any], Any]  # (data, probe) -> CoordCheck (muP from width COORD_WIDTHS[0])


def _optax_steps(P, params, grad_fn, apply):
    """STEPS steps of the muP-wrapped Adam, as one compiled loop."""
    tx = P.optimizer(optax.adam(LR))

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(grad_fn(params), state, params)
        return (apply(params, updates), state), None

    return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[0][0])(params)


def _jax_coord(load, plain, make_mup):
    """learnmech's JAX coordinate check of a JAX-family twin: init = the JAX MLP's init from the seed's key,
    loaded into the framework's model and rescaled by that framework's muP."""
    def build(width):
        P = make_mup(load(_raw(COORD_WIDTHS[0], 0)), load(_raw(width, 0)))
        return CoordModel(init=lambda key: P.rescale(load(_net(width).init(key))),
                          layers=lambda m, x: _pre_activations(plain(m), x),
                          loss=lambda m, batch: _mse(plain(m), batch), optimizer=P.optimizer(optax.adam(LR)))
    return lambda data, probe: coord_check(build, COORD_WIDTHS, data=data, probe=probe, steps=STEPS, seeds=COORD_SEEDS,
                                           compiler_options=FAST_COMPILE)


def _jax_twin() -> Twin:
    ident = lambda p: p  # noqa: E731
    train = lambda P, params, batch: _optax_steps(P, params, jax.grad(lambda p: _mse(p, batch)), optax.apply_updates)  # noqa: E731
    return Twin(ident, ident, mup, lambda p, b: float(_mse(p, b)), train, _jax_coord(ident, ident, mup))


def _equinox_twin() -> Twin:
    eqx = pytest.importorskip("equinox")
    import models_equinox as me

    def load(raw):  # into a shape-only template: no eager random draws
        return me.load_pytree(eqx.filter_eval_shape(me.make, raw[1]["w"].shape[0], 0), raw)

    def train(P, model, batch):
        grad = eqx.filter_grad(lambda m: _mse(me.to_pytree(m), batch))
        return me.to_pytree(_optax_steps(P, model, grad, eqx.apply_updates))

    return Twin(load, me.to_pytree, mup, lambda m, b: float(_mse(me.to_pytree(m), b)), train,
                _jax_coord(load, me.to_pytree, mup))


def _nnx_twin() -> Twin:
    pytest.importorskip("flax")
    from flax import nnx

    import models_nnx as mn

    def load(raw):  # into a shape-only template: no eager random draws
        return mn.load_pytree(nnx.eval_shape(lambda: mn.make(raw[1]["w"].shape[0], 0)), raw)

    def train(P, model, batch):
        opt = nnx.Optimizer(model, P.optimizer(optax.adam(LR)), wrt=nnx.Param)  # the wrapped tx, as flax expects

        @nnx.jit
        def step(model, opt):
            opt.update(model, nnx.grad(lambda m: _mse(mn.to_pytree(m), batch))(model))

        for _ in range(STEPS):
            step(model, opt)
        return mn.to_pytree(model)

    return Twin(load, mn.to_pytree, mup, lambda m, b: float(_mse(mn.to_pytree(m), b)), train,
                _jax_coord(load, mn.to_pytree, mup))


def _torch_twin() -> Twin:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    import models_torch as mt

    from learnmech.torch import coord_check as torch_coord_check
    from learnmech.torch import mup as torch_mup

    def loss_fn(model, batch):
        return 0.5 * ((model(batch[0]) - batch[1]) ** 2).mean()

    def as_torch(batch):
        return tuple(torch.tensor(np.array(a)) for a in batch)

    def train(P, model, batch):
        P.rescale_(model)
        opt = torch.optim.Adam(P.param_groups(model, LR))
        for _ in range(STEPS):
            opt.zero_grad()
            loss_fn(model, as_torch(batch)).backward()
            opt.step()
        return mt.to_jax(model)

    def coord(data, probe):
        def build(width, seed):
            P = torch_mup(mt.MLP(COORD_WIDTHS[0], device="meta"), mt.MLP(width, device="meta"))
            model = P.rescale_(mt.from_jax(_raw(width, seed)))
            return model, torch.optim.Adam(P.param_groups(model, LR))
        return torch_coord_check(build, COORD_WIDTHS, data=as_torch(data), probe=as_torch((probe,))[0],
                                 loss_fn=loss_fn, steps=STEPS, seeds=COORD_SEEDS)

    return Twin(mt.from_jax, mt.to_jax, torch_mup, lambda m, b: loss_fn(m, as_torch(b)).item(), train, coord)


TWINS = {"jax": _jax_twin, "equinox": _equinox_twin, "nnx": _nnx_twin, "torch": _torch_twin}


@pytest.fixture(scope="module")
def reference():
    """The plain JAX twin's numbers, computed once."""
    twin, (batch, probe) = _jax_twin(), _data()
    raw = _raw(WIDTH, 1)
    P = mup(_raw(BASE, 0), raw)
    return {"loss": twin.loss(raw, batch), "table": _table(P), "trained": twin.train(P, P.rescale(raw), batch),
            "coord": twin.coord(batch, probe)}


def _table(P) -> dict:
    return {_canonical(r["path"]): (r["kind"], r["role"], r["width_multiplier"], r["init_multiplier"], r["lr_multiplier"])
            for r in P.table()}


def _close(got, want):
    for g, w in zip(got, want):
        for key in ("w", "b"):
            np.testing.assert_allclose(np.asarray(g[key]), np.asarray(w[key]), rtol=0, atol=TOL)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_twins_give_the_same_loss_table_and_mup_adam_steps(framework, reference):
    twin, (batch, _) = TWINS[framework](), _data()
    model = twin.load(_raw(WIDTH, 1))
    _close(twin.plain(model), _raw(WIDTH, 1))  # the weights round-trip exactly
    assert twin.loss(model, batch) == pytest.approx(reference["loss"], rel=TOL)
    P = twin.mup(twin.load(_raw(BASE, 0)), model)
    assert _table(P) == reference["table"]  # the same kinds, roles and multipliers, exactly
    if framework != "torch":
        model = P.rescale(model)
    _close(twin.train(P, model, batch), reference["trained"])


@pytest.mark.parametrize("framework", FRAMEWORKS[1:])
def test_twins_give_the_same_coordinate_check(framework, reference):
    twin, (batch, probe) = TWINS[framework](), _data()
    got, want = twin.coord(batch, probe), reference["coord"]
    np.testing.assert_array_equal(got.widths, want.widths)
    np.testing.assert_allclose(got.rms_per_seed, want.rms_per_seed, rtol=TOL)
    np.testing.assert_allclose(got.change_per_seed, want.change_per_seed, rtol=TOL)
    assert want.change.shape == (2, STEPS, 3) and np.all(want.change > 0)
