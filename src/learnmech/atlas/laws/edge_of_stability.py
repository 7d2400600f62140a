"""laws.edge-of-stability — sharpness settles at the stability threshold of the optimiser.

Statement (Cohen, Kaur, Li, Kolter & Talwalkar 2021, arXiv:2103.00065; Cohen et al. 2022,
arXiv:2207.14484 for adaptive methods): under full-batch gradient descent the top Hessian eigenvalue
``lambda_max(H)`` first rises (progressive sharpening) and then hovers at ``2 / eta``; with
heavy-ball momentum ``beta`` it hovers at ``(2 + 2 beta) / eta``; with Adam the *preconditioned*
sharpness ``lambda_max(P^{-1} H)`` hovers at ``(2 + 2 beta1) / ((1 - beta1) eta)`` (``38 / eta`` at
``beta1 = 0.9``).

Conventions: ``L = (1/2n) sum_i ||f(x_i) - y_i||^2`` (:func:`learnmech.observe.mse`, summed over the
outputs); full batch; time is the step count; a "run" is one optimiser with one learning rate.

The thresholds (:mod:`learnmech.theory.stability`, which derives them). Every run is one recursion
``m_t = a m_{t-1} + c g_t``, ``w_t = w_{t-1} - eta P_t^{-1} m_t``: gradient descent ``(a, c, P) = (0, 1,
I)``, heavy ball in optax's convention (``optax.sgd(eta, momentum=beta)``) ``(beta, 1, I)``, Adam
(``optax.adam``) ``(beta1, 1 - beta1, P_t)`` with ``P_t = (1 - beta1^t) (sqrt(nu_t / (1 - beta2^t)) + eps)``
(:func:`learnmech.theory.stability.adam_preconditioner`). Freezing ``P`` on a quadratic, the run is
stable iff ``lambda_max(P^{-1} H) < (2 + 2a) / (c eta)``
(:func:`~learnmech.theory.stability.stability_threshold`): ``2 / eta`` for GD, ``(2 + 2 beta) / eta`` for
heavy ball, ``(2 + 2 beta1) / ((1 - beta1) eta)`` for Adam. Edge of stability: the training itself
raises the sharpness to this threshold and holds it there.

Measurement. Every run and seed trains in one ensemble on the driver (:func:`learnmech.train.train`)
with optax's own optimisers, chosen per run (:class:`learnmech.train.OneOf`): GD and heavy ball are
``optax.sgd(eta, momentum=a)`` (GD: ``a = 0``), Adam ``optax.adam``; every run of a seed starts from
the same weights. For GD and
heavy ball ``P = I`` and the preconditioned sharpness *is* the sharpness. For Adam the driver hands the
probe ``P_t`` from the optimiser state after step ``t`` (the ``P`` of Cohen et al. 2022); it is undefined
at ``t = 0`` (recorded as NaN). Both ``lambda_max(H)`` and ``lambda_max(P^{-1} H)`` are estimated by
Lanczos on Hessian-vector products every ``every`` steps, as probes scheduled by the driver
(:mod:`learnmech.observe.probes`). Each probe starts from the same fixed vector (no warm start), and
Lanczos (unlike power iteration) resolves the top eigenvalue in a fixed number of products even when, at
the edge, the top eigenvalues crowd. With 20 steps (quick) single estimates at the edge were within 3%
of 40-step ones and the medians of the verdict within 0.5%.

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

GD sits a few per cent *above* ``2/eta``, as in Cohen et al. 2021: the sharpness oscillates about the
threshold with excursions above it while the loss keeps falling non-monotonically.

Verdict (CLAIMS.md): for every run (three GD learning rates, heavy ball, Adam) and seed, take the
first measurement at which the (preconditioned) sharpness reaches the threshold; the median of the
later measurements must be within 10% of the threshold, and the loss must keep decreasing on
average (the mean loss over the last quarter of that phase below the mean over its first quarter).
As rules (:data:`RULES`, on the numbers of :func:`summarize`): a judged run outside the 10% band (the
headline: the largest ``|median / threshold - 1|``), or whose loss stops decreasing (last- over
first-quarter mean loss ``>= 1``), makes the verdict fail, whatever the other runs show
(``decisive_failures``); otherwise a diverged run, then a run that never reaches its threshold, then
one that reaches it too late (fewer than ``MIN_EOS_SAMPLES`` measurements or less than
``MIN_EOS_FRACTION`` of training left) makes it inconclusive.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import Field, field_validator, model_validator

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.keys import key
from learnmech.atlas.rules import Check, Rules, count_diverged, diverged, reached
from learnmech.nets import MLP
from learnmech.observe import mse
from learnmech.observe.probes import preconditioned_sharpness_probe, sharpness_probe
from learnmech.report import COLORS, finish_figure, new_figure
from learnmech.theory.stability import stability_threshold
from learnmech.train import OneOf, OptimizerSpec, train

__all__ = [
    "CLAIM",
    "Config",
    "RunSpec",
    "run_specs",
    "setup",
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


def run_specs(cfg: Config) -> tuple[RunSpec, ...]:
    """The runs of the experiment: GD at each learning rate, heavy ball, Adam."""
    gd = tuple(RunSpec(f"gd-{i}", lr, 0.0, 1.0, False) for i, lr in enumerate(cfg.gd_lrs))
    return gd + (RunSpec("momentum", cfg.momentum_lr, cfg.momentum, 1.0, False),
                 RunSpec("adam", cfg.adam_lr, cfg.adam_b1, 1.0 - cfg.adam_b1, True))


def _threshold(spec: RunSpec) -> float:
    return stability_threshold(spec.eta, spec.a, spec.c)


def predict(cfg: Config):
    ends = np.array([0.0, float(cfg.steps)])
    return {key("threshold", s.name): Curve(ends, np.full(2, _threshold(s))) for s in run_specs(cfg)}


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


def setup(cfg: Config):
    """``(net, data, params0)``: the network, the batch ``(X, Y)`` and the initial parameters of every
    seed (leaves ``(seeds, ...)``; every run of a seed starts from them)."""
    data = _dataset(cfg)
    net = _network(cfg, data[0].shape[1])
    inits = [net.init(jax.random.key(cfg.data_seed + 1 + seed)) for seed in range(cfg.seeds)]
    return net, data, jax.tree.map(lambda *w: jnp.stack(w), *inits)


def _update_rule(cfg: Config, specs):
    """optax's heavy ball (GD: momentum 0) or Adam per run, and the run axis of the grid (float32 values)."""
    rule = OneOf((OptimizerSpec("momentum", {"learning_rate": 1.0, "momentum": 0.0}),
                  OptimizerSpec("adam", {"learning_rate": 1.0, "b1": cfg.adam_b1, "b2": cfg.adam_b2,
                                         "eps": cfg.adam_eps})))
    axis = {"rule": np.asarray([int(s.adam) for s in specs], np.int32),
            "learning_rate": np.asarray([s.eta for s in specs], DTYPE),
            "momentum": np.asarray([0.0 if s.adam else s.a for s in specs], DTYPE)}
    return rule, {"run": axis}


