#!/usr/bin/env python
"""Benchmark: language-model training throughput (tokens/s) and model FLOP utilisation of ``train_lm``
against a hand-written JAX training loop of the same transformer.

Model and data: the decoder-only transformer of :mod:`learnmech.nets.transformer` (SP, untied, learned
positions, 2 layers, 4 heads, ``seq_len`` 64) at ``d_model`` 128 and 256, float32, trained on the bundled
standard-library byte corpus (:func:`learnmech.data.text.stdlib_corpus`), batch 16 windows of 65 bytes
(1,024 predicted tokens per step), ``--steps`` steps. Optimiser: AdamW (``b1`` 0.9, ``b2`` 0.95, ``eps`` 1e-8,
weight decay 0.1 on matrices only, :func:`~learnmech.nets.transformer.decay_mask`) after global-norm clipping
at 1, peak rate ``LEARNING_RATE``, 5% linear warm-up then a cosine to 10% of the peak.

Contestants (each timed with compilation excluded):

- ``learnmech``: one :func:`learnmech.lm_train.train_lm` call (one member, the recipe above): the driver
  with everything it does for a language model: ``sampling="epochs"`` (each window read once per pass, in a
  keyed order), ``member_steps``, the divergence checks (the per-step training loss is off, as in
  ``LMRecipe``'s default), and the held-out loss of
  64 validation windows at the recipe's 8 log-spaced steps and at the end (a probe). ``train_lm`` runs its
  program in chunks between those steps and reports ``progress`` after each; the first chunk (step 0)
  compiles the program and runs no step, so the time from its ``progress`` call to the last one is what is
  timed: every training step and every held-out evaluation after step 0, on one compiled program (the
  step count is a traced argument). Its own wall time (``seconds``, compilation and set-up included) is
  printed as ``setup``.
- ``baseline``: a hand-written loop over the same ``init`` and ``loss`` with ``optax.adamw`` after
  ``optax.clip_by_global_norm`` and ``optax.warmup_cosine_decay_schedule`` (the same rule written with optax's
  own pieces), batches of windows drawn with replacement (``jax.random.randint`` of ``fold_in(key, step)``)
  inside the compiled step. Two ways to drive it, both timed: ``fori`` (a jitted ``lax.fori_loop`` over a
  traced number of steps) and ``python`` (a Python loop over a jitted, buffer-donating step). The faster is
  the baseline. It is timed twice: training alone (``train only``), and doing the same work as
  ``learnmech`` (``same work``: the held-out loss of the same windows at the same steps, fetched to the host
  each time, timed from after the step-0 evaluation), which is the comparison the ratio uses.

Ensemble row (``d_model`` ``ENSEMBLE_WIDTH``): ``train_lm`` with the 4 learning rates ``ENSEMBLE_RATES`` in
one call, against 4 same-work baseline runs in sequence (one compiled program, the rate an argument; only
the runs are timed).

FLOPs: :func:`~learnmech.nets.transformer.flops_per_token` (``6 N_matmul + 6 L T d``, Kaplan et al. 2020,
arXiv:2001.08361) times training tokens; the held-out evaluations are not counted (each reads 64 x 64
tokens forward, about 1.3 training steps of work: 8 of them are about 10% of the work at 100 steps). Model FLOP utilisation (MFU) = that rate / the machine's float32 matmul peak, measured
in the same run: a jitted ``jnp.dot`` of 2048 x 2048 matrices (at the start and at the end, the larger kept:
the denominator of ``MFU``) and of the model's size class, ``(B T) x d`` times ``d x 4 d`` (its MLP input
layer, the largest matmul of a step; ``MFU(class)`` uses it).

Before them, the same-work comparison in the process's CPU seconds (``time.process_time`` over the same spans,
fastest of the repeats): the baseline's over ``learnmech``'s, >= 1 when the driver spends no more CPU. It counts
work, not waiting, so another job on the machine moves it far less than the wall-clock ratios.

Printed LAST, one greppable line per row (``learnmech`` tokens/s over the same-work baseline's; >= 1
means the driver is not slower)::

    ratio learnmech/baseline tokens/s d128: 1.01

Usage: ``python bench/lm.py [--steps 100] [--quick] [--repeats 3] [--profile]`` (``--quick``: 30 steps,
``d_model`` 128 only, a smoke run of every path; ``--profile``: also time the driver with each of its
language-model features turned off, one at a time, on ``train`` directly).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ensemble import CpuShare, loadavg, matmul_peak  # bench/ensemble.py: run as python bench/lm.py
from learnmech.data.text import stdlib_corpus, windows
from learnmech.lm_train import LMRecipe, train_lm, validation_windows
from learnmech.nets import transformer as tf
from learnmech.train import Probe, train
from learnmech.train.schedule import log_schedule
from timing import best_time

WIDTHS = (128, 256)
N_LAYERS = 2
N_HEADS = 4
SEQ_LEN = 64
BATCH = 16
LEARNING_RATE = 3e-3
ENSEMBLE_RATES = (1e-3, 2e-3, 4e-3, 8e-3)
ENSEMBLE_WIDTH = 128
RECIPE = LMRecipe(seq_len=SEQ_LEN, batch_size=BATCH, schedule="cosine", clip=1.0, weight_decay=0.1)
PEAK_SIZE = 2048
CLASS_REPEATS = 10


# --------------------------------------------------------------------------- machine peak


def class_peak(cfg: tf.TransformerConfig, repeats: int = CLASS_REPEATS) -> float:
    """GFLOP/s of the model's largest matmul, ``(B T, d) @ (d, ff_ratio d)`` in float32 (best of ``repeats``)."""
    m, k, n = BATCH * SEQ_LEN, cfg.d_model, cfg.ff_ratio * cfg.d_model
    ka, kb = jax.random.split(jax.random.key(k))
    a = jax.random.normal(ka, (m, k), jnp.float32)
    b = jax.random.normal(kb, (k, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    return 2.0 * m * k * n / best_time(lambda: dot(a, b), repeats) / 1e9


# --------------------------------------------------------------------------- the hand-written baseline


def baseline_optimizer(cfg: tf.TransformerConfig, peak, steps: int) -> optax.GradientTransformation:
    """Clipping then AdamW, warm-up then cosine to ``final_fraction`` of ``peak``: RECIPE written with optax.

    ``peak`` may be traced (the state does not depend on it), so one compiled program serves every rate.
    """
    warmup = max(1, int(round(RECIPE.warmup * steps)))
    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps, end_value=RECIPE.final_fraction)
    rate = lambda count: peak * unit(count)  # noqa: E731  (optax's schedule needs a concrete peak)
    return optax.chain(optax.clip_by_global_norm(RECIPE.clip),
                       optax.adamw(rate, b1=RECIPE.b1, b2=RECIPE.b2, eps=RECIPE.eps,
                                   weight_decay=RECIPE.weight_decay, mask=tf.decay_mask(cfg)))


class Baseline:
    """A plain training loop: carry ``(params, opt_state, step)``, one compiled step, windows drawn inside it.

    Every program takes the peak learning rate as an argument: runs at several rates share one compilation.
    """

    def __init__(self, cfg: tf.TransformerConfig, data: jax.Array, held_out: jax.Array, steps: int):
        n = data.shape[0]
        key = jax.random.key(0)

        def step(carry, peak):
            params, opt_state, t = carry
            index = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, n)  # (B,)
            loss, grads = jax.value_and_grad(tf.loss)(params, data[index], cfg)
            updates, opt_state = baseline_optimizer(cfg, peak, steps).update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, t + 1

        def start(k):
            params = tf.init(k, cfg)
            return params, baseline_optimizer(cfg, 1.0, steps).init(params), jnp.int32(0)

        self.step = jax.jit(step, donate_argnums=0)
        self.run = jax.jit(lambda carry, peak, n: jax.lax.fori_loop(0, n, lambda _, c: step(c, peak), carry),
                           donate_argnums=0)
        self.evaluate = jax.jit(lambda params: tf.loss(params, held_out, cfg))
        self.start = jax.jit(start)

    def fresh(self):
        """A new carry from seed 0, computed before any timing starts."""
        return jax.block_until_ready(self.start(jax.random.key(0)))

    def advance(self, carry, peak: float, n: int, how: str):
        peak = jnp.float32(peak)
        if how == "fori":
            return self.run(carry, peak, jnp.int32(n))
        for _ in range(n):
            carry = self.step(carry, peak)
        return carry

    def warm_up(self) -> None:
        """Compile every program and run each once."""
        carry = self.advance(self.fresh(), LEARNING_RATE, 1, "fori")
        carry = self.advance(carry, LEARNING_RATE, 1, "python")
        float(self.evaluate(carry[0]))

    def time_train(self, peak: float, steps: int, how: str) -> tuple[float, float]:
        """Seconds for ``steps`` training steps (``how``: ``"fori"`` or ``"python"``) and the held-out loss after."""
        carry = self.fresh()
        start = time.perf_counter()
        carry = jax.block_until_ready(self.advance(carry, peak, steps, how))
        seconds = time.perf_counter() - start
        return seconds, float(self.evaluate(carry[0]))

    def time_same_work(self, peak: float, val_steps: np.ndarray, how: str) -> tuple[float, float, float]:
        """Seconds to train to ``val_steps[-1]`` with the held-out loss fetched at every ``val_steps`` after 0, the
        loss after, and the process's CPU seconds over the same span."""
        carry = self.fresh()
        float(self.evaluate(carry[0]))  # step 0, before the clock as in train_lm's first chunk
        start, cpu, done, value = time.perf_counter(), time.process_time(), 0, float("nan")
        for target in val_steps[val_steps > 0].tolist():
            carry = self.advance(carry, peak, target - done, how)
            value, done = float(self.evaluate(carry[0])), target
        return time.perf_counter() - start, value, time.process_time() - cpu


