"""learnmech.monitor.Recorder: a user's own loop logged into the store, read back, shown by the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from learnmech.monitor import Recorder
from learnmech.monitor.stored_run import monitor_run_id
from learnmech.store import Store


def _series(path, name=None):
    with Store.open(path, read_only=True) as db:
        cols = db.series(monitor_run_id("net"), name=name)
        run = db.get_run(monitor_run_id("net"))
    return cols, run


def _curve(cols, name):
    sel = cols["name"] == name
    return cols["step"][sel], cols["value"][sel]


# ---------------------------------------------------------------- a tiny optax loop (JAX)
@pytest.fixture(scope="module")
def problem():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (32, 3))  # (n, d_in)
    y = jnp.sin(x[:, :1])  # (n, 1)
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    params = {"hidden": jax.random.normal(k1, (3, 8)) / jnp.sqrt(3.0),
              "readout": jax.random.normal(k2, (8, 1)) / jnp.sqrt(8.0)}

    def hidden(p, inputs):
        return jnp.tanh(inputs @ p["hidden"])  # (n, 8)

    def loss_fn(p, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((hidden(p, xb) @ p["readout"] - yb) ** 2)

    return {"x": x, "y": y, "params": params, "loss_fn": loss_fn, "hidden": hidden}


def test_an_optax_loop_stores_exactly_the_numbers_it_logged(tmp_path, problem):
    import jax
    import optax

    path = tmp_path / "s.duckdb"
    tx = optax.sgd(0.1)
    params, loss_fn, batch = problem["params"], problem["loss_fn"], (problem["x"], problem["y"])
    state = tx.init(params)

    @jax.jit
    def update(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        updates, s = tx.update(grads, s)
        return optax.apply_updates(p, updates), s, loss

    logged = []
    with Recorder(path, name="net", config={"lr": 0.1}, figure=False, flush_every=5) as rec:
        for step in range(20):
            params, state, loss = update(params, state)
            rec.log(step, loss=loss, lr=0.1)
            logged.append(float(loss))
    cols, run = _series(path)
    steps, values = _curve(cols, "loss")
    np.testing.assert_array_equal(steps, np.arange(20.0))
    np.testing.assert_array_equal(values, np.asarray(logged))  # float32 -> float64 is exact: equal, not close
    np.testing.assert_array_equal(_curve(cols, "lr")[1], np.full(20, 0.1))
    assert set(cols["source"]) == {"experiment"} and set(cols["member"]) == {0}
    assert (run.claim, run.preset, run.status, run.config) == ("monitor.net", "monitor", "done", {"lr": 0.1})
    assert logged[-1] < logged[0]  # the loop trained: a recorder that logged stale values would fail above


def test_sharpness_noise_scale_and_coordinates_match_independent_references(tmp_path, problem):
    import jax
    from jax.flatten_util import ravel_pytree

    from learnmech.observe import sharpness

    params, loss_fn, x, y = problem["params"], problem["loss_fn"], problem["x"], problem["y"]
    batches = [(x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]) for i in range(4)]  # G = 4 batches of b = 8
    path = tmp_path / "s.duckdb"
    with Recorder(path, name="net", figure=False, flush_every=3) as rec:
        top = rec.log_sharpness(3, loss_fn, params, (x, y))
        noise = rec.log_noise_scale(3, loss_fn, params, batches)
        coords = rec.log_coordinates(3, {"hidden": problem["hidden"](params, x), "input": x})
    cols, _ = _series(path)
    # stored = returned = observe's own estimate on the same params (same start vector, same Lanczos steps)
    assert _curve(cols, "sharpness")[1].tolist() == [top]
    assert top == float(sharpness(loss_fn, params, (x, y), method="lanczos", iterations=20).eigenvalue)
    flat, unravel = ravel_pytree(params)
    dense = jax.jit(jax.hessian(lambda v: loss_fn(unravel(v), (x, y))))(flat)  # (32, 32): P = 3*8 + 8*1
    assert top == pytest.approx(float(np.linalg.eigvalsh(np.asarray(dense, np.float64))[-1]), rel=1e-3)  # float32 HVPs
    # B_simple by hand (McCandlish et al. 2018, App. A.1): |G_b|^2 of each batch of b = 8 and of all B = 32
    grad = jax.jit(lambda p, xb, yb: ravel_pytree(jax.grad(loss_fn)(p, (xb, yb)))[0])
    small = np.mean([np.sum(np.asarray(grad(params, *b), np.float64) ** 2) for b in batches])
    big = np.sum(np.mean([np.asarray(grad(params, *b), np.float64) for b in batches], axis=0) ** 2)
    g2, trace = (32 * big - 8 * small) / (32 - 8), (small - big) / (1 / 8 - 1 / 32)
    assert noise["noise_scale/grad_sq_norm"] == pytest.approx(g2, rel=1e-4)  # float32 gradients
    assert _curve(cols, "noise_scale/trace_cov")[1][0] == pytest.approx(trace, rel=1e-4)
    assert noise["noise_scale"] == pytest.approx(trace / g2, rel=2e-4)
    hand = np.sqrt(np.mean(np.asarray(problem["hidden"](params, x), np.float64) ** 2))  # RMS by hand
    assert coords["hidden"] == pytest.approx(hand, rel=1e-12)
    assert _curve(cols, "coord_rms/input")[1][0] == pytest.approx(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)),
                                                                  rel=1e-12)


# ---------------------------------------------------------------- resume, interrupt, kill
def test_a_second_recorder_appends_and_a_repeated_step_replaces(tmp_path):
    path = tmp_path / "s.duckdb"
    with Recorder(path, name="net", config={"lr": 0.1}, figure=False, flush_every=5) as rec:
        for step in range(5):
            rec.log(step, loss=10.0 + step)
    first = _series(path)[1].seconds
    with Recorder(path, name="net", config={"lr": 0.1}, figure=False, flush_every=5) as rec:  # restarted at 3
        for step in range(3, 8):
            rec.log(step, loss=100.0 + step)
    cols, run = _series(path)
    steps, values = _curve(cols, "loss")
    np.testing.assert_array_equal(steps, np.arange(8.0))
    np.testing.assert_array_equal(values, [10, 11, 12, 103, 104, 105, 106, 107])
    assert run.status == "done" and run.seconds >= first
    with pytest.raises(ValueError, match=r"^name: a run named 'net' is already in .*resume=True"):
        Recorder(path, name="net", resume=False).start()
    with pytest.raises(ValueError, match=r"^config: differs from the config stored"):
        Recorder(path, name="net", config={"lr": 0.2}).start()
    assert _series(path)[0]["value"].size == 8 and _series(path)[1].status == "done"  # the refusals wrote nothing


def test_ctrl_c_writes_every_pending_record_and_marks_the_run_failed(tmp_path):
    path = tmp_path / "s.duckdb"
    with pytest.raises(KeyboardInterrupt):
        with Recorder(path, name="net", flush_every=100, figure=False) as rec:
            for step in range(3):
                rec.log(step, loss=1.0 / (step + 1))
            raise KeyboardInterrupt
    cols, run = _series(path)
    np.testing.assert_array_equal(_curve(cols, "loss")[1], [1.0, 0.5, 1.0 / 3.0])
    assert (run.status, run.error) == ("failed", "interrupted (KeyboardInterrupt)")


def test_a_killed_process_loses_no_record_it_logged(tmp_path):
    path = tmp_path / "s.duckdb"
    code = textwrap.dedent(f"""
        import os, signal
        from learnmech.monitor import Recorder
        rec = Recorder({str(path)!r}, name="net").start()
        for step in range(3):
            rec.log(step, loss=float(step))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    cols, run = _series(path)
    np.testing.assert_array_equal(_curve(cols, "loss")[1], [0.0, 1.0, 2.0])
    assert run.status == "running"  # "unfinished" until resumed


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, field", [
    ({"name": "two words"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "net", "config": {"f": object()}}, "config"),
    ({"name": "net", "config": [1, 2]}, "config"),
    ({"name": "net", "flush_every": 0}, "flush_every"),
    ({"name": "net", "wait_seconds": float("nan")}, "wait_seconds"),
])
def test_bad_recorder_arguments_are_one_line_naming_the_field(tmp_path, kwargs, field):
    path = tmp_path / "s.duckdb"
    with pytest.raises(ValueError) as info:
        Recorder(path, **kwargs)
    assert str(info.value).startswith(f"{field}:") and "\n" not in str(info.value)
    assert not path.exists()


