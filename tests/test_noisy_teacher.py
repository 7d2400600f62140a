"""data.noisy_teacher: the split is one draw of the teacher regression, its noise the stated numpy draw,
its held-out targets clean; the i.i.d. groups are draws with replacement from the training set."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnmech.data import teacher_mlp_regression
from learnmech.data.noisy_teacher import iid_groups, noisy_teacher_split


def test_split_is_the_teacher_draw_with_numpy_label_noise():
    key, n_train, n_test, d, sigma = jax.random.key(3), 40, 24, 5, 0.5
    (Xtr, Ytr), (Xte, Fte, Yte) = noisy_teacher_split(key, n_train, n_test, d, noise=sigma, noise_seed=7, width=6)
    X, F, _ = teacher_mlp_regression(key, n_train + n_test, d, width=6, depth=2, activation="tanh")
    np.testing.assert_array_equal(np.concatenate([Xtr, Xte]), np.asarray(X))  # train first, then held out
    np.testing.assert_array_equal(Fte, np.asarray(F)[n_train:])  # held-out targets are the clean f*(x)
    xi = np.random.default_rng(7).standard_normal((n_train + n_test, 1)).astype("float32")
    np.testing.assert_allclose(np.concatenate([Ytr, Yte]), np.asarray(F) + sigma * xi, rtol=1e-6, atol=1e-6)
    assert Xtr.shape == (n_train, d) and Ytr.shape == (n_train, 1) and Yte.shape == (n_test, 1)
    assert Xtr.dtype == jnp.float32


def test_label_noise_has_the_stated_scale():
    (_, _), (_, F, Y) = noisy_teacher_split(jax.random.key(0), 64, 20_000, 3, noise=0.5, noise_seed=1)
    # 20k draws: the sample std of sigma xi is within ~0.5% of sigma; 2% is 4 standard errors.
    assert float(np.std(np.asarray(Y - F))) == pytest.approx(0.5, rel=0.02)


def test_iid_groups_draw_training_examples_with_replacement():
    x = jnp.arange(10.0)[:, None]  # (10, 1): example i is the number i
    y = 2 * x
    gx, gy = iid_groups((x, y), 600, 4, seed=2)
    assert gx.shape == (150, 4, 1) and gy.shape == (150, 4, 1)
    np.testing.assert_array_equal(gy, 2 * gx)  # the pairs stay together
    counts = np.bincount(np.asarray(gx).ravel().astype(int), minlength=10)
    assert counts.sum() == 600 and np.all(counts > 30)  # every example drawn, about 60 times each
    np.testing.assert_array_equal(iid_groups((x, y), 600, 4, seed=2)[0], gx)  # the seed fixes the draw
    with pytest.raises(ValueError, match="divide"):
        iid_groups((x, y), 10, 4, seed=0)