def measure(cfg: Config, progress=None):
    """Every run and seed in one ensemble on the driver; per-step loss and Lanczos probes every ``every`` steps.

    With ``P = 1`` (GD, heavy ball) the preconditioned sharpness *is* the sharpness, so only the Adam
    members are probed twice.
    """
    specs = run_specs(cfg)
    net, data, params0 = setup(cfg)

    def loss(params, batch):
        return mse(net.apply(params, batch[0]), batch[1])

    R, S = len(specs), cfg.seeds
    adam = np.flatnonzero(np.repeat([s.adam for s in specs], S))  # members (run, seed), grid-major
    lanczos = {"method": "lanczos", "iterations": cfg.lanczos, "every": cfg.every}
    probes = [preconditioned_sharpness_probe(loss, name="preconditioned", **lanczos)]
    if adam.size:
        probes.append(sharpness_probe(loss, name="sharpness", members=adam, **lanczos))
    rule, grid = _update_rule(cfg, specs)
    report = None if progress is None else (lambda done, total: progress("laws.edge-of-stability", done, total))
    result = train(loss=loss, data=data, optimizer=rule, seeds=list(range(S)), grid=grid, steps=[cfg.steps],
                   probes=probes, params0=params0, step_loss=True, blowup=None, layout="vmap", progress=report)
    precond = np.asarray(result.probes["preconditioned"].values)  # (R S, M)
    sharp = precond.copy()
    if adam.size:
        sharp[adam] = result.probes["sharpness"].values
    per_seed = lambda a: a.reshape(R, S, a.shape[-1]).transpose(1, 0, 2)  # noqa: E731  (S, R, .), as recorded
    return _records(cfg, specs, per_seed(result.step_loss), per_seed(sharp), per_seed(precond))


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
        out[key("loss", spec.name)] = Curve(t_loss, loss[:, r])
        out[key("sharpness", spec.name)] = Curve(t_probe, np.where(dead[:, r], np.nan, sharp[:, r]))
        out[key("preconditioned", spec.name)] = Curve(t_probe, np.where(dead[:, r], np.nan, precond[:, r]))
        out[key("threshold", spec.name)] = Curve(ends, np.full(2, _threshold(spec)))
    return out


