"""learnmech.transfer on a model-building function: plain pytrees, equinox and flax nnx models, muP by name.

Every comparison is between two independent routes to the same training run: the general path
(``build(width, key)`` with ``parameterization="mup-adam"``) against the init/apply path with the muP
multipliers passed by hand (:func:`learnmech.nets.mup`, TP-V, arXiv:2203.03466), and the shared
equinox and flax nnx test MLPs (tests/models_equinox.py, tests/models_nnx.py) against their plain-pytree
twin holding the same numbers. Each transfer trains only its second width (one compile): at the base width
every muP multiplier is 1.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech import transfer_budget
from learnmech.model_transfer import model_family
from learnmech.nets import Student, mup
from learnmech.width_transfer import log2_grid, transfer

transfer_module = importlib.import_module("learnmech.width_transfer")

D_IN, D_OUT, N = 6, 3, 16  # the shared test MLP's sizes (tests/models_equinox.py, tests/models_nnx.py)
WIDTHS = (4, 8)
LRS = log2_grid(-4, -2)  # (3,) a parabola needs 3; which is best does not matter for these comparisons
STEPS, SEEDS = 4, 2
BASE_KNOWN = {WIDTHS[0]: np.ones((LRS.size, SEEDS))}  # a placeholder table: the base width is not trained


def twin_init(key, width):
    """The plain twin (the shared MLP's layout): ``[{"w": (in, out), "b": (out,)}] * 3``, fan-in normal init.

    Every array is a slice of one normal draw: one threefry draw compiles several times faster than six.
    """
    sizes = (D_IN, width, width, D_OUT)
    shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((a, b), (b,))]  # w, b of each layer
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    z = jax.random.normal(key, (int(cuts[-1]),))  # (n_params,)
    arrays = [z[lo:hi].reshape(s) * (s[0] ** -0.5 if len(s) == 2 else 0.1) for s, lo, hi in zip(shapes, cuts, cuts[1:])]
    return [{"w": w, "b": b} for w, b in zip(arrays[::2], arrays[1::2])]  # w: (fan_in, fan_out), b: (fan_out,)


def twin_apply(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]  # (N, D_OUT)


def twin_build(width, key):
    return twin_init(key, width)


def _data():
    x = jax.random.normal(jax.random.key(5), (N, D_IN))
    return x, jnp.sin(x[:, :D_OUT])  # (N, D_IN), (N, D_OUT)


def _run(**kwargs):
    return transfer(widths=WIDTHS, learning_rates=LRS, data=_data(), steps=STEPS, seeds=SEEDS, **kwargs)


@pytest.fixture(scope="module")
def plain_twin():
    """The plain twin's losses by the general path: ``build`` and ``parameterization="mup-adam"``."""
    return _run(build=twin_build, apply=twin_apply, parameterization="mup-adam", known=BASE_KNOWN).losses


def test_the_general_path_with_mup_by_name_equals_the_init_apply_path_with_multipliers_by_hand(plain_twin):
    shapes = {w: jax.eval_shape(lambda k, w=w: twin_init(k, w), jax.random.key(0)) for w in WIDTHS}
    by_hand = {w: mup(shapes[WIDTHS[0]], shapes[w], optimizer="adam") for w in WIDTHS}
    hand = _run(init=lambda key, w: by_hand[w].init(lambda k: twin_init(k, w))(key),
                apply=lambda params, x, width: twin_apply(params, x),
                lr_multipliers=lambda w: by_hand[w].lr_multipliers(), known=BASE_KNOWN)
    np.testing.assert_array_equal(plain_twin, hand.losses)  # the same program on the same numbers: bit for bit
    assert np.isfinite(plain_twin).all()
    # and muP changed something at width 8 = 2 x base: hidden and readout learning rates halve (TP-V Table 3,
    # Adam), the readout's init std gets 1/sqrt(2) on top of the fan-in 1/sqrt(8)
    assert [layer["w"] for layer in by_hand[8].lr_multipliers()] == [1.0, 0.5, 0.5]
    assert by_hand[8].init_multipliers()[2]["w"] == pytest.approx(0.5**0.5, rel=1e-12)


def test_the_cli_mup_student_is_the_general_path_on_the_sp_student():
    """``learnmech transfer`` trains the claim's muP student (init and learning-rate multipliers written from the
    abc table by learnmech.nets.MLP); ``parameterization="mup-adam"`` on the SP student makes the same model."""
    sp, claim = Student("sp", 8, 4, 2), Student("mup", 8, 4, 2)
    at, _ = model_family(build=lambda width, key: sp.init(key, width), apply=lambda p, x: x, base_width=8,
                         parameterization="mup-adam", example=jnp.zeros((1, 4)))
    general, key = at(32), jax.random.key(11)  # m = 32 / 8 = 4
    assert general.lr_multipliers == claim.lr_multipliers(32) == [{"w": 1.0}, {"w": 0.25}, {"w": 0.25}]
    # readout std: SP's 1/sqrt(n) x muP's multiplier 1/sqrt(m) against the claim's own std: float32, the two
    # products one rounding apart at most (ulp 6e-8)
    for mine, theirs in zip(general.init(key), claim.init(key, 32)):
        np.testing.assert_allclose(mine["w"], theirs["w"], rtol=2e-7, atol=0)
    # muP acted: the readout is SP's draw times 1/sqrt(m) = 1/2, the other layers are SP's
    np.testing.assert_allclose(general.init(key)[2]["w"], 0.5 * sp.init(key, 32)[2]["w"], rtol=2e-7, atol=0)


def test_an_equinox_mlp_gives_the_losses_of_its_plain_twin(plain_twin):
    """equinox: weights ``(out, in)`` (fan-out first, read by the adapter), called on one example (vmapped by
    transfer's default apply). The model is built by equinox and then loaded with the twin's numbers."""
    pytest.importorskip("equinox")
    import models_equinox as me

    assert (me.D_IN, me.D_OUT) == (D_IN, D_OUT)
    losses = _run(build=lambda width, key: me.load_pytree(me.make(width, key), twin_init(key, width)),
                  parameterization="mup-adam", known=BASE_KNOWN).losses
    # float64 (tests/conftest.py); the two differ only in the order of a few sums (transposed weights, one
    # example at a time): within 1e-10 relative after 4 Adam steps
    np.testing.assert_allclose(losses, plain_twin, rtol=1e-10, atol=0)


def test_a_flax_nnx_mlp_gives_the_losses_of_its_plain_twin(plain_twin):
    """flax nnx: kernels ``(in, out)``, the Module called on the whole batch (transfer's default apply)."""
    nnx = pytest.importorskip("flax.nnx")
    import models_nnx as mn

    assert (mn.D_IN, mn.D_OUT) == (D_IN, D_OUT)
    losses = _run(build=lambda width, key: mn.load_pytree(mn.MLP(width, rngs=nnx.Rngs(key)), twin_init(key, width)),
                  parameterization="mup-adam", known=BASE_KNOWN).losses
    np.testing.assert_allclose(losses, plain_twin, rtol=1e-10, atol=0)  # float64, as for equinox above


def _must_not_train(*args, **kwargs):
    raise AssertionError("trained although the request was refused")


@pytest.mark.parametrize("kwargs, line", [
    ({"init": twin_init, "apply": twin_apply, "build": twin_build},
     "init, build: give either init(key, width) with apply(params, x, width), or build(width, key) -> model, "
     "not both"),
    ({}, "init, build: give either init(key, width) with apply(params, x, width), or build(width, key) -> model, "
         "not both"),
    ({"init": twin_init}, "init, apply: both must be functions, init(key, width) -> params and "
                          "apply(params, x, width) -> outputs"),
    ({"build": 8}, "build: must be a function build(width, key) -> model, got int"),
    ({"build": twin_build}, "apply: build(width, key) returned a list, which is not callable; pass apply(model, x) "
                            "-> outputs"),
    ({"build": twin_build, "apply": twin_apply, "parameterization": "mup"},
     "parameterization: must be one of ['mup-adam', 'mup-sgd', 'sp'] or None, got 'mup'"),
    ({"build": twin_build, "apply": twin_apply, "parameterization": "ntk"},
     "parameterization: must be one of ['mup-adam', 'mup-sgd', 'sp'] or None, got 'ntk'"),
    ({"build": twin_build, "apply": twin_apply, "parameterization": "mup-adam", "lr_multipliers": lambda w: None},
     "lr_multipliers: give either lr_multipliers or parameterization (which computes them), not both"),
    ({"build": twin_build, "apply": twin_apply, "mup_options": {"zero_readout": True}},
     "mup_options: only used with parameterization='mup-adam', 'mup-sgd' or 'sp'"),
    ({"build": twin_build, "apply": twin_apply, "parameterization": "sp", "mup_options": {"optimizer": "sgd"}},
     "mup_options: ['optimizer'] are set by transfer's parameterization argument"),
    ({"build": twin_build, "apply": twin_apply, "parameterization": "sp", "mup_options": {"zero_redout": True}},
     "mup_options: "),
    ({"build": lambda width, key: object(), "apply": twin_apply},
     "build: returned a model learnmech cannot split into parameters (object)"),
])
def test_bad_input_is_one_clear_line_before_any_training(monkeypatch, kwargs, line):
    monkeypatch.setattr(transfer_module, "train", _must_not_train)
    with pytest.raises(ValueError) as info:
        _run(**kwargs)
    message = str(info.value)
    assert message.startswith(line) and "\n" not in message, message


def test_a_built_model_too_large_for_memory_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setattr(transfer_module, "train", _must_not_train)
    monkeypatch.setattr(transfer_budget, "machine_memory_bytes", lambda: 2**20)  # 1 MiB: 768 KiB may be planned

    def build(width, key):
        if not isinstance(key, jax.core.Tracer):
            raise AssertionError("built concretely")  # only abstract traces before training
        return twin_init(key, width)

    # width 1024: (6 + 1024 + 3) x 1024 weights + 2 x 1024 + 3 biases = 1,059,843 float64 numbers, 8.1 MiB per
    # member; 10 copies (PARAMETER_COPIES) x 6 members (3 learning rates x 2 seeds): 508,724,640 bytes = 0.474 GiB
    with pytest.raises(ValueError, match=r"^widths: width 1024 needs about 0\.474 GiB for 6 members; "):
        transfer(build=build, apply=twin_apply, widths=(4, 1024), learning_rates=LRS, data=_data(), steps=STEPS,
                 seeds=SEEDS, parameterization="mup-adam")
