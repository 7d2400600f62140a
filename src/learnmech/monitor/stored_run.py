"""A monitored run in the store: created or resumed, appended to, closed; each step one transaction.

Contract
--------
* A monitored run is a row of the store's ``runs`` table like a claim's run: claim
  ``monitor.<name>`` (``claim_id``), preset ``"monitor"``, the user's config, and a run id that
  depends on the name alone (``monitor_run_id``), so a second recorder with the same name finds
  the same run. Its curves are ``series`` rows of source ``experiment``.
* ``begin(store, spec, resume)`` creates the run (status ``running``) or, when it exists and
  ``resume`` is true, marks it ``running`` again and keeps everything it holds; it returns the
  seconds already recorded. It raises ``ValueError`` (nothing written) when the run exists and
  ``resume`` is false, or when a given config differs from the stored one.
* ``append(store, run_id, columns, seconds)`` writes curve points in one transaction: a point
  whose (name, member, step) is already stored replaces it (a loop restarted from a checkpoint
  rewrites the steps it repeats); every other stored point stays.
* ``finish(store, run_id, status, error, seconds)`` marks the run ``done`` or ``failed``;
  ``set_figures(store, run_id, paths)`` replaces its ``figure`` artifacts.

The writes go through the store's one writer connection inside its transaction helper (the
``Store`` class has no public call that appends points to a run while it is running).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from learnmech.store import Store, canonical_json, run_id
from learnmech.store import schema

__all__ = ["CLAIM_PREFIX", "PRESET", "RunSpec", "append", "begin", "claim_id", "finish", "monitor_run_id",
           "set_figures"]

CLAIM_PREFIX = "monitor."
PRESET = "monitor"
_ID_SALT = "learnmech.Recorder"  # stands where a claim run hashes the package version: names outlive versions
_STAGED = "_learnmech_monitor_in"


@dataclass(frozen=True)
class RunSpec:
    """What identifies and describes a monitored run."""

    name: str
    config: Mapping | None
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def claim(self) -> str:
        return claim_id(self.name)

    @property
    def run_id(self) -> str:
        return monitor_run_id(self.name)


def claim_id(name: str) -> str:
    """The ``claim`` column of the run recorded under ``name``."""
    return CLAIM_PREFIX + name


def monitor_run_id(name: str) -> str:
    """The run id of the run recorded under ``name``: the same in every store and version."""
    return run_id(claim_id(name), {}, _ID_SALT)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _rows(con, sql: str, params: Sequence = ()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def begin(store: Store, spec: RunSpec, resume: bool) -> float:
    """Create or resume the run of ``spec``; return the seconds it already holds (module docstring)."""
    rid = spec.run_id
    config = canonical_json(spec.config or {})
    with store._transaction() as con:
        found = _rows(con, "SELECT claim, config, seconds FROM runs WHERE run_id = ?", [rid])
        if not found:
            _rows(con, "INSERT INTO runs (run_id, claim, preset, config, status, started_at, finished_at, seconds, "
                  "host, versions, error) VALUES (?, ?, ?, ?, 'running', ?, NULL, 0.0, ?, ?, NULL)",
                  [rid, spec.claim, PRESET, config, _now(), socket.gethostname(), canonical_json(spec.versions)])
            return 0.0
        claim, stored_config, seconds = found[0]
        if claim != spec.claim:
            raise ValueError(f"name: run id {rid} of {spec.name!r} is taken by {claim!r} in {store.path}; "
                             "choose another name")
        if not resume:
            raise ValueError(f"name: a run named {spec.name!r} is already in {store.path} (run {rid}); pass "
                             "resume=True to append to it, or choose another name")
        if spec.config is not None and canonical_json(json.loads(stored_config or "{}")) != config:
            raise ValueError(f"config: differs from the config stored with run {spec.name!r} ({stored_config}); "
                             "pass config=None to keep it, or choose another name")
        _rows(con, "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, host = ?, versions = ? "
              "WHERE run_id = ?", [socket.gethostname(), canonical_json(spec.versions), rid])
    return float(seconds or 0.0)


def append(store: Store, rid: str, columns: Mapping[str, np.ndarray], seconds: float) -> None:
    """Write curve points (replacing any at the same name, member and step) and the run's seconds."""
    table = schema.series_table(columns)
    with store._transaction() as con:
        if table.num_rows:
            con.register(_STAGED, table)
            try:
                _rows(con, f"DELETE FROM series USING {_STAGED} AS s WHERE series.run_id = ? AND "
                      "series.source = s.source AND series.name = s.name AND series.member = s.member "
                      "AND series.step = s.step", [rid])
                _rows(con, f"INSERT INTO series SELECT ?, source, name, member, step, value FROM {_STAGED}", [rid])
            finally:
                con.unregister(_STAGED)
        _rows(con, "UPDATE runs SET seconds = ? WHERE run_id = ?", [float(seconds), rid])


def finish(store: Store, rid: str, *, status: str, error: str | None, seconds: float) -> None:
    """Mark the run ``done`` or ``failed`` (with ``error``), with its total seconds."""
    if status not in ("done", "failed"):
        raise ValueError(f"status: must be 'done' or 'failed', got {status!r}")
    with store._transaction() as con:
        _rows(con, "UPDATE runs SET status = ?, finished_at = ?, seconds = ?, error = ? WHERE run_id = ?",
              [status, _now(), float(seconds), error, rid])


def set_figures(store: Store, rid: str, paths: Sequence[str]) -> None:
    """Replace the run's ``figure`` artifacts by ``paths``."""
    rows = schema.artifact_rows([("figure", str(p)) for p in paths])
    with store._transaction() as con:
        _rows(con, "DELETE FROM artifacts WHERE run_id = ? AND kind = 'figure'", [rid])
        if rows:
            con.executemany("INSERT INTO artifacts VALUES (?, ?, ?)", [(rid, kind, path) for kind, path in rows])
