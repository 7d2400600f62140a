"""learnmech.transfer: a learning-rate sweep across widths of a model written by the user.

The model here is a plain-pytree two-layer tanh network written in this file (not one of
learnmech's), with a muP-like readout: its output is divided by the width.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech import transfer_budget
from learnmech.width_transfer import Transfer, log2_grid, transfer

transfer_module = importlib.import_module("learnmech.width_transfer")

D_IN, N = 3, 32
WIDTHS = (4, 16)
LRS = log2_grid(-6, 2)  # (9,) 2^-6 .. 4: Adam's optimum for this net after 12 steps lies inside (2^-1.5 .. 2^-1)
STEPS, SEEDS = 12, 2


def init(key, width):
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (D_IN, width), jnp.float32) / D_IN**0.5  # (D_IN, width)
    return {"w1": w1, "w2": jax.random.normal(k2, (width, 1), jnp.float32)}  # w2: (width, 1)


def apply(params, x, width):
    return jnp.tanh(x @ params["w1"]) @ params["w2"] / width  # (N, 1)


def _data():
    x = jax.random.normal(jax.random.key(7), (N, D_IN), jnp.float32)
    return x, jnp.sin(x.sum(axis=1, keepdims=True))  # (N, D_IN), (N, 1)


@pytest.fixture(scope="module")
def result():
    calls = []
    out = transfer(init, apply, WIDTHS, LRS, data=_data(), steps=STEPS, seeds=SEEDS,
                   progress=lambda done, total: calls.append((done, total)))
    return out, calls


def test_the_optimum_is_the_argmin_of_the_losses_table(result):
    res, calls = result
    assert isinstance(res, Transfer)
    assert res.losses.shape == (len(WIDTHS), LRS.size, SEEDS)
    np.testing.assert_array_equal(res.learning_rates, LRS)
    assert calls[-1] == (len(WIDTHS) * STEPS, len(WIDTHS) * STEPS)  # every width trained, steps counted across them
    # Independently with numpy: the seed mean, a diverged (NaN) seed making its learning rate worst.
    finite = np.all(np.isfinite(res.losses), axis=-1)  # (W, K)
    means = np.where(finite, res.losses.mean(axis=-1), np.inf)
    best = np.argmin(means, axis=1)  # (W,)
    np.testing.assert_array_equal(res.best_learning_rate, LRS[best])
    np.testing.assert_array_equal(res.at_edge, (best == 0) | (best == LRS.size - 1))
    # eta* is the parabola vertex around that grid minimum: within half a grid step (one octave here) of it,
    # and the grid point itself at an edge.
    step = np.log2(LRS[1] / LRS[0])
    assert np.all(np.abs(np.log2(res.eta_star) - np.log2(LRS[best])) <= step / 2 + 1e-12)
    np.testing.assert_array_equal(res.eta_star[res.at_edge], LRS[best][res.at_edge])
    # the sweep resolved an interior optimum at each width, and the line goes through both
    assert not res.at_edge.any() and np.isfinite(res.slope)
    np.testing.assert_allclose(res.intercept + res.slope * np.log2(WIDTHS), np.log2(res.eta_star), atol=1e-9)
    assert res.predicted(64) == pytest.approx(2.0 ** (res.intercept + res.slope * 6), rel=1e-12)


def test_known_widths_are_used_as_given_and_not_trained(result, monkeypatch):
    res, _ = result
    monkeypatch.setattr(transfer_module, "train", _must_not_train)
    again = transfer(init, apply, WIDTHS, LRS, data=_data(), steps=STEPS, seeds=SEEDS,
                     known={w: res.losses[i] for i, w in enumerate(WIDTHS)})
    np.testing.assert_array_equal(again.losses, res.losses)
    np.testing.assert_array_equal(again.eta_star, res.eta_star)


def _must_not_train(*args, **kwargs):
    raise AssertionError("trained although the request was refused or already measured")


@pytest.mark.parametrize("changes, needle", [
    ({"widths": (16, 4)}, "widths: must be at least 2 positive, strictly increasing widths"),
    ({"widths": (8, 8)}, "widths: must be at least 2 positive, strictly increasing widths"),
    ({"widths": (16,)}, "widths: must be at least 2 positive, strictly increasing widths"),
    ({"widths": (0, 16)}, "widths: must be at least 2 positive"),
    ({"widths": tuple(range(1, 40))}, "widths: at most 32 widths (MAX_WIDTHS)"),
    ({"learning_rates": (0.1, 0.2)}, "learning_rates: must be at least 3 positive, strictly increasing"),
    ({"learning_rates": (0.1, 0.01, 0.2)}, "learning_rates: must be at least 3 positive, strictly increasing"),
    ({"learning_rates": (-0.1, 0.01, 0.2)}, "learning_rates: must be at least 3 positive"),
    ({"learning_rates": (0.1, 0.2, float("inf"))}, "learning_rates: must be finite"),
    ({"seeds": 0}, "seeds: must be an integer from 1 to 64 (MAX_SEEDS)"),
    ({"steps": 0}, "steps: must be an integer from 1 to 100000 (MAX_STEPS)"),
    ({"known": {4: np.zeros((2, 2))}}, "known: width 4 must be one of [4, 16] with losses of shape (9, 2)"),
    ({"known": {8: np.zeros((9, 2))}}, "known: width 8 must be one of [4, 16]"),
])
def test_bad_input_is_refused_before_any_training(monkeypatch, changes, needle):
    monkeypatch.setattr(transfer_module, "train", _must_not_train)
    kwargs = {"widths": WIDTHS, "learning_rates": LRS, "data": _data(), "steps": STEPS, "seeds": SEEDS, **changes}
    with pytest.raises(ValueError) as info:
        transfer(init, apply, **kwargs)
    assert needle in str(info.value)


def test_a_request_that_does_not_fit_in_memory_is_refused_before_training(monkeypatch):
    monkeypatch.setattr(transfer_module, "train", _must_not_train)
    monkeypatch.setattr(transfer_budget, "machine_memory_bytes", lambda: 2**20)  # 1 MiB: 768 KiB may be planned
    # width 4096: 3 x 4096 + 4096 = 16,384 float32 weights, 64 KiB per member, 10 copies (PARAMETER_COPIES),
    # 9 learning rates x 2 seeds = 18 members: 11.25 MiB
    with pytest.raises(ValueError, match=r"^widths: width 4096 needs about 0\.011 GiB for 18 members; this machine "
                                         r"has 0\.0 GiB and a run may plan to use 75% of it \(MEMORY_SHARE\)$"):
        transfer(init, apply, (4, 4096), LRS, data=_data(), steps=STEPS, seeds=SEEDS)
    # a caller's own estimate (width, members) -> bytes replaces the weights-only default
    with pytest.raises(ValueError, match="width 4096 needs about 1 GiB for 18 members"):
        transfer(init, apply, (4, 4096), LRS, data=_data(), steps=STEPS, seeds=SEEDS, memory=lambda w, m: 2**30)


def test_transfer_fit_refuses_a_table_of_the_wrong_shape():
    with pytest.raises(ValueError, match="losses: must be"):
        Transfer.from_losses(WIDTHS, LRS, np.ones((2, 3, 1)))


def test_parameterization_on_the_init_apply_path_gives_mups_multipliers():
    """``parameterization="mup-adam"`` on init/apply: learnmech.nets.mup's multipliers between the shapes at the
    first width and at each width (TP-V Table 3, Adam), nothing trained; at the base width every one is 1."""
    from learnmech.model_transfer import model_family
    from learnmech.nets import mup

    at, _ = model_family(init=init, apply=apply, base_width=4, parameterization="mup-adam")
    shapes = [jax.eval_shape(lambda k, w=w: init(k, w), jax.random.key(0)) for w in (4, 16)]
    assert at(4).lr_multipliers == {"w1": 1.0, "w2": 1.0}
    assert at(16).lr_multipliers == mup(*shapes).lr_multipliers() == {"w1": 1.0, "w2": 0.25}  # readout: 1/m
    key = jax.random.key(3)
    ours, theirs = at(16).init(key), mup(*shapes).init(lambda k: init(k, 16))(key)
    np.testing.assert_array_equal(ours["w2"], theirs["w2"])  # the same product: bit for bit
    np.testing.assert_allclose(ours["w2"], 0.5 * init(key, 16)["w2"], rtol=1e-15)  # readout std x 1/sqrt(m), m = 4
    np.testing.assert_array_equal(ours["w1"], init(key, 16)["w1"])  # input layer unchanged
