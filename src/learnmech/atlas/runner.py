"""Running a claim against the store: skip what is done, record everything of what is not.

Contract. ``run_claim`` computes the run id from the claim id, the canonical config and the
package version. A run already ``done`` is skipped (its stored verdict is returned) unless
``force``. Otherwise the run is marked ``running`` (one transaction), predicted, measured,
judged and plotted, and then its curves, verdict and figure paths are written and it is marked
``done`` in one transaction. A process killed in between leaves it ``running``, and the next
call redoes it; an exception inside the claim marks it ``failed`` with the traceback and is
reported, not raised, so a sweep or the atlas goes on.
"""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Mapping

import jax
import numpy as np

from learnmech import __version__
from learnmech.atlas.contract import Claim, Curve, Progress, Record, Verdict
from learnmech.report import save_figure
from learnmech.store import Store, run_id

__all__ = ["Outcome", "record_columns", "record_from_columns", "run_claim", "stored_verdict", "versions"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one claim run."""

    claim_id: str
    preset: str
    run_id: str
    state: str  # "done" | "skipped" | "failed"
    verdict: Verdict | None
    seconds: float
    figures: list[str] = field(default_factory=list)
    error: str | None = None


def versions() -> dict[str, str]:
    import duckdb
    import optax

    return {"learnmech": __version__, "jax": jax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "duckdb": duckdb.__version__, "python": platform.python_version()}


def record_columns(source: str, record: Record) -> dict[str, np.ndarray]:
    """Long-format columns ``source, name, member, step, value`` of a record's curves."""
    cols: dict[str, list] = {k: [] for k in ("source", "name", "member", "step", "value")}
    for name, curve in record.items():
        members, steps = curve.y.shape
        cols["source"].append(np.full(members * steps, source, dtype=object))
        cols["name"].append(np.full(members * steps, name, dtype=object))
        cols["member"].append(np.repeat(np.arange(members, dtype=np.int32), steps))
        cols["step"].append(np.tile(curve.x, members))
        cols["value"].append(curve.y.ravel())
    return {k: (np.concatenate(v) if v else np.array([])) for k, v in cols.items()}


def record_from_columns(cols: Mapping[str, np.ndarray], source: str) -> dict[str, Curve]:
    """Inverse of :func:`record_columns` for one source."""
    out = {}
    keep = np.asarray(cols["source"]) == source
    names, members = np.asarray(cols["name"])[keep], np.asarray(cols["member"])[keep]
    steps, values = np.asarray(cols["step"])[keep], np.asarray(cols["value"])[keep]
    for name in dict.fromkeys(names.tolist()):
        sel = names == name
        m, x, v = members[sel], steps[sel], values[sel]
        n_members = int(m.max()) + 1
        x0 = x[m == 0]
        order = np.lexsort((x, m))
        out[name] = Curve(x0[np.argsort(x0)], v[order].reshape(n_members, -1))
    return out


def _verdict_row(v: Verdict) -> dict:
    return {"verdict": v.status, "metric": v.metric, "value": v.value, "threshold": v.threshold,
            "reason": v.reason, "details": v.details}


def stored_verdict(store: Store, rid: str) -> Verdict | None:
    row = store.verdict(rid)
    if row is None:
        return None
    return Verdict(status=row["verdict"], metric=row["metric"], value=row["value"], threshold=row["threshold"],
                   reason=row["reason"], details={k: (float("nan") if v is None else v) for k, v in (row.get("details") or {}).items()})


def run_claim(claim: Claim, config, *, preset: str, store: Store, force: bool = False,
              progress: Progress | None = None) -> Outcome:
    """Run one claim with ``config`` (see the module docstring)."""
    cfg_json = config.model_dump(mode="json")
    rid = run_id(claim.id, cfg_json, __version__)
    if store.status(rid) == "done" and not force:
        figs = [p for kind, p in store.artifacts(rid) if kind == "figure"]
        return Outcome(claim.id, preset, rid, "skipped", stored_verdict(store, rid), 0.0, figs)
    store.begin_run(rid, claim=claim.id, preset=preset, config=cfg_json, versions=versions(), host=platform.node())
    start = time.perf_counter()
    try:
        with jax.enable_x64(True):  # claims state their dtypes; this only makes float64 available
            prediction = claim.predict(config)
            measurement = claim.measure(config, progress)
            verdict = claim.judge(config, prediction, measurement)
            figure = claim.plot(config, prediction, measurement, verdict)
        paths = [str(p) for p in save_figure(figure, store.directory / "figures", f"{claim.id}-{rid}")]
        series = record_columns("theory", prediction)
        exp = record_columns("experiment", measurement)
        series = {k: np.concatenate([series[k], exp[k]]) for k in series}
        seconds = time.perf_counter() - start
        store.finish_run(rid, series=series, verdict=_verdict_row(verdict),
                         artifacts=[("figure", p) for p in paths], seconds=seconds)
        return Outcome(claim.id, preset, rid, "done", verdict, seconds, paths)
    except Exception:  # a crash inside one run is recorded, and the caller goes on
        seconds = time.perf_counter() - start
        error = traceback.format_exc()
        store.fail_run(rid, error=error, seconds=seconds)
        return Outcome(claim.id, preset, rid, "failed", None, seconds, [], error)
