"""``learnmech sweep SPEC``: a grid of one claim's configurations, on this machine or on Ray.

Everything a user typed is checked before anything is written: the spec (structure, claim,
every point against the claim's config model, repeated points), the backend and address, and
the store. Then the driver (:func:`learnmech.sweep.run_sweep`) skips the runs already done,
sends the rest to the executor, and writes each result to the store as it arrives; a run that
raised is recorded failed and the sweep goes on. One line per finished run goes to stderr with
the counts of done, failed and remaining; the table of verdicts, the atlas page and (with
``--json``) a machine-readable summary follow. Exit code 1 when any run fails or crashed.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from learnmech.cli_common import BadInput, doing, err, fail_input, open_store, out, progress_bar
from learnmech.store import DEFAULT_STORE_PATH, Store, StoreError

__all__ = ["sweep"]

BACKENDS = ("local", "ray")


def _executor(backend: str, address: Optional[str], workers: Optional[int]):
    """The executor for ``--backend``/``--address``/``--workers``; BadInput naming the option otherwise."""
    from learnmech.sweep import LocalExecutor, RayExecutor, ray_available

    if backend not in BACKENDS:
        raise BadInput(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and workers < 1:
        raise BadInput(f"--workers: must be an integer >= 1, got {workers}")
    if backend == "local":
        if address is not None:
            raise BadInput("--address: only with --backend ray")
        return LocalExecutor(workers)
    if not ray_available():
        raise BadInput("--backend: ray is not installed here; pip install 'learnmech[ray]'")
    if address is not None and address != "auto":
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadInput(f"--address: must be auto or HOST:PORT (the Ray head's GCS address), got {address!r}")
    return RayExecutor(address, num_cpus=workers)


def _value_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _rows(points, summary, db) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        outcome = summary.outcomes.get(p.index, {})
        verdict = db.verdict(p.run_id)
        rows.append({"index": p.index, "run_id": p.run_id, "fields": dict(p.label),
                     "state": outcome.get("state", db.status(p.run_id)), "status": db.status(p.run_id),
                     "verdict": verdict, "pid": outcome.get("pid"), "host": outcome.get("host"),
                     "seconds": outcome.get("seconds")})
    return rows


def _print_table(spec, rows, summary, store_path: Path, page: Path) -> None:
    table = Table(title=f"sweep of {spec.claim} ({spec.preset} preset)", title_justify="left")
    table.add_column("#", justify="right")
    for name in spec.varied():
        table.add_column(name)
    for col in ("verdict", "metric", "value", "threshold", "run", "state"):
        table.add_column(col, justify="right" if col in ("value", "threshold") else "left")
    colors = {"holds": "green", "fails": "red", "inconclusive": "yellow"}
    for row in rows:
        v = row["verdict"]
        word = v["verdict"] if v else "crashed"
        table.add_row(str(row["index"] + 1), *(_value_text(row["fields"][n]) for n in spec.varied()),
                      Text(word, style=colors.get(word, "red")), v["metric"] if v else "",
                      f"{v['value']:.6g}" if v and v["value"] is not None else "",
                      f"{v['threshold']:.4g}" if v and v["threshold"] is not None else "", row["run_id"], row["state"])
    out.print(table)
    out.print(f"{summary.done} done, {summary.skipped} skipped (already done), {summary.failed} failed; "
              f"store {store_path}; report {page}", highlight=False)


def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="sweep spec, TOML or YAML: claim, preset, set, grid, zip"),
    backend: str = typer.Option("local", "--backend", help="local (a process pool on this machine) or ray"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto or HOST:PORT (default with "
                                                                  "--backend ray: start a local cluster)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="processes (local) or CPUs of the local Ray "
                                                                  "cluster; default: the number of cores"),
    store: Path = typer.Option(DEFAULT_STORE_PATH, "--store", help="DuckDB results store (created if missing)."),
    force: bool = typer.Option(False, "--force", help="redo runs that are already done"),
    as_json: bool = typer.Option(False, "--json", help="print the summary and every run as JSON"),
) -> None:
    """Run a grid of one claim's configurations (resumable; failures recorded, the sweep goes on)."""
    from learnmech.atlas.sweep_points import sweep_points
    from learnmech.sweep import ExecutorError, SpecError, load_spec

    executor = None
    try:
        spec = load_spec(spec_path)
        points = sweep_points(spec)
        executor = _executor(backend, address, workers)
        Store.check(store)
        executor.start()  # a cluster that cannot be reached is reported before the store is touched
        db = open_store(store)
    except (SpecError, BadInput, StoreError, ExecutorError) as exc:
        if executor is not None:
            executor.close()
        fail_input(str(exc))
    raise typer.Exit(_run(spec, points, executor, db, store, force, as_json))


def _run(spec, points, executor, db: Store, store_path: Path, force: bool, as_json: bool) -> int:
    from learnmech.atlas.execute import execute_run, versions
    from learnmech.cli_report import write_atlas_page
    from learnmech.sweep import run_sweep

    with db, progress_bar() as bar:
        task = bar.add_task(f"sweep {spec.claim}", total=len(points))

        def on_event(event) -> None:
            s = event.summary
            counts = f"{s.done} done, {s.failed} failed, {s.remaining} remaining"
            bar.update(task, advance=1, description=f"sweep {spec.claim}: {counts}")
            labels = ", ".join(f"{k}={_value_text(v)}" for k, v in event.point.label.items())
            word = event.state
            if event.payload is not None and event.payload.verdict is not None:
                word = f"{event.state} ({event.payload.verdict['verdict']})"
            err.print(f"sweep: point {event.point.index + 1}/{len(points)} run {event.point.run_id} {word} "
                      f"[{labels}] -- {counts}", markup=False, highlight=False)

        err.print(f"sweep: {len(points)} points of {spec.claim} on the {executor.name} executor, store {store_path}",
                  markup=False, highlight=False)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the table or the JSON (Ray prints)
            summary = run_sweep(points, db, executor, execute_run, force=force, versions=versions(),
                                on_event=on_event)
        rows = _rows(points, summary, db)
        with doing("writing the atlas page"):
            page = write_atlas_page(db)
    if as_json:
        payload = {"claim": spec.claim, "preset": spec.preset, "backend": executor.name, "store": str(store_path),
                   "points": summary.points, "done": summary.done, "skipped": summary.skipped,
                   "failed": summary.failed, "duplicates": summary.duplicates, "report": str(page), "runs": rows}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        _print_table(spec, rows, summary, store_path, page)
    failing = any(r["status"] != "done" or (r["verdict"] or {}).get("verdict") == "fails" for r in rows)
    return 1 if failing else 0