# --------------------------------------------------------------------------- learnmech


def time_train_lm(cfg: tf.TransformerConfig, corpus, rates, steps: int) -> dict:
    """One ``train_lm`` call; seconds from the step-0 chunk's ``progress`` to the last (module docstring)."""
    marks: list[tuple[int, float, float]] = []
    result = train_lm(cfg, corpus, learning_rates=list(rates), steps=steps, seeds=1, recipe=RECIPE,
                      progress=lambda done, total: marks.append((done, time.perf_counter(), time.process_time())))
    if marks[0][0] != 0 or marks[-1][0] != steps:
        raise RuntimeError(f"train_lm's first chunk is not step 0 or its last is not {steps}: {marks}")
    return {"seconds": marks[-1][1] - marks[0][1], "cpu": marks[-1][2] - marks[0][2],
            "setup": result.seconds - (marks[-1][1] - marks[0][1]),
            "chunks": len(marks), "val_loss": np.asarray(result.val_loss).ravel(),
            "diverged": int(np.sum(result.diverged))}


# --------------------------------------------------------------------------- where the driver's time goes

PROFILE_CHANGES = {
    "as train_lm": {},
    "sampling with_replacement": {"sampling": "with_replacement"},
    "no member_steps": {"member_steps": None},
    "with the per-step loss (LMRecipe train_loss)": {"step_loss": True},
    "no probe (observe only at the end)": {"probes": []},
    "no epochs, member_steps or probe": {"sampling": "with_replacement", "member_steps": None, "probes": []},
}


