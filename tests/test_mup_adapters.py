"""muP on users' equinox and flax nnx models: one call each, the same table, the same arrays and the
same training steps as the plain-pytree twin (learnmech's MLP layout), roles and the init gauge.

Reference everywhere: the plain-pytree twin through the existing pytree path of ``mup`` and
learnmech's own ``train()``; the framework models are loaded with the twin's exact weights.
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.nets import MLP, mup
from learnmech.train import train

BASE, WIDTH = 16, 64  # m = 4
LR, STEPS = 1e-2, 3


def _twin(width):
    return MLP((6, width, width, 3), "relu", "sp")  # the plain pytree twin: [{"w": (in, out), "b": (out,)}] * 3


def _data():
    kx, ky = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, (16, 6))
    return x, jnp.sin(x[:, :3]) + 0.1 * jax.random.normal(ky, (16, 3))


def _loss(out, y):
    return 0.5 * jnp.mean((out - y) ** 2)


def _pytree_mup(**kwargs):
    shapes = lambda w: jax.eval_shape(_twin(w).init, jax.random.key(0))  # noqa: E731
    return mup(shapes(BASE), shapes(WIDTH), **kwargs)


@functools.cache
def _reference_run():
    """learnmech's plain-pytree loop: train() with P.init and the multipliers, full batch, Adam."""
    net, p_tree = _twin(WIDTH), _pytree_mup()
    run = train(init=p_tree.init(net.init), loss=lambda params, b: _loss(net.apply(params, b[0]), b[1]), data=_data(),
                optimizer=optax.adam(LR), lr_multipliers=p_tree.lr_multipliers(), steps=[STEPS], record_loss=False)
    k_init = jax.random.split(jax.random.key(0))[0]  # train() draws member 0's init from this key
    return net.init(k_init), jax.tree.map(lambda a: a[0], run.params)


# framework name -> (module of the model, path of layer i's weight, of its bias)
FRAMEWORKS = {
    "equinox": ("models_equinox", ".layers[{}].weight", ".layers[{}].bias"),
    "flax": ("models_nnx", "['layers'][{}]['kernel']", "['layers'][{}]['bias']"),
}


def _models(framework):
    pytest.importorskip(framework)
    import importlib

    name, w_path, b_path = FRAMEWORKS[framework]
    return importlib.import_module(name), w_path, b_path


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("convention", ["fan_in", "fixed"])
def test_one_call_gives_the_twins_table_and_arrays(framework, convention):
    models, w_path, b_path = _models(framework)
    if convention == "fixed":  # both frameworks' inits are fan-in: the hidden weight's RMS halves at m = 4
        with pytest.warns(UserWarning, match=re.escape(f"{w_path.format(1)} (hidden): init RMS ratio")):
            p = mup(models.make(BASE), models.make(WIDTH), init_convention=convention)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # fan-in inits agree with "fan_in": no warning
            p = mup(models.make(BASE), models.make(WIDTH), init_convention=convention)  # one call on the modules
    ref = {r["path"]: r for r in _pytree_mup(init_convention=convention).table()}
    rows = {r["path"]: r for r in p.table()}
    keys = ("kind", "width_multiplier", "init_multiplier", "lr_multiplier")
    for i in range(3):
        for path, twin in ((w_path.format(i), f"[{i}]['w']"), (b_path.format(i), f"[{i}]['b']")):
            assert tuple(rows[path][k] for k in keys) == tuple(ref[twin][k] for k in keys), path  # exact: same formula
    if framework == "equinox":  # abstract modules (nothing drawn) give the same table
        import equinox as eqx

        abstract = mup(*(eqx.filter_eval_shape(models.make, w, jax.random.key(0)) for w in (BASE, WIDTH)),
                       init_convention=convention)
        assert abstract.table() == p.table()
    raw = _twin(WIDTH).init(jax.random.key(1))
    got = models.to_pytree(p.rescale(models.load_pytree(models.make(WIDTH), raw)))
    want = _pytree_mup(init_convention=convention).rescale(raw)
    jax.tree.map(np.testing.assert_array_equal, got, want)  # identical: the same float multiplications


def test_equinox_training_takes_the_pytree_steps():
    eqx = pytest.importorskip("equinox")
    import models_equinox as me

    p = mup(me.make(BASE), me.make(WIDTH))
    raw, want = _reference_run()
    model = p.rescale(me.load_pytree(me.make(WIDTH, 5), raw))
    tx = p.optimizer(optax.adam(LR))
    state = tx.init(eqx.filter(model, eqx.is_array))
    x, y = _data()

    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(lambda m: _loss(m(x), y))(model)
        updates, state = tx.update(grads, state, eqx.filter(model, eqx.is_array))  # None leaves for non-arrays
        return eqx.apply_updates(model, updates), state

    for _ in range(STEPS):
        model, state = step(model, state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), me.to_pytree(model), want)  # spec: 1e-6


def test_nnx_optimizer_accepts_the_mup_transform_and_takes_the_pytree_steps():
    nnx = pytest.importorskip("flax.nnx")
    import models_nnx as mn

    p = mup(mn.make(BASE), mn.make(WIDTH))
    raw, want = _reference_run()
    model = p.rescale(mn.load_pytree(mn.make(WIDTH, 5), raw))  # in place, returned
    optimizer = nnx.Optimizer(model, p.optimizer(optax.adam(LR)), wrt=nnx.Param)
    x, y = _data()

    @nnx.jit
    def step(model, optimizer):
        optimizer.update(model, nnx.grad(lambda m: _loss(m(x), y))(model))

    for _ in range(STEPS):
        step(model, optimizer)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), mn.to_pytree(model), want)  # spec: 1e-6


