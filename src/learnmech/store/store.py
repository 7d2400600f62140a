"""The results store: one DuckDB file with runs, curves, verdicts and artifact paths.

Contract
--------
* ``Store.open(path)`` opens or creates a learnmech store. A path that exists but is not one
  is refused with ``NotAStoreError`` and left byte-for-byte unchanged: a non-DuckDB file is
  recognised by its header without DuckDB, a DuckDB file is opened read-only to look for the
  ``learnmech_meta`` marker before any read-write open. ``Store.check(path)`` does the same
  checks and never writes.
* A Store holds one read-write connection for its lifetime. DuckDB lets one process write a
  file at a time, so a second process gets ``StoreBusyError``; a run found ``running`` was
  therefore left by a killed process, and callers redo it.
* ``begin_run`` and ``finish_run`` are each one transaction: ``finish_run`` validates its input
  first (``ValueError``), then writes all of a run's results or none of them.
* Redoing a ``done`` run (``--force``) never removes its results early: ``begin_run`` records the
  redo in the ``redos`` table and leaves the run, its curves, verdict and artifacts as they are;
  ``finish_run`` replaces them with the redo's in one transaction. A redo that is interrupted
  (killed, Ctrl-C, disk full) or fails leaves the earlier result intact, and ``RunRecord.redo``
  says so (``{"status": "running" | "failed", ...}``).
* ``preregister`` appends a claim's prediction for a running run, stamped with the store's clock,
  in one transaction; nothing ever removes it (:mod:`~learnmech.store.preregistrations`).
* Integrity is DuckDB's to judge (``schema.integrity_problem``: every table read at open).
* Errors about the store file are one line starting with ``--store:``. Times are naive UTC.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from learnmech import __version__
from learnmech.store import preregistrations as prereg, schema
from learnmech.store.files import write_folder
from learnmech.store.ids import canonical_json

__all__ = ["DEFAULT_STORE_PATH", "NotAStoreError", "RunRecord", "Store", "StoreBusyError",
           "StoreError", "UnknownRunError"]

DEFAULT_STORE_PATH = Path("learnmech-results") / "learnmech.duckdb"
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]+")
_KIND_PROBLEMS = {"directory": "is a directory, not a learnmech store file",
                  "empty": "is an empty file, not a learnmech store",
                  "special": "is not a regular file (a FIFO, socket or device), not a learnmech store",
                  "other": "is not a learnmech store (not a DuckDB file)"}
EXPORT_TABLES = {"runs": "started_at, run_id", "series": "run_id, source, name, member, step",
                 "verdicts": "run_id", "artifacts": "run_id, rowid",
                 "preregistrations": "run_id, registered_at, name, key"}
_RUN_COLUMNS = ("run_id, claim, preset, config, status, started_at, finished_at, seconds, "
                "host, versions, error")


class StoreError(Exception):
    """A problem with the store file or with using it (closed, read-only, wrong state)."""


class NotAStoreError(StoreError):
    """The path exists but is not a learnmech store, or is missing and may not be created."""


class StoreBusyError(StoreError):
    """Another process holds the store's DuckDB lock."""


class UnknownRunError(KeyError):
    """No run, or no unique run, matches the given id or prefix."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table, with its JSON columns decoded."""

    run_id: str
    claim: str
    preset: str | None
    config: dict
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    host: str | None
    versions: dict
    error: str | None
    redo: dict | None = None  # a --force redo that did not finish: {"status", "started_at", "error"}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_duckdb_file(path: Path) -> bool:
    """True for an existing DuckDB file, False for a missing path; else NotAStoreError."""
    try:
        kind = schema.file_kind(path)
    except OSError as exc:
        raise StoreError(f"--store: {path} cannot be read ({_one_line(exc)})") from None
    if kind in _KIND_PROBLEMS:
        raise NotAStoreError(f"--store: {path} {_KIND_PROBLEMS[kind]}")
    return kind == "duckdb"


