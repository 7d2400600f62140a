"""Issue 16's "Must show" on users' own models: muP in one call, the wrapped optimiser in nnx and in
``train()``, the coordinate-check tables and their plots.

The models are the shared user models of ``tests/``:

- the equinox MLP (``tests/models_equinox.py``), the flax nnx MLP (``tests/models_nnx.py``) and the
  PyTorch twin (``tests/models_torch.py``): ``d_in -> width -> width -> d_out``, ReLU, biases, fan-in
  init; here ``d_in = 32``, ``d_out = 10``, 128 examples with one-hot targets of 10 classes and loss
  ``mean((f - onehot)^2)`` (the data of ``bench/coord_check_vs_mup.py``);
- the flax nnx decoder-only transformer (``tests/models_transformer.py``: 2 pre-LN blocks, 4 heads,
  characters of Python source), with a width-independent embedding std ``1/sqrt(64)`` and, under
  muP, ``c/d_head`` attention logits (``c = sqrt(base d_head)``; TP-V, Yang et al. 2022,
  arXiv:2203.03466, Section 4); 32 training and 16 probe sequences of 32 characters.

Two parameterisations per model. SP: the model exactly as the user wrote it, plain Adam (and, for
the transformer, ``1/sqrt(d_head)`` logits). muP: the same model through one ``mup(base, target)``
call (base width 64, Adam row), its ``rescale``/``init`` wrapper on the initialisation and its
``optimizer`` wrapper (torch: ``param_groups``) on ``adam(lr)``. The source line of that call is
printed. Learning rates, fixed in advance from the existing benches: every MLP at 1e-2 and at 1e-3,
the two rates of ``bench/coord_check_vs_mup.py`` (which measures Microsoft's ``mup``
parameterisation of the torch twin with the same hooks: the reference for the torch rows); the
transformer and the training demos at 1e-2 (``bench/transformer_coord_check.py``'s rate).

For each model and parameterisation the script prints ``format_summary(check.summary())``, the
readout's worst ratio and two verdicts: under muP, whether every layer's worst ratio (widest over
narrowest width, at the step farthest from 1) lies in ``[0.75, 1.33]`` (the band of the
``hparams.coord-check`` claim); under SP, whether the readout's worst ratio exceeds 2. Results are
reported as they come out, pass or not. Then it trains with the wrapped objects (``nnx.Optimizer``
on the nnx MLP and the transformer, ``train(init=P.init(init), optimizer=P.optimizer(...))`` on the
plain-pytree MLP) and writes one plot per model and parameterisation (``plot_coord_check``).

Run: ``python bench/own_models.py [--out DIR] [--quick]`` (needs equinox, flax and torch; the default
sizes take a few minutes on 2 CPU cores; ``--quick`` runs widths 64 and 128 with one seed).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))  # user models

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

import models_equinox as me  # noqa: E402
import models_nnx as mn  # noqa: E402
import models_torch as mtorch  # noqa: E402
import models_transformer as mtr  # noqa: E402
from learnmech.nets import MLP, mup  # noqa: E402
from learnmech.observe import CoordModel, coord_check  # noqa: E402
from learnmech.observe.coords_summary import format_summary  # noqa: E402
from learnmech.report import plot_coord_check  # noqa: E402
from learnmech.torch import coord_check as torch_coord_check  # noqa: E402
from learnmech.torch import mup as torch_mup  # noqa: E402
from learnmech.train import train  # noqa: E402

__all__ = ["main"]

LR = 1e-2  # every check and every training demo below (module docstring)
MLP_LRS = (LR, 1e-3)  # the MLPs' checks run at both rates of bench/coord_check_vs_mup.py, 1e-2 first
BASE = 64  # muP base width of every model
BAND = (0.75, 1.33)  # muP: each layer's worst ratio must lie here (hparams.coord-check claim)
SP_READOUT_MIN = 2.0  # SP: the readout's worst ratio must exceed this
D_IN, D_OUT, N = 32, 10, 128
EMBED_STD = BASE ** -0.5  # the transformer's width-independent embedding std (base model unchanged)


def _mlp_data():
    """128 Gaussian inputs of dimension 32 and one-hot targets of 10 random classes (seed 0)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D_IN)).astype(np.float32)
    y = np.eye(D_OUT, dtype=np.float32)[rng.integers(0, D_OUT, size=N)]
    return x, y


def _mse(out, y):
    return jnp.mean((out - y) ** 2)


def call_line(fn) -> str:
    """The source of ``fn``'s one ``mup(`` call, with the ``lambda w:`` helper it uses, on one line."""
    lines = [line.strip() for line in inspect.getsource(fn).splitlines()[1:]]
    return "; ".join(line.split("  #")[0] for line in lines if "mup(" in line or "= lambda w:" in line)


