"""``Recorder``: log a user's own training loop (optax, equinox, flax or PyTorch) into the learnmech store.

Contract
--------
* ``Recorder(store_path, name=..., config=...)`` checks its arguments (``ValueError`` naming the
  field; nothing written) and does nothing else. The run starts at ``with`` (or at the first
  ``log*`` call): one row in the store's ``runs`` table, claim ``monitor.<name>``, preset
  ``monitor``, status ``running``, so ``learnmech runs``, ``learnmech show RUN`` and ``learnmech
  report`` list it beside the claims' runs, its curves (source ``experiment``) and its figure.
* Every ``log*`` call is one *record*: its values at one step (and ``member``, default 0), checked
  before anything is kept. ``log(step, loss=..., **scalars)``; ``log_sharpness`` (``lambda_max(H)``,
  curve ``sharpness``); ``log_noise_scale`` (``B_simple`` and its two parts, curves
  ``noise_scale``, ``noise_scale/trace_cov``, ``noise_scale/grad_sq_norm``); ``log_coordinates``
  (the RMS of each named activation, curves ``coord_rms/<layer>``). The probes take a JAX pytree
  with ``loss_fn(params, batch)`` or a ``torch.nn.Module`` with ``loss_fn(model, batch)``
  (:mod:`learnmech.monitor.probes`).
* Durability: records are written every ``flush_every`` records (default 1: at every call), each
  write one store transaction. A process killed outright (SIGKILL, a power cut) loses at most the
  ``flush_every - 1`` records not yet written, so with the default nothing that a ``log*`` call
  returned from is lost; its run stays ``running`` ("unfinished" in the report) until resumed.
  Leaving the ``with`` block in any way (normal end, an exception, Ctrl-C) writes every record
  first, then marks the run ``done``, or ``failed`` with the error (``interrupted
  (KeyboardInterrupt)`` for Ctrl-C).
* Between writes the store is closed, so ``learnmech show`` and ``learnmech report`` can read it
  while the loop runs (DuckDB allows one writing process at a time). A write that finds the store
  busy waits up to ``wait_seconds``; a write during the loop that still cannot get it keeps its
  records in memory for the next write (with a warning); the final write raises ``StoreBusyError``.
* Resuming: a second recorder with the same ``name`` (``resume=True``, the default) appends to the
  same run: every stored point is kept, except that a point logged again at the same (curve,
  member, step) replaces the stored one (a loop restarted from a checkpoint rewrites the steps it
  repeats). ``resume=False`` refuses an existing name. A ``config`` that differs from the stored
  one is refused; ``config=None`` keeps the stored one. Seconds add up over the sessions.
* ``close`` draws every curve against the step (:mod:`learnmech.monitor.figure`) into
  ``figures/<run_id>-monitor.png`` beside the store and records it as the run's figure
  (``figure=False`` skips it). A figure that cannot be written is a warning: the data are stored.
"""

from __future__ import annotations

import math
import numbers
import os
import platform
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from learnmech.monitor import stored_run
from learnmech.monitor.probes import noise_scale_values, sharpness_value
from learnmech.monitor.records import Record, columns, member_value, real_scalar, rms, series_name, step_value
from learnmech.store import DEFAULT_STORE_PATH, NotAStoreError, Store, StoreBusyError, canonical_json

