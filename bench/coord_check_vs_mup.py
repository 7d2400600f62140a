"""The coordinate check three ways on one MLP: learnmech on equinox, learnmech.torch on the torch twin, and
Microsoft's ``mup`` package (``get_coord_data``) on the torch twin, under SP and muP.

The MLP is the tests' common one (``d_in -> width -> width -> d_out``, ReLU, biases, fan-in init) at
widths 64..512, 3 seeds, 3 Adam steps (lr 1e-2), full batch of 128 examples, targets one-hot of 10
classes, loss ``mean((f - onehot)^2)`` (``mup``'s ``lossfn="mse"``). muP's base width is 64.

What each records (so the columns are read correctly):

- learnmech (both): on the probe (the training inputs) the RMS of every layer at init and the RMS of
  its *change* ``h_t - h_0`` after each step; equinox records the post-ReLU hiddens (learnmech's MLP
  convention), torch's forward hooks the ``nn.Linear`` outputs (pre-ReLU);
- ``mup``: the mean absolute value (``l1``) of every module's *output* in the forward pass of step
  ``t`` (``t = 1`` is the initial network), on the training batch.

Per layer the table prints log-log slopes against width: at init (learnmech's init RMS, ``mup``'s
``t = 1``) and at the worst step (learnmech's change, ``mup``'s ``t = 2..3``; the step whose slope is
largest in magnitude). Under muP all are ~0; under SP the output layer's grows ~ +1. Wall times of
the three checks (each a first call in this process: compilation included, as a user meets it) are
printed last, with the ratio learnmech-equinox / mup.

Run: ``python bench/coord_check_vs_mup.py`` (needs equinox and torch; ``mup`` optional:
``pip install --no-deps mup pandas seaborn``).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the shared test models

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

import models_equinox as me  # noqa: E402
import models_torch as mt  # noqa: E402
from learnmech.nets import mup  # noqa: E402
from learnmech.observe.coords import CoordModel, coord_check  # noqa: E402
from learnmech.torch import coord_check as torch_coord_check  # noqa: E402
from learnmech.torch import mup as torch_mup  # noqa: E402

WIDTHS, SEEDS, STEPS = (64, 128, 256, 512), (0, 1, 2), 3
LR = 1e-3  # main() runs the table at 1e-3 and 1e-2
D_IN, D_OUT, N = 32, 10, 128
LAYERS = ("l1", "l2", "l3")
# coord_check's documented option for small models: XLA's backend optimisations cost more than they save here


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D_IN)).astype(np.float32)
    labels = rng.integers(0, D_OUT, size=N)
    return x, labels, np.eye(D_OUT, dtype=np.float32)[labels]


def _slope(widths, values) -> float:
    x, y = np.log(np.asarray(widths, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(x, y, 1)[0])


def _worst(slopes) -> float:
    return max(slopes, key=abs)


# ------------------------------------------------------------------------------------------------ learnmech


def equinox_check(parameterization: str):
    x, _, y = _data()
    base = eqx.filter_eval_shape(me.make, WIDTHS[0], 0, d_in=D_IN, d_out=D_OUT)

    def build(width):
        target = eqx.filter_eval_shape(me.make, width, 0, d_in=D_IN, d_out=D_OUT)
        P = mup(base, target, parameterization=None if parameterization == "mup" else "sp")
        return CoordModel(init=lambda key: P.rescale(me.make(width, key, d_in=D_IN, d_out=D_OUT)),
                          layers=lambda m, xs: m.activations(xs),
                          loss=lambda m, batch: jnp.mean((m(batch[0]) - batch[1]) ** 2),
                          optimizer=P.optimizer(optax.adam(LR)))

    return coord_check(build, WIDTHS, data=(jnp.asarray(x), jnp.asarray(y)), probe=jnp.asarray(x), steps=STEPS,
                       seeds=SEEDS)  # compiler_options="auto": cheap compiles for small programs


def torch_check(parameterization: str):
    x, _, y = _data()
    data = (torch.as_tensor(x), torch.as_tensor(y))

    def build(width, seed):
        P = torch_mup(mt.MLP(WIDTHS[0], d_in=D_IN, d_out=D_OUT, device="meta"),
                      mt.MLP(width, d_in=D_IN, d_out=D_OUT, device="meta"),
                      parameterization=None if parameterization == "mup" else "sp")
        model = P.rescale_(mt.make(width, seed, d_in=D_IN, d_out=D_OUT, dtype=torch.float32))
        return model, torch.optim.Adam(P.param_groups(model, LR))

    return torch_coord_check(build, WIDTHS, data=data, probe=data[0], steps=STEPS, seeds=SEEDS,
                             loss_fn=lambda m, batch: ((m(batch[0]) - batch[1]) ** 2).mean())


def learnmech_slopes(check) -> dict[str, tuple[float, float]]:
    worst = [_worst([_slope(check.widths, check.change[:, k, l]) for k in range(STEPS)]) for l in range(3)]
    init = [_slope(check.widths, check.rms[:, l]) for l in range(3)]
    return {name: (init[l], worst[l]) for l, name in enumerate(LAYERS)}


# ------------------------------------------------------------------------------------------------------ mup


def _mup_twin(parameterization: str):
    """``width -> lazy model``: the torch twin with mup's readout and base shapes (muP) or plain (SP)."""
    from mup import MuReadout, set_base_shapes

    class Twin(mt.MLP):
        def __init__(self, width):
            super().__init__(width, d_in=D_IN, d_out=D_OUT, dtype=torch.float32)
            if parameterization == "mup":
                self.l3 = MuReadout(width, D_OUT)

    def lazy(width, generator=None):
        def make():
            model = Twin(width).reset_parameters(generator)  # None: the global seed get_coord_data sets
            if parameterization == "sp":
                return model
            return set_base_shapes(model, Twin(WIDTHS[0]), delta=Twin(2 * WIDTHS[0]))  # rescales MuReadout
        return make

    return lazy