def test_init_wrapper_keeps_the_signature_and_train_accepts_it():
    net = _twin(WIDTH)
    p = _pytree_mup()

    def init(key, hp):  # a user's init that reads a hyperparameter
        return jax.tree.map(lambda a: a * hp["scale"], net.init(key))

    wrapped = p.init(init)
    assert inspect.signature(wrapped) == inspect.signature(init) and wrapped.__wrapped__ is init
    run = train(init=wrapped, loss=lambda params, b: _loss(net.apply(params, b[0]), b[1]), data=_data(),
                optimizer=optax.adam(LR), lr_multipliers=p.lr_multipliers(), steps=[1], grid={"scale": [1.0]})
    assert np.isfinite(run["loss"]).all()
    models = _models("equinox")[0]
    p_eqx = mup(models.make(BASE), models.make(WIDTH))
    made = p_eqx.init(models.make)(WIDTH, 2)  # a function returning a module gets a module back
    assert inspect.signature(p_eqx.init(models.make)) == inspect.signature(models.make)
    np.testing.assert_array_equal(made.layers[2].weight, models.make(WIDTH, 2).layers[2].weight * 0.5)  # m^{-1/2}


# A small attention block, written as a user would in flax nnx: token embedding (nnx.Embed, std 1/sqrt(d)),
# query/key/value/output projections, a readout.
def _attention_block(d: int, vocab: int = 32, seed: int = 0):
    nnx = pytest.importorskip("flax.nnx")

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(vocab, d, rngs=rngs)
            self.q_proj, self.k_proj = nnx.Linear(d, d, rngs=rngs), nnx.Linear(d, d, rngs=rngs)
            self.v_proj, self.o_proj = nnx.Linear(d, d, rngs=rngs), nnx.Linear(d, d, rngs=rngs)
            self.lm_head = nnx.Linear(d, vocab, rngs=rngs)

    return Block(nnx.Rngs(seed))


def test_roles_are_inferred_and_user_tags_override():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = mup(_attention_block(16), _attention_block(64), zero_query=True)
    rows = {r["path"]: r for r in p.table()}
    roles = {path: (r["role"], r["kind"]) for path, r in rows.items() if r["role"]}
    assert roles == {
        "['embed']['embedding']": ("embedding", "input"), "['q_proj']['kernel']": ("query", "hidden"),
        "['k_proj']['kernel']": ("key", "hidden"), "['v_proj']['kernel']": ("value", "hidden"),
        "['o_proj']['kernel']": ("attn_output", "hidden"), "['lm_head']['kernel']": ("readout", "output"),
    }
    assert rows["['q_proj']['kernel']"]["init_multiplier"] == 0.0  # zero_query
    assert rows["['k_proj']['kernel']"]["init_multiplier"] == 1.0 and rows["['q_proj']['bias']"]["role"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tied = mup(_attention_block(16), _attention_block(64), roles={"['embed']['embedding']": "tied_embedding",
                                                                        "['q_proj']['kernel']": "key"})
    rows = {r["path"]: r for r in tied.table()}
    assert rows["['embed']['embedding']"]["role"] == "tied_embedding" and rows["['q_proj']['kernel']"]["role"] == "key"
    assert tied.tied_readout_multiplier == 0.25  # base width / width, mup's MuSharedReadout
    with pytest.raises(ValueError, match="roles: no leaf is tagged"):
        p.tied_readout_multiplier  # noqa: B018
    with pytest.raises(ValueError, match="roles: .* not allowed"):
        mup(_attention_block(16), _attention_block(64), roles={"['q_proj']['kernel']": "queries"})


def test_nnx_embed_gauge_is_named_in_a_warning_and_base_convention_fixes_it():
    base, target = _attention_block(16), _attention_block(64)
    with pytest.warns(UserWarning, match=r"\['embed'\]\['embedding'\] \(input\).*m\^-0\.5") as record:
        mup(base, target)
    assert "['q_proj']['kernel']" not in str(record[0].message)  # nnx.Linear's LeCun init is fan-in: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = mup(base, target, init_convention="base")
    rescaled = p.rescale(target)
    rms = lambda a: float(jnp.sqrt(jnp.mean(jnp.asarray(a) ** 2)))  # noqa: E731
    # the embedding is vector-like: after rescaling its RMS is the base model's (to float rounding)
    assert rms(rescaled.embed.embedding[...]) == pytest.approx(rms(base.embed.embedding[...]), rel=1e-5)
    from flax import nnx

    shapes = lambda m: jax.eval_shape(lambda: nnx.as_pure(nnx.state(m, nnx.Param)))  # noqa: E731
    with pytest.raises(ValueError, match="init_convention: 'base' measures"):
        mup(shapes(base), shapes(target), init_convention="base")


@pytest.mark.parametrize("call, message", [
    (lambda m: mup(m.make(BASE), m.make(WIDTH), weight_layout="nchw"), "weight_layout: must be"),
    (lambda m: mup(m.make(BASE), m.make(WIDTH), init_convention="he"), "init_convention: must be"),
    (lambda m: mup(m.make(BASE), m.make(WIDTH), roles={".nope": "query"}), "roles: no leaf at"),
    (lambda m: mup(m.make(BASE), _twin(WIDTH).init(jax.random.key(0))), "models of different kinds"),
    (lambda m: mup({}, {}), "no trainable arrays found in the pytree model"),
])
def test_bad_input_gives_one_clear_error(call, message):
    models = _models("equinox")[0]
    with pytest.raises(ValueError, match=message):
        call(models)
