"""The store's DuckDB schema, as data, and the checks that turn caller input into its rows.

Contract
--------
* ``TABLES`` maps each table name to its column DDL; ``ADDED_TABLES`` are those added later,
  which older stores lack until opened for writing (``create_added_tables``).
  ``create_statements()`` turns both into ``CREATE TABLE`` statements, ``create_schema(con,
  version)`` runs them in one transaction. ``has_table(con, name)`` says whether a table is
  there; ``empty_select(name)`` reads as an added table with no rows, for a store that lacks it.
* ``file_kind(path)`` tells a DuckDB file from anything else by its header alone (DuckDB files
  carry ``b"DUCK"`` at byte 8), without opening it with DuckDB, and never opens anything but a
  regular file.
* ``integrity_problem(con)`` lets DuckDB judge a store: every table present with its columns,
  every row read. No heuristic of ours refuses a store that DuckDB opens and reads.
* A DuckDB file is a learnmech store exactly when it has a ``learnmech_meta`` table whose
  ``format`` row is ``STORE_FORMAT``; ``read_meta(con)`` returns that table as a dict ({} when
  absent) and ``meta_problem(meta)`` says what is wrong with it, if anything.
  ``meta_rows(version)`` are the rows written at creation, including ``schema_version`` =
  ``str(SCHEMA_VERSION)``.
* The allowed values of the enumerated columns are ``RUN_STATUSES``, ``SOURCES`` and
  ``VERDICTS``. ``series_table``, ``verdict_row`` and ``artifact_rows`` check what a caller
  hands to ``Store.finish_run`` and raise ``ValueError`` naming the bad key; they never touch
  a database.
"""

from __future__ import annotations

import numbers
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from learnmech.store.ids import canonical_json

__all__ = [
    "ADDED_TABLES",
    "META_TABLE",
    "REDO_STATUSES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "SERIES_COLUMNS",
    "SOURCES",
    "STORE_FORMAT",
    "TABLES",
    "VERDICTS",
    "VERDICT_KEYS",
    "artifact_rows",
    "create_schema",
    "create_added_tables",
    "create_statements",
    "empty_select",
    "file_kind",
    "has_table",
    "integrity_problem",
    "meta_problem",
    "meta_rows",
    "read_meta",
    "series_table",
    "table_columns",
    "verdict_row",
]

SCHEMA_VERSION = 1
STORE_FORMAT = "learnmech-store"
META_TABLE = "learnmech_meta"
DUCKDB_MAGIC, DUCKDB_MAGIC_OFFSET = b"DUCK", 8

RUN_STATUSES = ("running", "done", "failed")
REDO_STATUSES = ("running", "failed")
SOURCES = ("theory", "experiment", "summary")
VERDICTS = ("holds", "fails", "inconclusive")

SERIES_COLUMNS = ("source", "name", "member", "step", "value")
VERDICT_KEYS = ("verdict", "metric", "value", "threshold", "reason", "details")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


TABLES: dict[str, str] = {
    META_TABLE: """
        key VARCHAR PRIMARY KEY,
        value VARCHAR
    """,
    "runs": f"""
        run_id VARCHAR PRIMARY KEY,
        claim VARCHAR,
        preset VARCHAR,
        config JSON,
        status VARCHAR CHECK (status IN ({_in(RUN_STATUSES)})),
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        seconds DOUBLE,
        host VARCHAR,
        versions JSON,
        error VARCHAR
    """,
    "series": """
        run_id VARCHAR,
        source VARCHAR,
        name VARCHAR,
        member INTEGER,
        step DOUBLE,
        value DOUBLE
    """,
    "verdicts": f"""
        run_id VARCHAR PRIMARY KEY,
        verdict VARCHAR CHECK (verdict IN ({_in(VERDICTS)})),
        metric VARCHAR,
        value DOUBLE,
        threshold DOUBLE,
        reason VARCHAR,
        details JSON
    """,
    "artifacts": """
        run_id VARCHAR,
        kind VARCHAR,
        path VARCHAR
    """,
}


