#!/usr/bin/env python
"""Benchmark: how long a coordinate check takes, learnmech against Microsoft's ``mup`` package.

The check: the MLP ``16 -> n -> n -> 10`` (ReLU, biases, fan-in init) at widths 64, 128, 256, 512,
3 seeds, 3 full-batch Adam steps (lr 1e-2, standard parameterisation: timing does not depend on
it), 128 examples, cross-entropy on 10 classes. Variants:

- ``learnmech jax``: :func:`learnmech.observe.coord_check` on a plain JAX MLP (a list of
  ``{"w", "b"}``), ``compiler_options="auto"`` (the default);
- ``learnmech jax, XLA defaults``: the same with ``compiler_options=None``, i.e. what the check
  compiled before ``"auto"`` existed;
- ``learnmech equinox``: the equinox MLP of ``tests/models_equinox.py`` through
  :func:`learnmech.adapters.split` (skipped without equinox);
- ``mup``: ``mup.coord_check.get_coord_data`` on the torch twin (``nn.Sequential`` of
  ``nn.Linear``; torch's Adam, ``mup=False``), skipped without torch and ``mup``.

Each variant runs in a fresh Python process (``--one NAME``): imports and a one-line warm-up of
the framework's backend are excluded, then the *first* coordinate check (compilation included, as
a user meets it) and a *second* identical one are timed (wall and process CPU seconds). The
processes of all variants alternate over ``--rounds`` rounds (reversed order every other round,
so that a load change on a shared machine hits all of them); the minimum over rounds is
reported. ``--threads 1`` pins both frameworks to one thread (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
for torch, ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` for XLA): on a
shared, oversubscribed machine torch's spinning worker threads otherwise make its times erratic.
For learnmech the per-width split of the first call (trace, compile, run; from
``CoordCheck.timings``) is printed too. The ratios come LAST::

    ratio learnmech jax / mup, first call wall: ...
    ratio learnmech equinox / mup, first call wall: ...

Usage: ``python bench/coord_check.py [--rounds 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

WIDTHS, SEEDS, STEPS, LR = (64, 128, 256, 512), (0, 1, 2), 3, 1e-2
D_IN, D_OUT, N = 16, 10, 128
HERE = os.path.dirname(os.path.abspath(__file__))


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D_IN)).astype(np.float32)  # (N, d_in)
    labels = rng.integers(0, D_OUT, size=N)  # (N,)
    return x, labels


# ----------------------------------------------------------------------------------------------- learnmech


def _jax_mlp(width: int):
    """The plain JAX MLP: ``W ~ N(0, 1/fan_in)``, zero biases; layers are the post-ReLU hiddens and the output."""
    import jax
    import jax.numpy as jnp

    dims = (D_IN, width, width, D_OUT)

    def init(key):
        keys = jax.random.split(key, 3)
        return [{"w": jax.random.normal(k, (a, b), jnp.float32) / np.sqrt(a), "b": jnp.zeros(b, jnp.float32)}
                for k, a, b in zip(keys, dims[:-1], dims[1:])]

    def layers(params, x):
        out, h = [], x
        for i, p in enumerate(params):
            h = h @ p["w"] + p["b"]  # (N, fan_out)
            h = jax.nn.relu(h) if i < len(params) - 1 else h
            out.append(h)
        return out

    return init, layers


def _equinox_modules():
    """equinox, the shared test model and the adapter (imported before the timing, like every import)."""
    import equinox as eqx

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import models_equinox as me
    from learnmech.adapters import split

    return eqx, me, split


def _equinox_mlp(width: int):
    """The equinox MLP of tests/models_equinox.py as ``(init, layers)`` over its array leaves."""
    eqx, me, split = _equinox_modules()

    _, rebuild = split(eqx.filter_eval_shape(me.make, width, 0, d_in=D_IN, d_out=D_OUT))
    return (lambda key: split(me.make(width, key, d_in=D_IN, d_out=D_OUT))[0],
            lambda params, x: rebuild(params).activations(x))


def _learnmech(model: str, compiler_options):
    import jax
    import jax.numpy as jnp
    import optax

    from learnmech.observe import CoordModel, coord_check

    x, labels = _data()
    data = (jnp.asarray(x), jnp.asarray(labels))
    make = _jax_mlp if model == "jax" else _equinox_mlp
    if model == "equinox":
        _equinox_modules()

    def build(width):
        init, layers = make(width)

        def loss(params, batch):
            logits = layers(params, batch[0])[-1]  # (N, d_out)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        return CoordModel(init, layers, loss, optax.adam(LR))

    jax.block_until_ready(jnp.ones(3) * 2)  # warm-up: the backend, outside the timing
    return lambda: coord_check(build, WIDTHS, data=data, probe=data[0], steps=STEPS, seeds=SEEDS,
                               compiler_options=compiler_options)


# ----------------------------------------------------------------------------------------------------- mup


def _mup():
    import torch
    from mup.coord_check import get_coord_data
    from torch import nn

    x, labels = _data()
    loader = [(torch.as_tensor(x), torch.as_tensor(labels))]

    def lazy(width):
        return lambda: nn.Sequential(nn.Linear(D_IN, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                     nn.Linear(width, D_OUT))

    torch.zeros(3) * 2  # warm-up, outside the timing
    return lambda: get_coord_data({w: lazy(w) for w in WIDTHS}, loader, optimizer="adam", lr=LR, mup=False,
                                  nsteps=STEPS, nseeds=len(SEEDS), lossfn="xent", cuda=False, show_progress=False)


VARIANTS = {
    "learnmech jax": lambda: _learnmech("jax", "auto"),
    "learnmech jax, XLA defaults": lambda: _learnmech("jax", None),
    "learnmech equinox": lambda: _learnmech("equinox", "auto"),
    "mup": _mup,
}
NEEDS = {"learnmech equinox": ("equinox",), "mup": ("torch", "mup", "pandas")}


def _available(name: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in NEEDS.get(name, ()))


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def one(name: str) -> dict:
    """Run variant ``name`` twice in this process; its timings as a dict (printed as JSON)."""
    check = VARIANTS[name]()
    first, wall1, cpu1 = _timed(check)
    _, wall2, cpu2 = _timed(check)
    out = {"first_wall": wall1, "first_cpu": cpu1, "second_wall": wall2, "second_cpu": cpu2}
    if hasattr(first, "timings"):
        out["per_width"] = {str(w): t for w, t in first.timings.items()}
        out["worst_slope"] = [float(s) for s in first.worst_slope]
    return out


def _subprocess(name: str, threads: int | None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    if threads is not None:
        eigen = "true" if threads > 1 else "false"
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   XLA_FLAGS=f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen={eigen} "
                             f"intra_op_parallelism_threads={threads}".strip())
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", name], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads per framework (default: theirs)")
    parser.add_argument("--one", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    import jax

    names = [n for n in VARIANTS if _available(n)]
    print(f"coordinate check: MLP {D_IN} -> n -> n -> {D_OUT}, widths {WIDTHS}, {len(SEEDS)} seeds, {STEPS} Adam "
          f"steps, {N} examples; jax {jax.__version__}, {os.cpu_count()} CPU cores, threads per framework: "
          f"{args.threads or 'default'}; skipped: "
          f"{[n for n in VARIANTS if n not in names] or 'none'}")
    runs = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(_subprocess(name, args.threads))
    best = {n: {k: min(run[k] for run in runs[n]) for k in ("first_wall", "first_cpu", "second_wall", "second_cpu")}
            for n in names}
    print(f"{'variant':30} {'first wall':>11} {'first cpu':>10} {'second wall':>12} {'second cpu':>11}   (s, min of "
          f"{args.rounds})")
    for n in names:
        b = best[n]
        print(f"{n:30} {b['first_wall']:11.2f} {b['first_cpu']:10.2f} {b['second_wall']:12.2f} {b['second_cpu']:11.2f}")
    for n in names:
        if "per_width" in runs[n][0]:
            fastest = min(runs[n], key=lambda run: run["first_wall"])
            split = ", ".join(f"{w}: " + "/".join(f"{t[k]:.2f}" for k in ("trace", "compile", "run"))
                              for w, t in fastest["per_width"].items())
            print(f"{n:30} per width trace/compile/run (s, fastest first call; compiles overlap the next trace): "
                  f"{split}")
    if "learnmech jax" in best and "learnmech jax, XLA defaults" in best:
        print(f"ratio learnmech jax XLA defaults / auto, first call wall: "
              f"{best['learnmech jax, XLA defaults']['first_wall'] / best['learnmech jax']['first_wall']:.2f}")
    if "mup" in best:
        for n in ("learnmech jax", "learnmech equinox"):
            if n in best:
                for k in ("first_cpu", "first_wall"):
                    print(f"ratio {n} / mup, {k.replace('_', ' call ')}: {best[n][k] / best['mup'][k]:.2f}")


if __name__ == "__main__":
    main()
