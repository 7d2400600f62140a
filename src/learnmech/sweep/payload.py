"""What one run of a sweep sends back to the driver, and how the driver writes it.

Contract
--------
* A worker never touches the store. It returns a :class:`RunPayload`: the run's identity, its
  state (``done`` or ``failed``), its curves as the store's long columns, its verdict row, its
  figures as bytes per format, the traceback of a run that raised, and where it ran (host, pid,
  versions). A payload is plain data: it pickles across processes and machines.
* ``record_payload(store, payload)`` is the driver's half: it writes the figures beside the
  store (each file atomically, named ``<claim>-<run_id>.<format>``) and then the run's results
  in one transaction (``Store.finish_run``) or marks it failed (``Store.fail_run``). The run
  must already be ``running`` (``Store.begin_run``). A redo of a finished run writes its figures
  under new names (``<claim>-<run_id>-<time>.<format>``) so that the finished run's figures stay
  as they were until the transaction swaps the results; the replaced files are removed after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from learnmech.store import Store
from learnmech.store.files import write_files

__all__ = ["RunPayload", "record_payload"]


@dataclass(frozen=True)
class RunPayload:
    """The outcome of executing one run, ready for the driver to store."""

    run_id: str
    claim: str
    preset: str
    state: str  # "done" | "failed"
    seconds: float
    series: dict[str, np.ndarray] | None = None
    verdict: dict | None = None
    figures: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    versions: dict | None = None

    def __post_init__(self):
        if self.state not in ("done", "failed"):
            raise ValueError(f"RunPayload.state must be 'done' or 'failed', got {self.state!r}")
        if self.state == "failed" and not self.error:
            raise ValueError("a failed RunPayload needs its error text")


def record_payload(store: Store, payload: RunPayload) -> list[Path]:
    """Write ``payload`` into ``store`` (figures first, then one transaction); return the figure paths."""
    if payload.state == "failed":
        store.fail_run(payload.run_id, error=payload.error, seconds=payload.seconds,
                       host=payload.host, versions=payload.versions)
        return []
    stem = f"{payload.claim}-{payload.run_id}"
    redo = store.redo(payload.run_id)
    replaced: list[str] = []
    if redo is not None and redo["status"] == "running":
        stem += "-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        replaced = [path for kind, path in store.artifacts(payload.run_id) if kind == "figure"]
    paths = write_files(store.directory / "figures", stem, payload.figures)
    store.finish_run(payload.run_id, series=payload.series, verdict=payload.verdict,
                     artifacts=[("figure", str(p)) for p in paths], seconds=payload.seconds,
                     host=payload.host, versions=payload.versions)
    figures = (store.directory / "figures").resolve()
    for old in set(replaced) - {str(p) for p in paths}:
        if Path(old).resolve().parent == figures:  # only the figures this store wrote for the run
            Path(old).unlink(missing_ok=True)
    return paths
