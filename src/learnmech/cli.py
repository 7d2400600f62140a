"""The ``learnmech`` command line: list, check, atlas, sweep, runs, show, report, export, docs, transfer, fit scaling,
lm (transfer and scaling sweeps of transformer language models on a text file).

Exit codes: 0 when every verdict holds or is inconclusive, 1 when any claim fails (or its run
crashed), 2 for bad input — which is reported in one line naming the field and what is allowed,
before anything is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from learnmech import __version__
from learnmech.cli_common import (BadInput, GuardedGroup, doing, err, existing_store, open_store, out,
                                  progress_bar)
from learnmech.cli_common import fail_input as _fail_input
from learnmech.cli_fit import fit_app
from learnmech.cli_lm import lm_app
from learnmech.cli_report import export, report, run_page, write_atlas_page
from learnmech.cli_sweep import sweep
from learnmech.cli_transfer import transfer
from learnmech.cli_docs import docs
from learnmech.store import DEFAULT_STORE_PATH, Store, StoreError

app = typer.Typer(cls=GuardedGroup, add_completion=False, no_args_is_help=True,
                  help="learnmech: predict, measure and judge the mechanics of neural-network learning.")
app.add_typer(fit_app, name="fit")
app.add_typer(lm_app, name="lm")
app.command("sweep")(sweep)
app.command("transfer")(transfer)
app.command("report")(report)
app.command("export")(export)
app.command("docs")(docs)

STORE_OPT = typer.Option(DEFAULT_STORE_PATH, "--store", help="DuckDB results store (created if missing).")
PRESET_OPT = typer.Option(True, "--quick/--full", help="preset: quick (seconds) or full (minutes)")
FORCE_OPT = typer.Option(False, "--force", help="redo runs that are already done")
JSON_OPT = typer.Option(False, "--json", help="print the outcomes as JSON")


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``field=value`` pairs; values are JSON when they parse as JSON (numbers, lists), else text.

    JSON that :func:`learnmech.value_bounds.loads_bounded` refuses (``NaN``, ``Infinity``, nesting
    deeper than ``MAX_NESTING``, integers of thousands of digits) is bad input naming the field.
    """
    from learnmech.value_bounds import ValueRefused, loads_bounded

    overrides = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field.strip():
            raise BadInput(f"--set: expected field=value, got {pair!r}")
        try:
            value = loads_bounded(raw)
        except ValueRefused as exc:
            raise BadInput(f"--set {field.strip()}: {exc}") from None
        except json.JSONDecodeError:
            value = raw
        overrides[field.strip()] = value
    return overrides


def _config_error(claim, exc: ValidationError, given: Optional[dict[str, Any]] = None) -> str:
    """One line for the first problem pydantic found, naming the field and what is allowed."""
    from learnmech.atlas.config_checks import config_refusal

    refusal = config_refusal(claim, exc, given or {})
    return f"--set {refusal.path}: {refusal.text}"


def _make_config(claim, preset: str, sets: list[str], seeds: Optional[int]):
    overrides = _parse_sets(sets)
    if seeds is not None:
        overrides["seeds"] = seeds
    try:
        return claim.make_config(preset, overrides)
    except ValidationError as exc:
        raise BadInput(_config_error(claim, exc, overrides)) from None


def _run_many(jobs, store_path: Path, force: bool, as_json: bool) -> int:
    """Run ``(claim, config, preset)`` jobs against one store; print the table; return the exit code."""
    from learnmech.atlas import run_claim

    try:
        store = open_store(store_path)
    except BadInput as exc:
        _fail_input(str(exc))
    outcomes = []
    with store, progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        overall = bar.add_task("claims", total=len(jobs))
        for claim, config, preset in jobs:
            bar.update(overall, description=f"claims ({claim.id})")
            try:
                with doing(f"running {claim.id} and storing its results"):
                    outcome = run_claim(claim, config, preset=preset, store=store, force=force, progress=progress)
            except KeyboardInterrupt:
                err.print(f"{claim.id}: interrupted; {_interrupted(store, claim, config)}")
                raise
            outcomes.append(outcome)
            bar.advance(overall)
            if outcome.state == "skipped":
                note = f"; {outcome.note}" if outcome.note else ""
                err.print(f"{claim.id}: run {outcome.run_id} already done, skipped (use --force to redo){note}",
                          style="dim")
            elif outcome.state == "failed":
                err.print(f"{claim.id}: run {outcome.run_id} crashed", style="red")
                err.print(outcome.error)
            else:
                err.print(f"{claim.id}: {outcome.verdict.status} (run {outcome.run_id}, {outcome.seconds:.1f}s)",
                          markup=False, highlight=False)
        with doing("writing the atlas page"):
            page = write_atlas_page(store)
    _print_outcomes(outcomes, store_path, as_json)
    if not as_json:
        out.print(f"report: {page}", highlight=False)
    failed = any(o.state == "failed" or (o.verdict is not None and o.verdict.status == "fails") for o in outcomes)
    return 1 if failed else 0