def test_a_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    with pytest.raises(ValueError, match=r"^store_path: .*not a learnmech store"):
        Recorder(path, name="net")
    assert path.read_text() == "my notes\n"


BAD_CALLS = [
    (lambda r: r.log(-1, loss=1.0), "step"),
    (lambda r: r.log("3", loss=1.0), "step"),
    (lambda r: r.log(0, loss=[1.0, 2.0]), "loss"),
    (lambda r: r.log(0, loss="low"), "loss"),
    (lambda r: r.log(0, loss=True), "loss"),
    (lambda r: r.log(0, loss=1.0, member=-1), "member"),
    (lambda r: r.log(0), "log"),
    (lambda r: r.log_coordinates(0, {}), "activations"),
    (lambda r: r.log_coordinates(0, {"h": np.zeros((0, 3))}), "activations['h']"),
    (lambda r: r.log_noise_scale(0, lambda p, b: 0.0, {"w": np.zeros(2)}, [(np.zeros((4, 2)),)]), "batches"),
]


def test_bad_log_calls_are_one_line_and_store_nothing(tmp_path):
    path = tmp_path / "s.duckdb"
    with Recorder(path, name="net", figure=False) as rec:
        rec.log(0, loss=1.0)
        for call, field in BAD_CALLS:
            with pytest.raises(ValueError) as info:
                call(rec)
            assert str(info.value).startswith(f"{field}:") and "\n" not in str(info.value), (field, info.value)
    np.testing.assert_array_equal(_series(path)[0]["value"], [1.0])


