"""Running a claim against the store in this process: skip what is done, record all of what is not.

Contract. ``run_claim`` computes the run id from the claim id, the canonical config and the
package version. A run already ``done`` is skipped (its stored verdict is returned) unless
``force``, with a ``note`` when an earlier ``--force`` redo of it did not finish (the stored
result is then the earlier one). Otherwise the run is marked ``running`` (a redo of a ``done``
run keeps the finished result until the new one replaces it; see :class:`~learnmech.store.Store`),
executed by
:func:`~learnmech.atlas.execute.execute_run` (predict, measure, judge, plot), and its curves,
verdict and figure paths are written and it is marked ``done`` in one transaction
(:func:`~learnmech.sweep.payload.record_payload`, the same path a sweep's driver takes). A
process killed in between leaves it ``running``, and the next call redoes it; an exception
inside the claim marks it ``failed`` with the traceback and is reported, not raised, so the
atlas goes on. A claim's ``measure`` that asks for ``preregister`` gets :func:`store_preregister`:
each prediction is in the store (``Store.preregister``) before ``measure`` goes on, and stays there
whatever happens to the run.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field

from learnmech import __version__
from learnmech.atlas.contract import Claim, Preregister, Progress, Verdict
from learnmech.atlas.execute import (execute_run, record_columns, record_from_columns, verdict_from_row,
                                     versions)
from learnmech.store import Store, run_id
from learnmech.store.preregistrations import unix_time
from learnmech.sweep.payload import record_payload

__all__ = ["Outcome", "record_columns", "record_from_columns", "redo_note", "run_claim", "store_preregister",
           "stored_verdict", "versions"]


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
    note: str | None = None


def stored_verdict(store: Store, rid: str) -> Verdict | None:
    """The verdict stored for run ``rid``, or None."""
    return verdict_from_row(store.verdict(rid))


def redo_note(redo: dict | None) -> str | None:
    """A sentence on an unfinished or failed ``--force`` redo of a done run, or None."""
    if redo is None:
        return None
    how = "did not finish" if redo["status"] == "running" else "failed"
    started = f"{redo['started_at']:%Y-%m-%d %H:%M:%S}"
    return f"a --force redo started {started} UTC {how}; the result kept is the earlier one"


def store_preregister(store: Store, rid: str) -> Preregister:
    """The ``preregister`` of run ``rid``: ``Store.preregister`` at once; returns the stored time in Unix seconds."""

    def preregister(name: str, values: Mapping[str, float]) -> float:
        return unix_time(store.preregister(rid, name, values))

    return preregister


def run_claim(claim: Claim, config, *, preset: str, store: Store, force: bool = False,
              progress: Progress | None = None) -> Outcome:
    """Run one claim with ``config`` (see the module docstring)."""
    cfg_json = config.model_dump(mode="json")
    rid = run_id(claim.id, cfg_json, __version__)
    if store.status(rid) == "done" and not force:
        figs = [p for kind, p in store.artifacts(rid) if kind == "figure"]
        return Outcome(claim.id, preset, rid, "skipped", stored_verdict(store, rid), 0.0, figs,
                       note=redo_note(store.redo(rid)))
    store.begin_run(rid, claim=claim.id, preset=preset, config=cfg_json, versions=versions(), host=platform.node())
    payload = execute_run(claim, preset, cfg_json, progress, store_preregister(store, rid))
    paths = [str(p) for p in record_payload(store, payload)]
    return Outcome(claim.id, preset, rid, payload.state, verdict_from_row(payload.verdict), payload.seconds,
                   paths, payload.error)
