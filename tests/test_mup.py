"""The muP API on models that are not learnmech's: classification, multipliers, idempotence, errors,
and the coordinate check of a model written here."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.nets import MLP, classify_leaf, mup

# A user's model, written here: a dict pytree, (in, out) kernels with LeCun-normal init (std 1/sqrt(fan_in)),
# a LayerNorm-like gain, a scalar temperature, zero biases.


def make_model(width: int, d_in: int = 6, d_out: int = 3):
    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        return {
            "embed": {"kernel": jax.random.normal(k1, (d_in, width)) / np.sqrt(d_in), "bias": jnp.zeros(width)},
            "block": {"kernel": jax.random.normal(k2, (width, width)) / np.sqrt(width), "gain": jnp.ones(width)},
            "head": {"kernel": jax.random.normal(k3, (width, d_out)) / np.sqrt(width), "bias": jnp.zeros(d_out)},
            "temperature": jnp.ones(()),
        }

    def layers(params, x):
        h1 = jnp.tanh(x @ params["embed"]["kernel"] + params["embed"]["bias"])
        h2 = jnp.tanh((h1 @ params["block"]["kernel"]) * params["block"]["gain"])
        out = (h2 @ params["head"]["kernel"] + params["head"]["bias"]) * params["temperature"]
        return [h1, h2, out]

    return init, layers


def _shapes(width):
    return jax.eval_shape(make_model(width)[0], jax.random.key(0))


def test_leaves_are_classified_by_which_dimensions_grow():
    p = mup(_shapes(32), _shapes(256))
    kinds = {row["path"]: (row["kind"], row["width_multiplier"]) for row in p.table()}
    assert kinds == {
        "['block']['gain']": ("vector", 8.0), "['block']['kernel']": ("hidden", 8.0),
        "['embed']['bias']": ("vector", 8.0), "['embed']['kernel']": ("input", 8.0),
        "['head']['bias']": ("scalar", 1.0), "['head']['kernel']": ("output", 8.0),
        "['temperature']": ("scalar", 1.0),
    }
    # layouts: (out, in) as in equinox/PyTorch, and a conv kernel (h, w, in, out) whose channels scale
    assert classify_leaf((64, 8), (256, 8), weight_layout="out_in") == ("input", 4.0)
    assert classify_leaf((10, 64), (10, 256), weight_layout="out_in") == ("output", 4.0)
    assert classify_leaf((3, 3, 16, 16), (3, 3, 64, 64)) == ("hidden", 4.0)
    assert classify_leaf((3, 3, 3, 16), (3, 3, 3, 64)) == ("input", 4.0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_multipliers_match_learnmechs_mup_mlp(optimizer):
    # An independent route to the same numbers: learnmech's MLP builds muP from its own per-layer table.
    base, width = 16, 128
    net = MLP((6, width, width, 3), "tanh", f"mup-{optimizer}", base_width=base)
    sp = MLP((6, width, width, 3), "tanh", "sp")
    user = lambda w: jax.eval_shape(MLP((6, w, w, 3), "tanh", "sp").init, jax.random.key(0))  # noqa: E731
    p = mup(user(base), user(width), optimizer=optimizer)
    init_mults = p.init_multipliers()
    for layer, (mu, s) in enumerate(zip(net.scalings, sp.scalings)):
        np.testing.assert_allclose(init_mults[layer]["w"] * s.init_std, mu.init_std, rtol=1e-14)
    lr = p.lr_multipliers()
    for got, want in zip(lr, net.lr_multipliers()):
        np.testing.assert_allclose([got["w"], got["b"]], [want["w"], want["b"]], rtol=1e-14)


def test_wrappers_are_idempotent_pure_and_exact_at_the_base():
    init, _ = make_model(128)
    p = mup(_shapes(16), _shapes(128))
    wrapped = p.init(init)
    assert p.init(wrapped) is wrapped
    assert mup(_shapes(16), _shapes(128)).init(wrapped) is wrapped  # an equal MuP counts as the same
    tx = p.optimizer(optax.adam(1e-3))
    assert p.optimizer(tx) is tx
    other = mup(_shapes(32), _shapes(128))
    with pytest.raises(ValueError, match="other base shapes"):
        other.init(wrapped)
    with pytest.raises(ValueError, match="other base shapes"):
        other.optimizer(tx)
    key = jax.random.key(5)
    raw, scaled = init(key), wrapped(key)
    np.testing.assert_array_equal(scaled["head"]["kernel"], raw["head"]["kernel"] / np.sqrt(8.0))
    np.testing.assert_array_equal(scaled["block"]["kernel"], raw["block"]["kernel"])
    identity = mup(_shapes(64), _shapes(64))
    assert all(r["init_multiplier"] == 1.0 and r["lr_multiplier"] == 1.0 for r in identity.table())
    assert mup(_shapes(16), _shapes(128), zero_readout=True).init_multipliers()["head"]["kernel"] == 0.0
    fixed = mup(_shapes(16), _shapes(128), init_convention="fixed").init_multipliers()
    assert fixed["block"]["kernel"] == pytest.approx(8**-0.5) and fixed["head"]["kernel"] == pytest.approx(1 / 8)


def test_optimizer_applies_per_leaf_learning_rates():
    p = mup(_shapes(16), _shapes(64), optimizer="sgd")
    params = make_model(64)[0](jax.random.key(1))
    grads = jax.tree.map(jnp.ones_like, params)
    tx = p.optimizer(optax.sgd(0.1))
    updates, _ = tx.update(grads, tx.init(params), params)
    want = {"embed": 0.4, "block": 0.1, "head": 0.1 / 4}  # TP-V Table 3, SGD: eta fan_out, eta, eta / fan_in
    np.testing.assert_allclose(updates["embed"]["kernel"], -want["embed"], rtol=1e-6)
    np.testing.assert_allclose(updates["embed"]["bias"], -want["embed"], rtol=1e-6)
    np.testing.assert_allclose(updates["block"]["kernel"], -want["block"], rtol=1e-6)
    np.testing.assert_allclose(updates["head"]["kernel"], -want["head"], rtol=1e-6)
    np.testing.assert_allclose(updates["head"]["bias"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["temperature"], -0.1, rtol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mup(_shapes(16), _shapes(64), kinds={"['block']['kernel']": "vector"}), "tagged 'vector' but 2 dim"),
        (lambda: mup(_shapes(16), _shapes(64), kinds={"['temperature']": "hidden"}), "tagged 'hidden'"),
        (lambda: mup(_shapes(16), _shapes(64), kinds={"['nope']": "vector"}), "kinds: no leaf at"),
        (lambda: mup({"w": jnp.zeros((4, 8))}, {"w": jnp.zeros((8, 4))}), "opposite directions"),
        (lambda: mup({"w": jnp.zeros((4, 8))}, {"w": jnp.zeros((4, 8, 1))}), "different ranks"),
        (lambda: mup({"w": jnp.zeros(3)}, {"v": jnp.zeros(3)}), "differ in structure"),
        (lambda: mup(_shapes(16), _shapes(64), parameterization="ntk"), "cannot be applied from outside"),
        (lambda: mup(_shapes(16), _shapes(64), optimizer="lion"), "optimizer: must be"),
        (lambda: classify_leaf((4, 8), (4, 16), weight_layout="nchw"), "weight_layout"),
    ],
)
def test_bad_input_gives_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tags_override_inference_when_consistent():
    p = mup(_shapes(16), _shapes(64), kinds=lambda path: "output" if path == "['block']['gain']" else None)
    row = next(r for r in p.table() if r["path"] == "['block']['gain']")
    assert (row["kind"], row["width_multiplier"], row["lr_multiplier"]) == ("output", 4.0, 0.25)


# The coordinate check of the model above (CLAIMS.md hparams.coord-check bands): under muP every layer's
# update RMS changes by a factor within [0.75, 1.33] from width 64 to 512 (8x); under SP (the same model,
# the same Adam learning rate, no multipliers) the output update grows by more than 2x. The learning rate
# is small enough that the widest SP network's first steps (output change ~ width x lr) stay below the
# targets' O(1) scale; at lr = 0.01 the SP output overshoots and its change saturates (ratio 1.2, measured).
COORD_WIDTHS = (64, 512)
COORD_LR = 1e-3


def _coord_data():
    kx, ky = jax.random.split(jax.random.key(7))
    x = jax.random.normal(kx, (64, 6))
    y = jnp.sin(x[:, :3]) + 0.1 * jax.random.normal(ky, (64, 3))
    return (x, y), x[:32]


def _build(parameterization: str | None, twice: bool = False):
    base = _shapes(COORD_WIDTHS[0])

    def build(width: int):
        from learnmech.observe.coords import CoordModel

        init, layers = make_model(width)
        tx = optax.adam(COORD_LR)
        if parameterization is not None:
            p = mup(base, _shapes(width), optimizer="adam")
            init, tx = p.init(init), p.optimizer(tx)
            if twice:
                p2 = mup(base, _shapes(width), optimizer="adam")
                init, tx = p2.init(init), p2.optimizer(tx)
        loss = lambda params, batch: 0.5 * jnp.mean((layers(params, batch[0])[-1] - batch[1]) ** 2)  # noqa: E731
        return CoordModel(init, layers, loss, tx)

    return build


def test_user_model_under_mup_passes_the_coordinate_check():
    from learnmech.observe.coords import coord_check

    data, probe = _coord_data()
    run = lambda build: coord_check(build, COORD_WIDTHS, data=data, probe=probe, steps=3, seeds=(0, 1))  # noqa: E731
    mu, sp, twice = run(_build("mup")), run(_build(None)), run(_build("mup", twice=True))
    assert np.all((mu.ratio >= 0.75) & (mu.ratio <= 1.33)), mu.ratio
    assert sp.ratio[-1] > 2.0, sp.ratio
    np.testing.assert_array_equal(twice.change, mu.change)  # applying muP twice changes nothing
    np.testing.assert_array_equal(twice.rms, mu.rms)


def test_table_names_roles_and_the_optimizer_matches_leaves_by_path():
    p = mup(_shapes(16), _shapes(64), optimizer="sgd")
    roles = {row["path"]: row["role"] for row in p.table()}
    # inferred from the path where it agrees with the shapes; biases and unnamed weights have none
    assert roles["['embed']['kernel']"] == "embedding" and roles["['head']['kernel']"] == "readout"
    assert roles["['block']['kernel']"] is None and roles["['embed']['bias']"] is None
    params = make_model(64)[0](jax.random.key(1))
    wrapped = p.init(make_model(64)[0])(jax.random.key(1))
    np.testing.assert_array_equal(p.rescale(params)["head"]["kernel"], wrapped["head"]["kernel"])
    tx = p.optimizer(optax.sgd(0.1))
    subset = {"head": {"kernel": jnp.ones((64, 3))}, "embed": {"kernel": jnp.ones((6, 64))}}  # a wrt-filtered subset
    updates, _ = tx.update(subset, tx.init(subset))
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1 / 4, rtol=1e-12)  # TP-V Table 3, SGD: eta / fan_in
    np.testing.assert_allclose(updates["embed"]["kernel"], -0.1 * 4, rtol=1e-12)  # input: eta fan_out
    flat = jax.tree.leaves(params)  # another container of the same arrays: matched by order
    updates, _ = tx.update([jnp.ones_like(x) for x in flat], tx.init(flat))
    np.testing.assert_allclose([float(u.ravel()[0]) for u in updates], [-0.1 * r["lr_multiplier"] for r in p.table()])
    with pytest.raises(ValueError, match="updates: 1 leaves, the muP table has 7"):
        tx.update({"nope": jnp.ones(3)}, tx.init({}))
