"""Published scaling-law measurement tables, read in place from the shared data folder.

The tables live in ``shared/data/`` beside the project checkout (``../shared/data`` from the
repository root); they are read from there on every call and never copied into the project.
``shared_data_dir`` finds the folder: the environment variable ``LEARNMECH_SHARED_DATA`` if set,
else the first ``shared/data`` found walking up from the current directory, then from this
file's location.

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
CSV and Parquet are read with DuckDB (``read_table``).
"""

from __future__ import annotations

import os
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
    "shared_data_dir",
]

_ENV = "LEARNMECH_SHARED_DATA"
_CHINCHILLA = "chinchilla_svg_extracted_data.csv"
_DATABLATIONS = "datablations_c4_runs_182.csv"
_PORIAN = "porian2024_isoflop_points.csv"
_READERS = {".csv": "read_csv_auto", ".parquet": "read_parquet"}

# The fields that name one isoFLOP study of Porian et al. 2024 (their configs.py tuple order).
PORIAN_KEYS = ("dataset", "hparams", "warmup", "decay", "param_count", "val")


def _candidates(start: Path):
    """``start`` and its ancestors, each joined with ``shared/data``."""
    start = start.resolve()
    for base in (start, *start.parents):
        yield base / "shared" / "data"


def shared_data_dir() -> Path:
    """The folder holding the published tables.

    Order: env ``LEARNMECH_SHARED_DATA``; else the first ``shared/data`` found walking up from
    the current directory; else walking up from this file (which also finds the sibling
    ``../shared/data`` of the repository root). Raises FileNotFoundError otherwise.
    """
    env = os.environ.get(_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"shared data: {_ENV}={env} is not a directory")
        return path
    for start in (Path.cwd(), Path(__file__).parent):
        for path in _candidates(start):
            if path.is_dir():
                return path
    raise FileNotFoundError(
        "shared data: no shared/data folder found above the current directory or the learnmech "
        f"package; set {_ENV} to the folder holding the published tables"
    )


def read_table(path) -> dict[str, np.ndarray]:
    """Read a ``.csv`` or ``.parquet`` file with DuckDB into ``{column: 1-D numpy array}``.

    Numeric columns come back as float64/int64 arrays, text as object arrays. Raises
    ``ValueError("file: ...")`` for an unknown extension or a file DuckDB cannot read.
    """
    import duckdb  # a dependency of learnmech; imported here so the package imports fast

    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        allowed = ", ".join(_READERS)
        raise ValueError(f"file: {path.name} has extension {path.suffix!r}; allowed: {allowed}")
    if not path.is_file():
        raise ValueError(f"file: {path} does not exist")
    try:
        con = duckdb.connect()
        try:
            raw = con.execute(f"SELECT * FROM {reader}(?)", [str(path)]).fetchnumpy()
        finally:
            con.close()
    except duckdb.Error as err:
        raise ValueError(f"file: {path} could not be read ({err})") from err
    return {name: _plain(col) for name, col in raw.items()}


def _plain(col) -> np.ndarray:
    """A plain ndarray: masked (NULL) numeric entries become NaN."""
    if isinstance(col, np.ma.MaskedArray):
        if col.dtype.kind in "fiu":
            return col.astype(np.float64).filled(np.nan)
        return np.asarray(col.astype(object).filled(None))
    return np.asarray(col)


def _shared_table(name: str) -> dict[str, np.ndarray]:
    return read_table(shared_data_dir() / name)


def load_chinchilla(drop_highest: int = 5) -> dict[str, np.ndarray]:
    """Chinchilla losses: Besiroglu et al. 2024, arXiv:2404.10102 (Hoffmann et al. 2022, Fig. 4).

    Returns keys ``n`` (parameters), ``d`` (tokens, ``D = C / (6 N)``), ``flops`` (C) and
    ``loss``, sorted as in the file, after dropping the ``drop_highest`` highest losses (the
    replication drops 5; pass 0 for all 245 points).
    """
    if drop_highest < 0:
        raise ValueError(f"drop_highest: a count >= 0, got {drop_highest}")
    raw = _shared_table(_CHINCHILLA)
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
    raw = _shared_table(_DATABLATIONS)
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
    raw = _shared_table(_PORIAN)
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
