"""Verdict rules as data: guards that make a run inconclusive, checks that make a claim fail.

A claim's verdict is a function of its summary (:mod:`learnmech.atlas.contract`): a mapping of
named scalars (and curves) computed once from the prediction and the measurement. The rules
compare summary scalars with thresholds:

- a :class:`Guard` states what a run must satisfy to say anything at all ("no member diverged",
  "every mode reached s/2"); the first guard that does not pass makes the verdict
  ``inconclusive``, with the guard's advice as the reason;
- a :class:`Check` is one part of the claim ("R^2 >= 0.99", "max relative error <= 5%"); when
  every guard passes, the verdict ``holds`` if every check passes and ``fails`` otherwise, naming
  the first failing check as its metric.

A claim whose checks judge only the parts of a run that could be judged (the members that reached
a regime) may set ``Rules(decisive_failures=True)``: a check that fails on a number (not NaN) then
makes the verdict ``fails`` before the guards are looked at, since the parts judged already
refute the claim whatever the others would show.

The verdict's reason lists every check with its value, so a reader sees all of them, not only the
first that failed; its details are the summary's scalars. A value that is NaN passes nothing.
A threshold is a number or the summary key that holds it (a tolerance computed from the config).

:func:`diverged` and :func:`reached` are the guards most claims share.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from learnmech.atlas.contract import Curve, Verdict

__all__ = ["Check", "Guard", "Rules", "count_diverged", "decide", "diverged", "reached"]

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Check:
    """``summary[key] <op> threshold`` passes; ``threshold`` is a number or a summary key."""

    metric: str
    key: str
    op: Literal[">=", "<=", ">", "<"]
    threshold: float | str
    fmt: str = ".4g"

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"op: must be one of {', '.join(_OPS)}, got {self.op!r}")

    def value(self, summary: Mapping) -> float:
        return _scalar(summary, self.key)

    def limit(self, summary: Mapping) -> float:
        return _scalar(summary, self.threshold) if isinstance(self.threshold, str) else float(self.threshold)

    def passes(self, summary: Mapping) -> bool:
        value, limit = self.value(summary), self.limit(summary)
        return not (math.isnan(value) or math.isnan(limit)) and bool(_OPS[self.op](value, limit))

    def describe(self, summary: Mapping) -> str:
        value, limit = self.value(summary), self.limit(summary)
        mark = "" if self.passes(summary) else " (not met)"
        return f"{self.metric} {value:{self.fmt}} {self.op} {limit:{self.fmt}}{mark}"


@dataclass(frozen=True)
class Guard(Check):
    """A precondition: when it does not pass, the verdict is inconclusive and ``advice`` says why."""

    advice: str = ""


@dataclass(frozen=True)
class Rules:
    """A claim's verdict rule: ``guards`` (in order), then ``checks`` (the first is the headline)."""

    checks: tuple[Check, ...]
    guards: tuple[Guard, ...] = ()
    decisive_failures: bool = False  # a check failing on a number decides before the guards

    def __post_init__(self):
        if not self.checks:
            raise ValueError("checks: a claim needs at least one check")
        if any(isinstance(c, Guard) for c in self.checks) or not all(isinstance(g, Guard) for g in self.guards):
            raise ValueError("guards are Guard, checks are Check")


def _scalar(summary: Mapping, key: str) -> float:
    if key not in summary:
        raise KeyError(f"summary has no {key!r}; it has {', '.join(sorted(summary))}")
    value = summary[key]
    if isinstance(value, Curve):
        raise TypeError(f"summary[{key!r}] is a curve; a rule compares scalars")
    return float(value)


def _details(summary: Mapping) -> dict[str, float]:
    return {k: float(v) for k, v in summary.items() if not isinstance(v, Curve)}


def decide(rules: Rules, summary: Mapping) -> Verdict:
    """The verdict of ``rules`` on ``summary`` (see the module docstring)."""
    details = _details(summary)
    decisive = rules.decisive_failures and any(
        c.key in summary and not c.passes(summary) and not math.isnan(c.value(summary)) for c in rules.checks)
    for guard in () if decisive else rules.guards:
        if not guard.passes(summary):
            return Verdict(status="inconclusive", metric=guard.metric, value=guard.value(summary),
                           threshold=guard.limit(summary), reason=f"{guard.advice} ({guard.describe(summary)})",
                           details=details)
    failing = [c for c in rules.checks if not c.passes(summary)]
    head = failing[0] if failing else rules.checks[0]
    return Verdict(status="fails" if failing else "holds", metric=head.metric, value=head.value(summary),
                   threshold=head.limit(summary), reason="; ".join(c.describe(summary) for c in rules.checks),
                   details=details)


def count_diverged(*curves: Curve) -> float:
    """How many members of these curves have a non-finite value (the trainer NaNs a diverged member)."""
    bad = [np.any(~np.isfinite(c.y), axis=1) for c in curves]
    if len({b.size for b in bad}) == 1:  # the same members in every curve: count each member once
        return float(np.sum(np.logical_or.reduce(bad)))
    return float(sum(np.sum(b) for b in bad))


def diverged(advice: str = "a member diverged; lower the learning rate", key: str = "diverged") -> Guard:
    """The shared guard: no member diverged (``summary[key]`` counts them, :func:`count_diverged`)."""
    return Guard("diverged members", key, "<=", 0.0, fmt="g", advice=advice)


def reached(metric: str, key: str, needed: float | str, advice: str = "the run ended too early") -> Guard:
    """The shared guard "ran long enough": ``summary[key] >= needed``."""
    return Guard(metric, key, ">=", needed, fmt="g", advice=advice)
