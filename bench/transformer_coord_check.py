"""Coordinate check of a user's flax nnx transformer under muP: the attention rule and the embedding init.

Run as ``python bench/transformer_coord_check.py [--widths 64 128 256 512] [--steps 3] [--seeds 0]``.

The model is ``tests/models_transformer.py`` (2 pre-LN blocks, 4 heads, characters of Python
source), with muP applied in one call through ``learnmech.nets.mup`` (Adam, base width 64) and
measured with ``learnmech.observe.coord_check``. It prints

1. the attention-logit UPDATE slope (log-log change of the logits against width, per step and at
   the worst step) with ``1/sqrt(d_head)`` logits and with ``c/d_head`` logits (TP-V,
   arXiv:2203.03466, Section 4), with and without a zero-initialised query;
2. the embedding's init-RMS slope with flax's default ``nnx.Embed`` init (std ``1/sqrt(d)``) and
   with a width-independent std (``1/sqrt(base width)``, so the base model is unchanged);
3. every layer's init and worst-step update slope for the configuration muP recommends.

Expected (derivation in ``tests/test_attention_mup.py``): the two rules' logit-update slopes
differ by 1/2, exactly at step 1 with a zero query; ``c/d_head`` is the flat one once the query
and key updates are correlated (the update of each is built from the other).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import models_transformer as mt  # noqa: E402  (tests/ holds the shared user models)
from timing import machine_line  # noqa: E402

from learnmech.observe.coords import coord_check  # noqa: E402

BASE = 64
LR = 1e-2  # large on purpose, as coordinate checks should be (mup README, "Tips for Coord Check")


def step_slopes(check) -> np.ndarray:
    """``(K, L)`` log-log slope of each layer's change against width, per step."""
    x = np.log(check.widths.astype(np.float64))
    return np.stack([np.polyfit(x, np.log(check.change[:, t]), 1)[0] for t in range(check.change.shape[1])])


def worst(check) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: the slope of largest magnitude over the steps, and its step (1-based)."""
    slopes = step_slopes(check)  # (K, L)
    k = np.argmax(np.abs(slopes), axis=0)  # (L,)
    return slopes[k, np.arange(slopes.shape[1])], k + 1


def run(widths, steps, seeds, **cfg):
    x, y = mt.sequences(48, seed=0)
    data, probe = (jnp.asarray(x[:32]), jnp.asarray(y[:32])), jnp.asarray(x[32:])  # 32 train, 16 probe
    start = time.perf_counter()
    check = coord_check(lambda w: mt.coord_model(mt.Config(d_model=w, base_d_model=BASE, **cfg), lr=LR),
                        widths, data=data, probe=probe, steps=steps, seeds=seeds,
                        compiler_options={"xla_backend_optimization_level": 0})
    return check, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"widths {args.widths}, {args.steps} Adam steps at lr {LR}, seeds {args.seeds}, base width {BASE}, "
          f"4 heads (d_head = width/4), 32 training and 16 probe sequences of 32 characters")
    fixed = BASE ** -0.5
    configs = {  # name: (rule, zero_query, embed_std)
        "1/sqrt(d_head), flax embed": ("sp", False, None),
        "c/d_head, flax embed": ("mup", False, None),
        "1/sqrt(d_head)": ("sp", False, fixed),
        "c/d_head": ("mup", False, fixed),
        "1/sqrt(d_head), zero query": ("sp", True, fixed),
        "c/d_head, zero query": ("mup", True, fixed),
    }
    checks = {}
    for name, (rule, zq, std) in configs.items():
        checks[name], seconds = run(args.widths, args.steps, args.seeds, rule=rule, zero_query=zq, embed_std=std)
        print(f"  ran {name!r} in {seconds:.0f} s")
    logit_layers = [mt.LAYER_NAMES.index(f"attn_logits_{i}") for i in range(mt.N_LAYERS)]

    print("\n1. Attention-logit update slope (log-log change vs width), muP Adam everywhere")
    head = "".join(f"  step {t:<3d}" for t in range(1, args.steps + 1))
    print(f"{'logits':<30s}{'layer':<15s}{head}  worst (step)")
    for name, check in checks.items():
        slopes, (w, k) = step_slopes(check), worst(check)
        for l in logit_layers:
            per_step = "".join(f"  {s:+8.3f}" for s in slopes[:, l])
            print(f"{name:<30s}{mt.LAYER_NAMES[l]:<15s}{per_step}  {w[l]:+.3f} ({k[l]})")

    print("\n2. Embedding init RMS slope (log-log vs width)")
    for name in ("c/d_head, flax embed", "c/d_head"):
        init = "flax nnx.Embed default (std 1/sqrt(d))" if "flax" in name else f"width-independent std {fixed:.3f}"
        print(f"{init:<45s}{checks[name].rms_slope[0]:+.3f}")

    for name in ("c/d_head", "c/d_head, flax embed"):
        check = checks[name]
        w, k = worst(check)
        print(f"\n3. Per layer, muP Adam, {name}: init RMS slope, worst-step update slope (step), change ratio "
              f"widest/narrowest at that step")
        for l, layer in enumerate(mt.LAYER_NAMES):
            ratio = check.change[-1, k[l] - 1, l] / check.change[0, k[l] - 1, l]
            print(f"  {layer:<15s}{check.rms_slope[l]:+8.3f}  {w[l]:+8.3f} ({k[l]})  {ratio:7.2f}")


if __name__ == "__main__":
    main()