# ------------------------------------------------------------------------------------- MLP builders (JAX)


def equinox_build(width: int, par: str, lr: float = LR) -> CoordModel:
    """The equinox MLP at ``width``: as written (SP) or through one ``mup`` call on abstract modules."""
    make = lambda key: me.make(width, key, d_in=D_IN, d_out=D_OUT)  # noqa: E731
    tx = optax.adam(lr)
    if par == "mup":
        P = mup(eqx.filter_eval_shape(me.make, BASE, 0, d_in=D_IN, d_out=D_OUT), eqx.filter_eval_shape(make, 0))
        make, tx = P.init(make), P.optimizer(tx)
    return CoordModel(init=make, layers=lambda m, xs: m.activations(xs),
                      loss=lambda m, batch: _mse(m(batch[0]), batch[1]), optimizer=tx,
                      names=("l1", "l2", "readout"))


def nnx_build(width: int, par: str, lr: float = LR) -> CoordModel:
    """The nnx MLP at ``width`` as ``nnx.State`` of its Params (``nnx.split``), SP or one ``mup`` call."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: mn.make(width, 0, d_in=D_IN, d_out=D_OUT)))

    def init(key):
        return nnx.state(mn.MLP(width, rngs=nnx.Rngs(key), d_in=D_IN, d_out=D_OUT), nnx.Param)

    tx = optax.adam(lr)
    if par == "mup":
        abstract = lambda w: nnx.eval_shape(lambda: mn.make(w, 0, d_in=D_IN, d_out=D_OUT))  # noqa: E731
        P = mup(abstract(BASE), abstract(width))  # nnx Modules of shape structs: nothing is drawn
        init, tx = P.init(init), P.optimizer(tx)
    return CoordModel(init=init, layers=lambda s, xs: nnx.merge(graphdef, s).activations(xs),
                      loss=lambda s, batch: _mse(nnx.merge(graphdef, s)(batch[0]), batch[1]), optimizer=tx,
                      names=("l1", "l2", "readout"))


def transformer_config(width: int, par: str) -> mtr.Config:
    """SP: ``1/sqrt(d_head)`` logits; muP: ``c/d_head``; both with the width-independent embedding std."""
    return mtr.Config(d_model=width, base_d_model=BASE, rule="mup" if par == "mup" else "sp", embed_std=EMBED_STD)


def transformer_mup(width: int):
    """One ``mup`` call on the abstract transformers at the base width and at ``width``."""
    abstract = lambda w: nnx.eval_shape(lambda: mtr.Transformer(transformer_config(w, "mup"), rngs=nnx.Rngs(0)))  # noqa: E731
    return mup(abstract(BASE), abstract(width))  # nnx Modules of shape structs: nothing is drawn


def transformer_build(width: int, par: str, lr: float = LR) -> CoordModel:
    """The transformer at ``width`` as ``nnx.State`` of its Params, SP or muP (:func:`transformer_mup`)."""
    cfg = transformer_config(width, par)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: mtr.Transformer(cfg, rngs=nnx.Rngs(0))))

    def init(key):
        return nnx.state(mtr.Transformer(cfg, rngs=nnx.Rngs(key)), nnx.Param)

    tx = optax.adam(lr)
    if par == "mup":
        P = transformer_mup(width)
        init, tx = P.init(init), P.optimizer(tx)
    return CoordModel(init=init, layers=lambda s, x: mtr.layers(nnx.merge(graphdef, s), x),
                      loss=lambda s, batch: mtr.loss(nnx.merge(graphdef, s), batch), optimizer=tx,
                      names=mtr.LAYER_NAMES)


def print_table(P, where: str) -> None:
    """The matrix rows (kinds input, hidden, output) of the transformer's muP table: role, kind, multipliers."""
    print(f"\nmuP table of the nnx transformer at {where}, base {BASE} (matrices; biases and LayerNorm scales omitted):")
    print(f"  {'path':36s} {'role':12s} {'kind':7s} {'init mult':>9s} {'lr mult':>9s}")
    for row in P.table():
        if row["kind"] in ("input", "hidden", "output"):
            print(f"  {row['path']:36s} {str(row['role']):12s} {row['kind']:7s} {row['init_multiplier']:9.4g} "
                  f"{row['lr_multiplier']:9.4g}")


# --------------------------------------------------------------------------------------------- the checks


def jax_check(build, par: str, lr: float, widths, seeds, steps, data, probe, **options):
    return coord_check(lambda w: build(w, par, lr), widths, data=data, probe=probe, steps=steps, seeds=seeds, **options)


