"""The Claim contract: a falsifiable prediction paired with the experiment that tests it.

A claim has an id (``family.name``), a pillar, a one-sentence statement, references, a frozen
pydantic ``Config`` with ``quick`` and ``full`` presets, and four functions:

- ``predict(config) -> Record``: theory only (pure, no training);
- ``measure(config, progress) -> Record``: the experiment;
- ``judge(config, prediction, measurement) -> Verdict``;
- ``plot(config, prediction, measurement, verdict) -> matplotlib Figure``.

``judge`` and ``plot`` receive the config as well as the two records (the thresholds of CLAIMS.md
are constants of each claim; the config carries what the experiment did). Predictions and
measurements are :class:`Record` s — named curves only — so that everything a verdict or a
figure depends on is what the store keeps, and both can be recomputed from a stored run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Claim", "ClaimConfig", "Curve", "Progress", "Record", "Verdict"]

Progress = Callable[[str, int, int], None]  # (label, done, total)


@dataclass(frozen=True)
class Curve:
    """A family of curves on a shared axis: ``x`` is ``(T,)``, ``y`` is ``(members, T)``.

    Give ``x`` in increasing order: the store returns a curve's points sorted by ``x``, so a curve
    built in another order comes back as the same points in a different order.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x = np.asarray(self.x, dtype=np.float64).ravel()
        y = np.asarray(self.y, dtype=np.float64)
        y = y.reshape(1, -1) if y.ndim == 1 else y
        if y.ndim != 2 or y.shape[1] != x.size:
            raise ValueError(f"Curve: y must be (members, {x.size}), got {y.shape}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def mean(self) -> np.ndarray:
        """Mean over members, ignoring NaN (diverged members)."""
        with np.errstate(all="ignore"):
            return np.nanmean(self.y, axis=0)


Record = Mapping[str, Curve]


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
    """Base of every claim's config: frozen, strict about unknown fields, JSON round-trippable."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    seeds: int = Field(4, ge=1, le=4096, description="independent initialisations")


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
    measure: Callable[[Any, Progress | None], Record]
    judge: Callable[[Any, Record, Record], Verdict]
    plot: Callable[[Any, Record, Record, Verdict | None], Any]
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self):
        family, _, name = self.id.partition(".")
        if not family or not name:
            raise ValueError(f"claim id must look like 'family.name', got {self.id!r}")
        missing = {"quick", "full"} - set(self.presets)
        if missing:
            raise ValueError(f"claim {self.id}: presets {sorted(missing)} missing")

    def make_config(self, preset: str = "quick", overrides: Mapping[str, Any] | None = None):
        """The preset's config with ``overrides`` applied; pydantic validates every field."""
        if preset not in self.presets:
            raise ValueError(f"preset: must be one of {sorted(self.presets)}, got {preset!r}")
        return self.config(**{**self.presets[preset], **dict(overrides or {})})