def _busy(path: Path, message: str) -> StoreBusyError:
    pid = re.search(r"PID (\d+)", message)
    who = f" (pid {pid.group(1)})" if pid else ""
    return StoreBusyError(f"--store: {path} is in use by another learnmech process{who}; "
                          "wait for it to finish or choose another --store")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open ``path`` with DuckDB, turning its errors into one-line StoreErrors."""
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "could not set lock" in str(exc).lower() or "conflicting lock" in str(exc).lower():
            raise _busy(path, str(exc)) from None
        raise StoreError(f"--store: {path} cannot be opened by DuckDB ({_one_line(exc)}); if it is damaged or "
                         "truncated, restore it from a copy or choose another --store") from None
    except duckdb.ConnectionException as exc:
        raise StoreBusyError(f"--store: {path} is already open in this process "
                             f"({_one_line(exc)})") from None
    except duckdb.Error as exc:
        raise StoreError(f"--store: {path} cannot be opened ({_one_line(exc)})") from None
    con.execute("SET enable_progress_bar = false").fetchall()
    return con


def _probe(path: Path, keep: bool) -> duckdb.DuckDBPyConnection | None:
    """Check an existing DuckDB file's marker and integrity read-only; return the connection if ``keep``."""
    con = _connect(path, read_only=True)
    try:
        problem = schema.meta_problem(schema.read_meta(con))
        if problem:
            raise NotAStoreError(f"--store: {path} {problem}")
        problem = schema.integrity_problem(con)
        if problem:
            raise NotAStoreError(f"--store: {path} {problem}")
    except BaseException:
        con.close()
        raise
    if keep:
        return con
    con.close()
    return None


def _create(path: Path) -> duckdb.DuckDBPyConnection:
    """Make the parent folders, the database file and its schema."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"--store: {path} cannot be created ({_one_line(exc)})") from None
    con = _connect(path, read_only=False)
    try:
        schema.create_schema(con, __version__)
    except BaseException:
        con.close()
        raise
    return con


def _upgrade(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Give a store written by an earlier learnmech the tables added since (closing ``con`` on failure)."""
    try:
        schema.create_added_tables(con)
    except BaseException:
        con.close()
        raise
    return con


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence = ()) -> list[tuple]:
    """Run one statement and fetch all of its result (DuckDB refuses new work otherwise)."""
    return con.execute(sql, list(params)).fetchall()


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """A string column as a numpy str array, via its (few) distinct values."""
    encoded = column.combine_chunks().dictionary_encode()
    words = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
    return words[encoded.indices.to_numpy(zero_copy_only=False)]


def _json_or_none(value: Mapping | None) -> str | None:
    return None if value is None else canonical_json(value)


def _record(row: tuple) -> RunRecord:
    values = list(row[:11])
    for i in (3, 9):  # config, versions
        values[i] = json.loads(values[i]) if values[i] is not None else {}
    redo = None
    if len(row) > 11 and row[11] is not None:
        redo = {"status": row[11], "started_at": row[12], "error": row[13]}
    return RunRecord(*values, redo=redo)


