"""Published scaling-law measurement tables, shipped with the package.

The tables are package data (``learnmech/data/published/``: byte-for-byte copies of the project's
``shared/data/`` folder, with their licences and a sources note, ``SOURCES.md``), so a fresh
install reads them with nothing beside it. ``tables_dir`` is that folder, or the folder named by
the environment variable ``LEARNMECH_TABLES`` when it is set (to read other copies of the same
files).

Tables (cite the source wherever one is used):

- ``load_chinchilla``: 245 final losses read off Figure 4 of Hoffmann et al. 2022
  (arXiv:2203.15556) by Besiroglu, Erdil, Barnett & You 2024, "Chinchilla Scaling: A replication
  attempt", arXiv:2404.10102. Tokens ``D = C / (6 N)``. Besiroglu et al. drop the five
  highest-loss points before fitting, so ``drop_highest=5`` by default (240 points remain).
- ``load_datablations``: 182 runs on C4 with repeated data, Muennighoff et al. 2023, "Scaling
  Data-Constrained Language Models", arXiv:2305.16264 (Apache-2.0).
- ``load_porian`` / ``porian_settings``: 1,745 isoFLOP points in 15 settings, Porian, Wortsman,
  Jitsev, Schmidt & Carmon 2024, "Resolving Discrepancies in Compute-Optimal Scaling of Language
  Models", arXiv:2406.19146 (MIT). One setting (one isoFLOP study) per
  (dataset, hparams, warmup, decay, param_count, val); each budget also carries the authors'
  own estimate of its optimal model size (``n_star_published``, their interpolated minimum).

All loaders return ``dict[str, np.ndarray]`` (1-D columns of equal length, float64 for numbers).
CSV and Parquet files are read with pyarrow (``read_table``), the name taken literally.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

__all__ = [
    "PORIAN_KEYS",
    "load_chinchilla",
    "load_datablations",
    "load_porian",
    "porian_published_exponent",
    "porian_settings",
    "read_table",
    "tables_dir",
]

_ENV = "LEARNMECH_TABLES"
_PACKAGED = Path(__file__).with_name("published")
_CHINCHILLA = "chinchilla_svg_extracted_data.csv"
_DATABLATIONS = "datablations_c4_runs_182.csv"
_PORIAN = "porian2024_isoflop_points.csv"
_SUFFIXES = (".csv", ".parquet")
_SHOWN = 80  # characters of a bad row or value quoted in an error line

# The fields that name one isoFLOP study of Porian et al. 2024 (their configs.py tuple order).
PORIAN_KEYS = ("dataset", "hparams", "warmup", "decay", "param_count", "val")


def tables_dir() -> Path:
    """The folder holding the published tables: ``$LEARNMECH_TABLES`` if set, else the packaged copies.

    ``FileNotFoundError`` naming the variable when it points at no folder.
    """
    env = os.environ.get(_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"tables: {_ENV}={env} is not a directory")
        return path
    return _PACKAGED


def read_table(path) -> dict[str, np.ndarray]:
    """Read a ``.csv`` or ``.parquet`` file into ``{column: 1-D numpy array}`` with pyarrow.

    The name is a literal path: it is opened as given, never expanded as a glob or parsed as a
    URL, and only a regular file is read (a FIFO, device or folder is refused before any read, so
    nothing blocks). Numbers come back as int64 (float64 when a value is missing: NULL is NaN),
    text as object arrays (an empty field is ``None``), as DuckDB's ``read_csv_auto`` typed them
    before: each CSV column's type is inferred from all of its values, an empty field is NULL.

    Raises ``ValueError("file: ...")``, one line, for an unknown extension, a missing or
    non-regular file, a row with the wrong number of fields, text that is not UTF-8, two columns
    of one name, or a file pyarrow cannot parse. Rows are counted from 1, the header not counted.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"file: {path.name} has extension {path.suffix!r}; allowed: {', '.join(_SUFFIXES)}")
    with _open_regular(path) as handle:
        table = _read_csv(handle, path) if suffix == ".csv" else _read_parquet(handle, path)
    _refuse_duplicates(table.column_names, path)
    return {name: _numpy_column(column) for name, column in zip(table.column_names, table.columns)}


