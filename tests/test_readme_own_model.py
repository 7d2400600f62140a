"""The README's "Your own model" examples, run as a new user would (equinox, flax nnx, PyTorch, the
recorder), and their numbers checked against closed forms: muP's readout between base width 64 and
width 1024 (m = 16) has init multiplier 1/sqrt(m) = 0.25 relative to a fan-in initialiser and Adam
learning-rate multiplier 1/m = 0.0625 (Yang et al. 2022, TP-V, Table 3)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(name: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- readme-own-model: {name} [^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, f"README has no readme-own-model block {name!r}"
    return match.group(1)


def _run(name: str, cwd: Path | None = None) -> dict:
    namespace: dict = {"__name__": f"readme_{name}"}
    code = compile(_block(name), "README.md", "exec")
    if cwd is None:
        exec(code, namespace)  # noqa: S102  (the project's own README)
        return namespace
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        exec(code, namespace)  # noqa: S102
    finally:
        os.chdir(old)
    return namespace


def test_equinox_and_flax_nnx_take_mup_in_one_call():
    pytest.importorskip("equinox")
    pytest.importorskip("flax")
    import jax.numpy as jnp
    import optax  # noqa: F401
    from flax import nnx

    ns = _run("frameworks")
    readout = {row["path"]: row for row in ns["P"].table()}["['l2']['kernel']"]
    assert readout["kind"] == "output" and readout["role"] is None
    assert readout["init_multiplier"] == pytest.approx(0.25, rel=1e-12)  # 1/sqrt(16)
    assert readout["lr_multiplier"] == pytest.approx(1 / 16, rel=1e-12)
    model, optimizer = ns["model"], ns["optimizer"]
    x = jnp.ones((4, 8))
    before = model.l2.kernel[...].copy()
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    optimizer.update(model, grads)  # nnx.Optimizer accepts the wrapped transformation
    step = np.abs(np.asarray(model.l2.kernel[...] - before))
    # Adam's first step moves each entry by lr * lr_multiplier (up to eps), here 3e-3 / 16
    assert np.allclose(step[step > 0], 3e-3 / 16, rtol=1e-3)
    # equinox (the block's first model, rebuilt here since the block reuses the names for nnx): the
    # rescaled readout is the fresh draw times 0.25, the hidden layer is left as drawn
    import equinox as eqx
    import jax

    from learnmech.nets import mup

    fresh = eqx.nn.MLP(8, 1, 1024, 2, key=jax.random.key(1))
    P_eqx = mup(eqx.nn.MLP(8, 1, 64, 2, key=jax.random.key(0)), eqx.nn.MLP(8, 1, 1024, 2, key=jax.random.key(0)))
    rescaled = P_eqx.rescale(fresh)
    np.testing.assert_allclose(rescaled.layers[-1].weight, 0.25 * fresh.layers[-1].weight, rtol=1e-6)
    np.testing.assert_array_equal(rescaled.layers[1].weight, fresh.layers[1].weight)


def test_a_pytorch_model_takes_mup_and_the_probes():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ns = _run("torch")
    lrs = sorted({group["lr"] for group in ns["opt"].param_groups})
    np.testing.assert_allclose(lrs, [3e-3 / 8, 3e-3], rtol=1e-12)  # m = 512/64: hidden and readout at 1/m; input, biases at 1
    import learnmech.torch as lt

    lanczos = lt.sharpness(ns["model"], ns["loss_fn"], (ns["x"], ns["y"])).eigenvalue
    power = lt.sharpness(ns["model"], ns["loss_fn"], (ns["x"], ns["y"]), method="power", iterations=100).eigenvalue
    assert float(lanczos) == pytest.approx(float(power), rel=1e-3)  # two methods, one top eigenvalue


def test_a_users_loop_lands_in_the_store(tmp_path):
    from learnmech.monitor.stored_run import monitor_run_id
    from learnmech.store import Store

    ns = _run("recorder", cwd=tmp_path)
    with Store.open(tmp_path / "learnmech-results" / "learnmech.duckdb", read_only=True) as db:
        cols = db.series(monitor_run_id("my-mlp"))
        run = db.get_run(monitor_run_id("my-mlp"))
    loss = cols["value"][cols["name"] == "loss"]
    assert run is not None and list(np.unique(cols["step"][cols["name"] == "loss"])) == list(range(0, 200, 25))
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    assert set(np.unique(cols["name"])) >= {"loss", "sharpness", "noise_scale"}
    del ns


def test_a_language_model_trains_on_the_bundled_text():
    """The README's language-model block: shapes, counts (D = steps x batch x seq_len, C = 6 N D), bits = nats / ln 2,
    and training that beats the uniform byte model (ln 256 nats) at the longer budget."""
    ns = _run("lm")
    run, N = ns["run"], ns["N"]
    assert run.val_loss.shape == (2, 2, 2) and np.all(np.isfinite(run.val_loss))
    np.testing.assert_array_equal(run.tokens, np.array([20, 60]) * 8 * 32)
    np.testing.assert_allclose(run.compute_6nd, 6.0 * N * run.tokens, rtol=1e-12)
    np.testing.assert_allclose(ns["bits"], run.val_loss / np.log(2), rtol=1e-12)
    assert np.all(run.val_loss[1] < np.log(256))  # 60 steps of AdamW: better than guessing bytes uniformly
    assert run.corpus["sha256"] and run.passes < 1  # the run records what it read; 60 x 8 windows: no repeat
