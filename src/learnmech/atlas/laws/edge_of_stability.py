"""laws.edge-of-stability — sharpness settles at the stability threshold of the optimiser.

Statement (Cohen, Kaur, Li, Kolter & Talwalkar 2021, arXiv:2103.00065; Cohen et al. 2022,
arXiv:2207.14484 for adaptive methods): under full-batch gradient descent the top Hessian eigenvalue
``lambda_max(H)`` first rises (progressive sharpening) and then hovers at ``2 / eta``; with
heavy-ball momentum ``beta`` it hovers at ``(2 + 2 beta) / eta``; with Adam the *preconditioned*
sharpness ``lambda_max(P^{-1} H)`` hovers at ``(2 + 2 beta1) / ((1 - beta1) eta)`` (``38 / eta`` at
``beta1 = 0.9``).

Conventions: ``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` (:func:`learnmech.observe.mse`, summed over the
outputs); full batch; time is the step count; a "run" is one optimiser with one learning rate.

One recursion for the three optimisers. Every run here is
``m_t = a m_{t-1} + c g_t``, ``w_t = w_{t-1} - eta P_t^{-1} m_t`` (``m_0 = 0``, ``g_t`` the gradient
at ``w_{t-1}``, ``P_t`` diagonal and positive):

- gradient descent: ``a = 0``, ``c = 1``, ``P = I``;
- heavy ball in optax's convention (``optax.sgd(eta, momentum=beta)``: ``v <- g + beta v``,
  ``w <- w - eta v``): ``a = beta``, ``c = 1``, ``P = I``;
- Adam (``optax.adam``): ``a = beta1``, ``c = 1 - beta1``, and
  ``P_t = (1 - beta1^t) (sqrt(nu_t / (1 - beta2^t)) + eps)`` with ``nu_t`` optax's second moment:
  optax's step ``eta mu_hat / (sqrt(nu_hat) + eps)`` with ``mu_hat = m_t / (1 - beta1^t)`` is exactly
  ``eta P_t^{-1} m_t`` (:func:`learnmech.observe.adam_preconditioner`; the momentum bias correction
  lives in ``P``, so ``m`` is a plain EMA). ``tests/test_edge_of_stability.py`` checks the recursion
  against optax step by step.

Derivation of the threshold (the stability of heavy ball on a quadratic). Freeze ``P`` and take
``L = w^T H w / 2``, so ``g = H w``. In the eigenbasis of the symmetric ``P^{-1/2} H P^{-1/2}``
(similar to ``P^{-1} H``; coordinates ``u = P^{1/2} w``) every mode with eigenvalue ``lambda``
evolves on its own. Using ``eta m_{t-1} = w_{t-2} - w_{t-1}`` (per mode),
``w_t = (1 + a - eta c lambda) w_{t-1} - a w_{t-2}``, with characteristic polynomial
``z^2 - (1 + a - eta c lambda) z + a``. For ``0 <= a < 1`` both roots lie inside the unit circle
(Schur-Cohn / Jury conditions: ``|a| < 1`` and ``|1 + a - eta c lambda| < 1 + a``) iff
``0 < eta c lambda < 2 + 2a``; at ``eta c lambda = 2 + 2a`` the root ``z = -1`` appears (the
period-two flip along the top eigenvector). Hence the run is stable iff
``lambda_max(P^{-1} H) < (2 + 2a) / (c eta)``: ``2 / eta`` for GD, ``(2 + 2 beta) / eta`` for optax's
heavy ball, ``(2 + 2 beta1) / ((1 - beta1) eta)`` for Adam. (With the EMA convention
``v <- beta v + (1 - beta) g`` heavy ball would have Adam's ``(2 + 2 beta)/((1 - beta) eta)`` instead.)
Edge of stability: the training itself raises the sharpness to this threshold and holds it there.

Measurement. For GD and heavy ball ``P = I`` and the preconditioned sharpness *is* the sharpness. For
Adam ``P_t`` is taken from the optimiser state after step ``t`` (:func:`adam_preconditioner`, the
``P`` of Cohen et al. 2022, ``diag(sqrt(nu_hat) + eps)`` with bias correction); it is undefined at
``t = 0`` (recorded as NaN). Both ``lambda_max(H)`` and ``lambda_max(P^{-1} H)`` are estimated by
Lanczos on Hessian-vector products (:func:`learnmech.observe.preconditioned_sharpness`, ``P = 1`` for
the plain sharpness) every ``every`` steps. The API takes a key, not a start vector, so there is no
warm start: each probe starts from the same fixed vector, and Lanczos (unlike power iteration) resolves
the top eigenvalue in a fixed number of products even when, at the edge, the top eigenvalues crowd.
With 20 steps (quick) single estimates at the edge were within 3% of 40-step ones and the medians
of the verdict within 0.5%. All runs and seeds are one vmapped program, compiled once.

Experiment (quick): a tanh MLP (``16 -> 32 -> 32 -> 10``, standard parameterisation, float32) on a
synthetic regression task: ``n = 256`` inputs ``x ~ N(0, I_16)`` with ten independent ``N(0, 1)``
targets each. Memorising noise with ten outputs is a task whose sharpness keeps rising while the loss
falls slowly (from ~4.5 at initialisation to ~15 along gradient flow), the regime of Cohen et al.'s
CIFAR-5k runs; with a single output, or with far fewer examples than parameters, the loss reached
zero, or the sharpness stalled, before heavy ball got to its edge. The learning rates put every
threshold above the initial sharpness (GD ``2/eta = 8, 10, 12.5``; heavy ball ``beta = 0.9``,
``eta = 0.2375``, threshold 16; Adam ``eta = 0.01``, threshold 3800), so every run shows progressive
sharpening first. Heavy ball's step moves ``1/(1 - beta) = 10`` times faster along the gradient flow
than GD's at equal ``eta``: at a threshold of 20 the loss fell so fast that for one of three seeds the
sharpness, after a catapult, sank back to 0.88 of the threshold (median 0.91), and at 24 two seeds
never reached it; at 16 all three seeds held. ``full``: 1,000 scikit-learn digits (centred one-hot
targets), width 64, three seeds, 3,000 steps; initial sharpness ~4, hence GD ``2/eta = 5, 6.25, 7.1``,
heavy ball threshold 10, Adam ``eta = 1e-3`` (threshold 38,000).

Results (this machine): quick (two seeds) holds, medians/threshold GD 1.05-1.05, 1.03-1.04, 1.01-1.02,
heavy ball 0.99, Adam 0.99-1.00 (about 17 s of CPU, half of it compilation; three seeds, or another
data seed, hold as well, worst 1.06); full holds, all 15 runs within 3% (GD 1.01-1.03, heavy ball 0.97-0.99, Adam
0.995-0.997; about 5 min of CPU). GD sits 1-5% *above* ``2/eta``, as in Cohen et al. 2021: the
sharpness oscillates about the threshold with excursions above it while the loss keeps falling
non-monotonically.

Verdict (CLAIMS.md): for every run (three GD learning rates, heavy ball, Adam) and seed, take the
first measurement at which the (preconditioned) sharpness reaches the threshold; the median of the
later measurements must be within 10% of the threshold, and the loss must keep decreasing on
average (the mean loss over the last quarter of that phase below the mean over its first quarter).
A run that never reaches its threshold, or reaches it too late (fewer than ``MIN_EOS_SAMPLES``
measurements or less than ``MIN_EOS_FRACTION`` of training left), makes the verdict inconclusive,
as does a diverged run; a run outside the 10% band, or whose loss stops decreasing, makes it fail.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict
from learnmech.nets import MLP
from learnmech.observe import adam_preconditioner, mse, preconditioned_sharpness
from learnmech.report import COLORS, finish_figure, new_figure

__all__ = [
    "CLAIM",
    "Config",
    "RunSpec",
    "run_specs",
    "setup",
    "stability_threshold",
    "optimizer_init",
    "optimizer_step",
]

BAND = 0.10  # CLAIMS.md: median within 10% of the threshold
MIN_EOS_SAMPLES = 10  # fewer measurements after the first crossing: too short to judge (inconclusive)
MIN_EOS_FRACTION = 0.2  # ... or less than this fraction of the training steps left after it
DTYPE = "float32"  # sharpness is resolved to ~1e-5 relative in float32, far inside the 10% band


class Config(ClaimConfig):
    dataset: Literal["random", "digits"] = Field("random", description="synthetic noise regression or digits")
    n_samples: int = Field(256, ge=16, le=1797, description="training examples (full batch)")
    input_dim: int = Field(16, ge=1, le=1024, description="input dimension of the synthetic task")
    outputs: int = Field(10, ge=1, le=64, description="targets per input of the synthetic task")
    width: int = Field(32, ge=4, le=1024, description="hidden units per layer")
    hidden_layers: int = Field(2, ge=1, le=6, description="tanh hidden layers")
    gd_lrs: tuple[float, ...] = Field((0.25, 0.2, 0.16), description="GD learning rates (thresholds 2/eta)")
    momentum: float = Field(0.9, ge=0, lt=1, description="heavy-ball beta (optax convention)")
    momentum_lr: float = Field(0.2375, gt=0, description="heavy-ball learning rate")
    adam_b1: float = Field(0.9, ge=0, lt=1)
    adam_b2: float = Field(0.999, gt=0, lt=1)
    adam_eps: float = Field(1e-8, ge=0)
    adam_lr: float = Field(0.01, gt=0, description="Adam learning rate")
    steps: int = Field(1000, ge=10, le=200_000, description="optimisation steps of every run")
    every: int = Field(20, ge=1, description="steps between sharpness measurements")
    lanczos: int = Field(20, ge=4, le=200, description="Lanczos steps (HVPs) per sharpness measurement")
    data_seed: int = 0

    @field_validator("gd_lrs")
    @classmethod
    def _lrs(cls, lrs: tuple[float, ...]) -> tuple[float, ...]:
        if not 1 <= len(lrs) <= 6 or any(not lr > 0 for lr in lrs):
            raise ValueError("must be 1 to 6 positive learning rates")
        return lrs

    @model_validator(mode="after")
    def _schedule(self):
        if self.steps % self.every:
            raise ValueError(f"every: must divide steps ({self.steps}), got {self.every}")
        if self.dataset == "digits" and self.outputs != 10:
            raise ValueError("outputs: digits has 10 classes")
        return self


# ---------------------------------------------------------------------------------------------
# Theory


class RunSpec(NamedTuple):
    """One run of the recursion ``m <- a m + c g``, ``w <- w - eta P^{-1} m`` (module docstring)."""

    name: str
    eta: float
    a: float
    c: float
    adam: bool


def stability_threshold(eta: float, a: float = 0.0, c: float = 1.0) -> float:
    """``(2 + 2a) / (c eta)``: the largest stable ``lambda`` of ``P^{-1} H`` for ``m <- a m + c g``, ``w <- w - eta P^{-1} m``.

    GD ``(a, c) = (0, 1)``: ``2 / eta``; optax heavy ball ``(beta, 1)``: ``(2 + 2 beta) / eta``; Adam
    ``(beta1, 1 - beta1)``: ``(2 + 2 beta1) / ((1 - beta1) eta)`` (Cohen et al. 2021, arXiv:2103.00065;
    Cohen et al. 2022, arXiv:2207.14484). Derivation in the module docstring.

    >>> round(stability_threshold(0.1, 0.9, 0.1), 9)  # Adam, beta1 = 0.9: 38 / eta
    380.0
    """
    return (2.0 + 2.0 * a) / (c * eta)


def run_specs(cfg: Config) -> tuple[RunSpec, ...]:
    """The runs of the experiment: GD at each learning rate, heavy ball, Adam."""
    gd = tuple(RunSpec(f"gd-{i}", lr, 0.0, 1.0, False) for i, lr in enumerate(cfg.gd_lrs))
    return gd + (RunSpec("momentum", cfg.momentum_lr, cfg.momentum, 1.0, False),
                 RunSpec("adam", cfg.adam_lr, cfg.adam_b1, 1.0 - cfg.adam_b1, True))


def _threshold(spec: RunSpec) -> float:
    return stability_threshold(spec.eta, spec.a, spec.c)


def predict(cfg: Config):
    ends = np.array([0.0, float(cfg.steps)])
    return {f"threshold/{s.name}": Curve(ends, np.full(2, _threshold(s))) for s in run_specs(cfg)}


# ---------------------------------------------------------------------------------------------
# The optimiser recursion and the curvature probe


class OptState(NamedTuple):
    m: object  # momentum buffer, pytree like params
    nu: object  # Adam's second moment, pytree like params
    count: jax.Array  # steps taken


def optimizer_init(params) -> OptState:
    zeros = jax.tree.map(jnp.zeros_like, params)
    return OptState(zeros, zeros, jnp.zeros((), jnp.int32))


def _preconditioner(state: OptState, adam, b1: float, b2: float, eps: float):
    """``P_t`` of the recursion: Adam's (``adam_preconditioner``) where ``adam``, else ones; NaN at ``t = 0`` for Adam."""
    t = jnp.maximum(state.count, 1)
    p_adam = adam_preconditioner(state.nu, t, b1=b1, b2=b2, eps=eps)
    undefined = adam & (state.count == 0)
    return jax.tree.map(lambda p: jnp.where(undefined, jnp.nan, jnp.where(adam, p, jnp.ones_like(p))), p_adam)


