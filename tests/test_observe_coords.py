"""observe.coords: the coordinate check against numpy and hand-derived SGD steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learnmech.observe.coords import CoordCheck, CoordModel, coord_check, layer_coordinates, minibatch_indices

D_IN, N_DATA = 3, 12


def _linear_model(width: int, lr: float, dtype=jnp.float64) -> CoordModel:
    """``h_1 = x W_1`` (width units), ``f = h_1 W_2``; ``W_1 ~ N(0, 1/d)``, ``W_2 ~ N(0, 1/width)``; SGD."""

    def init(key):
        z = jax.random.normal(key, ((D_IN + 1) * width,), dtype)  # one draw (compiles once per width)
        return {"w1": z[: D_IN * width].reshape(D_IN, width) / np.sqrt(D_IN),
                "w2": z[D_IN * width:].reshape(width, 1) / np.sqrt(width)}

    def layers(params, x):
        h = x @ params["w1"]  # (n, width)
        return [h, h @ params["w2"]]  # (n, width), (n, 1)

    def loss(params, batch):
        x, y = batch
        return 0.5 * jnp.mean((layers(params, x)[1] - y) ** 2)

    return CoordModel(init=init, layers=layers, loss=loss, optimizer=optax.sgd(lr))


def _data(dtype=np.float64):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N_DATA, D_IN)).astype(dtype)
    Y = rng.standard_normal((N_DATA, 1)).astype(dtype)
    probe = rng.standard_normal((5, D_IN)).astype(dtype)
    return X, Y, probe


def _sgd_step(w1, w2, X, Y, lr):
    """One SGD step on ``L = (1/2n) ||X W1 W2 - Y||^2`` by hand: ``R = (X W1 W2 - Y) / n``,
    ``dL/dW2 = (X W1)^T R``, ``dL/dW1 = X^T R W2^T``."""
    R = (X @ w1 @ w2 - Y) / len(X)  # (n, 1)
    return w1 - lr * X.T @ R @ w2.T, w2 - lr * (X @ w1).T @ R


def _rms(a):
    return np.sqrt(np.mean(np.square(a)))


def _reference(width, seeds, X, Y, probe, lr, batches):
    """rms (L,) at init and change (K, L) after each step, averaged over seeds, all in float64 numpy."""
    model = _linear_model(width, lr)
    rms, change = [], []
    for s in seeds:
        p = model.init(jax.random.key(s))
        w1, w2 = np.asarray(p["w1"], np.float64), np.asarray(p["w2"], np.float64)
        h0 = [probe @ w1, probe @ w1 @ w2]
        rms.append([_rms(h) for h in h0])
        steps = []
        for idx in batches(s):
            w1, w2 = _sgd_step(w1, w2, X[idx], Y[idx], lr)
            steps.append([_rms(probe @ w1 - h0[0]), _rms(probe @ w1 @ w2 - h0[1])])
        change.append(steps)
    return np.mean(rms, axis=0), np.mean(change, axis=0)


def test_layer_coordinates_matches_numpy():
    rng = np.random.default_rng(0)
    params0 = {"w": rng.standard_normal((4, 6)), "v": rng.standard_normal((6, 2))}
    params = {"w": params0["w"] + 0.1 * rng.standard_normal((4, 6)), "v": params0["v"] - 0.2}
    probe = rng.standard_normal((9, 4))

    def layers(p, x):
        z = jnp.tanh(x @ p["w"])
        return [z, z @ p["v"]]

    rms, change = layer_coordinates(layers, params, params0, probe)
    z, z0 = np.tanh(probe @ params["w"]), np.tanh(probe @ params0["w"])
    np.testing.assert_allclose(rms, [_rms(z), _rms(z @ params["v"])], rtol=1e-12)
    np.testing.assert_allclose(change, [_rms(z - z0), _rms(z @ params["v"] - z0 @ params0["v"])], rtol=1e-12)
    rms0, none = layer_coordinates(layers, params0, params0, probe)
    np.testing.assert_allclose(rms0, [_rms(z0), _rms(z0 @ params0["v"])], rtol=1e-12)
    np.testing.assert_array_equal(none, [0.0, 0.0])


def test_one_sgd_step_matches_the_closed_form_in_float32():
    """float32 model against the float64 hand computation from the same initial weights.

    The change is ~10% of the activation, so float32 rounding (~1e-7 relative) leaves ~1e-6 on
    the change; rtol 1e-5 holds with margin.
    """
    X, Y, probe = _data(np.float32)
    lr, widths, seeds = 0.3, (4, 16), (0, 1, 2)
    check = coord_check(lambda n: _linear_model(n, lr, jnp.float32), widths, data=(X, Y), probe=probe,
                        steps=1, seeds=seeds)  # compiler_options="auto": FAST_COMPILE here
    assert check.rms.shape == (2, 2) and check.change.shape == (2, 1, 2)
    assert check.rms_per_seed.shape == (2, 3, 2) and check.change_per_seed.shape == (2, 3, 1, 2)
    np.testing.assert_array_equal(check.steps, [1])
    for i, n in enumerate(widths):
        model = _linear_model(n, lr, jnp.float32)  # float32 draws, promoted exactly to float64
        rms, change = [], []
        for s in seeds:
            p = model.init(jax.random.key(s))
            w1, w2 = np.asarray(p["w1"], np.float64), np.asarray(p["w2"], np.float64)
            X64, Y64, P64 = (a.astype(np.float64) for a in (X, Y, probe))
            v1, v2 = _sgd_step(w1, w2, X64, Y64, lr)
            rms.append([_rms(P64 @ w1), _rms(P64 @ w1 @ w2)])
            change.append([_rms(P64 @ (v1 - w1)), _rms(P64 @ v1 @ v2 - P64 @ w1 @ w2)])
        np.testing.assert_allclose(check.rms[i], np.mean(rms, axis=0), rtol=1e-5)
        np.testing.assert_allclose(check.change[i, 0], np.mean(change, axis=0), rtol=1e-5)


def test_minibatch_steps_follow_the_documented_sequence():
    X, Y, probe = _data()
    lr, widths, seeds, batch, steps = 0.2, (2, 8), (3, 5), 4, 3
    check = coord_check(lambda n: _linear_model(n, lr), widths, data=(X, Y), probe=probe, steps=steps,
                        seeds=seeds, batch_size=batch)
    for i, n in enumerate(widths):
        rms, change = _reference(n, seeds, X, Y, probe, lr, lambda s: minibatch_indices(s, N_DATA, batch, steps))
        np.testing.assert_allclose(check.rms[i], rms, rtol=1e-10)
        np.testing.assert_allclose(check.change[i], change, rtol=1e-10)


def test_a_whole_data_set_minibatch_equals_full_batch():
    """The mean gradient does not depend on the order of the examples."""
    X, Y, probe = _data()
    build = lambda n: _linear_model(n, 0.2)  # noqa: E731
    full = coord_check(build, (2, 8), data=(X, Y), probe=probe, steps=2, seeds=(0, 1))
    shuffled = coord_check(build, (2, 8), data=(X, Y), probe=probe, steps=2, seeds=(0, 1), batch_size=N_DATA)
    np.testing.assert_allclose(shuffled.change, full.change, rtol=1e-12)
    np.testing.assert_allclose(shuffled.rms, full.rms, rtol=1e-12)


def test_minibatch_indices_are_fixed_by_the_seed():
    a = minibatch_indices(4, 10, 3, 5)
    assert a.shape == (5, 3) and a.min() >= 0 and a.max() < 10
    assert all(len(set(row)) == 3 for row in a)  # without replacement within a step
    np.testing.assert_array_equal(a, minibatch_indices(4, 10, 3, 5))
    assert not np.array_equal(a, minibatch_indices(5, 10, 3, 5))
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_indices(0, 10, 11, 2)


def test_ratio_and_slope_of_a_power_law():
    widths = np.array([32.0, 64.0, 256.0, 1024.0])
    a = np.array([0.0, 1.0, -0.5])  # (L,)
    change_k = 0.3 * widths[:, None] ** a  # (W, L)
    change = np.stack([0.5 * change_k, change_k], axis=1)  # (W, K=2, L); ratio/slope read step k
    rms = 2.0 * widths[:, None] ** (-a)
    check = CoordCheck(widths=widths, steps=np.array([1, 2]), rms=rms, change=change)
    np.testing.assert_allclose(check.slope, a, atol=1e-12)
    np.testing.assert_allclose(check.ratio, 32.0**a, rtol=1e-12)
    np.testing.assert_allclose(check.rms_slope, -a, atol=1e-12)
    np.testing.assert_allclose(check.rms_ratio, 32.0 ** (-a), rtol=1e-12)


def test_slope_is_the_least_squares_fit_of_noisy_points():
    widths = np.array([16.0, 32.0, 64.0, 128.0])
    values = np.array([[1.0], [1.3], [1.1], [1.6]])
    check = CoordCheck(widths=widths, steps=np.array([1]), rms=values, change=values[:, None, :])
    expected = np.polyfit(np.log(widths), np.log(values[:, 0]), 1)[0]
    np.testing.assert_allclose(check.slope, [expected], rtol=1e-12)


def _with_layers(layers_at):
    """A linear model whose ``layers`` is replaced by ``layers_at(width)``."""
    return lambda n: _linear_model(n, 0.1)._replace(layers=layers_at(n))


def test_mismatched_layer_counts_are_rejected():
    X, Y, probe = _data()
    build = _with_layers(lambda n: (lambda p, x: [x @ p["w1"]] * (2 if n < 8 else 3)))
    with pytest.raises(ValueError, match="number of layers"):
        coord_check(build, (4, 8), data=(X, Y), probe=probe)


def test_shapes_that_change_other_than_with_width_are_rejected():
    X, Y, probe = _data()
    shrinking = _with_layers(lambda n: (lambda p, x: [x @ p["w1"], (x @ p["w1"])[:, : 16 // n]]))
    with pytest.raises(ValueError, match="axis 1"):
        coord_check(shrinking, (4, 8), data=(X, Y), probe=probe)
    rank = _with_layers(lambda n: (lambda p, x: [(x @ p["w1"]).reshape((-1,) + ((n,) if n < 8 else (2, n // 2)))]))
    with pytest.raises(ValueError, match="rank"):
        coord_check(rank, (4, 8), data=(X, Y), probe=probe)


def test_invalid_arguments_are_rejected():
    X, Y, probe = _data()
    build = lambda n: _linear_model(n, 0.1)  # noqa: E731
    with pytest.raises(ValueError, match="widths"):
        coord_check(build, (8, 4), data=(X, Y), probe=probe)
    with pytest.raises(ValueError, match="widths"):
        coord_check(build, (8,), data=(X, Y), probe=probe)
    with pytest.raises(ValueError, match="steps"):
        coord_check(build, (4, 8), data=(X, Y), probe=probe, steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        coord_check(build, (4, 8), data=(X, Y), probe=probe, batch_size=N_DATA + 1)
    with pytest.raises(ValueError, match="leading"):
        coord_check(build, (4, 8), data=(X, Y[:5]), probe=probe, batch_size=2)


# --- the summary: worst step, init slope, warnings, table -----------------------------------------------


def _constructed() -> CoordCheck:
    """Widths 64 and 512 (8x), three steps, three layers; every number chosen by hand.

    embed: init RMS 0.5 -> 0.5 / sqrt(8) (slope -1/2: a 1/sqrt(width) initialiser), updates flat.
    hidden: init flat, updates flat but for a shrink to 0.5x at step 2 (|log 0.5| = 0.69 > |log 1.2|).
    out: init 1/sqrt(8) smaller (muP's readout, slope -1/2); update ratio 13.7 at step 1, 1.25 at step 3.
    """
    widths = np.array([64.0, 512.0])
    rms = np.array([[0.5, 1.0, 0.2], [0.5 / np.sqrt(8.0), 1.0, 0.2 / np.sqrt(8.0)]])  # (W, L)
    change = np.array([[[0.1, 0.1, 0.1], [0.1, 0.2, 0.2], [0.1, 0.2, 0.2]],
                       [[0.1, 0.12, 1.37], [0.1, 0.1, 0.3], [0.1, 0.24, 0.25]]])  # (W, K, L)
    return CoordCheck(widths=widths, steps=np.array([1, 2, 3]), rms=rms, change=change,
                      layer_names=("embed", "hidden", "out"))


def test_worst_step_finds_the_step_one_blow_up_that_the_last_step_hides():
    check = _constructed()
    np.testing.assert_array_equal(check.worst_step, [1, 2, 1])  # embed: all ratios 1, the first is taken
    np.testing.assert_allclose(check.worst_ratio, [1.0, 0.5, 13.7], rtol=1e-12)
    np.testing.assert_allclose(check.ratio, [1.0, 1.2, 1.25], rtol=1e-12)  # the last step: the output looks flat
    np.testing.assert_allclose(check.worst_slope, np.log([1.0, 0.5, 13.7]) / np.log(8.0), atol=1e-12)  # 2 widths
    np.testing.assert_allclose(check.ratios[:, 2], [13.7, 1.5, 1.25], rtol=1e-12)
    np.testing.assert_allclose(check.slopes, np.log(check.ratios) / np.log(8.0), atol=1e-12)
    np.testing.assert_allclose(check.init_slope, [-0.5, 0.0, -0.5], atol=1e-12)


def test_a_non_finite_step_is_the_worst():
    check = _constructed()
    change = check.change.copy()
    change[1, 2, 0] = np.nan  # embed, step 3, widest: a diverged member
    bad = CoordCheck(widths=check.widths, steps=check.steps, rms=check.rms, change=change)
    assert bad.worst_step[0] == 3 and np.isnan(bad.worst_ratio[0])
    assert bad.names == ("layer 1", "layer 2", "layer 3")
    assert any(w.startswith("layer 1: non-finite") for w in bad.warnings())


def test_warnings_name_each_drifting_layer_and_its_cause():
    check = _constructed()
    warned = check.warnings()  # readout: the last layer, its init slope -1/2 is muP's
    assert len(warned) == 3, warned
    embed, hidden, out = warned
    assert embed.startswith("embed: init RMS shrinks") and "slope -0.50" in embed and "nnx.Embed" in embed
    assert hidden.startswith("hidden: update RMS shrinks") and "step 2" in hidden and "too small" in hidden
    assert out.startswith("out: update RMS grows") and "slope +1.26" in out and "too large" in out
    unexempt = check.warnings(readout=None)  # nothing is the readout: its -1/2 init is now a drift
    assert len(unexempt) == 4 and any(w.startswith("out: init RMS shrinks") for w in unexempt)
    assert check.warnings(tolerance=1.3) == []  # every slope within 1.3: |+1.258| is the largest
    assert check.warnings(readout="embed")[0].startswith("hidden")  # embed's -1/2 init accepted as a readout's
    with pytest.raises(ValueError, match="readout"):
        check.warnings(readout="lm_head")
    with pytest.raises(ValueError, match="tolerance"):
        check.warnings(tolerance=0.0)


def test_summary_rows_and_table():
    from learnmech.observe.coords_summary import format_summary

    rows = _constructed().summary()
    assert [r["layer"] for r in rows] == ["embed", "hidden", "out"]
    assert [r["verdict"] for r in rows] == ["init shrinks", "update shrinks", "update grows"]
    assert rows[2]["worst_step"] == 1 and rows[2]["worst_ratio"] == pytest.approx(13.7, rel=1e-12)
    assert rows[2]["last_ratio"] == pytest.approx(1.25, rel=1e-12)
    rms = np.array([[1.0, 0.3], [1.0, 0.3 / 8**0.5]])  # (W, L): the readout at muP's slope -1/2
    flat = CoordCheck(widths=np.array([8.0, 64.0]), steps=np.array([1]), rms=rms, change=np.ones((2, 1, 2)))
    assert [r["verdict"] for r in flat.summary()] == ["flat", "flat (muP readout init)"]
    lines = format_summary(rows).splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["layer", "init_slope", "worst_step"]
    assert lines[3].startswith("out") and "13.7" in lines[3] and "update grows" in lines[3]


def test_init_slope_of_a_one_over_sqrt_width_initialiser_is_minus_one_half():
    """``h = x E`` with ``E ~ N(0, 1/width)`` of shape ``(d, width)`` (flax nnx.Embed's default scale):
    ``E[rms^2] = mean_i |x_i|^2 / width``, so the init slope is -1/2 in expectation. With orthogonal probe
    columns the estimate of ``rms^2`` is a chi-square with ``d * width`` degrees of freedom: relative std
    ``sqrt(2 / (d w))`` <= 0.125 at d = 8, w = 16, i.e. <= 0.0625 on log rms, <= 0.036 averaged over 3
    seeds, and a slope error <= 0.036 * sqrt(2) / log(16) = 0.018 over widths 16..256; tolerance 0.05.
    ``layers`` returns a dict, which names the layer."""
    d = 8
    probe = np.linalg.qr(np.random.default_rng(3).standard_normal((16, d)))[0] * 4.0  # (16, d), orthogonal columns

    def build(width):
        def init(key):
            return {"embed": jax.random.normal(key, (d, width)) / np.sqrt(width)}

        def layers(p, x):
            return {"embed": x @ p["embed"]}

        def loss(p, x):
            return 0.5 * jnp.mean((x @ p["embed"]) ** 2)

        return CoordModel(init, layers, loss, optax.sgd(1e-2), names=("embed",))  # the same as the dict's keys

    check = coord_check(build, (16, 64, 256), data=probe, probe=probe, steps=1, seeds=(0, 1, 2))
    assert check.layer_names == ("embed",) and check.summary()[0]["layer"] == "embed"
    assert check.init_slope[0] == pytest.approx(-0.5, abs=0.05)
    assert "nnx.Embed" in check.warnings(readout=None)[0]
    assert set(check.timings) == {16, 64, 256} and set(check.timings[16]) == {"trace", "compile", "run"}


def test_auto_compiler_options_pick_fast_compilation_for_small_cpu_programs():
    """The tests above run with the default "auto" (FAST_COMPILE on CPU) against float64 references."""
    from learnmech.observe.coords import _compiler_options, FAST_COMPILE, FAST_COMPILE_PARAMETERS

    small = FAST_COMPILE if jax.default_backend() == "cpu" else None
    assert _compiler_options("auto", FAST_COMPILE_PARAMETERS) == small
    assert _compiler_options("auto", FAST_COMPILE_PARAMETERS + 1) is None
    assert _compiler_options(None, 10) is None and _compiler_options({"a": 1}, 10) == {"a": 1}
    X, Y, probe = _data()
    with pytest.raises(ValueError, match="compiler_options"):
        coord_check(lambda n: _linear_model(n, 0.1), (2, 8), data=(X, Y), probe=probe, compiler_options="fast")


def test_layer_names_must_agree_with_the_layers():
    X, Y, probe = _data()
    for names in (("only",), ("a", "b", "c")):
        with pytest.raises(ValueError, match="names"):
            coord_check(lambda n: _linear_model(n, 0.1)._replace(names=names), (2, 8), data=(X, Y), probe=probe)
    keyed = _with_layers(lambda n: (lambda p, x: {"h": x @ p["w1"], "out": x @ p["w1"] @ p["w2"]}))
    with pytest.raises(ValueError, match="differ from the keys"):
        coord_check(lambda n: keyed(n)._replace(names=("h", "f")), (2, 8), data=(X, Y), probe=probe)


def test_plot_has_one_panel_per_step_and_writes_a_png(tmp_path):
    from learnmech.report.coord_plot import coord_check_figure, plot_coord_check

    check = _constructed()
    fig = coord_check_figure(check, title="constructed")
    try:
        assert len(fig.axes) == 4  # initialisation + steps 1, 2, 3
        assert [ax.get_title() for ax in fig.axes] == ["initialisation", "step 1", "step 2", "step 3"]
        assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
        assert all(len(ax.get_lines()) == 3 for ax in fig.axes)  # one line per layer
        assert "slope +1.26" in fig.axes[1].get_legend().get_texts()[2].get_text()
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    one_step = CoordCheck(widths=check.widths, steps=check.steps[:1], rms=check.rms, change=check.change[:, :1])
    path = plot_coord_check(one_step, tmp_path / "figs" / "coords.png")  # two panels: cheaper to render
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="path"):
        plot_coord_check(check, tmp_path / "coords.svg")
    assert not (tmp_path / "coords.svg").exists()
