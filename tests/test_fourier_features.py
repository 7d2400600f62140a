"""universal.fourier-features: the modular-addition theory and the claim's rules, without training.

The claim's tiny and quick presets run elsewhere (conformance and quick-atlas tests); nothing here trains.
"""

import numpy as np
import pydantic
import pytest

from learnmech.atlas.universal.fourier_features import CLAIM, RULES, Config, member_numbers
from learnmech.data.modular import train_test_split
from learnmech.theory.modular import (all_pairs, fourier_concentration, gromov_accuracy, gromov_forward,
                                      gromov_weights, grid_phases, modular_labels, one_hot_pairs, pair_power)

TOL = 1e-9  # float64 sums of O(p N) cosines: exact up to rounding


def _grid_network(p: int, m: int = 3):
    half = (p - 1) // 2
    return np.arange(1, half + 1).repeat(m * m), *grid_phases(m, half)


@pytest.mark.parametrize("p", [5, 7, 13])
def test_grid_network_outputs_the_closed_form_delta(p):
    s, alpha, beta = _grid_network(p, m=4)
    W1, W2 = gromov_weights(p, s, alpha, beta)
    pairs = all_pairs(p)
    out = gromov_forward(W1, W2, pairs)
    # independent forward pass: the one-hot matrix product, squared, read out (no gather)
    reference = (one_hot_pairs(pairs, p) @ W1) ** 2 @ W2
    np.testing.assert_allclose(out, reference, atol=TOL * p**2)
    # closed form of the module docstring: (M^2 / 4) (p [q = a + b] - 1), here M = 4
    delta = np.arange(p)[None, :] == modular_labels(pairs, p)[:, None]
    np.testing.assert_allclose(out, 4.0 * (p * delta - 1.0), atol=TOL * p**2)
    assert gromov_accuracy(p, s, alpha, beta) == 1.0


def test_gromov_random_phases_reach_100_percent_and_too_few_neurons_do_not():
    rng = np.random.default_rng(0)
    p = 23
    for n, expected in ((512, 1.0), (8, None)):
        s = 1 + np.arange(n) % ((p - 1) // 2)
        acc = gromov_accuracy(p, s, rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n))
        if expected is None:
            assert acc < 0.5  # 8 neurons cannot cover the 11 frequencies the delta needs
        else:
            assert acc == expected


def test_phase_grid_needs_three_phases():
    # M = 2 leaves the (2, 2) and (0, 2) phase factors uncancelled
    with pytest.raises(ValueError, match="m"):
        grid_phases(2)