def _interrupted(store, claim, config) -> str:
    """What an interrupted run left: the earlier result of a redo, or a run marked running."""
    from learnmech.store import run_id

    rid = run_id(claim.id, config.model_dump(mode="json"), __version__)
    if store.status(rid) == "done":
        return f"run {rid} keeps its earlier result (the --force redo did not finish)"
    return f"run {rid} is left running and is redone next time"


def _print_outcomes(outcomes, store_path: Path, as_json: bool) -> None:
    if as_json:
        payload = [{"claim": o.claim_id, "preset": o.preset, "run_id": o.run_id, "state": o.state,
                    "seconds": round(o.seconds, 3), "figures": o.figures, "error": o.error,
                    "verdict": None if o.verdict is None else o.verdict.model_dump()} for o in outcomes]
        sys.stdout.write(json.dumps(payload, indent=2, allow_nan=True) + "\n")
        return
    table = Table(title="learnmech verdicts", title_justify="left")
    for col in ("claim", "preset", "verdict", "metric", "value", "threshold", "run", "time"):
        table.add_column(col, justify="right" if col in ("value", "threshold", "time") else "left")
    colors = {"holds": "green", "fails": "red", "inconclusive": "yellow"}
    for o in outcomes:
        v = o.verdict
        status = "crashed" if v is None else v.status
        table.add_row(
            o.claim_id, o.preset, Text(status, style=colors.get(status, "red")),
            "" if v is None else v.metric, "" if v is None else f"{v.value:.6g}",
            "" if v is None else f"{v.threshold:.4g}", f"{o.run_id} ({o.state})", f"{o.seconds:.1f}s",
        )
    out.print(table)
    counts = {s: sum(1 for o in outcomes if (o.verdict.status if o.verdict else "crashed") == s)
              for s in ("holds", "fails", "inconclusive", "crashed")}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"; store {store_path}; figures "
              f"{Path(store_path).parent / 'figures'}", highlight=False)


@app.command("list")
def list_claims() -> None:
    """List the registered claims."""
    from learnmech.atlas import all_claims

    table = Table(title="learnmech claims", title_justify="left")
    for col in ("claim", "pillar", "statement"):
        table.add_column(col, overflow="fold")
    for claim in all_claims().values():
        table.add_row(claim.id, claim.pillar, claim.statement)
    out.print(table)


