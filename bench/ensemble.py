#!/usr/bin/env python
"""Benchmark: a vectorised seed ensemble against a per-seed loop of the same compiled step.

Trains a ``--seeds``-member ensemble (default 64) of tanh MLPs with full-batch gradient descent
(``sgd``), MSE loss, float32, on a fixed synthetic regression task (n = 1,024 examples, 32
inputs), for two nets: ``small`` (widths 32-64-64-1) and ``medium`` (32-256-256-1). Each net is
trained

- vectorised: ``learnmech.train.train`` (one compiled program over all members), once per
  layout the trainer offers (``"vmap"``, ``"map"``) and once with ``"auto"``;
- looped: ONE jit-compiled single-member function built from ``MemberProgram.start`` and
  ``MemberProgram.advance`` (the very numerics the trainer runs per member), called once per seed
  from Python.

Timing excludes compilation. The trainer is run with the schedule ``[0, steps]``: its first
chunk (0 steps) compiles the program and executes it once, its second chunk (all ``steps``
steps, same compiled program: the trip count is traced) is what is timed, from the
``progress`` callback after chunk 1 to the one after chunk 2 (the trainer fetches each chunk's
observations before calling ``progress``, so both marks are synchronised). The looped
function is compiled and run once with 0 steps first; then the loop over seeds is timed up to
``jax.block_until_ready`` of every member's output. The looped member also runs ``start``
(initialisation and one forward pass) inside the timed region: about 1/600 of its work at 200
steps, which slightly favours the vectorised side.

FLOPs are the matmul FLOPs of one training step, counted exactly: per layer ``2 n fan_in fan_out``
forward and the same for the weight gradient, plus ``2 n fan_in fan_out`` for the input
gradient of every layer except the first; times members times steps. The machine's float32
matmul peak is measured in the same run (jitted ``jnp.dot`` of square matrices, warmed up, best
of several repeats), so every number here is a ratio taken under the same conditions.

Per-step overhead of the driver (medium net, one member, ``--steps`` steps, fastest of
``OVERHEAD_ROUNDS`` interleaved rounds): a bare jitted GD ``fori_loop`` over the parameters alone
(``jax.grad`` and ``p - lr g``, nothing else: the floor) against ``MemberProgram.advance`` (the
driver's step: the member state carried, optax's update, the loss and blow-up checks, the parameter
finiteness check and the freeze of a diverged member) and against ``train`` with one seed (the
whole driver: the chunk program, its layout and the observation at the chunk's end). Their time
ratios to the bare loop name the overhead.

The vectorised/looped speed ratios (looped time / vectorised time, with the ``auto`` layout;
> 1 means the vectorised ensemble is faster) and the overhead ratios (time / bare loop time) are
printed LAST, one greppable line each::

    ratio driver step/bare GD step time medium: 1.01
    ratio train()/bare GD step time medium: 1.03
    ratio vectorised/looped speed small: 3.21

Usage: ``python bench/ensemble.py [--seeds 64] [--steps 200] [--quick] [--repeats 1]``
(``--quick``: 8 seeds, 20 steps, a smoke run).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.nets import MLP
from learnmech.observe import mse_loss
from learnmech.train import MemberProgram, OptimizerSpec, train
from learnmech.train import trainer as _trainer

N_EXAMPLES = 1024
D_IN = 32
DEPTH = 3
NETS = {"small": 64, "medium": 256}
LEARNING_RATE = 0.05
DTYPE = "float32"
PEAK_SIZES = (2048, 4096)
PEAK_REPEATS = 5
LAYOUTS = ("vmap", "map", "auto")
OVERHEAD_ROUNDS = 5


# --------------------------------------------------------------------------- helpers


def widths_for(width: int) -> tuple[int, ...]:
    return (D_IN,) + (width,) * (DEPTH - 1) + (1,)


def step_flops(widths: tuple[int, ...], n: int) -> int:
    """Matmul FLOPs of one full-batch training step of one member (see module docstring)."""
    layers = list(zip(widths[:-1], widths[1:]))
    forward = sum(2 * n * a * b for a, b in layers)
    weight_grads = forward
    input_grads = sum(2 * n * a * b for a, b in layers[1:])
    return forward + weight_grads + input_grads


def n_params(widths: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def make_task(n: int = N_EXAMPLES, d: int = D_IN):
    """A fixed synthetic regression task: y = sin(x u) + 0.5 tanh(x v) + 0.1 noise, x ~ N(0, I)."""
    kx, ku, kv, ke = jax.random.split(jax.random.key(1234), 4)
    x = jax.random.normal(kx, (n, d), DTYPE)
    u = jax.random.normal(ku, (d, 1), DTYPE) / np.sqrt(d)
    v = jax.random.normal(kv, (d, 1), DTYPE) * (2.0 / np.sqrt(d))
    y = jnp.sin(x @ u) + 0.5 * jnp.tanh(x @ v) + 0.1 * jax.random.normal(ke, (n, 1), DTYPE)
    return jax.block_until_ready((x, y.astype(DTYPE)))


def matmul_peak(sizes=PEAK_SIZES, repeats=PEAK_REPEATS) -> dict[int, float]:
    """Best-of-``repeats`` GFLOP/s of a jitted float32 ``jnp.dot`` of two ``s x s`` matrices."""
    dot = jax.jit(jnp.dot)
    out = {}
    for s in sizes:
        ka, kb = jax.random.split(jax.random.key(s))
        a = jax.random.normal(ka, (s, s), jnp.float32)
        b = jax.random.normal(kb, (s, s), jnp.float32)
        jax.block_until_ready(dot(a, b))  # compile + warm up
        jax.block_until_ready(dot(a, b))
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(dot(a, b))
            best = min(best, time.perf_counter() - t0)
        out[s] = 2.0 * s**3 / best / 1e9
    return out


def _layout_probe(seen: list[str]):
    """An observable that records which layout actually traced it (vmap gives batch tracers)."""

    def observe(params, params0):
        leaf = jax.tree.leaves(params)[0]
        seen.append("vmap" if type(leaf).__name__ == "BatchTracer" else "map")
        return {}

    return observe


def time_vectorised(net: MLP, data, seeds: int, steps: int, layout: str, repeats: int = 1):
    """Seconds for ``steps`` steps of the whole ensemble via ``train`` (compile excluded).

    The schedule is ``[0, steps]`` (``repeats`` = 1) or ``[0, steps, 2 steps, ...]``: every
    timed chunk is ``steps`` steps ending in a single observation, all chunks run the same
    compiled program, and the fastest chunk is kept.
    """
    marks: list[tuple[int, float]] = []
    seen: list[str] = []
    t_start = time.perf_counter()
    result = train(
        init=net.init,
        loss=mse_loss(net.apply),
        data=data,
        optimizer=OptimizerSpec("sgd", {"learning_rate": LEARNING_RATE}),
        seeds=list(range(seeds)),
        steps=[steps * i for i in range(repeats + 1)],
        observe=_layout_probe(seen),
        layout=layout,
        progress=lambda done, total: marks.append((done, time.perf_counter(), _cpu())),
    )
    t_end = time.perf_counter()
    assert [m[0] for m in marks] == [steps * i for i in range(repeats + 1)], marks
    chunks = [(b[1] - a[1], (b[2] - a[2]) / (b[1] - a[1])) for a, b in zip(marks[:-1], marks[1:])]
    timed, cores = min(chunks)
    setup = (marks[0][1] - t_start) + (t_end - marks[-1][1])
    loss_at_steps = np.asarray(result["loss"])[..., 1]  # after the first `steps` steps
    used = seen[0] if seen else "?"
    return timed, setup, loss_at_steps, int(np.sum(result.diverged)), used, cores


def make_looped_member(net: MLP, data):
    """ONE jitted single-member function: start from the seed's key, advance ``n`` steps."""
    program = MemberProgram(
        init=net.init,
        loss=mse_loss(net.apply),
        optimizer=OptimizerSpec("sgd", {"learning_rate": LEARNING_RATE}),
    )
    hp: dict = {}  # no grid: the trainer passes an empty hp dict to every member too

    @jax.jit
    def member(key, n):
        state = program.start(key, hp, data)
        state = program.advance(state, hp, data, n)
        return program.loss_value(state.params, data, hp), state.diverged

    return member