def driver_profile(cfg: tf.TransformerConfig, data, held_out, val_steps: np.ndarray, steps: int) -> dict[str, float]:
    """Seconds of ``train`` called as ``train_lm`` calls it, then with each of PROFILE_CHANGES (timed as there)."""
    probe = Probe("val_loss", lambda params, P, batch: tf.loss(params, batch, cfg), steps=val_steps.tolist(),
                  data=held_out)
    base = dict(init=lambda key: tf.init(key, cfg), loss=lambda params, batch: tf.loss(params, batch, cfg),
                data=data, optimizer=RECIPE.update_rule(cfg), seeds=[0],
                grid={"steps": np.array([steps], np.int32), "learning_rate": np.array([LEARNING_RATE], np.float32)},
                steps=[0, steps], record_loss=False, lr_multipliers=tf.lr_multipliers(cfg), batch_size=BATCH,
                sampling="epochs", member_steps="steps", probes=[probe], step_loss=False, blowup=None,
                layout="auto")
    out = {}
    for name, change in PROFILE_CHANGES.items():
        marks: list[float] = []
        train(**{**base, **change}, progress=lambda done, total: marks.append(time.perf_counter()))
        out[name] = time.perf_counter() - marks[0]  # train's end: its result is fetched (synchronised)
    return out


# --------------------------------------------------------------------------- report


def config(d_model: int) -> tf.TransformerConfig:
    return tf.TransformerConfig(seq_len=SEQ_LEN, d_model=d_model, n_layers=N_LAYERS, n_heads=N_HEADS)