def optimizer_step(params, grads, state: OptState, hp, b1: float, b2: float, eps: float):
    """One step of ``m <- a m + c g``, ``nu <- b2 nu + (1 - b2) g^2``, ``w <- w - eta P^{-1} m``.

    ``hp``: ``{"eta", "a", "c", "adam"}`` scalars (traced, so runs vmap); ``b1, b2, eps``: Adam's
    constants of :func:`adam_preconditioner` (``b1`` enters only ``P``; the EMA uses ``hp["a"]``).
    Equals optax's ``sgd`` (``a = 0``), ``sgd(momentum=a)`` and ``adam`` (``a = b1``, ``c = 1 - b1``).
    """
    m = jax.tree.map(lambda m, g: hp["a"] * m + hp["c"] * g, state.m, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
    state = OptState(m, nu, state.count + 1)
    P = _preconditioner(state, hp["adam"], b1, b2, eps)
    params = jax.tree.map(lambda w, m, p: w - hp["eta"] * m / p, params, m, P)
    return params, state


# ---------------------------------------------------------------------------------------------
# Experiment


def _dataset(cfg: Config) -> tuple[jax.Array, jax.Array]:
    """Inputs ``(n, d)`` and targets ``(n, outputs)`` in DTYPE."""
    if cfg.dataset == "digits":
        from learnmech.data import load_digits, regression_targets

        X, y = load_digits(dtype=DTYPE)
        return X[: cfg.n_samples], regression_targets(y[: cfg.n_samples], 10, dtype=DTYPE)
    rng = np.random.default_rng(cfg.data_seed)
    X = rng.standard_normal((cfg.n_samples, cfg.input_dim))  # (n, d)
    Y = rng.standard_normal((cfg.n_samples, cfg.outputs))  # (n, outputs): pure-noise targets
    return jnp.asarray(X, DTYPE), jnp.asarray(Y, DTYPE)


def _network(cfg: Config, d_in: int) -> MLP:
    return MLP((d_in,) + (cfg.width,) * cfg.hidden_layers + (cfg.outputs,), "tanh", "sp", dtype=DTYPE)


def _hyperparameters(specs, seeds: int) -> dict[str, jax.Array]:
    """Per-member hyperparameters, members ordered (seed, run): each ``(seeds * runs,)``."""
    col = lambda f, dt: jnp.asarray(np.tile([f(s) for s in specs], seeds), dt)  # noqa: E731
    return {"eta": col(lambda s: s.eta, DTYPE), "a": col(lambda s: s.a, DTYPE),
            "c": col(lambda s: s.c, DTYPE), "adam": col(lambda s: s.adam, bool)}


def _program(cfg: Config, net: MLP, data, adam_members: np.ndarray):
    """One jitted ``segment(params, state, hp, n)``: ``n <= every`` steps of every member, then a probe.

    Members are the leading axis. The probe returns ``lambda_max(P^{-1} H)`` of every member and
    ``lambda_max(H)`` of every member: for the runs with ``P = I`` the two coincide, so only the members in
    ``adam_members`` need a second estimate, made with ``P = 1`` in the same vmapped Lanczos call (one
    compiled Lanczos). ``n = 0`` probes the initial point; losses past ``n`` are zeros.
    """
    consts = (cfg.adam_b1, cfg.adam_b2, cfg.adam_eps)

    def loss(params, batch):
        return mse(net.apply(params, batch[0]), batch[1])

    def lanczos(params, P):
        return preconditioned_sharpness(loss, params, data, P, method="lanczos", iterations=cfg.lanczos).eigenvalue

    def probe(params, state, hp):
        P = jax.vmap(lambda s, a: _preconditioner(s, a, *consts))(state, hp["adam"])
        extra = jax.tree.map(lambda x: x[adam_members], params)  # the Adam members again, with P = 1
        both = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), params, extra)
        Ps = jax.tree.map(lambda p, x: jnp.concatenate([p, jnp.ones_like(x)]), P, extra)
        est = jax.vmap(lanczos)(both, Ps)  # (members + adam members,)
        pre = est[: hp["adam"].size]
        return pre, pre.at[adam_members].set(est[hp["adam"].size:])  # preconditioned, plain: (members,)

    def member(params, state, hp, n):
        def body(i, carry):
            params, state, losses = carry
            value, grads = jax.value_and_grad(loss)(params, data)
            params, state = optimizer_step(params, grads, state, hp, *consts)
            return params, state, losses.at[i].set(value)

        return jax.lax.fori_loop(0, n, body, (params, state, jnp.zeros(cfg.every, DTYPE)))

    def segment(params, state, hp, n):
        params, state, losses = jax.vmap(member, in_axes=(0, 0, 0, None))(params, state, hp, n)  # losses (members, every)
        return params, state, losses, *probe(params, state, hp)

    return jax.jit(segment)