# ---------------------------------------------------------------------------------------------
# Verdict


def _member(t, s, loss, threshold: float, steps: int) -> dict[str, float]:
    """One member's numbers: sharpness ``s`` ``(M,)`` at steps ``t``, per-step ``loss`` ``(T,)``.

    Nothing for a diverged member; ``max_ratio`` for one that never reaches ``threshold``; else the step of
    the first measurement at or above it and the measurements from there on; when enough of training is
    left after it (``MIN_EOS_SAMPLES``, ``MIN_EOS_FRACTION``), the median of those measurements over the
    threshold and the mean loss over the first and last quarter of that phase, and their ratio.
    """
    if not np.all(np.isfinite(loss)):
        return {}
    crossed = np.flatnonzero(s >= threshold)
    if crossed.size == 0:
        return {"max_ratio": float(np.nanmax(s) / threshold)}
    i0 = crossed[0]
    after = s[i0:]
    info = {"first_step": float(t[i0]), "samples_after": float(after.size)}
    if after.size < MIN_EOS_SAMPLES or (steps - t[i0]) < MIN_EOS_FRACTION * steps:
        return info
    phase = loss[int(t[i0]):]  # the loss from the first crossing on
    q = max(1, phase.size // 4)
    first, last = float(phase[:q].mean()), float(phase[-q:].mean())
    with np.errstate(all="ignore"):  # a zero loss over the first quarter: inf or NaN, which no check passes
        ratio = float(np.float64(last) / first)
    info.update(median_ratio=float(np.median(after) / threshold), loss_first_quarter=first,
                loss_last_quarter=last, loss_ratio=ratio)
    return info


def summarize(cfg: Config, prediction, measurement):
    """Per member (keys ``run/seed/...``, :func:`_member`): where the (preconditioned) sharpness first
    reaches the threshold, its median from there on over the threshold, and the loss over that phase.
    Over all members: how many diverged, reached the threshold, and reached it early enough to judge;
    the largest distance of a median from the threshold; the largest last/first-quarter loss ratio."""
    out, members = {}, []
    for spec in run_specs(cfg):
        s_curve, loss = measurement[key("preconditioned", spec.name)], measurement[key("loss", spec.name)]
        threshold = float(prediction[key("threshold", spec.name)].y[0, 0])
        for j in range(s_curve.y.shape[0]):
            info = _member(s_curve.x, s_curve.y[j], loss.y[j], threshold, cfg.steps)
            out.update({key(spec.name, j, name): value for name, value in info.items()})
            members.append(info)
    judged = [m for m in members if "median_ratio" in m]
    out.update(diverged=sum(count_diverged(measurement[key("loss", s.name)]) for s in run_specs(cfg)),
               members=float(len(members)), members_reached=float(sum("first_step" in m for m in members)),
               members_judged=float(len(judged)),
               max_band_error=max((abs(m["median_ratio"] - 1.0) for m in judged), default=float("nan")),
               max_loss_ratio=max((m["loss_ratio"] for m in judged), default=float("nan")))
    return out


RULES = Rules(
    guards=(diverged("a run diverged; lower its learning rate"),
            reached("members reaching the threshold", "members_reached", "members",
                    "a run never reached its threshold (no progressive sharpening to the edge within the budget)"),
            reached(f"members reaching it with >= {MIN_EOS_SAMPLES} measurements and {MIN_EOS_FRACTION:.0%} "
                    "of training left", "members_judged", "members",
                    "a run reached its threshold too late to judge; train longer")),
    checks=(Check("max |median(sharpness after crossing) / threshold - 1| over runs", "max_band_error", "<=",
                  BAND, fmt=".4f"),
            Check("max loss ratio, last / first quarter after crossing", "max_loss_ratio", "<", 1.0, fmt=".4f")),
    decisive_failures=True,
)


# ---------------------------------------------------------------------------------------------
# Figure


def _panel(ax, prediction, measurement, summary, specs, title: str, colors):
    """Each run's (preconditioned) sharpness per seed, its first crossing (dot), threshold and band."""
    for spec, color in zip(specs, colors):
        curve = measurement[key("preconditioned", spec.name)]
        thr = float(prediction[key("threshold", spec.name)].y[0, 0])
        for j, y in enumerate(curve.y):
            ax.plot(curve.x, y, color=color, linewidth=1.2, alpha=0.85,
                    label=f"{spec.name}, eta={spec.eta:g} (measured)" if j == 0 else None)
            if key(spec.name, j, "first_step") in summary:
                step = summary[key(spec.name, j, "first_step")]
                ax.plot(step, y[np.searchsorted(curve.x, step)], "o", color=color, markersize=4)
        ax.axhline(thr, color=color, linestyle="--", linewidth=1.3, label=f"threshold {thr:.4g} (theory)")
        ax.axhspan(thr * (1 - BAND), thr * (1 + BAND), color=color, alpha=0.07)
    ax.set(title=title, xlabel="step")
    ax.legend(fontsize=7, loc="lower right")


def plot(cfg: Config, prediction, measurement, summary, verdict=None):
    specs = run_specs(cfg)
    fig, (ax_gd, ax_mom, ax_adam, ax_loss) = new_figure(
        4, title=f"laws.edge-of-stability: tanh MLP, {cfg.dataset} data, full batch (band: +/-{BAND:.0%}, "
                 "dot: first crossing)")
    gd = [s for s in specs if s.name.startswith("gd")]
    records = (prediction, measurement, summary)
    _panel(ax_gd, *records, gd, "GD: sharpness vs 2/eta", COLORS[: len(gd)])
    ax_gd.set_ylabel("lambda_max(H)")
    _panel(ax_mom, *records, specs[-2:-1], f"heavy ball beta={cfg.momentum:g}: (2+2beta)/eta", COLORS[6:7])
    ax_mom.set_ylabel("lambda_max(H)")
    _panel(ax_adam, *records, specs[-1:], f"Adam b1={cfg.adam_b1:g}: (2+2b1)/((1-b1)eta)", COLORS[4:5])
    ax_adam.set_ylabel("lambda_max(P^-1 H), P = Adam's")
    raw = ax_adam.twinx()  # the plain sharpness of the Adam run, for comparison (no threshold applies to it)
    curve = measurement[key("sharpness", "adam")]
    raw.plot(curve.x, curve.y.T, color="gray", linewidth=0.8, linestyle=":")
    raw.set_ylabel("lambda_max(H), dotted", fontsize=8, color="gray")
    raw.tick_params(axis="y", labelsize=7, colors="gray")
    for spec, color in zip(specs, list(COLORS[: len(gd)]) + [COLORS[6], COLORS[4]]):
        curve = measurement[key("loss", spec.name)]
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
        # tiny: every path of the claim in seconds: digits (quick runs the synthetic task), two GD rates, heavy
        # ball, Adam and its second probe; the GD and heavy-ball thresholds sit near the initial sharpness, so
        # some members are judged from step 0 and some never cross (Adam): too small for the claim to hold
        "tiny": {"seeds": 2, "dataset": "digits", "n_samples": 64, "width": 8, "hidden_layers": 1,
                 "gd_lrs": (0.6, 0.45), "momentum_lr": 1.0, "adam_lr": 0.03, "steps": 100, "every": 10,
                 "lanczos": 8},
        "quick": {"seeds": 2},
        # digits: initial sharpness ~4 and gradient-flow sharpening to ~8-10 within the budget, hence the
        # larger learning rates (thresholds 2/eta = 5, 6.25, 7.1; heavy ball 10; Adam 38000)
        "full": {"seeds": 3, "dataset": "digits", "n_samples": 1000, "width": 64, "gd_lrs": (0.4, 0.32, 0.28),
                 "momentum_lr": 0.38, "adam_lr": 1e-3, "steps": 3000, "every": 30, "lanczos": 30},
    },
    predict=predict, measure=measure, summarize=summarize, rules=RULES, plot=plot,
    tags=("hyperparameters",),
)