class Store:
    """A learnmech results store; open with ``Store.open(path)``, use as a context manager."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = con

    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True,
             read_only: bool = False) -> Store:
        """Open the store at ``path``, creating it (and its folders) if missing and ``create``."""
        p = Path(path)
        if _is_duckdb_file(p):
            probe = _probe(p, keep=read_only)
            con = probe if probe is not None else _upgrade(_connect(p, read_only=False))
        elif create and not read_only:
            con = _create(p)
        else:
            raise NotAStoreError(f"--store: {p} does not exist (no learnmech store there)")
        return cls(p, con, read_only)

    @staticmethod
    def check(path: str | os.PathLike) -> None:
        """Raise NotAStoreError if ``path`` exists and is not a learnmech store; never writes.

        A store locked by another process raises StoreBusyError; a missing path passes.
        """
        p = Path(path)
        if _is_duckdb_file(p):
            _probe(p, keep=False)

    @property
    def directory(self) -> Path:
        """The folder holding the database file (artifacts live beside it)."""
        return self.path.parent

    def close(self) -> None:
        """Close the connection; further use raises StoreError."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"--store: {self.path} is closed")
        return self._con

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.read_only:
            raise StoreError(f"--store: {self.path} was opened read-only")
        con = self._db
        con.begin()
        try:
            yield con
        except BaseException:
            con.rollback()
            raise
        con.commit()

    def begin_run(self, run_id: str, *, claim: str, preset: str | None, config: Mapping,
                  versions: Mapping, host: str | None = None) -> str:
        """Mark ``run_id`` running; return ``"new"``, or ``"redo"`` for a run that is already ``done``.

        A new run (or one left ``running`` or ``failed``) gets a fresh ``runs`` row, and whatever an
        earlier unfinished attempt left is dropped. A ``done`` run is not touched: the redo is
        recorded in ``redos`` and its results replace the old ones only in ``finish_run``.
        """
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id must be letters, digits, '-', '_' or '.'; got {run_id!r}")
        host = host or socket.gethostname()
        with self._transaction() as con:
            if self.status(run_id) == "done":
                _rows(con, "INSERT OR REPLACE INTO redos VALUES (?, 'running', ?, NULL, ?, ?, NULL)",
                      [run_id, _now(), host, canonical_json(versions)])
                return "redo"
            for table in ("series", "verdicts", "artifacts", "redos"):
                _rows(con, f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            _rows(con, f"INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}) "
                  "VALUES (?, ?, ?, ?, 'running', ?, NULL, NULL, ?, ?, NULL)",
                  (run_id, claim, preset, canonical_json(config), _now(), host, canonical_json(versions)))
        return "new"

    def finish_run(self, run_id: str, *, series: Mapping[str, np.ndarray] | None,
                   verdict: Mapping | None, artifacts: Sequence[tuple[str, str]] = (),
                   seconds: float, host: str | None = None, versions: Mapping | None = None) -> None:
        """Write a running run's series, verdict and artifacts and mark it done, atomically.

        For a redo, the earlier results are deleted and the new ones written in the same
        transaction. ``host`` and ``versions``, when given, replace those written by ``begin_run``
        (a sweep's worker may run on another machine than the driver that began the run).
        """
        table = schema.series_table(series) if series is not None else None
        vrow = schema.verdict_row(verdict) if verdict is not None else None
        arts = schema.artifact_rows(artifacts)
        seconds = float(seconds)
        redo = self._require_running(run_id) == "redo"
        with self._transaction() as con:
            if redo:
                for name in ("series", "verdicts", "artifacts"):
                    _rows(con, f"DELETE FROM {name} WHERE run_id = ?", [run_id])
                _rows(con, "UPDATE runs SET started_at = r.started_at, host = r.host, versions = r.versions, "
                      "error = NULL FROM redos AS r WHERE runs.run_id = r.run_id AND runs.run_id = ?", [run_id])
                _rows(con, "DELETE FROM redos WHERE run_id = ?", [run_id])
            if table is not None and table.num_rows:
                self._insert_series(con, run_id, table)
            if vrow is not None:
                self._insert_verdict(con, run_id, vrow)
            if arts:
                con.executemany("INSERT INTO artifacts VALUES (?, ?, ?)",
                                [(run_id, kind, path) for kind, path in arts])
            _rows(con, "UPDATE runs SET status = 'done', finished_at = ?, seconds = ?, "
                  "host = coalesce(?, host), versions = coalesce(?, versions) WHERE run_id = ?",
                  [_now(), seconds, host, _json_or_none(versions), run_id])

    def fail_run(self, run_id: str, *, error: str, seconds: float, host: str | None = None,
                 versions: Mapping | None = None) -> None:
        """Mark a running run failed with ``error`` (e.g. its traceback).

        A failed redo keeps the earlier result: only its ``redos`` row is marked failed.
        """
        if self._require_running(run_id) == "redo":
            with self._transaction() as con:
                _rows(con, "UPDATE redos SET status = 'failed', finished_at = ?, error = ?, "
                      "host = coalesce(?, host), versions = coalesce(?, versions) WHERE run_id = ?",
                      [_now(), str(error), host, _json_or_none(versions), run_id])
            return
        with self._transaction() as con:
            _rows(con, "UPDATE runs SET status = 'failed', finished_at = ?, seconds = ?, error = ?, "
                  "host = coalesce(?, host), versions = coalesce(?, versions) WHERE run_id = ?",
                  [_now(), float(seconds), str(error), host, _json_or_none(versions), run_id])

    def _require_running(self, run_id: str) -> str:
        """``"new"`` for a run marked running, ``"redo"`` for a done run with a redo under way."""
        found = self.status(run_id)
        if found is None:
            raise UnknownRunError(f"no run {run_id!r} in {self.path}; call begin_run first")
        if found == "running":
            return "new"
        if found == "done" and (self.redo(run_id) or {}).get("status") == "running":
            return "redo"
        raise StoreError(f"run {run_id} is {found}, not running; call begin_run first")

    def preregister(self, run_id: str, name: str, values: Mapping[str, float]) -> datetime:
        """Append prediction ``name`` (key -> float) of the running run ``run_id``; return its naive-UTC time.

        One transaction. A run not running, or bad values: one-line ``ValueError`` (:mod:`.preregistrations`)."""
        items = prereg.check_values(name, values)
        with self._transaction() as con:
            return prereg.insert(con, run_id, name, items, _now())

    def preregistrations(self, run_id: str, *, latest: bool = True) -> dict[str, dict] | list[dict]:
        """``{name: {"registered_at", "values"}}`` of the latest per name, or all (``latest=False``), oldest first."""
        return prereg.latest(self._db, run_id) if latest else prereg.history(self._db, run_id)

    def redo(self, run_id: str) -> dict | None:
        """The run's unfinished or failed ``--force`` redo: ``{"status", "started_at", "error"}``, or None."""
        if not schema.has_table(self._db, "redos"):  # a store of an earlier learnmech opened read-only
            return None
        rows = _rows(self._db, "SELECT status, started_at, error FROM redos WHERE run_id = ?", [run_id])
        return dict(zip(("status", "started_at", "error"), rows[0])) if rows else None

    @staticmethod
    def _insert_series(con: duckdb.DuckDBPyConnection, run_id: str, table: pa.Table) -> None:
        view = "_learnmech_series_in"
        con.register(view, table)
        try:
            _rows(con, "INSERT INTO series SELECT ?, source, name, member, step, value "
                  f"FROM {view}", [run_id])
        finally:
            con.unregister(view)

    @staticmethod
    def _insert_verdict(con: duckdb.DuckDBPyConnection, run_id: str, row: tuple) -> None:
        _rows(con, "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, *row))

    def status(self, run_id: str) -> str | None:
        """The run's status ('running' | 'done' | 'failed'), or None if there is no such run."""
        rows = _rows(self._db, "SELECT status FROM runs WHERE run_id = ?", [run_id])
        return rows[0][0] if rows else None

    def runs(self, claim: str | None = None) -> list[RunRecord]:
        """All runs (of ``claim`` if given), newest first."""
        where, params = ("WHERE claim = ?", [claim]) if claim is not None else ("", [])
        rows = _rows(self._db, f"{self._select_runs()} {where} "
                     "ORDER BY runs.started_at DESC NULLS LAST, runs.run_id", params)
        return [_record(row) for row in rows]

    def _select_runs(self) -> str:
        """``SELECT`` of the runs columns and the redo's status, started_at and error (NULL when none)."""
        columns = ", ".join(f"runs.{c.strip()}" for c in _RUN_COLUMNS.split(","))
        if schema.has_table(self._db, "redos"):
            return (f"SELECT {columns}, redos.status, redos.started_at, redos.error FROM runs "
                    "LEFT JOIN redos USING (run_id)")
        return f"SELECT {columns}, NULL, NULL, NULL FROM runs"

    def get_run(self, prefix: str) -> RunRecord:
        """The run whose id is ``prefix`` or uniquely starts with it; else UnknownRunError."""
        select = f"{self._select_runs()} WHERE "
        exact = _rows(self._db, select + "runs.run_id = ?", [prefix])
        if exact:
            return _record(exact[0])
        rows = _rows(self._db, select + "starts_with(runs.run_id, ?) ORDER BY runs.run_id LIMIT 6",
                     [prefix]) if prefix else []
        if len(rows) == 1:
            return _record(rows[0])
        if not rows:
            raise UnknownRunError(f"no run id starts with {prefix!r} in {self.path}")
        ids = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise UnknownRunError(f"run id prefix {prefix!r} is ambiguous: it matches {ids}")

    def _series_arrow(self, run_id: str, source: str | None, name: str | None) -> pa.Table:
        where, params = ["run_id = ?"], [run_id]
        for column, value in (("source", source), ("name", name)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = (f"SELECT {', '.join(schema.SERIES_COLUMNS)} FROM series WHERE "
               + " AND ".join(where) + " ORDER BY source, name, member, step")
        return self._db.sql(sql, params=params).to_arrow_table()

    def series(self, run_id: str, *, source: str | None = None,
               name: str | None = None) -> dict[str, np.ndarray]:
        """The run's curves as numpy columns, ordered by source, name, member, step."""
        table = self._series_arrow(run_id, source, name)
        out = {col: table.column(col).to_numpy() for col in ("member", "step", "value")}
        return {"source": _strings(table.column("source")),
                "name": _strings(table.column("name")), **out}

    def verdict(self, run_id: str) -> dict | None:
        """The run's verdict as a dict with keys ``schema.VERDICT_KEYS``, or None."""
        rows = _rows(self._db, f"SELECT {', '.join(schema.VERDICT_KEYS)} FROM verdicts "
                     "WHERE run_id = ?", [run_id])
        if not rows:
            return None
        out = dict(zip(schema.VERDICT_KEYS, rows[0]))
        out["details"] = json.loads(out["details"]) if out["details"] is not None else None
        return out

    def artifacts(self, run_id: str) -> list[tuple[str, str]]:
        """The run's (kind, path) artifact rows, in the order they were written."""
        rows = _rows(self._db, "SELECT kind, path FROM artifacts WHERE run_id = ? "
                     "ORDER BY rowid", [run_id])
        return [(kind, path) for kind, path in rows]

    def export_parquet(self, run_id: str, directory: str | os.PathLike) -> Path:
        """Write the run's series to ``<directory>/<run_id>-series.parquet``; return its path."""
        if self.status(run_id) is None:
            raise UnknownRunError(f"no run {run_id!r} in {self.path}")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{run_id}-series.parquet"
        partial = folder / f".{run_id}-series.parquet.partial"
        pq.write_table(self._series_arrow(run_id, None, None), partial)
        os.replace(partial, target)
        return target

    def export_tables(self, directory: str | os.PathLike) -> dict[str, Path]:
        """Write the tables ``EXPORT_TABLES`` (runs, series, verdicts, artifacts, preregistrations) as Parquet.

        Each table goes to ``<directory>/<table>.parquet``. The set is written into a fresh folder
        and swapped in whole (:func:`~learnmech.store.files.write_folder`): ``directory`` holds the
        previous export or this one, never a mix. JSON columns stay JSON text. A ``directory`` that
        holds files other than an export's raises ``FolderInUse``.
        """
        folder = Path(directory)

        def fill(staged: Path) -> None:
            for table, order in EXPORT_TABLES.items():
                source = table if schema.has_table(self._db, table) else f"({schema.empty_select(table)})"
                data = self._db.sql(f"SELECT * FROM {source} ORDER BY {order}").to_arrow_table()
                pq.write_table(data, staged / f"{table}.parquet")

        write_folder(folder, [f"{table}.parquet" for table in EXPORT_TABLES], fill)
        return {table: folder / f"{table}.parquet" for table in EXPORT_TABLES}