def measure_width(cfg, corpus, data, held_out, val_steps, steps: int, repeats: int) -> dict:
    """Every contestant at one width; the fastest of ``repeats`` of each, taken in turns (a slow spell of the
    machine then hits every contestant alike). The same-work baseline is driven the way that was faster in the
    first turn."""
    base = Baseline(cfg, data, held_out, steps)
    base.warm_up()
    times: dict[str, float] = {}
    losses: dict[str, float] = {}
    lm, how = None, None
    for _ in range(repeats):
        for way in ("fori", "python"):
            t, loss = base.time_train(LEARNING_RATE, steps, way)
            times[way], losses[way] = min(times.get(way, np.inf), t), loss
        how = how or min(("fori", "python"), key=times.get)
        run = time_train_lm(cfg, corpus, [LEARNING_RATE], steps)
        lm = run if lm is None or run["seconds"] < lm["seconds"] else lm
        times["lm cpu"] = min(times.get("lm cpu", np.inf), run["cpu"])
        t, losses["same"], cpu = base.time_same_work(LEARNING_RATE, val_steps, how)
        times["same"], times["same cpu"] = min(times.get("same", np.inf), t), min(times.get("same cpu", np.inf), cpu)
    return {"times": times, "losses": losses, "how": how, "lm": lm, "base": base}