def test_pair_power_matches_a_direct_dft_and_parseval():
    p, rng = 11, np.random.default_rng(1)
    u = rng.standard_normal((p, 3))
    a = np.arange(p)
    dft = np.array([[np.sum(u[:, j] * np.exp(-2j * np.pi * k * a / p)) for j in range(3)] for k in range(p)])
    direct = np.abs(dft) ** 2  # (p, 3)
    expected = np.concatenate([direct[:1], direct[1: p // 2 + 1] + direct[p - 1: p // 2: -1]])
    np.testing.assert_allclose(pair_power(u, p), expected, rtol=1e-12)
    np.testing.assert_allclose(pair_power(u, p).sum(0), p * np.sum(u**2, 0), rtol=1e-12)  # Parseval


def test_concentration_of_hand_built_cosines():
    p = 17
    r = np.arange(p)[:, None]
    pure = np.cos(2 * np.pi * 3 * r / p + 0.7) + 5.0  # one frequency plus a constant (k = 0 is excluded)
    two = np.cos(2 * np.pi * 2 * r / p) + np.sin(2 * np.pi * 6 * r / p)  # equal amplitudes
    W1 = np.concatenate([np.hstack([pure, two]), np.hstack([np.cos(2 * np.pi * 3 * r / p), two])])
    conc, k = fourier_concentration(W1, p)
    np.testing.assert_allclose(conc, [1.0, 0.5], atol=1e-12)
    assert k[0] == 3
    # a constant neuron has no frequency content: NaN, not a number that a check could pass
    assert np.isnan(fourier_concentration(np.ones((2 * p, 1)), p)[0][0])


def test_analytic_weights_are_perfectly_concentrated():
    p = 13
    W1, _ = gromov_weights(p, *_grid_network(p))
    conc, k = fourier_concentration(W1, p)
    np.testing.assert_allclose(conc, 1.0, atol=1e-12)
    np.testing.assert_array_equal(k, np.arange(1, 7).repeat(9))


def test_split_is_deterministic_disjoint_and_complete():
    a, b = train_test_split(13, 0.3, seed=4), train_test_split(13, 0.3, seed=4)
    np.testing.assert_array_equal(a.train, b.train)
    assert a.train.size == round(0.3 * 169) and a.train.size + a.test.size == 169
    assert np.intersect1d(a.train, a.test).size == 0
    np.testing.assert_array_equal(np.union1d(a.train, a.test), np.arange(169))
    assert not np.array_equal(a.train, train_test_split(13, 0.3, seed=5).train)
    with pytest.raises(ValueError, match="fraction"):
        train_test_split(13, 0.001, seed=0)


def test_labels_and_inputs():
    pairs = all_pairs(5)
    assert pairs.shape == (25, 2) and tuple(pairs[7]) == (1, 2)
    assert modular_labels(np.array([[3, 4], [0, 0]]), 5).tolist() == [2, 0]
    x = one_hot_pairs(np.array([[3, 4]]), 5)
    assert x.sum() == 2 and x[0, 3] == 1 and x[0, 9] == 1


@pytest.mark.parametrize("bad", [{"p": 33}, {"activations": ("relu", "relu")}, {"fraction": 0.95},
                                 {"activations": ()}, {"width": 2}])
def test_config_rejects(bad):
    with pytest.raises(pydantic.ValidationError):
        Config(**bad)


def test_presets_validate():
    for preset in ("tiny", "quick", "full"):
        CLAIM.make_config(preset)
    assert CLAIM.make_config("full").p == 97


def test_member_numbers_on_hand_made_curves():
    steps = np.array([0.0, 10, 20, 40, 80, 160])
    train_acc = np.array([0.0, 0.5, 1.0, 1.0, 1.0, 1.0])
    test_acc = np.array([0.0, 0.1, 0.2, 0.5, 0.96, 1.0])
    conc = np.array([0.95, 0.9, 0.5, 0.1, 0.99])
    size = np.array([1.0, 0.5, 0.2, 1e-3, 0.05])  # neuron 3 is below the 1% floor: not judged
    m = member_numbers(steps, train_acc, test_acc, conc, size)
    assert m["train_step"] == 20 and m["test_step"] == 80 and m["delay_ratio"] == 4.0
    assert m["judged_neurons"] == 4 and m["concentrated"] == 0.75
    never = member_numbers(steps, train_acc, np.zeros(6), conc, size)
    assert np.isnan(never["delay_ratio"]) and np.isnan(never["concentrated"])


def _summary(**kw):
    base = {"analytic_accuracy": 1.0, "min_concentrated": 0.95, "min_delay_ratio": 3.0, "members": 4.0,
            "members_fitted": 4.0, "members_generalised": 4.0, "diverged": 0.0}
    return {**base, **kw}


def test_rules_on_hand_made_numbers():
    assert CLAIM.decide(_summary()).status == "holds"
    assert CLAIM.decide(_summary(min_delay_ratio=1.5)).status == "fails"
    assert CLAIM.decide(_summary(min_concentrated=0.85)).metric.startswith("min over members of the share")
    assert CLAIM.decide(_summary(analytic_accuracy=0.99)).status == "fails"
    # a member that never generalised: inconclusive, unless the members judged already refute the claim
    assert CLAIM.decide(_summary(members_generalised=3.0)).status == "inconclusive"
    assert CLAIM.decide(_summary(members_generalised=3.0, min_delay_ratio=1.2)).status == "fails"
    nothing = _summary(members_generalised=0.0, min_delay_ratio=float("nan"), min_concentrated=float("nan"))
    assert CLAIM.decide(nothing).status == "inconclusive"
    assert RULES.decisive_failures


def test_diverged_members_of_each_activation_are_counted_apart():
    # quadratic seed 0 and ReLU seed 0 share a seed row but are two members: both diverged is 2, not 1
    from learnmech.atlas.contract import Curve
    from learnmech.atlas.keys import key
    from learnmech.atlas.universal.fourier_features import summarize

    cfg = CLAIM.make_config("tiny")
    steps = np.array([0.0, 10.0, 20.0])
    good, bad = np.array([0.5, 0.2, 0.1]), np.array([0.5, np.nan, np.nan])
    measurement = {}
    for act in cfg.activations:
        rows = np.stack([bad] + [good] * (cfg.seeds - 1))  # seed 0 diverged in every activation
        measurement[key("loss", act)] = Curve(steps, rows)
        measurement[key("train_accuracy", act)] = Curve(steps, np.stack([np.array([0.1, 0.5, 1.0])] * cfg.seeds))
        measurement[key("test_accuracy", act)] = Curve(steps, np.stack([np.array([0.0, 0.2, 0.4])] * cfg.seeds))
        measurement[key("concentration", act)] = Curve(np.arange(3.0), np.full((cfg.seeds, 3), 0.9))
        measurement[key("contribution", act)] = Curve(np.arange(3.0), np.ones((cfg.seeds, 3)))
    summary = summarize(cfg, {"analytic_accuracy": 1.0, "analytic_accuracy_grid": 1.0}, measurement)
    assert summary["diverged"] == float(len(cfg.activations))