def setup(cfg: Config):
    """``(net, data, params, hp)``: the network, the batch ``(X, Y)``, and the initial parameters and
    hyperparameters of every member (leading axis ``seeds * runs``, ordered (seed, run))."""
    specs = run_specs(cfg)
    data = _dataset(cfg)
    net = _network(cfg, data[0].shape[1])
    inits = [net.init(jax.random.key(cfg.data_seed + 1 + seed)) for seed in range(cfg.seeds)]
    # all runs of a seed start from the same weights: leaves (seeds * runs, ...)
    params = jax.tree.map(lambda *w: jnp.repeat(jnp.stack(w), len(specs), axis=0), *inits)
    return net, data, params, _hyperparameters(specs, cfg.seeds)


def measure(cfg: Config, progress=None):
    specs = run_specs(cfg)
    R, S = len(specs), cfg.seeds
    net, data, params, hp = setup(cfg)
    state = jax.jit(jax.vmap(optimizer_init))(params)
    adam_members = np.flatnonzero(np.asarray(hp["adam"]))
    segment = _program(cfg, net, data, adam_members)

    params, state, _, pre, plain = segment(params, state, hp, 0)  # the initial point, (S R,) each
    sharp, precond, losses = [np.asarray(plain)], [np.asarray(pre)], []
    n_seg = cfg.steps // cfg.every
    for k in range(n_seg):
        params, state, seg_loss, pre, plain = segment(params, state, hp, cfg.every)
        losses.append(np.asarray(seg_loss))
        sharp.append(np.asarray(plain))
        precond.append(np.asarray(pre))
        if progress is not None:
            progress("laws.edge-of-stability", k + 1, n_seg)
    loss = np.concatenate(losses, axis=1).reshape(S, R, cfg.steps)  # loss before step t + 1, (S, R, T)
    sharp = np.stack(sharp, axis=1).reshape(S, R, n_seg + 1)  # (S, R, M)
    precond = np.stack(precond, axis=1).reshape(S, R, n_seg + 1)
    return _records(cfg, specs, loss, sharp, precond)