@app.command()
def check(
    claim_id: str = typer.Argument(..., metavar="CLAIM", help="claim id, e.g. dln.modes"),
    quick: bool = PRESET_OPT,
    sets: list[str] = typer.Option([], "--set", help="override a config field: field=value (repeatable)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="number of seeds (shorthand for --set seeds=N)"),
    store: Path = STORE_OPT,
    force: bool = FORCE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Run one claim: predict, measure, judge, plot, store."""
    from learnmech.atlas import get_claim

    preset = "quick" if quick else "full"
    try:
        claim = get_claim(claim_id)
        config = _make_config(claim, preset, sets, seeds)
        Store.check(store)
    except KeyError as exc:
        _fail_input(exc.args[0])
    except (BadInput, StoreError) as exc:
        _fail_input(str(exc))
    raise typer.Exit(_run_many([(claim, config, preset)], store, force, as_json))


@app.command()
def atlas(
    quick: bool = PRESET_OPT,
    only: Optional[str] = typer.Option(None, "--only", help="glob or substring of claim ids, e.g. 'dln.*'"),
    skip: list[str] = typer.Option([], "--skip", help="leave out claims matching this glob or substring "
                                   "(repeatable), e.g. 'laws.lm-*'"),
    store: Path = STORE_OPT,
    force: bool = FORCE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Run every registered claim (or those matching --only, less those matching --skip) and print the verdicts."""
    from learnmech.atlas import all_claims, select_claims

    preset = "quick" if quick else "full"
    claims = select_claims(only, tuple(skip))
    if not select_claims(only):
        _fail_input(f"--only: no claim matches {only!r}; claims: {', '.join(all_claims())}")
    if not claims:
        _fail_input(f"--skip: {list(skip)} leaves no claim to run; claims: {', '.join(all_claims())}")
    try:
        Store.check(store)
    except StoreError as exc:
        _fail_input(str(exc))
    jobs = [(c, c.make_config(preset), preset) for c in claims]
    raise typer.Exit(_run_many(jobs, store, force, as_json))


def _status_text(record) -> str:
    """The run's status, with a ``--force`` redo that did not finish or failed: ``done (redo unfinished)``."""
    if not record.redo:
        return record.status
    return f"{record.status} (redo {'unfinished' if record.redo['status'] == 'running' else 'failed'})"


@app.command()
def runs(
    store: Path = STORE_OPT,
    claim: Optional[str] = typer.Option(None, "--claim", help="only runs of this claim"),
) -> None:
    """List the runs in the store, newest first."""
    with existing_store(store) as db:
        table = Table(title=f"runs in {store}", title_justify="left")
        for col in ("run", "claim", "preset", "status", "verdict", "seconds", "finished"):
            table.add_column(col)
        for r in db.runs(claim):
            v = db.verdict(r.run_id)
            table.add_row(r.run_id, r.claim, r.preset, _status_text(r), v["verdict"] if v else "",
                          "" if r.seconds is None else f"{r.seconds:.1f}", str(r.finished_at or ""))
        out.print(table)


@app.command()
def show(
    run: str = typer.Argument(..., metavar="RUN", help="run id or a unique prefix of one"),
    store: Path = STORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show one run: config, verdict, reason, details, figures and stored curves."""
    from learnmech.atlas.runner import redo_note

    with existing_store(store) as db:
        try:
            rec = db.get_run(run)
        except KeyError as exc:
            _fail_input(f"RUN: {exc.args[0]}")
        verdict = db.verdict(rec.run_id)
        series = db.series(rec.run_id)
        names = sorted(set(zip(series["source"].tolist(), series["name"].tolist())))
        info = {"run_id": rec.run_id, "claim": rec.claim, "preset": rec.preset, "status": rec.status,
                "seconds": rec.seconds, "finished_at": str(rec.finished_at or ""), "config": rec.config,
                "versions": rec.versions, "verdict": verdict, "artifacts": db.artifacts(rec.run_id),
                "curves": [f"{s}:{n}" for s, n in names], "error": rec.error, "redo": rec.redo,
                "page": str(run_page(db, rec.run_id))}
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return
    out.print(Text(rec.claim, style="bold") + Text(f" run {rec.run_id} ({rec.preset}, {rec.status}, "
                                                   f"{'' if rec.seconds is None else f'{rec.seconds:.1f}s'})"))
    if rec.redo:
        out.print(f"note: {redo_note(rec.redo)}")
        if rec.redo.get("error"):
            out.print(f"redo error:\n{rec.redo['error']}")
    if verdict:
        value = "n/a" if verdict["value"] is None else f"{verdict['value']:.6g}"
        threshold = "n/a" if verdict["threshold"] is None else f"{verdict['threshold']:.4g}"
        out.print(f"verdict: {verdict['verdict']} — {verdict['metric']} = {value} (threshold {threshold})")
        out.print(f"reason: {verdict['reason']}", highlight=False)
        for k, v in (verdict.get("details") or {}).items():
            out.print(f"  {k}: {v}", highlight=False)
    out.print("config: " + json.dumps(rec.config), highlight=False)
    for kind, path in info["artifacts"]:
        out.print(f"{kind}: {path}", highlight=False)
    out.print(f"curves ({len(names)}): " + ", ".join(info["curves"]), highlight=False)
    out.print(f"page: {info['page']}", highlight=False)
    if rec.error:
        out.print(f"error:\n{rec.error}", markup=False)




@app.command()
def version() -> None:
    """Print the package version."""
    out.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