def torch_build(par: str, lr: float = LR):
    """``(width, seed) -> (model, optimizer)`` for the torch twin: as written (SP) or one ``mup`` call."""

    def build(width, seed):
        model = mtorch.make(width, seed, d_in=D_IN, d_out=D_OUT, dtype=torch.float32)
        if par == "sp":
            return model, torch.optim.Adam(model.parameters(), lr=lr)
        meta = lambda w: mtorch.MLP(w, d_in=D_IN, d_out=D_OUT, device="meta")  # noqa: E731  (no storage)
        P = torch_mup(meta(BASE), meta(width))
        return P.rescale_(model), torch.optim.Adam(P.param_groups(model, lr))

    return build


def torch_check(par: str, lr: float, widths, seeds, steps):
    x, y = _mlp_data()
    data = (torch.as_tensor(x), torch.as_tensor(y))
    return torch_coord_check(torch_build(par, lr), widths, data=data, probe=data[0], steps=steps, seeds=seeds,
                             loss_fn=lambda m, batch: ((m(batch[0]) - batch[1]) ** 2).mean())


def verdict(check, par: str) -> tuple[bool, str]:
    """The issue's criterion: muP, every worst ratio in ``BAND``; SP, the readout's worst ratio > 2."""
    ratios, names = np.asarray(check.worst_ratio), check.names
    if par == "mup":
        bad = [f"{n} {r:.3g}" for n, r in zip(names, ratios) if not BAND[0] <= r <= BAND[1]]
        ok = not bad
        text = (f"muP: all layers' worst ratios within [{BAND[0]}, {BAND[1]}]: {'yes' if ok else 'no'}"
                + ("" if ok else f" (not: {', '.join(bad)})"))
    else:
        ok = bool(ratios[-1] > SP_READOUT_MIN)
        text = f"SP: output worst ratio > {SP_READOUT_MIN:g}: {'yes' if ok else 'no'} ({ratios[-1]:.3g})"
    return ok, text


def report(title: str, check, par: str, lr: float, seconds: float) -> tuple[bool, str]:
    print(f"\n--- {title}, {par.upper()}, lr {lr:g} ({seconds:.1f} s) ---")
    print(format_summary(check.summary()))
    readout = check.names[-1]
    print(f"readout ({readout}) worst ratio {check.worst_ratio[-1]:.3g} at step {int(check.worst_step[-1])}, "
          f"worst slope {check.worst_slope[-1]:+.2f}")
    for sentence in check.warnings():
        print(f"  warning: {sentence}")
    ok, text = verdict(check, par)
    print(text)
    return ok, text


# ------------------------------------------------------------------------------------- training demos


def nnx_optimizer_demo() -> None:
    """``nnx.Optimizer(model, P.optimizer(optax.adam(lr)), wrt=nnx.Param)`` on the nnx MLP and the transformer."""
    x, y = (jnp.asarray(a) for a in _mlp_data())
    width = 128
    P = mup(mn.make(BASE, 0, d_in=D_IN, d_out=D_OUT), mn.make(width, 0, d_in=D_IN, d_out=D_OUT))
    model = P.rescale(mn.make(width, 1, d_in=D_IN, d_out=D_OUT))  # in place, returned
    optimizer = nnx.Optimizer(model, P.optimizer(optax.adam(LR)), wrt=nnx.Param)
    _nnx_steps("nnx MLP, width 128", model, optimizer, lambda m: _mse(m(x), y), 5)

    tokens, targets = (jnp.asarray(a) for a in mtr.sequences(16, seed=1))
    P = transformer_mup(width)
    model = P.rescale(mtr.Transformer(transformer_config(width, "mup"), rngs=nnx.Rngs(1)))
    optimizer = nnx.Optimizer(model, P.optimizer(optax.adam(LR)), wrt=nnx.Param)
    _nnx_steps("nnx transformer, d_model 128", model, optimizer, lambda m: mtr.loss(m, (tokens, targets)), 3)


def _nnx_steps(name, model, optimizer, loss_fn, steps: int) -> None:
    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    before = float(loss_fn(model))
    for _ in range(steps):
        step(model, optimizer)
    print(f"nnx.Optimizer(model, P.optimizer(optax.adam({LR:g})), wrt=nnx.Param) on the {name}: loss "
          f"{before:.4f} -> {float(loss_fn(model)):.4f} after {steps} steps")