def _open_regular(path: Path):
    """``path`` opened for binary reading if it is a regular file; ``ValueError`` otherwise.

    ``O_NONBLOCK`` makes opening a FIFO without a writer return at once; ``fstat`` on the open
    descriptor then judges the very file that would be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ValueError(f"file: {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"file: {path} cannot be opened ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"file: {path} is not a regular file ({_file_kind(mode)}); give a .csv or .parquet file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _read_csv(handle, path: Path):
    """The CSV as an Arrow table; its first bad row, bad byte or parse error as one ``ValueError`` line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if os.fstat(handle.fileno()).st_size == 0:
        raise ValueError(f"file: {path} is empty; expected a header line and one row per line")
    bad_rows = []

    def on_bad_row(row):
        bad_rows.append(row)
        return "error"

    try:
        table = pacsv.read_csv(
            handle,
            read_options=pacsv.ReadOptions(use_threads=False),  # one thread: Arrow then knows each row's number
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True),  # NULL as DuckDB
        )
    except (pa.ArrowException, OSError) as exc:
        if bad_rows:
            row = bad_rows[0]
            where = f"row {row.number - 1}" if row.number else "a row"  # Arrow counts the header as row 1
            raise ValueError(f"file: {path} could not be read: {where}: expected {row.expected_columns} "
                             f"comma-separated fields, got {row.actual_columns}: {_shown(row.text)}") from None
        raise ValueError(f"file: {path} could not be read: {_one_line(exc)}") from None
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_binary(column.type):  # Arrow types a column binary when it is not valid UTF-8
            row, value = _first_not_utf8(column)
            raise ValueError(f"file: {path} could not be read: row {row}, column {name!r}: expected UTF-8 "
                             f"text, got the bytes {_shown(value)}")
    return table


def _first_not_utf8(column) -> tuple[int, bytes]:
    """The first value (1-based row, bytes) of a binary column that does not decode as UTF-8."""
    for row, value in enumerate(column.to_pylist(), start=1):
        if value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return row, value
    return 0, b""


def _read_parquet(handle, path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(handle)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"file: {path} could not be read: {_one_line(exc)}") from None


def _refuse_duplicates(names, path: Path) -> None:
    first = {}
    for i, name in enumerate(names, start=1):
        if name in first:
            raise ValueError(f"file: {path} has two columns named {name!r} (columns {first[name]} and {i}); "
                             "every column needs its own name")
        first[name] = i


def _numpy_column(column) -> np.ndarray:
    """One Arrow column as numpy: integers int64 (float64 with NaN for NULL), floats float64, text object."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    if pa.types.is_integer(kind) and column.null_count == 0 and kind != pa.uint64():
        return column.to_numpy().astype(np.int64)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()
    if pa.types.is_boolean(kind) and column.null_count == 0:
        return column.to_numpy()
    values = column.to_numpy(zero_copy_only=False)
    return values.astype(object) if pa.types.is_boolean(kind) or pa.types.is_string(kind) else values


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most a few hundred characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _shown(value) -> str:
    """A quoted excerpt of a bad row or value for an error line."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _published_table(name: str) -> dict[str, np.ndarray]:
    return read_table(tables_dir() / name)


def load_chinchilla(drop_highest: int = 5) -> dict[str, np.ndarray]:
    """Chinchilla losses: Besiroglu et al. 2024, arXiv:2404.10102 (Hoffmann et al. 2022, Fig. 4).

    Returns keys ``n`` (parameters), ``d`` (tokens, ``D = C / (6 N)``), ``flops`` (C) and
    ``loss``, sorted as in the file, after dropping the ``drop_highest`` highest losses (the
    replication drops 5; pass 0 for all 245 points).
    """
    if drop_highest < 0:
        raise ValueError(f"drop_highest: a count >= 0, got {drop_highest}")
    raw = _published_table(_CHINCHILLA)
    n = raw["Model Size"].astype(np.float64)  # (245,)
    flops = raw["Training FLOP"].astype(np.float64)
    loss = raw["loss"].astype(np.float64)
    keep = np.ones(loss.shape, bool)
    if drop_highest:
        keep[np.argsort(loss, kind="stable")[-drop_highest:]] = False
    n, flops, loss = n[keep], flops[keep], loss[keep]
    return {"n": n, "d": flops / (6.0 * n), "flops": flops, "loss": loss}


