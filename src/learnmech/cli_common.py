"""What every ``learnmech`` command shares: the two consoles, the bad-input rule, JSON-safe numbers.

Bad input is reported in one line, ``error: <field>: <what is allowed>``, on stderr with exit code 2,
before anything is written.

Text a user typed or named (paths, column names, config values) reaches the terminal as text, never
as instructions: the consoles read no rich markup (``[red]`` in a path is printed as it is; styles are
given as ``style=`` or :class:`rich.text.Text`), and control characters (an escape sequence in a file
name, a newline in a one-line error) are shown escaped, e.g. ``\\x1b`` (:func:`terminal_safe`).
"""

from __future__ import annotations

import errno
import math
import sys
import unicodedata
from contextlib import contextmanager

import typer
from rich.console import Console
from typer.core import TyperGroup

__all__ = ["BadInput", "GuardedGroup", "doing", "err", "existing_store", "fail_input", "finite_or_none",
           "open_store", "os_error_line", "out", "progress_bar", "terminal_safe"]


def terminal_safe(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with control and format characters written as escapes (``\\x1b``, ``\\u202e``).

    Tabs, and newlines when ``keep_newlines``, are kept; everything else of Unicode categories Cc
    and Cf (escape sequences, carriage returns, bidirectional overrides) is escaped, so that no
    text a user supplied can move the cursor, recolour the terminal or hide what follows it.
    """
    keep = {"\t", "\n"} if keep_newlines else {"\t"}
    if text.isprintable() and "\n" not in text:
        return text
    return "".join(ch if ch in keep or unicodedata.category(ch) not in ("Cc", "Cf")
                   else ascii(ch)[1:-1] for ch in text)


class _SafeConsole(Console):
    """A rich Console that prints every string it renders through :func:`terminal_safe`."""

    def render_str(self, text: str, **kwargs):  # every str printed or put in a table passes here
        return super().render_str(terminal_safe(text), **kwargs)


# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room.
out = _SafeConsole(width=None if sys.stdout.isatty() else 160, markup=False, highlight=False)
err = _SafeConsole(stderr=True, width=None if sys.stderr.isatty() else 160, markup=False, highlight=False)


class BadInput(Exception):
    """A user mistake: reported in one line, exit code 2."""


def fail_input(message: str) -> None:
    """Print ``error: message`` on stderr, as one line whatever it contains, and exit with code 2."""
    err.print(f"error: {terminal_safe(message, keep_newlines=False)}", markup=False, highlight=False, soft_wrap=True)
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
    """The rich progress bar on stderr every long command shows on a terminal (gone when it ends)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # off a terminal it draws nothing (it would leave an empty line before a one-line error)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


@contextmanager
def doing(operation: str):
    """Name the operation an ``OSError`` raised inside interrupted (e.g. ``"writing the atlas page"``)."""
    try:
        yield
    except OSError as exc:
        if getattr(exc, "learnmech_operation", None) is None:
            exc.learnmech_operation = operation
        raise


def os_error_line(exc: OSError) -> str:
    """One line for an ``OSError``: the path, the operation (see :func:`doing`) and the system's reason."""
    path = exc.filename if exc.filename is not None else "(no path)"
    if exc.filename2 is not None:
        path = f"{path} -> {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = f" [{errno.errorcode[exc.errno]}]" if exc.errno in errno.errorcode else ""
    operation = getattr(exc, "learnmech_operation", None)
    return f"{path}: {operation + ' failed' if operation else 'cannot be used'}: {reason}{code}"


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's ``UsageError``: typer may carry its own copy of click (typer >= 0.2x does, and then click
    need not be installed at all), so the class in typer's exception hierarchy is caught, and click's too
    when it is importable."""
    found = {c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"}
    try:
        import click
    except ImportError:  # typer without the click package
        return tuple(found)
    return tuple(found | {click.UsageError})


class GuardedGroup(TyperGroup):
    """The command group of ``learnmech``: a failure of the machine rather than of the code is one line.

    Click's usage errors (an unknown option, a missing argument, text for a number) are one line too,
    instead of the usage panel. Any ``OSError`` (no space left, a read-only or missing folder, no
    permission, not a regular file) and any DuckDB I/O error escaping a command is reported as
    ``error: <path>: <operation> failed: <reason>`` with exit code 2, instead of a traceback. What it interrupted stays as the
    store's transactions left it: a run whose results were not committed is still ``running``.
    """

    def invoke(self, ctx):
        import duckdb

        try:
            return super().invoke(ctx)
        except _usage_errors() as exc:  # an unknown option, a missing argument, "abc" for an integer
            path = (exc.ctx if exc.ctx is not None else ctx).command_path.split()[1:]
            fail_input(f"{exc.format_message()} (see {' '.join(['learnmech', *path])} --help)")
        except OSError as exc:
            fail_input(os_error_line(exc))
        except (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.PermissionException) as exc:
            fail_input(f"--store: DuckDB could not write or read the store ({' '.join(str(exc).split())})")
