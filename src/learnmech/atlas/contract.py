"""The Claim contract: a falsifiable prediction paired with the experiment that tests it.

A claim has an id (``family.name``), a pillar, a one-sentence statement, references, a frozen
pydantic ``Config`` with ``tiny``, ``quick`` and ``full`` presets, and five functions:

- ``predict(config) -> Record``: theory only (pure, no training);
- ``measure(config, progress) -> Record``: the experiment. A ``measure`` with a parameter named
  ``preregister`` (found by name, as ``train.member.call_with_hp`` finds ``hp``) is called as
  ``measure(config, progress, preregister=fn)``, where ``fn(name, values) -> float`` (a
  :data:`Preregister`) writes a prediction before the experiment that tests it: ``values`` maps
  str keys to floats (NaN allowed, +-inf refused), and ``fn`` always returns the registration
  time in seconds since the Unix epoch (UTC, as ``time.time()``). Run in process against a store
  (``atlas``, ``check``: ``atlas.runner.run_claim``), ``fn`` appends the prediction to the
  store's ``preregistrations`` table at once, and the time returned is the one stored. Run by a
  sweep worker, which never touches the store, ``fn`` checks ``values`` and only returns the time
  it was called: the claim records that time in its own measurement. Call it before the
  training it predicts starts, and record that start time too, so the order can be read back;
- ``summarize(config, prediction, measurement) -> Record``: the derived numbers (fitted slopes,
  crossing times, errors, the number of diverged members) that both the verdict and the figure
  use, computed once;
- ``rules``: the verdict as data (:class:`~learnmech.atlas.rules.Rules`: guards that make a run
  inconclusive, then the claim's checks), applied to the summary by
  :func:`~learnmech.atlas.rules.decide`;
- ``plot(config, prediction, measurement, summary, verdict) -> matplotlib Figure``.

Records hold named curves (:class:`Curve`) and scalars (floats). The prediction, the measurement
and the summary are all stored with the run (sources ``theory``, ``experiment``, ``summary``), so
a verdict can be re-decided from the store alone and a figure redrawn from it. ``tiny`` runs in
seconds and exercises every code path of the claim (the shared conformance test runs it; it may be
too small for the claim to hold), ``quick`` is the atlas's preset, ``full`` the careful one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from learnmech.value_bounds import INT64_MAX, INT64_MIN, scalars

__all__ = ["Claim", "ClaimConfig", "Curve", "PRESETS", "Preregister", "Progress", "Record", "SEED_LIMIT",
           "Verdict"]

Progress = Callable[[str, int, int], None]  # (label, done, total)
Preregister = Callable[[str, Mapping[str, float]], float]  # (name, values) -> unix time (s, UTC) it was registered
SEED_LIMIT = 2**32  # a config's seeds are 0 <= seed < SEED_LIMIT (ClaimConfig)
PRESETS = ("tiny", "quick", "full")  # every claim has these three


@dataclass(frozen=True)
class Curve:
    """A family of curves on a shared axis: ``x`` is ``(T,)``, ``y`` is ``(members, T)``.

    ``x`` must be finite and strictly increasing (checked): the store returns a curve's points
    sorted by ``x``, so a curve built in another order, or with a repeated ``x``, would not come
    back as it was written.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x = np.asarray(self.x, dtype=np.float64).ravel()
        y = np.asarray(self.y, dtype=np.float64)
        y = y.reshape(1, -1) if y.ndim == 1 else y
        if y.ndim != 2 or y.shape[1] != x.size:
            raise ValueError(f"Curve: y must be (members, {x.size}), got {y.shape}")
        if not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
            raise ValueError(f"Curve: x must be finite and strictly increasing, got {np.array2string(x, threshold=8)}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def mean(self) -> np.ndarray:
        """Mean over members, ignoring NaN (diverged members)."""
        with np.errstate(all="ignore"):
            return np.nanmean(self.y, axis=0)


Record = Mapping[str, "Curve | float"]  # named curves and scalars


class Verdict(BaseModel):
    """The outcome of judging one claim on one run."""

    model_config = ConfigDict(frozen=True)

    status: Literal["holds", "fails", "inconclusive"]
    metric: str
    value: float
    threshold: float
    reason: str
    details: dict[str, float] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` unless the claim fails (inconclusive is not a failure)."""
        return self.status != "fails"


class ClaimConfig(BaseModel):
    """Base of every claim's config: frozen, strict about unknown fields, JSON round-trippable.

    Rules every field of every claim obeys, checked here once (before the claim's own validators):

    - every number is finite: ``NaN`` and ``inf`` are refused wherever a float is, lists and
      tuples of floats included (pydantic's ``allow_inf_nan=False`` reaches nested items);
    - every integer fits a signed 64-bit int (``-2**63 <= n < 2**63``), nested ones included;
    - a field whose name ends in ``seed`` (``data_seed``, ``teacher_seed``, ``split_seed``) holds
      seeds ``0 <= seed < 2**32`` (:data:`SEED_LIMIT`): ``jax.random.key`` keeps the low 32 bits of
      a seed unless 64-bit mode is on, so seeds ``2**32`` apart would be the same draw (and ``2**64``
      overflows it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)

    seeds: int = Field(4, ge=1, le=4096, description="independent initialisations")

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        """The rules of the class docstring, on the value pydantic has parsed (``ValueError`` naming the rule)."""
        seed = info.field_name is not None and info.field_name.endswith("seed")
        for leaf in scalars(value):
            if isinstance(leaf, bool):
                continue
            if isinstance(leaf, float) and not math.isfinite(leaf):
                raise ValueError("must be finite numbers")
            if isinstance(leaf, int):
                if seed and not 0 <= leaf < SEED_LIMIT:
                    raise ValueError(f"a seed must be an integer from 0 to 2**32 - 1 = {SEED_LIMIT - 1}")
                if not INT64_MIN <= leaf <= INT64_MAX:
                    raise ValueError(f"integers must fit in 64 bits, {INT64_MIN} to {INT64_MAX}")
        return value


@dataclass(frozen=True)
class Claim:
    """One entry of the atlas. See the module docstring for the contract."""

    id: str
    pillar: str
    statement: str
    references: tuple[str, ...]
    config: type[ClaimConfig]
    presets: Mapping[str, Mapping[str, Any]]
    predict: Callable[[Any], Record]
    measure: Callable[..., Record]  # (config, progress) or (config, progress, preregister=...)
    summarize: Callable[[Any, Record, Record], Record]
    rules: "Rules"
    plot: Callable[[Any, Record, Record, Record, Verdict | None], Any]
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self):
        family, _, name = self.id.partition(".")
        if not family or not name:
            raise ValueError(f"claim id must look like 'family.name', got {self.id!r}")
        missing = set(PRESETS) - set(self.presets)
        if missing:
            raise ValueError(f"claim {self.id}: presets {sorted(missing)} missing")

    def make_config(self, preset: str = "quick", overrides: Mapping[str, Any] | None = None):
        """The preset's config with ``overrides`` applied; pydantic validates every field."""
        if preset not in self.presets:
            raise ValueError(f"preset: must be one of {sorted(self.presets)}, got {preset!r}")
        return self.config(**{**self.presets[preset], **dict(overrides or {})})

    def decide(self, summary: Record) -> Verdict:
        """The verdict the rules give on a summary (a fresh one, or one read from the store)."""
        return decide(self.rules, summary)

    def evaluate(self, config, prediction: Record, measurement: Record) -> tuple[Record, Verdict]:
        """The summary and the verdict of one run."""
        summary = self.summarize(config, prediction, measurement)
        return summary, self.decide(summary)

    def judge(self, config, prediction: Record, measurement: Record) -> Verdict:
        """The verdict of one run: summarize, then decide."""
        return self.evaluate(config, prediction, measurement)[1]

    def figure(self, config, prediction: Record, measurement: Record, summary: Record, verdict: Verdict | None):
        """The claim's figure for one run."""
        return self.plot(config, prediction, measurement, summary, verdict)


from learnmech.atlas.rules import Rules, decide  # noqa: E402  (rules build on Verdict above)
