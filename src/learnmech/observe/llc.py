"""The local learning coefficient (LLC) by localised SGLD, for any pytree model and loss.

Contract. ``loss(params, batch) -> scalar``, the mean loss over the examples of ``batch``; ``data`` is a
pytree of arrays with a leading example axis of length ``n_data``; ``w*`` (``params_star``) is the parameter
whose LLC is wanted. With ``n`` examples (default ``n_data``), inverse temperature ``beta`` (default
``1 / ln n``, Watanabe 2013's WBIC temperature, JMLR 14) and ``nbeta = n beta``, the localised tempered
posterior is

    p(w)  ∝  exp(-U(w)),     U(w) = nbeta L_n(w) + gamma/2 |w - w*|^2,

and the estimator of Lau, Furman, Wang, Murfet & Wei 2023 (arXiv:2308.12108) is

    llc_hat = nbeta (E_p[L_n(w)] - L_n(w*)).

``E_p`` is taken along chains of stochastic-gradient Langevin dynamics (Welling & Teh 2011, ICML) started at
``w*``, with step ``eps`` (``step``) and ``xi ~ N(0, I)`` drawn afresh at every step:

    w_{t+1} = w_t - (eps/2) (nbeta grad L_B(w_t) + gamma (w_t - w*)) + sqrt(eps) xi_t.

``batch_size=None``: full-batch Langevin, ``B`` is the whole data. ``batch_size=b``: every step of every
chain draws ``b`` distinct indices (without replacement within a step, independently across steps and
chains), so ``nbeta grad L_B`` is an unbiased estimate of ``nbeta grad L_n``. The draw ``t`` of a chain is
the loss at ``w_t`` before its update, on step ``t``'s batch (``L_n(w_t)`` in full batch; as devinterp
records it, an unbiased estimate of ``L_n(w_t)`` because the batch is drawn after ``w_t``), for
``t = 0 .. draws - 1``; ``w_0 = w*``, so draw 0 carries no excess in full batch: ``burn_in`` drops the first
draws from the estimate. The estimate of chain ``c`` is ``nbeta (mean_{t >= burn_in} draw_t - L_n(w*))``
and ``llc`` is their mean over chains. (devinterp's default temperature puts the batch size where the
theory puts ``n``, ``nbeta = b / ln b``; here ``nbeta = n / ln n`` whatever ``b`` is.)

Diagnostics.
- ``acceptance``: per chain, the mean over kept steps of the Metropolis-adjusted Langevin (MALA; Roberts &
  Tweedie 1996) acceptance probability of the SGLD proposal under ``p`` (on the step's batch), the number
  devinterp's MALA callback reports to judge the step: about 0.9 or more is a well-sized step.
  Full batch costs ``draws + 1`` gradients per chain (the proposal's gradient is the next step's);
  minibatches ``2 draws`` (the proposal is evaluated again on the step's batch).
- ``runaway``: a chain whose loss runs away, up or down: a non-finite draw, or a last-quarter mean excess
  ``|nbeta (L - L*)|`` above ``runaway_ratio`` times the larger of the second quarter's and ``d / 2``
  (``d``: number of parameters; quarters of the kept draws; fewer than 4 kept draws: only the other two rules).
  ``d / 2`` is the LLC of a regular model, the most a chain that stays near a minimum ``w*`` averages (a
  quadratic loss gives ``sum_i nbeta a_i / (2 (nbeta a_i + gamma)) <= d / 2``), so a stationary chain is
  flagged only by a fluctuation of ``runaway_ratio`` times that; a loss that falls without bound (``w*``
  near a saddle or a maximum, ``nbeta`` times the negative curvature above ``gamma``) is flagged too. So is
  a chain whose estimate is below ``-d / 2``: near a minimum every draw's excess is ``>= 0`` (up to the
  batch's noise), so a chain that found loss that much lower than ``L*`` started at a saddle or a maximum,
  even when its descent ended within the burn-in and its kept draws are stationary.
- ``spread``: standard deviation of the per-chain estimates over chains (``ddof = 1``; NaN for one chain),
  ``stderr = spread / sqrt(chains)``.

Everything is traceable (chains ``vmap`` ed over their keys, steps a ``lax.scan``); memory is
``O(chains x (d + draws))`` for the chains' states and traces (``chains x draws <= MAX_DRAWS = 2^25``), plus
the loss's own activations for ``chains`` evaluations at once; no parameter history is kept. :func:`llc_probe` runs the estimator as a
:class:`learnmech.train.Probe` on the trainer's schedule.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from learnmech.train import Probe

__all__ = ["LLCEstimate", "estimate_llc", "llc_probe"]

Loss = Callable[[Any, Any], jax.Array]

MAX_DRAWS = 2**25  # chains x draws: the traces and acceptances kept, 2 x 268 MB in float64 at the limit


class LLCEstimate(NamedTuple):
    """The SGLD estimate of the LLC and its diagnostics (jax arrays; ``C`` chains, ``T`` draws).

    Attributes:
      llc: ``()`` mean of ``per_chain``.
      per_chain: ``(C,)`` ``nbeta (mean_{t >= burn_in} draw_t - loss_star)`` per chain.
      spread: ``()`` standard deviation of ``per_chain`` (``ddof = 1``).
      stderr: ``()`` ``spread / sqrt(C)``.
      loss_star: ``()`` ``L_n(w*)`` on the whole data.
      trace: ``(C, T)`` the loss at every draw, burn-in included (module docstring).
      runaway: ``(C,)`` bool, the chain's loss ran away (module docstring's rule).
      acceptance: ``(C,)`` mean MALA acceptance probability of the kept steps' proposals.
      nbeta: ``()`` ``n beta``.
    """

    llc: jax.Array
    per_chain: jax.Array
    spread: jax.Array
    stderr: jax.Array
    loss_star: jax.Array
    trace: jax.Array
    runaway: jax.Array
    acceptance: jax.Array
    nbeta: jax.Array


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _concrete(x) -> bool:
    """A Python or numpy number (checked here), not a traced value (checked by nobody)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) or hasattr(x, "item") and not isinstance(
        x, jax.core.Tracer)