# ---------------------------------------------------------------- the command line shows it
def test_runs_show_and_report_display_the_run_with_its_curves_and_figure(tmp_path):
    from typer.testing import CliRunner

    from learnmech.cli import app

    path = tmp_path / "s.duckdb"
    with Recorder(path, name="net", config={"width": 8}) as rec:
        for step in range(0, 50, 10):
            rec.log(step, loss=np.exp(-step / 20), grad_norm=1.0)
            rec.log_coordinates(step, {"hidden": np.full((4, 8), 0.5), "readout": np.full((4, 1), 2.0)})
    rid = monitor_run_id("net")
    runner = CliRunner()
    report = runner.invoke(app, ["report", "--store", str(path)])
    assert report.exit_code == 0, report.output
    runs = runner.invoke(app, ["runs", "--store", str(path)])
    assert rid in runs.output and "monitor.net" in runs.output
    show = runner.invoke(app, ["show", rid[:8], "--store", str(path)])
    assert show.exit_code == 0, show.output
    for text in ("monitor.net", "done", '"width": 8', "experiment:loss", "experiment:coord_rms/hidden",
                 f"figure: {tmp_path / 'figures' / (rid + '-monitor.png')}"):
        assert text in show.output, text
    page = (tmp_path / "report" / "runs" / f"{rid}.html").read_text()
    assert "coord_rms/readout" in page and f"{rid}-monitor.png" in page
    assert (tmp_path / "figures" / f"{rid}-monitor.png").stat().st_size > 1000


# ---------------------------------------------------------------- PyTorch
def test_a_torch_loop_logs_the_torch_probes(tmp_path):
    torch = pytest.importorskip("torch")
    lmtorch = pytest.importorskip("learnmech.torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(32, 3)
    y = torch.sin(x[:, :1])

    def loss_fn(m, batch):
        return 0.5 * torch.mean((m(batch[0]) - batch[1]) ** 2)

    batches = [(x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]) for i in range(4)]
    path = tmp_path / "s.duckdb"
    with Recorder(path, name="net", figure=False) as rec:
        rec.log(0, loss=loss_fn(model, (x, y)))  # a tensor that requires grad is read as a number
        top = rec.log_sharpness(0, loss_fn, model, (x, y), iterations=8)  # 8 Lanczos steps: P = 41, cheap
        noise = rec.log_noise_scale(0, loss_fn, model, batches)
    assert top == lmtorch.sharpness(model, loss_fn, (x, y), iterations=8).eigenvalue
    assert noise["noise_scale"] == pytest.approx(lmtorch.noise_scale(model, loss_fn, batches).b_simple, rel=1e-12)
    cols, _ = _series(path)
    with torch.no_grad():
        assert _curve(cols, "loss")[1][0] == pytest.approx(float(loss_fn(model, (x, y))), rel=1e-7)
    assert _curve(cols, "sharpness")[1].tolist() == [top]
