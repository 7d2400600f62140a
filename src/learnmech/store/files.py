"""Files beside the store (figures, exports), written so that a reader never sees half of one.

Contract. ``write_atomic(path, data)`` writes ``data`` to a hidden partial file in the same
folder and renames it onto ``path`` (``os.replace`` is atomic on one file system), creating the
folder if needed. ``write_files(folder, stem, contents)`` does so for ``contents[fmt]`` at
``folder/stem.fmt`` and returns the paths in the order given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_atomic", "write_files"]


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a partial file and a rename; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def write_files(folder: str | os.PathLike, stem: str, contents: Mapping[str, bytes]) -> list[Path]:
    """Write each ``contents[fmt]`` to ``folder/stem.fmt`` atomically; return the paths."""
    return [write_atomic(Path(folder) / f"{stem}.{fmt}", data) for fmt, data in contents.items()]