def measure_ensemble(base: Baseline, how: str, cfg, corpus, val_steps, steps: int, repeats: int) -> dict:
    """train_lm with ENSEMBLE_RATES in one call against one same-work baseline run per rate, in sequence
    (each the fastest of ``repeats``, taken in turns).

    The baseline runs reuse ``base``'s compiled programs (the rate is an argument), as a user's script
    rerun with another rate would after a persistent compilation cache: only the runs are timed.
    """
    lm, seconds, losses = None, np.inf, []
    for _ in range(repeats):
        run = time_train_lm(cfg, corpus, ENSEMBLE_RATES, steps)
        lm = run if lm is None or run["seconds"] < lm["seconds"] else lm
        timed = [base.time_same_work(rate, val_steps, how) for rate in ENSEMBLE_RATES]
        seconds, losses = min(seconds, sum(t for t, _, _ in timed)), [loss for _, loss, _ in timed]
    return {"lm": lm, "seconds": seconds, "losses": losses, "how": how}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="training steps per run (default 100)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 30 steps, d_model 128 only")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per contestant, taken in turns, fastest kept "
                                                         "(default 3)")
    ap.add_argument("--profile", action="store_true", help="also time the driver with each LM feature off")
    args = ap.parse_args(argv)
    steps, widths = (30, (128,)) if args.quick else (args.steps, WIDTHS)
    repeats = max(1, args.repeats)
    share = CpuShare()

    print(f"bench/lm.py: {steps} steps, batch {BATCH} x seq_len {SEQ_LEN}, {N_LAYERS} layers, d_model "
          f"{list(widths)}, AdamW + clip + cosine, peak lr {LEARNING_RATE}, float32, stdlib corpus")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device), "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {loadavg()}")
    corpus = stdlib_corpus()
    data = jax.device_put(windows(corpus.train, SEQ_LEN))  # (n, T + 1) uint8
    held_out = jax.device_put(validation_windows(corpus, SEQ_LEN, RECIPE.eval_windows))
    val_steps = np.unique(np.concatenate([log_schedule(steps, RECIPE.observations), [steps]]))
    print(f"corpus {corpus.describe()['sha256'][:12]}: {data.shape[0]:,} training windows; held-out loss of "
          f"{held_out.shape[0]} windows at steps {val_steps.tolist()}")

    peak = max(matmul_peak((PEAK_SIZE,)).values())
    classes = {d: class_peak(config(d)) for d in widths}
    print(f"float32 matmul peak: {PEAK_SIZE}^2 {peak:.1f} GFLOP/s; size class (B T) x d @ d x 4d: "
          + ", ".join(f"d {d}: {g:.1f} GFLOP/s" for d, g in classes.items()), flush=True)

    results = {}
    for d in widths:
        cfg = config(d)
        results[d] = measure_width(cfg, corpus, data, held_out, val_steps, steps, repeats)
        print(f"d_model {d}: measured", flush=True)
    r = results[ENSEMBLE_WIDTH]
    ensemble = measure_ensemble(r["base"], r["how"], config(ENSEMBLE_WIDTH), corpus, val_steps, steps, repeats)
    profile = None
    if args.profile:
        profile = driver_profile(config(ENSEMBLE_WIDTH), data, held_out, val_steps, steps)

    end_peak = max(matmul_peak((PEAK_SIZE,)).values())
    print(f"float32 matmul peak at the end: {end_peak:.1f} GFLOP/s")
    peak = max(peak, end_peak)

    tokens = steps * BATCH * SEQ_LEN
    print(f"\n{'d_model':>7} {'contestant':<28} {'time [s]':>9} {'setup [s]':>10} {'tokens/s':>10} {'GFLOP/s':>8} "
          f"{'MFU':>6} {'MFU(class)':>10} {'val loss':>9}")
    print("-" * 103)

    def row(d, name, seconds, members=1, setup=None, loss=float("nan")):
        rate = members * tokens / seconds
        gflops = rate * tf.flops_per_token(config(d)) / 1e9
        setup_text = "" if setup is None else f"{setup:.2f}"
        print(f"{d:>7} {name:<28} {seconds:>9.3f} {setup_text:>10} {rate:>10,.0f} {gflops:>8.1f} "
              f"{gflops / peak:>6.1%} {gflops / classes[d]:>10.1%} {loss:>9.4f}")
        return rate

    speeds = {}
    for d, r in results.items():
        t, lm = r["times"], r["lm"]
        speeds[d] = {"lm": row(d, "learnmech train_lm", lm["seconds"], setup=lm["setup"], loss=lm["val_loss"][0])}
        for how in ("fori", "python"):
            mark = " *" if how == r["how"] else ""
            speeds[d][how] = row(d, f"baseline {how}{mark}", t[how], loss=r["losses"][how])
        speeds[d]["same"] = row(d, f"baseline {r['how']} same work", t["same"], loss=r["losses"]["same"])
    e = ensemble
    k = len(ENSEMBLE_RATES)
    speeds["ensemble"] = {"lm": row(ENSEMBLE_WIDTH, f"learnmech {k} rates", e["lm"]["seconds"], members=k,
                                    setup=e["lm"]["setup"], loss=float(np.min(e["lm"]["val_loss"]))),
                          "same": row(ENSEMBLE_WIDTH, f"baseline {k} runs ({e['how']})", e["seconds"], members=k,
                                      loss=float(np.min(e["losses"])))}
    print("(time: the timed steps only; setup: train_lm's compilation, initialisation and step-0 chunk; "
          "* the faster baseline; same work: with the held-out evaluations train_lm makes; ensemble val loss: "
          "the best rate's; MFU: of the 2048^2 peak, MFU(class): of the model's size-class matmul)")
    if profile is not None:
        base_rate = speeds[ENSEMBLE_WIDTH][results[ENSEMBLE_WIDTH]["how"]]
        print(f"\ndriver profile, d_model {ENSEMBLE_WIDTH}, train() with train_lm's arguments and one change each "
              f"(tokens/s, and / the train-only baseline's {base_rate:,.0f}):")
        for name, seconds in profile.items():
            print(f"  {name:<34} {seconds:>8.3f} s {tokens / seconds:>10,.0f} tokens/s  {tokens / seconds / base_rate:.2f}")

    others = share.others()
    print(f"load average at the end: {loadavg()}; CPU taken by other processes (and steal) during this run: "
          + ("n/a" if others is None else f"{others:.0%} of the machine")
          + (" -- CONTENDED, timings unreliable" if others is not None and others > 0.1 else ""))
    print()
    for d, r in results.items():  # CPU seconds of the whole process: less sensitive to other load than wall time
        print(f"ratio baseline/learnmech process CPU seconds, same work, d{d}: "
              f"{r['times']['same cpu'] / r['times']['lm cpu']:.3f}")
    for d in results:
        print(f"ratio learnmech/baseline train-only tokens/s d{d}: "
              f"{speeds[d]['lm'] / max(speeds[d]['fori'], speeds[d]['python']):.2f}")
    print(f"ratio learnmech/baseline tokens/s ensemble of {k} d{ENSEMBLE_WIDTH}: "
          f"{speeds['ensemble']['lm'] / speeds['ensemble']['same']:.2f}")
    for d in results:
        print(f"ratio learnmech/baseline tokens/s d{d}: {speeds[d]['lm'] / speeds[d]['same']:.2f}")


if __name__ == "__main__":
    main()
