#!/usr/bin/env python
"""Benchmark: devinterp's LLC estimator (PyTorch) beside learnmech's on the same reduced-rank regression.

Model and data. Reduced-rank regression ``y = B A x`` (``A`` ``(H, M)``, ``B`` ``(N, H)``; Aoyagi & Watanabe
2005, Neural Networks 18(7)), a two-layer bias-free linear network: ``nn.Sequential(Linear(M, H),
Linear(H, N))`` in torch, ``{"A", "B"}`` in jax, the same weight layout. Inputs ``x ~ N(0, I_M)``, ``n``
examples; teacher ``W0 = B0 A0`` of rank ``r`` with unit singular values: the first ``r`` rows of ``A0``
and columns of ``B0`` orthonormal, the other ``H - r`` hidden directions zero in both layers (the most
singular true point, where the Aoyagi-Watanabe value is the local one). Label noise ``sigma xi`` is
projected off the span of ``X``'s columns, so that ``W0`` is exactly the least-squares solution and ``w* =
(A0, B0)`` a minimum of ``L_n`` (without it ``L_n(w*)`` sits above the minimum and both estimates drift by
the WBIC fluctuation, Watanabe 2013, JMLR 14). Loss (both sides): ``L(w) = (1/n) sum_i (1/2) |y_i - B A
x_i|^2``, the Gaussian negative log-likelihood of unit variance less its constant.

Estimator (Lau, Furman, Wang, Murfet & Wei 2023, arXiv:2308.12108), full batch on both sides:
``w <- w - (eps/2) (nbeta grad L_n(w) + gamma (w - w*)) + sqrt(eps) xi``,
``llc_hat = nbeta (mean of the kept draws of L_n - L_n(w*))`` per chain, mean and standard deviation
(``ddof = 1``) over chains. Conventions of devinterp 1.3.2 (``estimate_learning_coeff_with_summary``,
``optim.sgld.SGLD``, read from its source) and how they are matched here:

- temperature: devinterp's default ``nbeta`` is ``b / ln b`` with ``b`` the DataLoader's batch size (times
  the gradient-accumulation steps), learnmech's ``n / ln n``. Passed explicitly: ``nbeta = n / ln n`` (equal
  anyway here, since the batch is the whole data).
- loss: devinterp calls ``evaluate(model, batch)``; its examples use ``nn.MSELoss``, a mean over the
  ``n N`` entries, i.e. ``(2/N) L``, which would scale the effective ``nbeta`` by ``2/N``. Here ``evaluate``
  returns ``L`` itself: ``0.5 * ((model(x) - y) ** 2).sum(1).mean()``.
- update: SGLD with ``lr = eps``, ``localization = gamma`` (pull towards the parameters at the start of
  the chain, ``w*``), ``noise_level = 1`` (noise ``sqrt(lr) N(0, 1)``), no weight decay, no bounding box:
  the same update as learnmech's.
- draws: devinterp records at every step the loss evaluated before that step's update (``L(w*)`` at the
  first step), as learnmech does. devinterp runs ``num_burnin_steps`` and then ``num_draws`` recorded
  steps; learnmech's ``draws`` include its ``burn_in``: learnmech ``draws = burn_in + kept``.
- ``init_loss``: devinterp averages the loss over the first ``min(chains, batches)`` batches at ``w*``;
  one full batch here, so ``init_loss = L_n(w*)``, learnmech's ``loss_star``.
- precision: devinterp keeps the trace and ``nbeta`` in float32; both sides run in float32.
- chains: devinterp runs them one after another (``cores = 1``), each seeded from ``SeedSequence(seed)``;
  learnmech ``vmap`` s them (keys split from ``key(seed)``). Different random numbers, same law.

Hyperparameters, fixed by rule before any estimate was seen: ``nbeta = n / ln n``; ``gamma = 2``
(localisation radius ``1 / sqrt(gamma) = 0.7`` of the teacher's unit scale); step ``eps = step_scale /
nbeta``, ``step_scale = 0.04`` (the stiffest curvature of ``nbeta L_n`` at ``w*`` is about ``2 nbeta``, so
``eps`` times it is about 0.08), accepted only if learnmech's MALA acceptance is at least 0.9 (printed);
burn-in ``ceil(relax / (gamma eps))`` with ``relax = 3`` (a flat direction's variance relaxes as
``exp(-gamma eps t)``, within 5% after the burn-in) and as many kept draws. ``gamma``, ``step_scale`` and
``n = 100`` are set by the time budget (devinterp cost 1.3 to 5 ms of wall time per step, DataLoader
included, on the loaded 2-core machine); the exact ``lambda`` is the ``n -> infinity``, ``gamma -> 0`` value, which both estimates
miss alike at these settings.

Timing: wall (``time.perf_counter``) and process CPU seconds (``time.process_time``, all threads) of one
call; learnmech's first call (compilation included) beside a second, warm call with the same key.
devinterp's warnings (deprecated SGLD, seeded runs, nbeta set by hand) are silenced. Torch runs on one
thread. Measured on the 2-core reference machine under load (about 7, other jobs running), December 2026:

    case (M,H,N,r)               exact (m)       learnmech  accept       devinterp  lm wall/cpu s   (1st call)  di wall/cpu s
    balanced-even (3, 3, 3, 1)       4 (1)  3.744 +- 0.523  0.986   3.810 +- 0.438    0.188/0.096  3.933/2.360  16.807/10.526
                                L_n(w*): learnmech 1.361071, devinterp init_loss 1.361071; learnmech runaway chains 0
                                difference / its standard error -0.27
    input-dominated (4, 2, 2, 1)     3 (1)  2.783 +- 0.598  0.993   2.661 +- 0.266    0.156/0.039  2.737/1.948  16.469/11.302
                                L_n(w*): learnmech 0.975416, devinterp init_loss 0.975416; learnmech runaway chains 0
                                difference / its standard error +0.53

Usage: ``python bench/llc_devinterp.py [--n 100] [--chains 8] [--seed 0]``. Needs ``pip install
devinterp==1.3.2`` (not a dependency of learnmech; devinterp 2 dropped ``estimate_learning_coeff``).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import math
import os
import platform
import sys
import time
import warnings

try:
    import torch
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
except ImportError as error:
    sys.exit(f"bench/llc_devinterp.py: needs devinterp 1.x with torch (pip install devinterp==1.3.2): {error}")

import jax
import jax.numpy as jnp
import numpy as np

from learnmech.observe.llc import estimate_llc
from learnmech.theory.learning_coefficient import reduced_rank_regression, rrr_case

CASES = ((3, 3, 3, 1), (4, 2, 2, 1))  # (M, H, N, r): balanced-even (lambda 4), input-dominated (lambda 3)
GAMMA, STEP_SCALE, RELAX, MIN_ACCEPTANCE = 2.0, 0.04, 3.0, 0.9  # the rule in the module docstring


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def teacher(M: int, H: int, N: int, r: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``(A0 (H, M), B0 (N, H))``: orthonormal first ``r`` rows / columns, zero beyond, ``B0 A0`` rank ``r``."""
    A0, B0 = np.zeros((H, M)), np.zeros((N, H))
    A0[:r] = np.linalg.qr(rng.standard_normal((M, r)))[0].T  # (r, M), orthonormal rows
    B0[:, :r] = np.linalg.qr(rng.standard_normal((N, r)))[0]  # (N, r), orthonormal columns
    return A0, B0


