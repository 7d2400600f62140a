"""What every ``learnmech`` command shares: the two consoles, the bad-input rule, JSON-safe numbers.

Bad input is reported in one line, ``error: <field>: <what is allowed>``, on stderr with exit code 2,
before anything is written.
"""

from __future__ import annotations

import math
import sys

import typer
from rich.console import Console

__all__ = ["BadInput", "err", "existing_store", "fail_input", "finite_or_none", "open_store", "out", "progress_bar"]

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class BadInput(Exception):
    """A user mistake: reported in one line, exit code 2."""


def fail_input(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def finite_or_none(values):
    """JSON-safe numbers: NaN and inf become null (lists and arrays element-wise)."""
    if isinstance(values, (list, tuple)) or hasattr(values, "tolist"):
        values = values.tolist() if hasattr(values, "tolist") else values
        if isinstance(values, list):
            return [finite_or_none(v) for v in values]
    if isinstance(values, bool):
        return values
    value = float(values)
    return value if math.isfinite(value) else None


def open_store(path):
    """Open (or create) the store at ``path`` for writing; a store problem is ``BadInput``."""
    from learnmech.store import Store, StoreError

    try:
        return Store.open(path)
    except StoreError as exc:
        raise BadInput(str(exc)) from None


def existing_store(path):
    """Open an existing store read-only for a command that only reads; bad input (exit 2) otherwise."""
    from pathlib import Path

    from learnmech.store import Store, StoreError

    if not Path(path).exists():
        fail_input(f"--store: {path} does not exist (run `learnmech atlas --quick` first)")
    try:
        return Store.open(path, create=False, read_only=True)
    except StoreError as exc:
        fail_input(str(exc))


def progress_bar():
    """The rich progress bar on stderr every long command shows (gone when it ends)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)