def train_demo() -> None:
    """learnmech's ``train()`` on the plain-pytree MLP with ``P.init(init)`` and ``P.optimizer(adam)``."""
    x, y = (jnp.asarray(a) for a in _mlp_data())
    width, steps = 128, 20
    net = MLP((D_IN, width, width, D_OUT), "relu", "sp")
    shapes = lambda w: jax.eval_shape(MLP((D_IN, w, w, D_OUT), "relu", "sp").init, jax.random.key(0))  # noqa: E731
    P = mup(shapes(BASE), shapes(width))
    run = train(init=P.init(net.init), loss=lambda params, b: _mse(net.apply(params, b[0]), b[1]), data=(x, y),
                optimizer=P.optimizer(optax.adam(LR)), steps=[0, steps], seeds=(0,))
    loss = np.asarray(run["loss"]).reshape(-1)
    print(f"train(init=P.init(net.init), optimizer=P.optimizer(optax.adam({LR:g})), ...) on the pytree MLP, "
          f"width {width}: loss {loss[0]:.4f} -> {loss[-1]:.4f} after {steps} steps")


# ------------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="learnmech-results/own-models", help="folder for the plot files")
    parser.add_argument("--quick", action="store_true", help="widths 64, 128; one seed (a smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out: must be a folder (or a path to create), got the file {str(out)!r}")
    quick = args.quick
    mlp = dict(widths=(64, 128) if quick else (64, 128, 256, 512), seeds=(0,) if quick else (0, 1, 2), steps=3)
    trf = dict(widths=(64, 128) if quick else (64, 128, 256), seeds=(0,), steps=3)
    start_all = time.perf_counter()
    print(f"jax {jax.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"MLPs: widths {mlp['widths']}, seeds {mlp['seeds']}, {mlp['steps']} full-batch Adam steps at lr "
          f"{' and '.join(f'{lr:g}' for lr in MLP_LRS)} (the two rates of bench/coord_check_vs_mup.py; the same for "
          f"every MLP), d_in {D_IN}, d_out {D_OUT}, {N} examples, MSE to one-hot targets; base width {BASE}")
    print(f"transformer: widths {trf['widths']}, seeds {trf['seeds']}, {trf['steps']} Adam steps at lr {LR:g} "
          f"(bench/transformer_coord_check.py's rate; fewer widths and seeds than the MLPs, to keep the run short), "
          f"2 blocks, 4 heads, embedding std {EMBED_STD:.3f} at every width; SP: 1/sqrt(d_head) logits and plain "
          f"Adam, muP: c/d_head logits and the one mup call; base width {BASE}")
    print("ratio = change of a layer's output, widest over narrowest width; worst = the step farthest from 1")

    print("\nmuP applied in one call each (source lines):")
    print(f"  equinox MLP:       {call_line(equinox_build)}")
    print(f"  nnx MLP:           {call_line(nnx_build)}")
    print(f"  torch MLP twin:    {call_line(torch_build)}")
    print(f"  nnx transformer:   {call_line(transformer_mup)}")

    print_table(transformer_mup(trf["widths"][-1]), f"d_model {trf['widths'][-1]}")

    x, y = (jnp.asarray(a) for a in _mlp_data())
    tokens, targets = mtr.sequences(48, seed=0)
    trf_data, trf_probe = (jnp.asarray(tokens[:32]), jnp.asarray(targets[:32])), jnp.asarray(tokens[32:])
    runs = [  # (name, slug, lr, par -> CoordCheck)
        *((name, slug, lr, run) for lr in MLP_LRS for name, slug, run in (
            ("equinox MLP", "equinox-mlp", lambda par, lr=lr: jax_check(equinox_build, par, lr, data=(x, y), probe=x,
                                                                          **mlp)),
            ("nnx MLP", "nnx-mlp", lambda par, lr=lr: jax_check(nnx_build, par, lr, data=(x, y), probe=x, **mlp)),
            ("torch MLP twin", "torch-mlp", lambda par, lr=lr: torch_check(par, lr, **mlp)))),
        ("nnx transformer", "nnx-transformer", LR, lambda par: jax_check(
            transformer_build, par, LR, data=trf_data, probe=trf_probe,
            compiler_options={"xla_backend_optimization_level": 0}, **trf)),
    ]
    verdicts, plots = [], []
    for name, slug, lr, run in runs:
        for par in ("sp", "mup"):
            start = time.perf_counter()
            check = run(par)
            ok, text = report(name, check, par, lr, time.perf_counter() - start)
            verdicts.append((name, par, lr, ok, text))
            title = f"{name}, {'muP' if par == 'mup' else 'SP'}: coordinate check (lr {lr:g})"
            plots.append(plot_coord_check(check, out / f"{slug}-{par}-lr{lr:g}.png", title=title))

    print("\nTraining with the wrapped objects:")
    nnx_optimizer_demo()
    train_demo()

    print("\nVerdicts (as measured):")
    for name, par, lr, ok, text in verdicts:
        print(f"  {name:16s} {par.upper():4s} lr {lr:<6g} {'PASS' if ok else 'FAIL'}  {text}")
    print("\nPlot files:")
    for path in plots:
        print(f"  {path}")
    print(f"\nwall time {time.perf_counter() - start_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