__all__ = ["Recorder"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_VERSIONED = ("jax", "optax", "numpy", "torch", "equinox", "flax")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError("name: 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit; "
                         f"got {name!r}")
    return name


def _check_config(config: Any) -> Mapping | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ValueError(f"config: must be a mapping of JSON values (or None), got {type(config).__name__}")
    try:
        canonical_json(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config: must hold JSON values only: {exc}") from None
    return dict(config)


def _check_store_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"store_path: must be a file path, got {path!r}")
    try:
        Store.check(path)
    except NotAStoreError as exc:
        raise ValueError(f"store_path: {str(exc).removeprefix('--store: ')}") from None
    except StoreBusyError:
        pass  # busy now; the writes wait for it
    return Path(path)


def _check_count(field: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{field}: must be an int >= {low}, got {value!r}")
    return int(value)


def _check_wait(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"wait_seconds: must be a finite number >= 0, got {value!r}")
    return float(value)


def _versions() -> dict[str, str]:
    """learnmech, Python and the numeric libraries this process has loaded (none is imported here)."""
    from learnmech import __version__

    found = {"learnmech": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module, "__version__", None), str):
            found[name] = module.__version__
    return found


class Recorder:
    """Log loss, sharpness, noise scale and per-layer coordinate sizes of your own loop (module docstring).

    >>> with Recorder("runs.duckdb", name="my-mlp", config={"lr": 1e-3}) as rec:  # doctest: +SKIP
    ...     for step in range(1000):
    ...         params, opt_state, loss = update(params, opt_state, next(batches))
    ...         if step % 50 == 0:
    ...             rec.log(step, loss=loss)
    ...             rec.log_sharpness(step, loss_fn, params, probe_batch)
    """

    def __init__(self, store_path: str | os.PathLike = DEFAULT_STORE_PATH, *, name: str,
                 config: Mapping | None = None, resume: bool = True, flush_every: int = 1,
                 figure: bool = True, wait_seconds: float = 10.0) -> None:
        self.name = _check_name(name)
        self.config = _check_config(config)
        if not isinstance(resume, bool) or not isinstance(figure, bool):
            raise ValueError(f"resume, figure: must be True or False, got {resume!r}, {figure!r}")
        self.resume, self.figure = resume, figure
        self.flush_every = _check_count("flush_every", flush_every, 1)
        self.wait_seconds = _check_wait(wait_seconds)
        self.store_path = _check_store_path(store_path)
        self.run_id = stored_run.monitor_run_id(self.name)
        self._pending: list[Record] = []
        self._state = "new"  # new -> open -> closed
        self._prior_seconds, self._started = 0.0, 0.0
        self._warned_busy = False

    # ------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, kind, exc, tb) -> None:
        if exc is None:
            self.close()
        elif isinstance(exc, KeyboardInterrupt):
            self.close(error="interrupted (KeyboardInterrupt)")
        else:
            self.close(error="".join(traceback.format_exception(kind, exc, tb)))

    def start(self) -> Recorder:
        """Create the run, or resume the stored run of this name; idempotent while open."""
        if self._state == "closed":
            raise ValueError(f"Recorder {self.name!r} is closed; open a new Recorder with the same name to append")
        if self._state == "new":
            spec = stored_run.RunSpec(self.name, self.config, _versions())
            with self._open_store() as store:
                self._prior_seconds = stored_run.begin(store, spec, self.resume)
            self._started, self._state = time.perf_counter(), "open"
        return self

    def close(self, error: str | None = None) -> None:
        """Write every pending record, mark the run done (failed with ``error``), draw its figure."""
        if self._state == "closed":
            return
        self.start()
        with self._open_store() as store:
            self._write(store)
            total = self.seconds
            stored_run.finish(store, self.run_id, status="done" if error is None else "failed", error=error,
                              seconds=total)
            self._prior_seconds, self._state = total, "closed"
            if self.figure:
                self._save_figure(store)

    @property
    def seconds(self) -> float:
        """Seconds of recording over every session of this run."""
        return self._prior_seconds + (time.perf_counter() - self._started if self._state == "open" else 0.0)

    # ------------------------------------------------------------------------------- logging
    def log(self, step, loss=None, *, member: int = 0, **scalars) -> None:
        """Record ``loss`` and any named scalars (``lr=...``, ``grad_norm=...``) at ``step``."""
        values = {} if loss is None else {"loss": real_scalar("loss", loss)}
        for key, value in scalars.items():
            values[series_name(key, key)] = real_scalar(key, value)
        if not values:
            raise ValueError("log: give loss=... or at least one named scalar (e.g. accuracy=0.9)")
        self._add(step, member, values)

    def log_sharpness(self, step, loss_fn: Callable, params, batch, *, member: int = 0, method: str = "lanczos",
                      iterations: int = 20) -> float:
        """Record ``lambda_max(H)`` of ``loss_fn`` at ``params`` on ``batch`` (curve ``sharpness``); return it."""
        step, member = step_value(step), member_value(member)
        value = sharpness_value(loss_fn, params, batch, method=method, iterations=iterations)
        self._add(step, member, {"sharpness": value})
        return value

    def log_noise_scale(self, step, loss_fn: Callable, params, batches, *, member: int = 0) -> dict[str, float]:
        """Record the gradient noise scale ``B_simple`` and its parts on i.i.d. ``batches``; return them.

        ``noise_scale/trace_cov`` and ``noise_scale/grad_sq_norm`` are unbiased; their ratio from one
        call is noisy and negative when the ``|G|^2`` estimate is (a gradient small beside its noise):
        average both over steps before dividing (McCandlish et al. 2018, arXiv:1812.06162, App. A.1).
        """
        step, member = step_value(step), member_value(member)
        values = noise_scale_values(loss_fn, params, batches)
        self._add(step, member, values)
        return values

    def log_coordinates(self, step, activations: Mapping[str, Any], *, member: int = 0) -> dict[str, float]:
        """Record the RMS of each named activation (curves ``coord_rms/<layer>``); return them by layer."""
        if not isinstance(activations, Mapping) or not activations:
            raise ValueError("activations: must be a non-empty dict {layer name: array}, got "
                             f"{type(activations).__name__}")
        sizes = {series_name("activations", layer): rms(f"activations[{layer!r}]", array)
                 for layer, array in activations.items()}
        self._add(step, member, {f"coord_rms/{layer}": value for layer, value in sizes.items()})
        return sizes

    def flush(self) -> None:
        """Write the pending records now (one transaction)."""
        if self._state == "open" and self._pending:
            with self._open_store() as store:
                self._write(store)

    # ------------------------------------------------------------------------------- internals
    def _add(self, step, member, values: dict[str, float]) -> None:
        record = Record(step_value(step), member_value(member), values)
        if self._state == "closed":
            raise ValueError(f"Recorder {self.name!r} is closed; open a new Recorder with the same name to append")
        self.start()
        self._pending.append(record)
        if len(self._pending) >= self.flush_every:
            self._flush_or_keep()

    def _flush_or_keep(self) -> None:
        try:
            self.flush()
        except StoreBusyError as exc:
            if not self._warned_busy:
                warnings.warn(f"{exc}; {len(self._pending)} record(s) kept in memory for the next write",
                              RuntimeWarning, stacklevel=3)
                self._warned_busy = True

    def _write(self, store: Store) -> None:
        stored_run.append(store, self.run_id, columns(self._pending), self.seconds)
        self._pending = []

    def _open_store(self) -> Store:
        """The store, opened for writing; a busy store is retried for ``wait_seconds``."""
        deadline, pause = time.monotonic() + self.wait_seconds, 0.02
        while True:
            try:
                return Store.open(self.store_path)
            except StoreBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(2 * pause, 0.5)

    def _save_figure(self, store: Store) -> None:
        from learnmech.monitor.figure import monitor_figure

        try:
            fig = monitor_figure(store.series(self.run_id), title=f"monitor.{self.name} (run {self.run_id})")
            if fig is None:
                return
            from learnmech.report.figures import save_figure

            paths = save_figure(fig, store.directory / "figures", f"{self.run_id}-monitor", formats=("png",))
            stored_run.set_figures(store, self.run_id, [str(p) for p in paths])
        except OSError as exc:
            warnings.warn(f"the figure of run {self.run_id} was not written ({exc}); its curves are stored",
                          RuntimeWarning, stacklevel=3)

    def __repr__(self) -> str:
        return f"Recorder({str(self.store_path)!r}, name={self.name!r}, run_id={self.run_id!r}, {self._state})"
