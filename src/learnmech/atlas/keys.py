"""Names of a record's entries: one helper builds them, so no module spells ``f"loss/{i}"`` by hand.

A record (:mod:`learnmech.atlas.contract`) names its curves and scalars with ``/``-separated paths:
``key("mode", 2) == "mode/2"``, ``key("loss", "sgd", 0) == "loss/sgd/0"``. :func:`indexed` reads
back the family ``name/0, name/1, ...`` in index order.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["indexed", "key"]


def key(name: str, *parts: object) -> str:
    """``name/part/part...``; each part is written with ``str`` (ints and short labels)."""
    for part in (name, *parts):
        if "/" in str(part) or str(part) == "":
            raise ValueError(f"key: a part must be non-empty and contain no '/', got {part!r}")
    return "/".join(str(p) for p in (name, *parts))


def indexed(record: Mapping, name: str) -> list:
    """The entries ``name/0, name/1, ...`` of ``record`` in index order (stops at the first gap)."""
    out, i = [], 0
    while key(name, i) in record:
        out.append(record[key(name, i)])
        i += 1
    return out