# Tables added after schema version 1 was first written. A store opened for writing gains them
# (``create_added_tables``); one opened read-only may lack them, and readers treat that as empty.
ADDED_TABLES: dict[str, str] = {
    # a --force redo of a finished run, while it runs (or after it failed): the finished result
    # stays in runs/series/verdicts/artifacts until the redo's results replace it in one transaction
    "redos": f"""
        run_id VARCHAR PRIMARY KEY,
        status VARCHAR CHECK (status IN ({_in(REDO_STATUSES)})),
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        host VARCHAR,
        versions JSON,
        error VARCHAR
    """,
    # a claim's prediction, written while its run runs and before the experiment that tests it
    # (store/preregistrations.py); append-only: a redo adds rows, nothing deletes them
    "preregistrations": """
        run_id VARCHAR,
        name VARCHAR,
        key VARCHAR,
        value DOUBLE,
        registered_at TIMESTAMP
    """,
}


def create_statements() -> tuple[str, ...]:
    """Return the ``CREATE TABLE`` statements of every table in ``TABLES``."""
    return tuple(
        f"CREATE TABLE IF NOT EXISTS {name} ({' '.join(cols.split())})"
        for name, cols in {**TABLES, **ADDED_TABLES}.items()
    )


def meta_rows(learnmech_version: str) -> tuple[tuple[str, str], ...]:
    """Return the ``learnmech_meta`` rows written when a store is created."""
    return (
        ("format", STORE_FORMAT),
        ("schema_version", str(SCHEMA_VERSION)),
        ("created_by", f"learnmech {learnmech_version}"),
    )


def create_schema(con: duckdb.DuckDBPyConnection, learnmech_version: str) -> None:
    """Create every table and the meta rows on ``con``, in one transaction."""
    con.begin()
    try:
        for statement in create_statements():
            con.execute(statement).fetchall()
        con.executemany(f"INSERT INTO {META_TABLE} VALUES (?, ?)", meta_rows(learnmech_version))
    except BaseException:
        con.rollback()
        raise
    con.commit()


def read_meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The ``learnmech_meta`` rows as a dict; {} when the table does not exist."""
    try:
        return dict(con.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
    except duckdb.CatalogException:
        return {}


def meta_problem(meta: Mapping[str, str]) -> str | None:
    """What makes ``meta`` (``read_meta``'s result) not a usable store, or None if it is one."""
    if meta.get("format") != STORE_FORMAT:
        return "is a DuckDB file but not a learnmech store (no learnmech_meta marker)"
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        return (f"has learnmech store schema version {meta.get('schema_version')}; "
                f"this learnmech reads version {SCHEMA_VERSION}")
    return None


def table_columns(ddl: str) -> tuple[str, ...]:
    """The column names of one ``TABLES`` entry (written one column per line), in order."""
    return tuple(line.split()[0] for line in ddl.strip().splitlines() if line.strip())


def _present_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                       "WHERE schema_name = 'main'").fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def integrity_problem(con: duckdb.DuckDBPyConnection) -> str | None:
    """What DuckDB finds wrong when it reads every table of the store, or None for a healthy store.

    Integrity is DuckDB's to judge: every table of ``TABLES`` must exist with its columns (the
    tables of ``ADDED_TABLES`` may be absent: a store written before they existed is healthy), and
    every row of every table is read (``sum(hash(row))``), so a damaged or missing block raises
    DuckDB's own error here, at open, rather than in the middle of a command. Nothing else (file
    length, header counts) is judged: DuckDB trims free blocks from the end of the file at a
    checkpoint while its header still counts them, so a length test refuses healthy stores.
    """
    try:
        present = _present_columns(con)
        tables = {**TABLES, **{k: v for k, v in ADDED_TABLES.items() if k in present}}
        for table, ddl in tables.items():
            if table not in present:
                return f"has no {table} table (not a complete learnmech store)"
            missing = [c for c in table_columns(ddl) if c not in present[table]]
            if missing:
                return f"has a {table} table without the column(s) {', '.join(missing)} (a damaged store)"
            con.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t").fetchall()
    except duckdb.Error as exc:
        return (f"is damaged or truncated: DuckDB cannot read it ({' '.join(str(exc).split())}); "
                "restore it from a copy or choose another --store")
    return None


def create_added_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``ADDED_TABLES`` a store written by an earlier learnmech lacks (idempotent)."""
    for name, cols in ADDED_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({' '.join(cols.split())})").fetchall()


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store on ``con`` has table ``name`` (an older store opened read-only may lack an added one)."""
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
                            [name]).fetchall())