def dataset(M: int, H: int, N: int, r: int, n: int, sigma: float, seed: int):
    """``(X (n, M), Y (n, N), A0, B0)``, float32, noise projected off the span of ``X``'s columns."""
    rng = np.random.default_rng(seed)
    A0, B0 = teacher(M, H, N, r, rng)
    X = rng.standard_normal((n, M))  # (n, M)
    noise = sigma * rng.standard_normal((n, N))  # (n, N)
    noise -= X @ np.linalg.lstsq(X, noise, rcond=None)[0]  # X^T noise = 0: W0 is the least-squares fit
    Y = X @ (B0 @ A0).T + noise  # (n, N)
    return tuple(a.astype(np.float32) for a in (X, Y, A0, B0))


def settings(n: int, gamma: float = GAMMA, step_scale: float = STEP_SCALE, relax: float = RELAX) -> dict:
    """``nbeta = n / ln n``, ``eps = step_scale / nbeta``, ``burn_in = kept = ceil(relax / (gamma eps))``."""
    nbeta = n / math.log(n)
    step = step_scale / nbeta
    burn_in = math.ceil(relax / (gamma * step))
    return {"nbeta": nbeta, "gamma": gamma, "step": step, "burn_in": burn_in, "kept": burn_in}


def rrr_loss(params, batch):
    """``(1/n) sum_i (1/2) |y_i - B A x_i|^2`` on ``batch = (x (b, M), y (b, N))``."""
    x, y = batch
    f = x @ params["A"].T @ params["B"].T  # (b, N)
    return 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=-1))


def timed(fn):
    """``(result, wall seconds, CPU seconds)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_learnmech(X, Y, A0, B0, s: dict, chains: int, seed: int):
    """learnmech's estimate, first (compiling) and warm call: ``(estimate, (wall, cpu), (wall, cpu) first)``."""
    params = {"A": jnp.asarray(A0), "B": jnp.asarray(B0)}
    data = (jnp.asarray(X), jnp.asarray(Y))

    def call():
        est = estimate_llc(rrr_loss, params, data, key=jax.random.key(seed), beta=s["nbeta"] / X.shape[0],
                           gamma=s["gamma"], step=s["step"], chains=chains, draws=s["burn_in"] + s["kept"],
                           burn_in=s["burn_in"])
        return jax.block_until_ready(est)

    _, wall0, cpu0 = timed(call)
    est, wall, cpu = timed(call)
    return est, (wall, cpu), (wall0, cpu0)