def load_datablations() -> dict[str, np.ndarray]:
    """C4 runs with repeated data (Muennighoff et al. 2023, arXiv:2305.16264).

    Keys ``n`` (parameters), ``d`` (total training tokens), ``u`` (unique tokens), ``loss``
    (validation loss) and ``name`` (run name).
    """
    raw = _published_table(_DATABLATIONS)
    return {
        "n": raw["params"].astype(np.float64),
        "d": raw["tokens"].astype(np.float64),
        "u": raw["unique_tokens"].astype(np.float64),
        "loss": raw["val_loss"].astype(np.float64),
        "name": raw["name"],
    }


def load_porian() -> dict[str, np.ndarray]:
    """All isoFLOP points of Porian et al. 2024 (arXiv:2406.19146), one row per run.

    Keys: the setting fields ``PORIAN_KEYS`` (text), ``flops`` (C), ``n`` (parameters, counted as
    the setting's ``param_count`` says), ``d`` (tokens), ``loss``, and the authors' per-budget
    estimates ``n_star_published``, ``d_star_published``, ``loss_star_published`` (repeated on
    every row of a budget).
    """
    raw = _published_table(_PORIAN)
    out = {key: raw[key] for key in PORIAN_KEYS}
    out.update(
        flops=raw["flops"].astype(np.float64),
        n=raw["n"].astype(np.float64),
        d=raw["t_tokens"].astype(np.float64),
        loss=raw["loss"].astype(np.float64),
        n_star_published=raw["fitted_n_star_at_flops"].astype(np.float64),
        d_star_published=raw["fitted_t_star_at_flops"].astype(np.float64),
        loss_star_published=raw["fitted_loss_star"].astype(np.float64),
    )
    return out


def porian_settings() -> list[dict]:
    """The 15 isoFLOP studies of Porian et al. 2024 (arXiv:2406.19146), sorted by their key.

    Each dict has the six key fields (``PORIAN_KEYS``), ``label`` ("rw/base/long/kaplan/kaplan/
    train"), the point arrays ``flops``, ``n``, ``d``, ``loss`` (sorted by flops, then n), and per
    budget ``budgets`` (sorted distinct C) with the published optima ``n_star_published``
    (same length as ``budgets``).
    """
    table = load_porian()
    keys = np.stack([table[k].astype(str) for k in PORIAN_KEYS], axis=1)  # (rows, 6)
    settings = []
    for key in sorted({tuple(row) for row in keys}):
        rows = np.all(keys == np.array(key), axis=1)
        order = np.lexsort((table["n"][rows], table["flops"][rows]))
        pts = {c: table[c][rows][order] for c in ("flops", "n", "d", "loss", "n_star_published")}
        budgets, first = np.unique(pts["flops"], return_index=True)
        setting = dict(zip(PORIAN_KEYS, key), label="/".join(key))
        setting.update({c: pts[c] for c in ("flops", "n", "d", "loss")})
        setting.update(budgets=budgets, n_star_published=pts["n_star_published"][first])
        settings.append(setting)
    return settings


def porian_published_exponent(setting: dict) -> float:
    """The published compute-optimal exponent ``a`` of one Porian et al. 2024 study (``N* ~ C^a``).

    Computed from the published table, not typed in: the least-squares slope of
    ``log n_star_published`` on ``log C`` over the budgets whose optimum the authors could place
    (the others are NaN in their table). ``setting`` is one entry of :func:`porian_settings`.
    """
    ok = np.isfinite(setting["n_star_published"])
    return float(np.polyfit(np.log(setting["budgets"][ok]), np.log(setting["n_star_published"][ok]), 1)[0])
