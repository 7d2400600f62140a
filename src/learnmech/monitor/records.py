"""What one ``Recorder.log*`` call becomes: checked numbers in the store's long format.

Contract
--------
* ``real_scalar(field, value)`` reads one real number from a Python int or float, a numpy or JAX
  scalar or one-element array, or a one-element torch tensor (detached and copied to the host).
  NaN and infinities are kept: a diverged loss is data, not an error. Anything else (a bool, a
  complex number, text, an array of more than one element) raises ``ValueError`` naming ``field``.
* ``step_value(step)`` is a finite real ``>= 0`` (integer steps, or fractional ones such as epochs).
* ``series_name(field, name)`` is a non-empty string of at most ``MAX_NAME`` printable characters.
* ``rms(field, array)`` is the root mean square ``sqrt(mean(x^2))`` over every entry, in float64:
  the size of a layer's coordinates that the coordinate check of Yang & Hu (2021, "Tensor
  Programs IV", arXiv:2011.14522) follows across widths.
* A :class:`Record` is one call's values at one step and member; :func:`columns` turns records
  into the ``source, name, member, step, value`` columns of ``learnmech.store`` (source
  ``experiment``), keeping only the last value written for a (name, member, step) when a step is
  logged twice.

This module imports only numpy and the standard library.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

__all__ = ["MAX_NAME", "SOURCE", "Record", "columns", "member_value", "real_scalar", "rms", "series_name",
           "step_value"]

SOURCE = "experiment"  # a user's measurements sit where a claim's measurements do
MAX_NAME = 200


class Record(NamedTuple):
    """The values of one ``log*`` call: ``{series name: value}`` at ``step`` for ``member``."""

    step: float
    member: int
    values: Mapping[str, float]


def _host_array(value: Any) -> np.ndarray:
    """``value`` as a numpy array on the host (torch tensors detached first, without importing torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _floats(field: str, value: Any) -> np.ndarray:
    """The entries of ``value`` as float64, refusing booleans, complex numbers, text and objects."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{field}: must be a real number, got the bool {value!r}")
    try:
        array = _host_array(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]  # a tracer's error runs to many lines
        raise ValueError(f"{field}: must be a concrete real number or array (log outside jit), got "
                         f"{type(value).__name__} ({first})") from None
    if array.dtype.kind in "bcOUSMmV" and not _is_extension_float(array):
        raise ValueError(f"{field}: must hold real numbers, got dtype {array.dtype} ({type(value).__name__})")
    return array.astype(np.float64)


def _is_extension_float(array: np.ndarray) -> bool:
    """True for the float types numpy learns from ml_dtypes (bfloat16, float8): JAX's low-precision arrays."""
    try:
        return bool(np.finfo(array.dtype).bits) and array.dtype.kind == "V"
    except (TypeError, ValueError):
        return False


def real_scalar(field: str, value: Any) -> float:
    """One real number from a Python, numpy, JAX or torch scalar (or one-element array)."""
    array = _floats(field, value)
    if array.size != 1:
        raise ValueError(f"{field}: must be a single number, got an array of shape {array.shape}")
    return float(array.reshape(()))


def step_value(step: Any) -> float:
    """The step of a record: a finite real number ``>= 0``."""
    value = real_scalar("step", step)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"step: must be a finite number >= 0, got {value!r}")
    return value


def member_value(member: Any) -> int:
    """The member (seed or run index within one logged loop): an int from 0 to 2**31 - 1."""
    if isinstance(member, (bool, np.bool_)) or not isinstance(member, (numbers.Integral, np.integer)) \
            or not 0 <= int(member) < 2**31:
        raise ValueError(f"member: must be an int from 0 to 2**31 - 1, got {member!r}")
    return int(member)


def series_name(field: str, name: Any) -> str:
    """A curve name: non-empty, printable, at most ``MAX_NAME`` characters."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"{field}: a curve name must be a non-empty printable string of at most "
                         f"{MAX_NAME} characters, got {name!r}")
    return name


def rms(field: str, array: Any) -> float:
    """``sqrt(mean(x^2))`` over every entry of ``array``, in float64."""
    values = _floats(field, array)
    if values.size == 0:
        raise ValueError(f"{field}: must have at least one entry, got shape {values.shape}")
    return float(np.sqrt(np.mean(np.square(values))))


def columns(records: Iterable[Record]) -> dict[str, np.ndarray]:
    """The long-format columns of ``records``; a repeated (name, member, step) keeps the last value."""
    latest: dict[tuple[str, int, float], float] = {}
    for record in records:
        for name, value in record.values.items():
            latest.pop((name, record.member, record.step), None)  # re-insert: the last write wins
            latest[(name, record.member, record.step)] = value
    keys = list(latest)
    return {"source": np.array([SOURCE] * len(keys), dtype=object),
            "name": np.array([k[0] for k in keys], dtype=object),
            "member": np.array([k[1] for k in keys], dtype=np.int32),
            "step": np.array([k[2] for k in keys], dtype=np.float64),
            "value": np.array(list(latest.values()), dtype=np.float64)}