def run_devinterp(X, Y, A0, B0, s: dict, chains: int, seed: int):
    """devinterp's ``estimate_learning_coeff_with_summary``: ``(results dict, (wall, cpu))``."""
    M, H, N = A0.shape[1], A0.shape[0], B0.shape[0]
    model = torch.nn.Sequential(torch.nn.Linear(M, H, bias=False), torch.nn.Linear(H, N, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(A0))
        model[1].weight.copy_(torch.from_numpy(B0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)),
                                         batch_size=X.shape[0], shuffle=False)  # one full batch

    def evaluate(net, batch):  # L = mean_i (1/2) |y_i - f(x_i)|^2, not nn.MSELoss (= (2/N) L)
        x, y = batch
        return 0.5 * ((net(x) - y) ** 2).sum(dim=1).mean()

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return estimate_learning_coeff_with_summary(
                model, loader, evaluate=evaluate, sampling_method=SGLD,
                optimizer_kwargs={"lr": s["step"], "localization": s["gamma"], "nbeta": s["nbeta"]},
                num_draws=s["kept"], num_chains=chains, num_burnin_steps=s["burn_in"], seed=seed, verbose=False)

    out, wall, cpu = timed(call)
    return out, (wall, cpu)


def devinterp_init_loss(di: dict, nbeta: float) -> float:
    """devinterp's ``init_loss`` (not among its results), from ``llc_0 = nbeta (mean trace_0 - init_loss)``."""
    return float(np.mean(di["loss/trace"][0]) - di["llc-chain/0"] / nbeta)


def row(label: str, exact, est, di: dict, nbeta: float, lm_t, lm_first, di_t) -> str:
    """One table line plus a line of diagnostics: initial losses, runaway chains and the difference of the
    means over its standard error ``(llc_lm - llc_di) / sqrt((s_lm^2 + s_di^2) / C)`` (``s``: spread over ``C``
    chains; about N(0, 1) when both estimators sample the same law)."""
    accept = float(jnp.mean(est.acceptance))
    flag = " " if accept >= MIN_ACCEPTANCE and not bool(jnp.any(est.runaway)) else "!"
    lm = f"{float(est.llc):.3f} +- {float(est.spread):.3f}"
    dv = f"{di['llc/mean']:.3f} +- {di['llc/std']:.3f}"
    times = [f"{w:.3f}/{c:.3f}" for w, c in (lm_t, lm_first, di_t)]
    exact_s = f"{exact.lam:g} ({exact.multiplicity})"
    line = f"{label:<28}{exact_s:>10}{lm:>16}{accept:>7.3f}{flag}{dv:>16}{times[0]:>15}{times[1]:>13}{times[2]:>15}"
    chains = est.per_chain.shape[0]
    z = (float(est.llc) - di["llc/mean"]) / math.sqrt((float(est.spread) ** 2 + di["llc/std"] ** 2) / chains)
    return (line + f"\n{'':28}L_n(w*): learnmech {float(est.loss_star):.6f}, devinterp init_loss "
            f"{devinterp_init_loss(di, nbeta):.6f}; learnmech runaway chains {int(jnp.sum(est.runaway))}; "
            f"difference / its standard error {z:+.2f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="examples, full batch (default 100)")
    ap.add_argument("--chains", type=int, default=8, help="SGLD chains (default 8, the estimator's)")
    ap.add_argument("--sigma", type=float, default=1.0, help="label noise std before projection (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="data seed and chain seed (default 0)")
    args = ap.parse_args(argv)
    if args.n < 10 or args.chains < 2:
        sys.exit("bench/llc_devinterp.py: --n must be >= 10 and --chains >= 2")
    torch.set_num_threads(1)
    s = settings(args.n)
    print(f"bench/llc_devinterp.py: reduced-rank regression, n = {args.n}, sigma = {args.sigma} (projected), "
          f"float32, full batch; nbeta = n/ln n = {s['nbeta']:.3f}, gamma = {s['gamma']}, "
          f"step = {s['step']:.3e}, chains {args.chains}, burn-in {s['burn_in']}, kept draws {s['kept']}")
    print(f"jax {jax.__version__}, torch {torch.__version__} (1 thread), devinterp {metadata.version('devinterp')}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}, load average {loadavg()}")
    head = (f"{'case (M,H,N,r)':<28}{'exact (m)':>10}{'learnmech':>16}{'accept':>8}{'devinterp':>16}"
            f"{'lm wall/cpu s':>15}{'(1st call)':>13}{'di wall/cpu s':>15}")
    print(head)
    for M, H, N, r in CASES:
        X, Y, A0, B0 = dataset(M, H, N, r, args.n, args.sigma, args.seed)
        exact = reduced_rank_regression(M, H, N, r)
        est, lm_t, lm_first = run_learnmech(X, Y, A0, B0, s, args.chains, args.seed)
        di, di_t = run_devinterp(X, Y, A0, B0, s, args.chains, args.seed)
        print(row(f"{rrr_case(M, H, N, r)} {(M, H, N, r)}", exact, est, di, s["nbeta"], lm_t, lm_first, di_t))
    print(f"load average at the end: {loadavg()}  (+- : standard deviation over chains, ddof 1; "
          f"'!': acceptance below {MIN_ACCEPTANCE} or a runaway chain)")


if __name__ == "__main__":
    main()