def _check_settings(*, n, beta, gamma, step, chains, draws, burn_in, batch_size, runaway_ratio) -> None:
    """One ``ValueError`` line per bad setting (the data-dependent ones are checked in :func:`_check_data`)."""
    for field, value in (("chains", chains), ("draws", draws)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{field}: must be an int >= 1, got {value!r}")
    if chains * draws > MAX_DRAWS:
        raise ValueError(f"draws: chains x draws must be <= {MAX_DRAWS:,} (every draw's loss and acceptance are "
                         f"kept), got {chains} x {draws} = {chains * draws:,}")
    if not _is_int(burn_in) or not 0 <= burn_in < draws:
        raise ValueError(f"burn_in: must be an int in [0, draws) = [0, {draws}), got {burn_in!r}")
    if n is not None and (not _is_int(n) or n < 2):
        raise ValueError(f"n: must be an int >= 2 (beta = 1 / ln n), got {n!r}")
    if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size: must be None or an int >= 1, got {batch_size!r}")
    positive = {"step": step, "beta": beta, "runaway_ratio": runaway_ratio}
    for field, value in positive.items():
        if value is not None and _concrete(value) and not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"{field}: must be a finite number > 0, got {value!r}")
    if _concrete(gamma) and not (math.isfinite(float(gamma)) and float(gamma) >= 0):
        raise ValueError(f"gamma: must be a finite number >= 0, got {gamma!r}")


def _check_data(data, batch_size) -> int:
    """The common leading length ``n_data`` of ``data``'s leaves, with ``batch_size`` in ``[1, n_data]``."""
    lengths = {int(jnp.shape(x)[0]) if jnp.ndim(x) else -1 for x in jax.tree.leaves(data)}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError(f"data: need arrays sharing one leading example axis, got leading lengths {sorted(lengths)}")
    (n_data,) = lengths
    if batch_size is not None and batch_size > n_data:
        raise ValueError(f"batch_size: must lie in [1, {n_data}] (the examples in data), got {batch_size}")
    return n_data


def _mala_acceptance(potential, drift, step, w, L, g, w2, L2, g2):
    """``min(1, p(w') q(w | w') / (p(w) q(w' | w)))`` for the proposal ``q(.|w) = N(w - eps/2 grad U(w), eps I)``.

    ``log r = U(w) - U(w') + (|w' - w + eps/2 grad U(w)|^2 - |w - w' + eps/2 grad U(w')|^2) / (2 eps)``;
    a non-finite ratio counts as a rejection (0).
    """
    forward = w2 - w + 0.5 * step * drift(w, g)
    backward = w - w2 + 0.5 * step * drift(w2, g2)
    log_r = potential(w, L) - potential(w2, L2) + (forward @ forward - backward @ backward) / (2 * step)
    r = jnp.exp(jnp.minimum(log_r, 0.0))
    return jnp.where(jnp.isfinite(r), r, 0.0)