def mup_check(parameterization: str):
    """``mup``'s own check: ``get_coord_data`` (l1 of each module's output at t = 1..3)."""
    from mup.coord_check import get_coord_data

    x, labels, _ = _data()
    lazy = _mup_twin(parameterization)
    loader = [(torch.as_tensor(x), torch.as_tensor(labels))]
    return get_coord_data({w: lazy(w) for w in WIDTHS}, loader, mup=parameterization == "mup", lr=LR,
                          optimizer="adam", nsteps=STEPS, nseeds=len(SEEDS), lossfn="mse", cuda=False,
                          show_progress=False, filter_module_by_name=lambda name: name in LAYERS)


def mup_params_check(parameterization: str):
    """``mup``'s parameterisation (MuReadout, set_base_shapes, MuAdam) recorded by learnmech.torch's hooks."""
    from mup import MuAdam

    x, _, y = _data()
    data = (torch.as_tensor(x), torch.as_tensor(y))
    lazy = _mup_twin(parameterization)

    def build(width, seed):
        model = lazy(width, torch.Generator().manual_seed(seed))()
        opt = MuAdam if parameterization == "mup" else torch.optim.Adam
        return model, opt(model.parameters(), lr=LR)

    return torch_coord_check(build, WIDTHS, data=data, probe=data[0], steps=STEPS, seeds=SEEDS,
                             loss_fn=lambda m, batch: ((m(batch[0]) - batch[1]) ** 2).mean())


def mup_slopes(df) -> dict[str, tuple[float, float]]:
    out = {}
    for name in LAYERS:
        rows = df[df.module == name]
        mean = rows.groupby(["t", "width"]).l1.mean()  # over seeds
        slopes = {t: _slope(WIDTHS, [mean[(t, w)] for w in WIDTHS]) for t in range(1, STEPS + 1)}
        out[name] = (slopes[1], _worst([slopes[t] for t in range(2, STEPS + 1)]))
    return out


# ----------------------------------------------------------------------------------------------------- main


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def warm_up() -> None:
    """Pay the one-off costs outside the timings: jax's backend, torch.optim's first import."""
    jax.block_until_ready(jnp.ones(3) * 2)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=LR)


CHECKS = {  # source -> (run, slopes)
    "learnmech-equinox": (equinox_check, learnmech_slopes),
    "learnmech-torch": (torch_check, learnmech_slopes),
    "mup params, lm hooks": (mup_params_check, learnmech_slopes),
    "mup get_coord_data": (mup_check, mup_slopes),
}


def table(results, sources) -> None:
    header = f"{'layer':6} {'par':4} " + " ".join(f"{s:>22}" for s in sources)
    print(header)
    print("-" * len(header))
    for par in ("sp", "mup"):
        for name in LAYERS:
            cells = [f"{results[(s, par)][name][0]:+8.2f} | {results[(s, par)][name][1]:+8.2f}" for s in sources]
            print(f"{name:6} {par:4} " + " ".join(f"{c:>22}" for c in cells))


def main() -> None:
    global LR
    try:
        import mup as _mup  # noqa: F401
        sources = list(CHECKS)
    except ImportError:
        sources = ["learnmech-equinox", "learnmech-torch"]
        print("mup not installed: its columns are skipped (pip install --no-deps mup pandas seaborn)")
    warm_up()
    times = {}
    for LR in (1e-3, 1e-2):
        results = {}
        for par in ("sp", "mup"):
            for source in sources:
                run, slopes = CHECKS[source]
                out, t = timed(run, par)
                results[(source, par)] = slopes(out)
                times[(LR, source)] = times.get((LR, source), 0.0) + t
        print(f"\ncoordinate check, widths {WIDTHS}, {len(SEEDS)} seeds, {STEPS} Adam steps, lr {LR}: log-log slope "
              "vs width, init | worst step (learnmech: RMS of the change h_t - h_0; mup get_coord_data: l1 of h_t)")
        table(results, sources)
    print(f"\njax {jax.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs; wall times at lr 1e-3 (SP + muP, "
          "first calls: compilation included)")
    for source in sources:
        print(f"time {source:22}: {times[(1e-3, source)]:7.2f} s")
    if "mup get_coord_data" in sources:
        ratio = times[(1e-3, "learnmech-equinox")] / times[(1e-3, "mup get_coord_data")]
        print(f"ratio learnmech-equinox / mup get_coord_data: {ratio:.2f}")


if __name__ == "__main__":
    main()
