"""``learnmech report`` and ``learnmech export``: the store as an HTML atlas page and as Parquet tables.

Both read the store only (opened read-only, so they refuse a store another process is writing
with the one-line busy message) and re-run nothing. ``write_atlas_page`` is what ``atlas``,
``check`` and ``sweep`` call on their open store when they finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from learnmech.cli_common import doing, err, existing_store, fail_input, out
from learnmech.store import DEFAULT_STORE_PATH, FolderInUse, Store

__all__ = ["export", "report", "run_page", "write_atlas_page"]


def write_atlas_page(store: Store, directory: Path | None = None) -> Path:
    """Write the atlas page of ``store`` with the registered catalog; return index.html's path."""
    from learnmech.atlas import all_claims
    from learnmech.report import write_report

    return write_report(store, list(all_claims().values()), directory)


def run_page(store: Store, run_id: str) -> Path | str:
    """The run's page in the store's report folder, writing the report first if the page is missing.

    A report folder that cannot be written (a read-only store folder, a full disk) is not an error
    for a command that only reads: the answer is then a sentence saying why there is no page.
    """
    from learnmech.report import run_page_path

    page = run_page_path(store.directory / "report", run_id)
    if not page.exists():
        try:
            write_atlas_page(store)
        except OSError as exc:
            return f"not written ({exc.strerror or exc} while writing {exc.filename or page.parent})"
    return page


def _writable_folder(option: str, folder: Path) -> None:
    """Refuse an output folder that is a file or cannot be created, before anything is written."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        fail_input(f"{option}: {probe} exists and is not a folder")
    import os

    if not os.access(probe, os.W_OK | os.X_OK):
        fail_input(f"{option}: {folder} cannot be written (no write permission on {probe})")


def report(
    store: Path = typer.Option(DEFAULT_STORE_PATH, "--store", help="DuckDB results store"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder of the page (default: report/ beside the store)"),
) -> None:
    """Write the HTML atlas page (index.html, a page per run, the figures) from the store; re-runs nothing."""
    if out_dir is not None:
        _writable_folder("--out", out_dir)
    with existing_store(store) as db, doing("writing the atlas page"):
        index = write_atlas_page(db, out_dir)
        runs = len(db.runs())
    out.print(f"report: {index} ({runs} runs)", highlight=False)


def export(
    parquet: Path = typer.Option(..., "--parquet", help="folder for runs.parquet, series.parquet, verdicts.parquet, "
                                                        "artifacts.parquet"),
    store: Path = typer.Option(DEFAULT_STORE_PATH, "--store", help="DuckDB results store"),
) -> None:
    """Export the store's runs, curves (series), verdicts, artifacts and preregistrations tables as Parquet files."""
    _writable_folder("--parquet", parquet)
    with existing_store(store) as db, doing("writing the Parquet export"):
        try:
            written = db.export_tables(parquet)
        except FolderInUse as exc:
            fail_input(f"--parquet: {exc}")
        n_runs = len(db.runs())
    for name, path in written.items():
        out.print(f"{name}: {path}", highlight=False)
    err.print(f"exported {n_runs} runs to {parquet}", highlight=False)