def time_looped(member, seeds: int, steps: int):
    keys = [jax.random.key(s) for s in range(seeds)]
    n = jnp.int32(steps)
    t0 = time.perf_counter()
    jax.block_until_ready(member(keys[0], jnp.int32(0)))  # compile + one execution
    setup = time.perf_counter() - t0
    jax.block_until_ready(n)
    t0, c0 = time.perf_counter(), _cpu()
    outs = [member(k, n) for k in keys]
    jax.block_until_ready(outs)
    timed = time.perf_counter() - t0
    cores = (_cpu() - c0) / timed
    final_loss = np.array([float(o[0]) for o in outs])
    diverged = int(sum(bool(o[1]) for o in outs))
    return timed, setup, final_loss, diverged, cores


def overhead(net: MLP, data, steps: int, rounds: int = OVERHEAD_ROUNDS) -> dict[str, float]:
    """Seconds for ``steps`` steps of one member: bare GD loop, the driver's member step, ``train`` (1 seed)."""
    loss = mse_loss(net.apply)
    program = MemberProgram(init=net.init, loss=loss, optimizer=OptimizerSpec("sgd", {"learning_rate": LEARNING_RATE}))
    state = jax.jit(lambda k: program.start(k, {}, data))(jax.random.key(0))

    @jax.jit
    def bare(params, n):
        step = lambda _, p: jax.tree.map(lambda a, g: a - LEARNING_RATE * g, p, jax.grad(loss)(p, data))  # noqa: E731
        return jax.lax.fori_loop(0, n, step, params)

    member = jax.jit(lambda s, n: program.advance(s, {}, data, n))
    variants = {"bare": (bare, state.params), "member": (member, state)}
    best = {name: float("inf") for name in variants}
    for r in range(rounds):  # interleaved, order reversed every other round
        for name, (fn, arg) in list(variants.items())[:: 1 if r % 2 == 0 else -1]:
            jax.block_until_ready(fn(arg, jnp.int32(0)))
            t0 = time.perf_counter()
            jax.block_until_ready(fn(arg, jnp.int32(steps)))
            best[name] = min(best[name], time.perf_counter() - t0)
    marks: list[float] = []
    train(init=net.init, loss=loss, data=data, optimizer=OptimizerSpec("sgd", {"learning_rate": LEARNING_RATE}),
          seeds=[0], steps=[steps * i for i in range(rounds + 1)], layout="map",
          progress=lambda done, total: marks.append(time.perf_counter()))
    best["train"] = min(b - a for a, b in zip(marks[:-1], marks[1:]))
    return best


