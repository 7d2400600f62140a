"""Preregistrations: a prediction written to the store before the experiment that tests it runs.

Contract
--------
* Table ``preregistrations (run_id, name, key, value, registered_at)``: one row per value of a
  registration; the rows of one registration share ``run_id``, ``name`` and ``registered_at``.
* Append-only: rows are never updated or deleted, not by ``begin_run`` (a failed or killed run
  keeps what it registered) and not by a ``--force`` redo (its registration is appended beside
  the earlier one). Readers take the latest registration per ``(run_id, name)``
  (:func:`latest`) or list them all (:func:`history`).
* ``registered_at`` is the store's clock (naive UTC, the clock of ``runs.started_at``), read in
  the registering transaction. A registration of the same ``(run_id, name)`` within the same
  microsecond as (or, after a clock step back, before) the previous one is moved 1 µs after it,
  so the latest registration is always unique.
* Only a run that is running may register: status ``running``, or a ``done`` run whose
  ``--force`` redo is running. Otherwise :func:`run_problem` says why, and ``Store.preregister``
  raises a one-line ``ValueError``.
* ``values`` maps non-empty string keys to real numbers (``bool`` refused). ``NaN`` is allowed
  and stored as NaN: it records "the fit gave no number", which is itself a prediction made in
  time; ``+-inf`` is refused.
* A store written before this table existed and opened read-only lacks it: readers return
  ``{}`` / ``[]`` (``schema.has_table``).
* :func:`unix_time` turns a stored time into seconds since the Unix epoch (UTC), the unit of
  the ``preregister`` channel of a claim's ``measure`` (see :mod:`learnmech.atlas.contract`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import duckdb

from learnmech.store import schema

__all__ = ["TABLE", "check_values", "history", "insert", "latest", "run_problem", "unix_time"]

TABLE = "preregistrations"
_TICK = timedelta(microseconds=1)  # DuckDB TIMESTAMP resolution


def check_values(name: object, values: object) -> list[tuple[str, float]]:
    """Check a registration's ``name`` and ``values``; return its ``(key, value)`` pairs in order.

    Raises ``ValueError`` (one line naming the field) for an empty or non-string name or key, an
    empty or non-mapping ``values``, a non-number (``bool`` included) or an infinite value.

    >>> check_values("fit", {"loss": 2.5, "alpha": float("nan")})
    [('loss', 2.5), ('alpha', nan)]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"preregistration name must be a non-empty string, got {name!r}")
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"preregistration {name!r}: values must be a non-empty mapping of str to float, "
                         f"got {values!r}")
    items = []
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"preregistration {name!r}: each key must be a non-empty string, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isinf(float(value)):
            raise ValueError(f"preregistration {name!r}: values[{key!r}] must be a finite float or NaN, "
                             f"got {value!r}")
        items.append((key, float(value)))
    return items


def run_problem(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """Why run ``run_id`` cannot take a registration now, or None when it is running."""
    rows = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchall()
    if not rows:
        return f"run_id: no run {run_id!r} in the store; preregister between begin_run and finish_run"
    status = rows[0][0]
    if status == "done" and schema.has_table(con, "redos"):
        redo = con.execute("SELECT status FROM redos WHERE run_id = ?", [run_id]).fetchall()
        status = "done" if not redo or redo[0][0] != "running" else "running"
    if status != "running":
        return f"run_id: run {run_id} is {status}, not running; a prediction is registered while its run runs"
    return None


def _last(con: duckdb.DuckDBPyConnection, run_id: str, name: str) -> datetime | None:
    rows = con.execute(f"SELECT max(registered_at) FROM {TABLE} WHERE run_id = ? AND name = ?",
                       [run_id, name]).fetchall()
    return rows[0][0]


def insert(con: duckdb.DuckDBPyConnection, run_id: str, name: str, items: list[tuple[str, float]],
           now: datetime) -> datetime:
    """Append one registration (``items`` from :func:`check_values`) at ``now``; return the time stored.

    The caller holds the transaction. A run that is not running raises ``ValueError`` (:func:`run_problem`).
    The time stored is ``now``, or 1 µs after the previous registration of ``(run_id, name)`` if that is later.
    """
    problem = run_problem(con, run_id)
    if problem:
        raise ValueError(problem)
    last = _last(con, run_id, name)
    at = now if last is None or now > last else last + _TICK
    con.executemany(f"INSERT INTO {TABLE} (run_id, name, key, value, registered_at) VALUES (?, ?, ?, ?, ?)",
                    [(run_id, name, key, value, at) for key, value in items])
    return at


def history(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """Every registration of ``run_id``, oldest first: ``{"name", "registered_at", "values"}``.

    ``values`` keeps the keys in the order they were registered.
    """
    if not schema.has_table(con, TABLE):
        return []
    rows = con.execute(f"SELECT name, registered_at, key, value FROM {TABLE} WHERE run_id = ? "
                       "ORDER BY registered_at, name, rowid", [run_id]).fetchall()
    out: dict[tuple[str, datetime], dict] = {}
    for name, at, key, value in rows:
        entry = out.setdefault((name, at), {"name": name, "registered_at": at, "values": {}})
        entry["values"][key] = value
    return list(out.values())


def latest(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, dict]:
    """The latest registration per name: ``{name: {"registered_at": datetime, "values": {key: float}}}``."""
    return {entry["name"]: {"registered_at": entry["registered_at"], "values": entry["values"]}
            for entry in history(con, run_id)}


def unix_time(moment: datetime) -> float:
    """Seconds since the Unix epoch of a naive-UTC store time (as ``time.time()`` counts them).

    >>> unix_time(datetime(1970, 1, 2))
    86400.0
    """
    return moment.replace(tzinfo=timezone.utc).timestamp()
