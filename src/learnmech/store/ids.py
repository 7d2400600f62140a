"""Run ids: a stable hash of what a run is.

Contract
--------
* ``canonical_json(obj)`` renders a JSON-able value (mappings with ``str`` keys, lists,
  tuples, ``str``, ``int``, ``float``, ``bool``, ``None`` and numpy scalars/arrays) as JSON with
  sorted keys and no whitespace. Tuples and numpy arrays become lists, numpy scalars become
  the Python scalar of the same value, floats are written by ``repr`` (so ``0.1`` stays
  ``0.1``). Anything else raises ``TypeError``; a NaN or infinite float raises ``ValueError``
  unless ``nonfinite_as_null=True``, which writes it as ``null``.
* ``run_id(claim_id, config, version)`` is the first 16 hex characters of the SHA-256 of
  ``claim_id + "\\n" + canonical_json(config) + "\\n" + version``: the same claim, config and
  package version always give the same id, whatever the key order of ``config``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["canonical_json", "run_id", "to_jsonable"]

RUN_ID_LENGTH = 16


def _float(value: float, nonfinite_as_null: bool) -> float | None:
    if math.isfinite(value):
        return value
    if nonfinite_as_null:
        return None
    raise ValueError(f"cannot write the non-finite float {value!r} as JSON")


def _mapping(obj: Mapping, nonfinite_as_null: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(key, np.str_):
            key = str(key)
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, got {type(key).__name__}: {key!r}")
        out[key] = to_jsonable(value, nonfinite_as_null=nonfinite_as_null)
    return out


def to_jsonable(obj: Any, *, nonfinite_as_null: bool = False) -> Any:
    """Return ``obj`` as plain Python JSON values (dict/list/str/int/float/bool/None)."""
    if obj is None or isinstance(obj, (bool, str)):
        return str(obj) if isinstance(obj, np.str_) else obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(float(obj), nonfinite_as_null)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), nonfinite_as_null=nonfinite_as_null)
    if isinstance(obj, np.generic) and obj.dtype.kind in "biufU":
        return to_jsonable(obj.item(), nonfinite_as_null=nonfinite_as_null)
    if isinstance(obj, Mapping):
        return _mapping(obj, nonfinite_as_null)
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(item, nonfinite_as_null=nonfinite_as_null) for item in obj]
    raise TypeError(f"cannot write an object of type {type(obj).__name__} as JSON: {obj!r}")


def canonical_json(config: Mapping, *, nonfinite_as_null: bool = False) -> str:
    """Return the canonical JSON text of ``config`` (sorted keys, no whitespace)."""
    plain = to_jsonable(config, nonfinite_as_null=nonfinite_as_null)
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(claim_id: str, config: Mapping, version: str) -> str:
    """Return the 16-hex-character id of running ``claim_id`` with ``config`` under ``version``."""
    text = f"{claim_id}\n{canonical_json(config)}\n{version}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]
