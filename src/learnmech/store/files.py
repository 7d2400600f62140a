"""Files beside the store (figures, exports), written so that a reader never sees half of one.

Contract
--------
* ``write_atomic(path, data)`` writes ``data`` to a hidden partial file in the same folder and
  renames it onto ``path`` (``os.replace`` is atomic on one file system), creating the folder if
  needed; an ``OSError`` (a full disk) removes the partial file and names ``path``.
  ``write_files(folder, stem, contents)`` does so for ``contents[fmt]`` at
  ``folder/stem.fmt`` and returns the paths in the order given.
* ``write_folder(target, allowed, fill)`` replaces a whole folder of files at once: ``fill(staged)``
  writes the new set into a fresh hidden folder beside ``target`` (``.<name>.staged-<pid>``), which
  is then swapped with ``target`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``, or one rename
  when ``target`` is missing or empty), and the old set is removed. At every moment ``target``
  holds the old set or the new one, never a mix: a kill while filling leaves ``target`` as it
  was, a kill after the swap leaves the new set and the old one in a hidden folder that the next
  call removes. Where the exchange is not available (another OS or file system), ``target`` is
  renamed aside and the staged folder renamed onto it: a kill between the two leaves ``target``
  missing (not mixed), with the old set at ``.<name>.old-<pid>``. ``target`` must hold only files
  whose names are in ``allowed`` (a previous set), so that no other file of the user's is moved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from collections.abc import Callable, Collection, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FolderInUse", "named", "write_atomic", "write_files", "write_folder"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class FolderInUse(ValueError):
    """The target folder holds files that are not part of the set it would receive."""


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a partial file and a rename; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as exc:  # a full disk, a folder that refuses: no partial file left, the target named
        partial.unlink(missing_ok=True)
        if exc.filename in (None, str(partial)):
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    return target


@contextmanager
def named(path: Path):
    """Give an ``OSError`` raised without a path (``write`` on a full disk) the path it was writing."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_files(folder: str | os.PathLike, stem: str, contents: Mapping[str, bytes]) -> list[Path]:
    """Write each ``contents[fmt]`` to ``folder/stem.fmt`` atomically; return the paths."""
    return [write_atomic(Path(folder) / f"{stem}.{fmt}", data) for fmt, data in contents.items()]


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _stale(target: Path) -> list[Path]:
    """Hidden folders left beside ``target`` by an earlier, interrupted ``write_folder``."""
    prefixes = (f".{target.name}.staged-", f".{target.name}.old-")
    return [p for p in target.parent.iterdir() if p.name.startswith(prefixes) and p.is_dir()]


def _swap_in(staged: Path, target: Path, old: Path) -> None:
    """Put ``staged`` at ``target``; the previous ``target`` (if any) ends at ``staged`` or ``old``."""
    if not target.exists():
        os.rename(staged, target)
        return
    if not any(target.iterdir()):
        os.rename(staged, target)  # rename(2) replaces an empty folder atomically
        return
    if _exchange(staged, target):
        return
    os.rename(target, old)
    os.rename(staged, target)


def write_folder(target: str | os.PathLike, allowed: Collection[str],
                 fill: Callable[[Path], Mapping[str, Path] | None]) -> None:
    """Fill a fresh folder with ``fill`` and swap it in for ``target`` whole (module docstring)."""
    target = Path(target)
    if target.exists():
        other = sorted(p.name for p in target.iterdir() if p.name not in allowed)
        if other:
            raise FolderInUse(f"{target} holds other files ({', '.join(other[:3])}"
                              f"{', ...' if len(other) > 3 else ''}); choose a new or empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _stale(target):
        shutil.rmtree(leftover)
    staged = target.with_name(f".{target.name}.staged-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    staged.mkdir()
    try:
        with named(target):
            fill(staged)
    except Exception:  # an error (a full disk), not a kill: take the partial set away at once
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _swap_in(staged, target, old)
    for leftover in (staged, old):
        if leftover.exists():
            shutil.rmtree(leftover)
