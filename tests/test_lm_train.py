"""train_lm on a user's small text file: padding members and reusing the compiled program change no number, the
counts follow D = steps x batch x seq_len and C = 6 N D, and a budget past the corpus says how often it re-read it.

One tiny model (d_model 8, one layer, windows of 9 bytes) so that the file compiles one program."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.data.text import text_corpus
from learnmech.lm_train import LMRecipe, train_lm
from learnmech.nets import transformer as tf
from learnmech.train import trainer

SEQ = 8
RECIPE = LMRecipe(seq_len=SEQ, batch_size=4, eval_windows=4, observations=3)
CFG = tf.TransformerConfig(vocab=256, seq_len=SEQ, d_model=8, n_layers=1, n_heads=2, parameterization="mup",
                           base_d_model=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "notes.txt"
    lines = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(60)]
    path.write_text("".join(lines))  # about 1.9 kB: 190 training windows of 9 bytes
    return text_corpus(path, seq_len=SEQ)


@pytest.fixture(scope="module")
def runs(corpus):
    """The same members three ways: a sweep padded to 3 points, two budgets padded to 3, one budget unpadded."""
    sweep = train_lm(CFG, corpus, learning_rates=[1e-3, 1e-2, 3e-2], steps=[30], seeds=2, recipe=RECIPE, points=3)
    cached = len(trainer._PROGRAMS)
    budgets = train_lm(CFG, corpus, learning_rates=[1e-2], steps=[10, 30], seeds=2, recipe=RECIPE, points=3)
    reused = len(trainer._PROGRAMS) == cached
    alone = train_lm(CFG, corpus, learning_rates=[1e-2], steps=[30], seeds=2, recipe=RECIPE)
    long = train_lm(CFG, corpus, learning_rates=[1e-2], steps=[120], seeds=2, recipe=RECIPE)  # alone's program
    return sweep, budgets, alone, long, reused


def test_padding_and_the_program_cache_change_no_number(runs):
    sweep, budgets, alone, _, reused = runs
    assert reused  # the second call, 3 points again, found the first call's compiled program
    assert sweep.val_loss.shape == (1, 3, 2) and budgets.val_loss.shape == (2, 1, 2) and alone.val_loss.shape == (1, 1, 2)
    np.testing.assert_array_equal(sweep.val_loss[0, 1], alone.val_loss[0, 0])  # lr 1e-2, 30 steps, seeds 0 and 1
    np.testing.assert_array_equal(budgets.val_loss[1, 0], alone.val_loss[0, 0])  # a budget stops at its own step
    assert np.all(budgets.val_loss[0] != budgets.val_loss[1])  # 10 steps is another run
    np.testing.assert_array_equal(budgets.val_curve[0, 0, :, -1], budgets.val_loss[0, 0])  # frozen after its end


def test_counts_and_a_budget_past_the_corpus(runs, corpus):
    _, budgets, _, long, _ = runs
    np.testing.assert_array_equal(budgets.tokens, np.array([10, 30]) * 4 * SEQ)
    n = tf.non_embedding_params(CFG)
    np.testing.assert_allclose(budgets.compute_6nd, 6.0 * n * budgets.tokens, rtol=1e-12)
    np.testing.assert_allclose(budgets.flops, tf.flops_per_token(CFG) * budgets.tokens, rtol=1e-12)
    n_windows = (corpus.train.size - 0) // (SEQ + 1)
    assert long.passes == pytest.approx(120 * 4 / n_windows, rel=1e-12) and long.passes > 1
    assert long.notes and "reads the training text" in long.notes[0]
    assert long.corpus["sha256"] == corpus.sha256 and budgets.passes < 1 and not budgets.notes


def test_points_below_the_members_asked_for_are_refused(corpus):
    with pytest.raises(ValueError, match="^points: must be an integer from budgets x learning rates = 2"):
        train_lm(CFG, corpus, learning_rates=[1e-3, 1e-2], steps=[5], recipe=RECIPE, points=1)