def _records(cfg: Config, specs, loss, sharp, precond):
    """Curves per run: members are seeds; diverged members (non-finite loss) become NaN from the divergence on."""
    t_loss = np.arange(cfg.steps, dtype=np.float64)  # loss at w_t, t = 0 .. T-1
    t_probe = np.arange(0, cfg.steps + 1, cfg.every, dtype=np.float64)
    bad = ~np.isfinite(loss)
    loss = np.where(np.cumsum(bad, axis=-1) > 0, np.nan, loss)
    dead = np.concatenate([bad[..., :1] & False, np.cumsum(bad, axis=-1)[..., cfg.every - 1:: cfg.every] > 0], axis=-1)
    ends = np.array([0.0, float(cfg.steps)])
    out = {}
    for r, spec in enumerate(specs):
        out[f"loss/{spec.name}"] = Curve(t_loss, loss[:, r])
        out[f"sharpness/{spec.name}"] = Curve(t_probe, np.where(dead[:, r], np.nan, sharp[:, r]))
        out[f"preconditioned/{spec.name}"] = Curve(t_probe, np.where(dead[:, r], np.nan, precond[:, r]))
        out[f"threshold/{spec.name}"] = Curve(ends, np.full(2, _threshold(spec)))
    return out


# ---------------------------------------------------------------------------------------------
# Verdict