def _cpu() -> float:
    """CPU seconds (user + system, all threads) this process has used."""
    t = os.times()
    return t.user + t.system


def auto_rule(widths: tuple[int, ...], n: int):
    """The size ``layout="auto"`` compares (parameters per member) and the trainer's threshold."""
    del n  # the rule does not depend on the number of examples
    return n_params(widths), f"_AUTO_MAP_PARAMETERS = {_trainer._AUTO_MAP_PARAMETERS!r}"


class CpuShare:
    """CPU time the rest of the machine took while this benchmark ran (Linux ``/proc/stat``).

    Busy time of all CPUs (user, system, irq, steal, ...) minus this process's own CPU time,
    as a fraction of the machine's capacity over the same wall time. Timings are only
    comparable to other runs when this is near zero.
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
        t = os.times()
        return busy / hz, t.user + t.system, time.perf_counter()

    def others(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy = end[0] - self.start[0]
        ours = end[1] - self.start[1]
        wall = end[2] - self.start[2]
        return max(0.0, busy - ours) / (wall * (os.cpu_count() or 1))


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=64, help="ensemble size (default 64)")
    ap.add_argument("--steps", type=int, default=200, help="GD steps (default 200)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 seeds, 20 steps")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed repetitions per variant, fastest kept (default 1; vectorised repeats are "
        "further chunks of the same train call, so no recompilation)",
    )
    args = ap.parse_args(argv)
    seeds, steps = (8, 20) if args.quick else (args.seeds, args.steps)
    repeats = max(1, args.repeats)
    share = CpuShare()

    print(f"bench/ensemble.py: {seeds} seeds x {steps} full-batch GD steps, n = {N_EXAMPLES}, "
          f"d_in = {D_IN}, tanh MLP depth {DEPTH}, sgd lr {LEARNING_RATE}, {DTYPE}")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device), "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {loadavg()}")

    peaks = matmul_peak()
    peak = max(peaks.values())
    print("\nfloat32 matmul peak (jitted jnp.dot, best of "
          f"{PEAK_REPEATS}): " + ", ".join(f"{s}x{s}: {g:.1f} GFLOP/s" for s, g in peaks.items())
          + f"  -> peak {peak:.1f} GFLOP/s (measured again at the end; the larger is used)",
          flush=True)

    data = make_task()
    rows, summary = [], {}
    for name, width in NETS.items():
        widths = widths_for(width)
        net = MLP(widths, activation="tanh", parameterization="sp", dtype=DTYPE)
        flops = step_flops(widths, N_EXAMPLES) * seeds * steps
        work, threshold = auto_rule(widths, N_EXAMPLES)

        timings, losses, picked = {}, {}, None
        for layout in LAYOUTS:
            timings[layout] = time_vectorised(net, data, seeds, steps, layout, repeats)
            losses[layout] = timings[layout][2]
            if layout == "auto":
                picked = timings[layout][4]

        member = make_looped_member(net, data)
        best, first_setup = None, None
        for _ in range(repeats):
            timed, setup, loss, ndiv, cores = time_looped(member, seeds, steps)
            first_setup = setup if first_setup is None else first_setup
            if best is None or timed < best[0]:
                best = (timed, first_setup, loss, ndiv, "loop", cores)
        timings["looped"] = best
        losses["looped"] = best[2]

        for variant in ("vmap", "map", "auto", "looped"):
            timed, setup, _, ndiv, used, cores = timings[variant]
            label = f"auto->{used}" if variant == "auto" else variant
            gflops = flops / timed / 1e9
            rows.append((name, label, timed, setup, gflops, gflops / peak, cores, ndiv))

        agree = max(float(np.max(np.abs(losses[v] - losses["looped"]))) for v in LAYOUTS)
        other = "map" if picked == "vmap" else "vmap"
        summary[name] = dict(
            widths=widths,
            work=work,
            threshold=threshold,
            picked=picked,
            faster=min(("vmap", "map"), key=lambda v: timings[v][0]),
            auto_time=timings["auto"][0],
            picked_time=timings[picked][0],
            other=other,
            other_time=timings[other][0],
            looped_time=timings["looped"][0],
            gflops_auto=flops / timings["auto"][0] / 1e9,
            gflops_best=flops / min(timings[v][0] for v in LAYOUTS) / 1e9,
            frac_auto=flops / timings["auto"][0] / 1e9 / peak,
            frac_best=flops / min(timings[v][0] for v in LAYOUTS) / 1e9 / peak,
            agree=agree,
            mean_loss=float(np.mean(losses["looped"])),
            flops_step=step_flops(widths, N_EXAMPLES),
            vmap_over_map=timings["vmap"][0] / timings["map"][0],
        )

    over = None
    if "medium" in NETS:
        over = overhead(MLP(widths_for(NETS["medium"]), "tanh", "sp", dtype=DTYPE), data, steps)

    peaks_end = matmul_peak()
    print("float32 matmul peak at the end: "
          + ", ".join(f"{s}x{s}: {g:.1f} GFLOP/s" for s, g in peaks_end.items()))
    if max(peaks_end.values()) > peak:
        peak = max(peaks_end.values())
        for i, row in enumerate(rows):
            rows[i] = row[:5] + (row[4] / peak,) + row[6:]
        for s in summary.values():
            s["frac_auto"] = s["gflops_auto"] / peak
            s["frac_best"] = s["gflops_best"] / peak
    print(f"peak used: {peak:.1f} GFLOP/s")
    if any(row[5] > 1.0 for row in rows):
        print("WARNING: a run exceeded the measured peak: the peak was measured while the machine "
              "was busy; fractions of peak are unreliable")

    print(f"\n{'net':<7} {'variant':<11} {'time [s]':>9} {'setup [s]':>10} {'GFLOP/s':>9} "
          f"{'of peak':>8} {'cpu/wall':>9} {'diverged':>9}")
    print("-" * 79)
    for name, label, timed, setup, gflops, frac, cores, ndiv in rows:
        print(f"{name:<7} {label:<11} {timed:>9.3f} {setup:>10.2f} {gflops:>9.1f} {frac:>8.1%} "
              f"{cores:>9.2f} {ndiv:>9d}")
    print("(time: the timed steps only; setup: compilation, initialisation and the step-0 run; "
          "cpu/wall: cores this process kept busy while timed)")

    print()
    for name, s in summary.items():
        print(f"{name}: widths {s['widths']}, {s['flops_step'] / 1e6:.1f} MFLOP per member step; "
              f"auto rule: parameters per member = {s['work']:.3g} vs {s['threshold']} "
              f"-> auto picked {s['picked']!r}; faster layout measured: {s['faster']!r} "
              f"(time vmap/map {s['vmap_over_map']:.2f}); "
              f"final mean loss {s['mean_loss']:.4f}, "
              f"max |vectorised - looped| final loss {s['agree']:.2e}")
    others = share.others()
    print(f"load average at the end: {loadavg()}; CPU taken by other processes (and steal) "
          f"during this run: " + ("n/a" if others is None else f"{others:.0%} of the machine")
          + (" -- CONTENDED, timings unreliable" if others is not None and others > 0.1 else ""))

    print()
    for name, s in summary.items():
        ok = s["auto_time"] <= s["looped_time"]
        verdict = "met" if ok else "NOT met"
        print(f"target {name}: vectorised (auto) not slower than looped: {verdict}")
        if s["picked"] != s["faster"]:
            print(f"note {name}: auto picked {s['picked']!r} but {s['faster']!r} was faster "
                  f"({s['picked_time']:.3f} s vs {s['other_time']:.3f} s)")
    if "medium" in summary:
        s = summary["medium"]
        verdict = "met" if s["frac_auto"] >= 0.8 else "NOT met"
        print(f"target medium: >= 80% of matmul peak: {verdict} "
              f"(auto {s['frac_auto']:.1%}, fastest vectorised run {s['frac_best']:.1%})")

    if over is not None:
        flops = step_flops(widths_for(NETS["medium"]), N_EXAMPLES) * steps
        print("\nper-step overhead, medium net, one member, " + ", ".join(
            f"{label} {over[k]:.3f} s ({flops / over[k] / 1e9:.1f} GFLOP/s, {flops / over[k] / 1e9 / peak:.1%} of peak)"
            for k, label in (("bare", "bare GD fori_loop"), ("member", "MemberProgram.advance"),
                             ("train", "train() 1 seed"))))

    print()
    if over is not None:
        print(f"ratio driver step/bare GD step time medium: {over['member'] / over['bare']:.2f}")
        print(f"ratio train()/bare GD step time medium: {over['train'] / over['bare']:.2f}")
    for name, s in summary.items():
        print(f"ratio vectorised/looped speed {name}: {s['looped_time'] / s['auto_time']:.2f}")


if __name__ == "__main__":
    main()