def _runaway(excess, nbeta, d: int, ratio):
    """``(C,)`` bool from ``excess (C, K)`` = kept draws minus ``L*`` (rule in the module docstring)."""
    bad = ~jnp.all(jnp.isfinite(excess), axis=1)
    K = excess.shape[1]
    if K < 4:  # no quarters to compare: non-finite draws and an estimate below a minimum's count
        return bad | (nbeta * jnp.mean(excess, axis=1) < -d / 2)
    second = jnp.abs(nbeta * jnp.mean(excess[:, K // 4: K // 2], axis=1))  # (C,)
    last = jnp.abs(nbeta * jnp.mean(excess[:, 3 * K // 4:], axis=1))  # (C,)
    below = nbeta * jnp.mean(excess, axis=1) < -d / 2  # (C,) lower than a minimum allows
    return bad | (last > ratio * jnp.maximum(second, d / 2)) | below


@functools.partial(jax.jit, static_argnames=("loss", "chains", "draws", "burn_in", "batch_size"))
def _estimate(loss, params_star, data, key, n, beta, gamma, step, runaway_ratio, *, chains, draws, burn_in,
              batch_size):
    w_star, unravel = ravel_pytree(params_star)  # (d,)
    dtype = w_star.dtype
    n = jnp.asarray(n, dtype)
    beta = 1.0 / jnp.log(n) if beta is None else jnp.asarray(beta, dtype)
    nbeta, gamma, step = n * beta, jnp.asarray(gamma, dtype), jnp.asarray(step, dtype)
    value_and_grad = jax.value_and_grad(lambda w, batch: loss(unravel(w), batch))
    potential = lambda w, L: nbeta * L + 0.5 * gamma * jnp.sum((w - w_star) ** 2)  # noqa: E731  U(w)
    drift = lambda w, g: nbeta * g + gamma * (w - w_star)  # noqa: E731  grad U(w)
    accept = functools.partial(_mala_acceptance, potential, drift, step)

    def propose(w, g, k):
        return w - 0.5 * step * drift(w, g) + jnp.sqrt(step) * jax.random.normal(k, w.shape, dtype)

    loss_star, g_star = value_and_grad(w_star, data)

    def full_batch_step(carry, k):  # carry: (w_t, L_n(w_t), grad L_n(w_t))
        w, L, g = carry
        w2 = propose(w, g, jax.random.split(k)[0])
        L2, g2 = value_and_grad(w2, data)
        return (w2, L2, g2), (L, accept(w, L, g, w2, L2, g2))

    def minibatch_step(w, k):
        k_noise, k_batch = jax.random.split(k)
        index = jax.random.choice(k_batch, jax.tree.leaves(data)[0].shape[0], (batch_size,), replace=False)
        batch = jax.tree.map(lambda x: x[index], data)
        L, g = value_and_grad(w, batch)
        w2 = propose(w, g, k_noise)
        L2, g2 = value_and_grad(w2, batch)
        return w2, (L, accept(w, L, g, w2, L2, g2))

    def chain(k):
        steps = jax.random.split(k, draws)
        if batch_size is None:
            return lax.scan(full_batch_step, (w_star, loss_star, g_star), steps)[1]
        return lax.scan(minibatch_step, w_star, steps)[1]

    trace, acceptance = jax.vmap(chain)(jax.random.split(key, chains))  # (C, T), (C, T)
    excess = trace[:, burn_in:] - loss_star  # (C, K)
    per_chain = nbeta * jnp.mean(excess, axis=1)
    spread = jnp.std(per_chain, ddof=1) if chains > 1 else jnp.asarray(jnp.nan, dtype)
    return LLCEstimate(llc=jnp.mean(per_chain), per_chain=per_chain, spread=spread,
                       stderr=spread / jnp.sqrt(jnp.asarray(chains, dtype)), loss_star=loss_star, trace=trace,
                       runaway=_runaway(excess, nbeta, w_star.size, runaway_ratio),
                       acceptance=jnp.mean(acceptance[:, burn_in:], axis=1), nbeta=nbeta)


def estimate_llc(loss: Loss, params_star, data, *, key, n: int | None = None, beta=None, gamma=100.0, step=1e-4,
                 chains: int = 8, draws: int = 200, burn_in: int = 0, batch_size: int | None = None,
                 runaway_ratio=10.0) -> LLCEstimate:
    """The SGLD estimate of the local learning coefficient at ``params_star`` (Lau et al. 2023, arXiv:2308.12108).

    ``llc_hat = nbeta (E[L_n(w)] - L_n(w*))`` under ``p(w) ∝ exp(-nbeta L_n(w) - gamma/2 |w - w*|^2)``,
    sampled by ``w <- w - (eps/2) (nbeta grad L_B(w) + gamma (w - w*)) + sqrt(eps) xi`` (module docstring).

    Args:
      loss: ``loss(params, batch) -> scalar``, the mean over the batch's examples.
      params_star: ``w*``, any pytree of float arrays (the chains run in its raveled dtype).
      data: a pytree of arrays with a leading example axis.
      key: a PRNG key; chain ``c`` uses ``split(key, chains)[c]``, its step ``t`` ``split(that, draws)[t]``,
        split again into the noise key and the batch key.
      n: the ``n`` of ``nbeta = n beta`` (int >= 2); default the data's length.
      beta: inverse temperature ``> 0``; default ``1 / ln n`` (Watanabe 2013, WBIC).
      gamma: localisation strength ``>= 0``.
      step: the SGLD step ``eps > 0``.
      chains, draws: numbers of chains and of draws (= steps) per chain, ``>= 1``.
      burn_in: the first draws left out of the estimate and the acceptance, ``[0, draws)``.
      batch_size: ``None`` (full batch) or examples per step, ``[1, n_data]``, without replacement.
      runaway_ratio: the ``> 0`` factor of the runaway rule (module docstring).

    Returns:
      :class:`LLCEstimate`. ``beta``, ``gamma``, ``step`` and ``runaway_ratio`` may be traced; the integers
      are static (one compilation per setting and loss function; ``loss`` is a static argument).

    >>> import jax, jax.numpy as jnp
    >>> quadratic = lambda w, x: 0.5 * jnp.mean(x) * jnp.sum(w ** 2)
    >>> est = estimate_llc(quadratic, jnp.zeros(3), jnp.ones(1000), key=jax.random.key(0), gamma=1.0,
    ...                    step=1e-3, chains=16, draws=500, burn_in=100)
    >>> bool(abs(est.llc - 1.5) < 0.3)  # regular model: d / 2
    True
    """
    _check_settings(n=n, beta=beta, gamma=gamma, step=step, chains=chains, draws=draws, burn_in=burn_in,
                    batch_size=batch_size, runaway_ratio=runaway_ratio)
    n_data = _check_data(data, batch_size)
    if n is None and n_data < 2:
        raise ValueError(f"n: the data hold {n_data} example; give n >= 2 (beta = 1 / ln n)")
    run = _estimate
    try:
        hash(loss)
    except TypeError:  # an unhashable loss cannot be a static argument: trace it afresh every call
        run = _estimate.__wrapped__
    return run(loss, params_star, data, key, n_data if n is None else n, beta, gamma, step, runaway_ratio,
               chains=chains, draws=draws, burn_in=burn_in, batch_size=batch_size)


def llc_probe(loss: Loss, *, key, name: str = "llc", n: int | None = None, beta=None, gamma=100.0, step=1e-4,
              chains: int = 8, draws: int = 200, burn_in: int = 0, batch_size: int | None = None,
              runaway_ratio=10.0, **schedule) -> Probe:
    """The LLC of every probed member at its current parameters, as a :class:`learnmech.train.Probe`.

    Runs :func:`estimate_llc` (same arguments) on the probe's batch (default the training data) and returns
    ``{name: llc, name_spread: spread, name_runaway: fraction of chains that ran away, name_acceptance: mean
    MALA acceptance over chains}``. The same ``key`` serves every probe step and every member: common random
    numbers, so differences along training and across members are not SGLD noise. ``schedule``: the Probe
    fields ``every``/``steps``, ``members``, ``data``, ``layout``, ``map_from``. The chains are ``vmap`` ed
    inside each member; the members are mapped (``lax.map``) at every size, ``map_from=0`` unless given.
    Measured (2-core CPU under load 9, so roughly): 8 members x 8 chains x 200 draws, tanh MLP
    ``8 -> w -> w -> 1``, n = 256, float32, best of 3: w = 4 (61 parameters) vmap 0.17 s, map 0.22 s;
    w = 8 (153) 0.77-1.14 s against 0.23-0.24 s; w = 32 (1,377) 1.82 against 1.36 s; w = 64 (4,801)
    3.52 against 3.24 s: the trainer's rule (``vmap`` below ``2**10`` parameters) would lose up to 4x.
    """
    _check_settings(n=n, beta=beta, gamma=gamma, step=step, chains=chains, draws=draws, burn_in=burn_in,
                    batch_size=batch_size, runaway_ratio=runaway_ratio)

    def fn(params, preconditioner, data):
        del preconditioner
        est = estimate_llc(loss, params, data, key=key, n=n, beta=beta, gamma=gamma, step=step, chains=chains,
                           draws=draws, burn_in=burn_in, batch_size=batch_size, runaway_ratio=runaway_ratio)
        return {name: est.llc, f"{name}_spread": est.spread,
                f"{name}_runaway": jnp.mean(est.runaway.astype(est.trace.dtype)),
                f"{name}_acceptance": jnp.mean(est.acceptance)}

    return Probe(name, fn, **{"map_from": 0, **schedule})