def _judge_member(t, s, loss, threshold: float, steps: int) -> tuple[str, dict[str, float]]:
    """One member's status and numbers: sharpness ``s`` ``(M,)`` at steps ``t``, per-step ``loss`` ``(T,)``."""
    if not np.all(np.isfinite(loss)):
        return "diverged", {}
    reached = np.flatnonzero(s >= threshold)
    if reached.size == 0:
        return "never", {"max_ratio": float(np.nanmax(s) / threshold)}
    i0 = reached[0]
    after = s[i0:]
    info = {"first_step": float(t[i0]), "samples_after": float(after.size)}
    if after.size < MIN_EOS_SAMPLES or (steps - t[i0]) < MIN_EOS_FRACTION * steps:
        return "short", info
    phase = loss[int(t[i0]):]  # the loss from the first crossing on
    q = max(1, phase.size // 4)
    info.update(median_ratio=float(np.median(after) / threshold),
                loss_first_quarter=float(phase[:q].mean()), loss_last_quarter=float(phase[-q:].mean()))
    inside = abs(info["median_ratio"] - 1.0) <= BAND
    decreasing = info["loss_last_quarter"] < info["loss_first_quarter"]
    return ("holds" if inside and decreasing else "fails"), info


def judge(cfg: Config, prediction, measurement) -> Verdict:
    statuses, details, worst = {}, {}, 0.0
    for spec in run_specs(cfg):
        s_curve = measurement[f"preconditioned/{spec.name}"]
        loss = measurement[f"loss/{spec.name}"].y
        threshold = float(prediction[f"threshold/{spec.name}"].y[0, 0])
        for j in range(s_curve.y.shape[0]):
            status, info = _judge_member(s_curve.x, s_curve.y[j], loss[j], threshold, cfg.steps)
            statuses[(spec.name, j)] = status
            details.update({f"{spec.name}/{j}/{k}": v for k, v in info.items()})
            if "median_ratio" in info:
                worst = max(worst, abs(info["median_ratio"] - 1.0))
    counts = {k: sum(v == k for v in statuses.values()) for k in ("holds", "fails", "never", "short", "diverged")}
    details.update({f"runs_{k}": float(v) for k, v in counts.items()})
    per_run = {}  # run name -> the medians / threshold of its seeds
    for name, j in statuses:
        if f"{name}/{j}/median_ratio" in details:
            per_run.setdefault(name, []).append(f"{details[f'{name}/{j}/median_ratio']:.3f}")
    ratios = "; ".join(f"{name}: {', '.join(v)}" for name, v in per_run.items())
    reason = f"median sharpness / threshold after the first crossing (per seed): {ratios or 'none'}"
    metric = "max |median(sharpness after crossing) / threshold - 1| over runs"
    if counts["fails"]:
        bad = [f"{n}/{j}" for (n, j), v in statuses.items() if v == "fails"]
        return Verdict(status="fails", metric=metric, value=worst, threshold=BAND, details=details,
                       reason=f"outside the {BAND:.0%} band or loss not decreasing: {', '.join(bad)}; {reason}")
    if counts["diverged"] or counts["never"] or counts["short"]:
        what = {k: [f"{n}/{j}" for (n, j), v in statuses.items() if v == k] for k in ("diverged", "never", "short")}
        text = "; ".join(f"{k}: {', '.join(v)}" for k, v in what.items() if v)
        return Verdict(status="inconclusive", metric=metric, value=worst, threshold=BAND, details=details,
                       reason=f"runs that diverged, never reached the threshold, or reached it too late "
                              f"(no progressive sharpening within the budget): {text}")
    return Verdict(status="holds", metric=metric, value=worst, threshold=BAND, reason=reason, details=details)


# ---------------------------------------------------------------------------------------------
# Figure


def _panel(ax, cfg, measurement, specs, title: str, colors):
    for spec, color in zip(specs, colors):
        curve = measurement[f"preconditioned/{spec.name}"]
        thr = _threshold(spec)
        for j, y in enumerate(curve.y):
            ax.plot(curve.x, y, color=color, linewidth=1.2, alpha=0.85,
                    label=f"{spec.name}, eta={spec.eta:g} (measured)" if j == 0 else None)
        ax.axhline(thr, color=color, linestyle="--", linewidth=1.3, label=f"threshold {thr:.4g}")
        ax.axhspan(thr * (1 - BAND), thr * (1 + BAND), color=color, alpha=0.07)
    ax.set(title=title, xlabel="step")
    ax.legend(fontsize=7, loc="lower right")


def plot(cfg: Config, prediction, measurement, verdict=None):
    specs = run_specs(cfg)
    fig, (ax_gd, ax_mom, ax_adam, ax_loss) = new_figure(
        4, title=f"laws.edge-of-stability: tanh MLP, {cfg.dataset} data, full batch (band: +/-{BAND:.0%})")
    gd = [s for s in specs if s.name.startswith("gd")]
    _panel(ax_gd, cfg, measurement, gd, "GD: sharpness vs 2/eta", COLORS[: len(gd)])
    ax_gd.set_ylabel("lambda_max(H)")
    _panel(ax_mom, cfg, measurement, specs[-2:-1], f"heavy ball beta={cfg.momentum:g}: (2+2beta)/eta", COLORS[6:7])
    ax_mom.set_ylabel("lambda_max(H)")
    _panel(ax_adam, cfg, measurement, specs[-1:], f"Adam b1={cfg.adam_b1:g}: (2+2b1)/((1-b1)eta)", COLORS[4:5])
    ax_adam.set_ylabel("lambda_max(P^-1 H), P = Adam's")
    raw = ax_adam.twinx()  # the plain sharpness of the Adam run, for comparison (no threshold applies to it)
    curve = measurement["sharpness/adam"]
    raw.plot(curve.x, curve.y.T, color="gray", linewidth=0.8, linestyle=":")
    raw.set_ylabel("lambda_max(H), dotted", fontsize=8, color="gray")
    raw.tick_params(axis="y", labelsize=7, colors="gray")
    for spec, color in zip(specs, list(COLORS[: len(gd)]) + [COLORS[6], COLORS[4]]):
        curve = measurement[f"loss/{spec.name}"]
        for j, y in enumerate(curve.y):
            ax_loss.plot(curve.x, y, color=color, linewidth=0.9, alpha=0.85, label=spec.name if j == 0 else None)
    ax_loss.set(yscale="log", xlabel="step", ylabel="training loss (1/2n) sum ||f - y||^2", title="loss")
    ax_loss.legend(fontsize=7)
    return finish_figure(fig, verdict)


CLAIM = Claim(
    id="laws.edge-of-stability",
    pillar="simple laws",
    statement="Full-batch training raises the sharpness to the optimiser's stability threshold and holds it there: "
              "2/eta for GD, (2+2beta)/eta for heavy ball, and lambda_max(P^-1 H) = (2+2beta1)/((1-beta1) eta) "
              "for Adam.",
    references=("Cohen, Kaur, Li, Kolter & Talwalkar 2021, arXiv:2103.00065",
                "Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze, Nado, Dahl & Gilmer 2022, "
                "arXiv:2207.14484"),
    config=Config,
    presets={
        "quick": {"seeds": 2},
        # digits: initial sharpness ~4 and gradient-flow sharpening to ~8-10 within the budget, hence the
        # larger learning rates (thresholds 2/eta = 5, 6.25, 7.1; heavy ball 10; Adam 38000)
        "full": {"seeds": 3, "dataset": "digits", "n_samples": 1000, "width": 64, "gd_lrs": (0.4, 0.32, 0.28),
                 "momentum_lr": 0.38, "adam_lr": 1e-3, "steps": 3000, "every": 30, "lanczos": 30},
    },
    predict=predict, measure=measure, judge=judge, plot=plot,
    tags=("hyperparameters",),
)