def empty_select(name: str) -> str:
    """A ``SELECT`` with the columns and types of ``TABLES`` / ``ADDED_TABLES`` entry ``name`` and no rows.

    The type of a column is the word after its name in the DDL (``value DOUBLE,`` -> DOUBLE).
    """
    lines = [line.split() for line in {**TABLES, **ADDED_TABLES}[name].strip().splitlines() if line.strip()]
    columns = ", ".join(f"CAST(NULL AS {words[1].rstrip(',')}) AS {words[0]}" for words in lines)
    return f"SELECT {columns} WHERE false"


def file_kind(path: Path) -> str:
    """'missing' | 'directory' | 'special' | 'empty' | 'duckdb' | 'other', from the file header only.

    'special' is anything but a regular file or a folder (a FIFO, a socket, a device): it is never
    opened, since reading a FIFO would block.
    """
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    if not stat.S_ISREG(path.stat().st_mode):
        return "special"
    with path.open("rb") as fh:  # OSError (e.g. permission) is the caller's to report
        head = fh.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    if not head:
        return "empty"
    return "duckdb" if head[DUCKDB_MAGIC_OFFSET:] == DUCKDB_MAGIC else "other"


# -- checking what a caller hands to Store.finish_run -------------------------------------
_SERIES_TYPES = {"source": pa.string(), "name": pa.string(), "member": pa.int32(),
                 "step": pa.float64(), "value": pa.float64()}


def _column(key: str, values: Any) -> pa.Array:
    """One series column as an Arrow array of its table type (safe casts only)."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"series[{key!r}] must be 1-D, got shape {a.shape}")
    if a.size == 0:
        return pa.array([], _SERIES_TYPES[key])
    try:
        out = pa.array(a, type=_SERIES_TYPES[key])
    except (pa.ArrowException, OverflowError) as exc:
        raise ValueError(f"series[{key!r}] has values of the wrong type "
                         f"(want {_SERIES_TYPES[key]}): {' '.join(str(exc).split())}") from None
    if out.null_count:
        raise ValueError(f"series[{key!r}] must not contain None")
    return out


def series_table(series: Mapping[str, Any]) -> pa.Table:
    """Check a series mapping (equal-length 1-D columns ``SERIES_COLUMNS``) -> Arrow table."""
    if set(series) != set(SERIES_COLUMNS):
        raise ValueError(f"series keys must be {', '.join(SERIES_COLUMNS)}; got {sorted(series)}")
    cols = {key: _column(key, series[key]) for key in SERIES_COLUMNS}
    lengths = {key: len(col) for key, col in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"series columns must have equal lengths, got {lengths}")
    bad = sorted(set(pc.unique(cols["source"]).to_pylist()) - set(SOURCES))
    if bad:
        raise ValueError(f"series['source'] must be one of {', '.join(SOURCES)}; got {bad}")
    return pa.table(cols)


def _optional(key: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return str(value)
    raise ValueError(f"verdict[{key!r}] must be a {kind.__name__} or None, got {value!r}")


def verdict_row(verdict: Mapping[str, Any]) -> tuple:
    """Check a verdict mapping -> the ``verdicts`` row after ``run_id``."""
    unknown = sorted(set(verdict) - set(VERDICT_KEYS))
    if unknown:
        raise ValueError(f"verdict has unknown keys {unknown}; allowed: {', '.join(VERDICT_KEYS)}")
    word = verdict.get("verdict")
    if word not in VERDICTS:
        raise ValueError(f"verdict['verdict'] must be one of {', '.join(VERDICTS)}; got {word!r}")
    details = verdict.get("details")
    if details is not None and not isinstance(details, Mapping):
        raise ValueError(f"verdict['details'] must be a mapping or None, got {details!r}")
    try:
        details_json = None if details is None else canonical_json(details, nonfinite_as_null=True)
    except TypeError as exc:
        raise ValueError(f"verdict['details'] cannot be written as JSON: {exc}") from None
    return (
        word,
        _optional("metric", verdict.get("metric"), str),
        _optional("value", verdict.get("value"), float),
        _optional("threshold", verdict.get("threshold"), float),
        _optional("reason", verdict.get("reason"), str),
        details_json,
    )


def artifact_rows(artifacts: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Check (kind, path) pairs of strings."""
    rows = []
    for item in artifacts:
        row = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        if len(row) != 2 or not all(isinstance(part, str) and part for part in row):
            raise ValueError(f"each artifact must be a (kind, path) pair of strings, got {item!r}")
        rows.append(row)
    return rows
