"""Executing one claim run where it is computed (this process, a pool worker or a Ray worker).

Contract. ``execute_run(claim, preset, config)`` validates ``config`` (a mapping of the claim's
config fields; the canonical JSON a run id is hashed from) with the claim's pydantic model,
then predicts, measures, summarizes, judges and plots inside ``jax.enable_x64(True)`` and returns a
:class:`~learnmech.sweep.payload.RunPayload`: the curves in the store's long format, the
verdict row (the summary is stored as a third source of curves, ``summary``), the figure as PNG and SVG bytes, and where it ran. It never writes anything and
never raises for a failure of the claim: an exception becomes a ``failed`` payload carrying
the traceback, so a sweep records it and goes on. ``claim`` is a registered id (what a remote
worker receives) or a :class:`Claim`.

Preregistration. ``execute_run(..., preregister=fn)`` hands ``fn`` to a claim's ``measure`` that
has a parameter named ``preregister`` (:func:`call_measure`); without ``fn`` (a sweep worker) the
claim gets :func:`clock_preregister`, which checks the values and returns the time it was called.
The channel and its time unit (Unix seconds, UTC) are stated in :mod:`learnmech.atlas.contract`.
"""

from __future__ import annotations

import inspect
import os
import platform
import time
import traceback
from collections.abc import Callable, Mapping

import jax
import numpy as np

from learnmech import __version__
from learnmech.atlas.contract import Claim, Curve, Preregister, Progress, Record, Verdict
from learnmech.atlas.registry import get_claim
from learnmech.report.figures import figure_bytes
from learnmech.store import run_id
from learnmech.store.preregistrations import check_values
from learnmech.sweep.payload import RunPayload

__all__ = ["call_measure", "clock_preregister", "execute_run", "record_columns", "record_from_columns",
           "verdict_from_row", "verdict_row", "versions"]


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on."""
    import duckdb
    import optax

    return {"learnmech": __version__, "jax": jax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "duckdb": duckdb.__version__, "python": platform.python_version()}


def record_columns(source: str, record: Record) -> dict[str, np.ndarray]:
    """Long-format columns ``source, name, member, step, value`` of a record's curves and scalars.

    A scalar is one row with member 0 and step NaN: a curve's steps are finite, so the two cannot
    be confused when the record is read back (:func:`record_from_columns`).
    """
    cols: dict[str, list] = {k: [] for k in ("source", "name", "member", "step", "value")}
    for name, entry in record.items():
        curve = entry if isinstance(entry, Curve) else Curve(np.zeros(1), np.full((1, 1), float(entry)))
        members, steps = curve.y.shape
        cols["source"].append(np.full(members * steps, source, dtype=object))
        cols["name"].append(np.full(members * steps, name, dtype=object))
        cols["member"].append(np.repeat(np.arange(members, dtype=np.int32), steps))
        cols["step"].append(np.tile(curve.x, members) if isinstance(entry, Curve) else np.full(1, np.nan))
        cols["value"].append(curve.y.ravel())
    return {k: (np.concatenate(v) if v else np.array([])) for k, v in cols.items()}


def record_from_columns(cols: Mapping[str, np.ndarray], source: str) -> dict[str, Curve | float]:
    """Inverse of :func:`record_columns` for one source."""
    out = {}
    keep = np.asarray(cols["source"]) == source
    names, members = np.asarray(cols["name"])[keep], np.asarray(cols["member"])[keep]
    steps, values = np.asarray(cols["step"])[keep], np.asarray(cols["value"])[keep]
    for name in dict.fromkeys(names.tolist()):
        sel = names == name
        m, x, v = members[sel], steps[sel], values[sel]
        if x.size == 1 and np.isnan(x[0]):
            out[name] = float(v[0])
            continue
        n_members = int(m.max()) + 1
        x0 = x[m == 0]
        order = np.lexsort((x, m))
        out[name] = Curve(x0[np.argsort(x0)], v[order].reshape(n_members, -1))
    return out


def verdict_row(v: Verdict) -> dict:
    """A Verdict as the store's verdict row."""
    return {"verdict": v.status, "metric": v.metric, "value": v.value, "threshold": v.threshold,
            "reason": v.reason, "details": v.details}


def verdict_from_row(row: Mapping | None) -> Verdict | None:
    """A stored (or payload) verdict row as a Verdict; JSON nulls in details become NaN."""
    if row is None:
        return None
    details = {k: (float("nan") if v is None else v) for k, v in (row.get("details") or {}).items()}
    return Verdict(status=row["verdict"], metric=row["metric"], value=row["value"], threshold=row["threshold"],
                   reason=row["reason"], details=details)


def clock_preregister(name: str, values: Mapping[str, float]) -> float:
    """The ``preregister`` of a run with no store behind it: check ``values``, return ``time.time()``.

    Nothing is written; the claim keeps the returned time (Unix seconds, UTC) in its measurement.
    Bad values raise the same one-line ``ValueError`` as ``Store.preregister``.
    """
    check_values(name, values)
    return time.time()


def call_measure(measure: Callable[..., Record], cfg, progress: Progress | None,
                 preregister: Preregister) -> Record:
    """``measure(cfg, progress, preregister=preregister)`` when ``measure`` has a parameter named
    ``preregister``, else ``measure(cfg, progress)``; the channel is the name, as for ``hp`` in
    :func:`learnmech.train.member.call_with_hp`. A positional-only ``preregister`` gets it in place; a
    signature that cannot be read, or one with only ``*args`` / ``**kwargs``, gets two arguments.
    """
    try:
        channel = inspect.signature(measure).parameters.get("preregister")
    except (TypeError, ValueError):
        channel = None
    if channel is None or channel.kind in (channel.VAR_POSITIONAL, channel.VAR_KEYWORD):
        return measure(cfg, progress)
    if channel.kind == channel.POSITIONAL_ONLY:
        return measure(cfg, progress, preregister)
    return measure(cfg, progress, preregister=preregister)


def _where() -> dict:
    return {"host": platform.node(), "pid": os.getpid(), "versions": versions()}


def execute_run(claim: Claim | str, preset: str, config: Mapping, progress: Progress | None = None,
                preregister: Preregister | None = None) -> RunPayload:
    """Predict, measure, judge and plot one run of ``claim``; see the module docstring.

    ``preregister`` (default :func:`clock_preregister`) reaches a ``measure`` that asks for it.
    """
    claim = get_claim(claim) if isinstance(claim, str) else claim
    start = time.perf_counter()
    rid = run_id(claim.id, dict(config), __version__)
    try:
        cfg = claim.config.model_validate(dict(config))
        with jax.enable_x64(True):  # claims state their dtypes; this only makes float64 available
            prediction = claim.predict(cfg)
            measurement = call_measure(claim.measure, cfg, progress, preregister or clock_preregister)
            summary, verdict = claim.evaluate(cfg, prediction, measurement)
            figure = claim.figure(cfg, prediction, measurement, summary, verdict)
        figures = figure_bytes(figure)
        parts = [record_columns(source, record) for source, record in
                 (("theory", prediction), ("experiment", measurement), ("summary", summary))]
        series = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    except Exception:  # a crash inside one run is data for the driver, not a crash of the sweep
        return RunPayload(rid, claim.id, preset, "failed", time.perf_counter() - start,
                          error=traceback.format_exc(), **_where())
    return RunPayload(rid, claim.id, preset, "done", time.perf_counter() - start, series=series,
                      verdict=verdict_row(verdict), figures=figures, **_where())
