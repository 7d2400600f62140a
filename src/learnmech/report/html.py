"""The static HTML atlas: one index page of every claim's latest verdict, one page per run.

Contract
--------
* ``write_report(store, claims, directory=None)`` writes ``<directory>/index.html`` (default
  directory ``store.directory / "report"``), ``<directory>/runs/<run_id>.html`` for every run
  in the store, and copies every figure it shows into ``<directory>/figures/``, so the folder is
  self-contained and works from disk (``file://``): no CDN, no external fonts or scripts. It
  returns the index path.
* It only reads the store (a read-only Store is enough) and never re-runs anything. Every file
  is written atomically (``store.files.write_atomic``: a partial file, then a rename); re-running replaces the pages.
* ``claims`` is the catalog, in order: objects with ``.id``, ``.pillar``, ``.statement`` and
  ``.references``. Claims found in the store but not in the catalog get a card too, with pillar
  ``"unregistered"``.
* A card shows the newest ``done`` run of its claim, else its newest run of any status: a
  ``failed`` run is "crashed" (with an excerpt of its traceback), a ``running`` one is
  "unfinished"; a claim with no run is "not run". The states are ``STATES``.
* A figure path recorded in the store is used as given when it exists, else as
  ``store.directory / "figures" / <file name>``; when neither exists the page says "figure
  missing" and has no ``<img>``.
* ``run_page_path(directory, run_id)`` is where a run's page lives.
* A run page lists the run's preregistrations (``Store.preregistrations``), every one, oldest
  first, with its time to the microsecond beside the run's start, so that a prediction written
  before the experiment it predicts can be seen to be.

Numbers are shown to six significant digits (``fmt_number``); all text is HTML-escaped (jinja2 autoescape). The templates
live in ``report/templates/`` (``atlas.html.j2``, ``run.html.j2``) and carry their CSS and JS
inline. This module imports only the standard library, numpy, jinja2 and ``learnmech.store``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import jinja2
import numpy as np

from learnmech import __version__
from learnmech.store import RunRecord, Store
from learnmech.store.files import write_atomic

__all__ = ["STATES", "ClaimLike", "run_page_path", "write_report"]

STATES = ("holds", "fails", "inconclusive", "crashed", "unfinished", "not run")
UNREGISTERED = "unregistered"
OTHER_RUNS = 10
_TEMPLATES = Path(__file__).with_name("templates")
_IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")


class ClaimLike(Protocol):
    """What the report needs of a catalog entry (``learnmech.atlas.Claim`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def pillar(self) -> str: ...

    @property
    def statement(self) -> str: ...

    @property
    def references(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FigureView:
    """One figure of a run: the image shown and the file it links to (SVG when there is one).

    Both are hrefs relative to the report folder.
    """

    image: str
    link: str


@dataclass(frozen=True)
class CurveView:
    """A summary of one stored curve family of a run."""

    source: str
    name: str
    members: int
    points: int
    steps: str
    final: str


@dataclass(frozen=True)
class PreregistrationView:
    """One preregistration of a run: its name, when it was stored and its values."""

    name: str
    registered: str
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RunView:
    """Everything a page shows about one run; hrefs are relative to the report folder."""

    run_id: str
    claim: str
    preset: str
    status: str
    state: str
    metric: str
    value: str
    threshold: str
    reason: str
    details: tuple[tuple[str, str], ...]
    figures: tuple[FigureView, ...]
    figure_note: str
    config: str
    versions: tuple[tuple[str, str], ...]
    host: str
    started: str
    finished: str
    seconds: str
    error: str
    error_excerpt: str
    page: str
    preregistrations: tuple[PreregistrationView, ...] = ()
    started_precise: str = "–"  # started_at to the microsecond, beside the preregistration times


@dataclass(frozen=True)
class CardView:
    """One claim's card (and summary-table row) on the index page."""

    claim_id: str
    anchor: str
    pillar: str
    statement: str
    references: tuple[tuple[str, str], ...]
    state: str
    run: RunView | None
    others: tuple[RunView, ...]


def run_page_path(directory: str | os.PathLike, run_id: str) -> Path:
    """Where the page of run ``run_id`` lives in the report folder ``directory``."""
    return Path(directory) / "runs" / f"{run_id}.html"


def fmt_number(value: object, digits: int = 6) -> str:
    """A number to ``digits`` significant digits ("–" for None, the text itself for non-numbers).

    Six digits by default, as the command line prints verdict values: an R^2 of 0.999997 against a
    threshold of 0.99 must not read as 1.

    >>> fmt_number(0.999997), fmt_number(12345678.0), fmt_number(0.000123456, 4), fmt_number(None)
    ('0.999997', '1.23457e+07', '0.0001235', '–')
    """
    if value is None:
        return "–"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return "nan" if math.isnan(float(value)) else f"{float(value):.{digits}g}"
    return str(value)


def fmt_time(moment: datetime | None) -> str:
    """A naive-UTC timestamp as ``YYYY-MM-DD HH:MM:SS UTC`` ("–" for None)."""
    return "–" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def fmt_precise_time(moment: datetime | None) -> str:
    """A naive-UTC timestamp to the microsecond, ``YYYY-MM-DD HH:MM:SS.ffffff UTC`` ("–" for None)."""
    return "–" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S.%f} UTC"


def preregistration_views(store: Store, run_id: str) -> tuple[PreregistrationView, ...]:
    """Every preregistration of ``run_id``, oldest first (none for a store without the table)."""
    return tuple(PreregistrationView(name=entry["name"], registered=fmt_precise_time(entry["registered_at"]),
                                     values=tuple((k, fmt_number(v)) for k, v in entry["values"].items()))
                 for entry in store.preregistrations(run_id, latest=False))


def traceback_excerpt(error: str | None, head: int = 1, tail: int = 3) -> str:
    """The first ``head`` and last ``tail`` non-empty lines of a traceback, "…" between.

    >>> traceback_excerpt("Traceback:\\n  a\\n  b\\n  c\\n  d\\nValueError: x\\n")
    'Traceback:\\n…\\n  c\\n  d\\nValueError: x'
    """
    lines = [line for line in (error or "").splitlines() if line.strip()]
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join([*lines[:head], "…", *lines[-tail:]])


def pick_run(runs: Sequence[RunRecord]) -> RunRecord | None:
    """The run a claim's card shows: the first ``done`` of ``runs`` (newest first), else the first."""
    for run in runs:
        if run.status == "done":
            return run
    return runs[0] if runs else None


def run_state(run: RunRecord | None, verdict: dict | None) -> str:
    """The card state of ``run``: its verdict, or crashed / unfinished / not run."""
    if run is None:
        return "not run"
    if run.status == "failed":
        return "crashed"
    if run.status == "running":
        return "unfinished"
    return verdict["verdict"] if verdict and verdict.get("verdict") in STATES else "inconclusive"


def resolve_figure(path: str, store_directory: Path) -> Path | None:
    """The recorded figure ``path`` if it exists, else ``store_directory/figures/<name>``, else None."""
    given = Path(path)
    if given.is_file():
        return given
    fallback = store_directory / "figures" / given.name
    return fallback if fallback.is_file() else None


def _href(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


class _FigureCopier:
    """Copies each resolved figure once into ``<report>/figures/`` and hands back its href."""

    def __init__(self, report_directory: Path, store_directory: Path) -> None:
        self.folder = report_directory / "figures"
        self.store_directory = store_directory
        self._done: dict[Path, str] = {}

    def href(self, run_id: str, recorded: str) -> str | None:
        """The href of the copy of the run's ``recorded`` figure, or None if it cannot be found."""
        source = resolve_figure(recorded, self.store_directory)
        if source is None:
            return None
        key = source.resolve()
        if key not in self._done:
            name = source.name if run_id in source.name else f"{run_id}-{source.name}"
            write_atomic(self.folder / name, source.read_bytes())
            self._done[key] = _href("figures", name)
        return self._done[key]


def figure_views(paths: Sequence[str], run_id: str, copier: _FigureCopier) -> tuple[tuple[FigureView, ...], str]:
    """Pair a run's figure files by stem (PNG shown, SVG linked) and say what is missing.

    Returns the figures and a note: "" when every recorded stem has an image, "figure missing"
    when some stem has none, "no figure recorded" when the run recorded no figure.
    """
    stems: dict[str, dict[str, str | None]] = {}
    for recorded in paths:
        suffix = Path(recorded).suffix.lower()
        if suffix in _IMAGE_SUFFIXES:
            stems.setdefault(Path(recorded).stem, {})[suffix] = copier.href(run_id, recorded)
    if not stems:
        return (), "no figure recorded"
    views, missing = [], False
    for found in stems.values():
        image = found.get(".png") or next((h for h in found.values() if h), None)
        if image is None:
            missing = True
            continue
        views.append(FigureView(image=image, link=found.get(".svg") or image))
    return tuple(views), "figure missing" if missing else ""


def curve_views(columns: dict[str, np.ndarray]) -> tuple[CurveView, ...]:
    """Summaries (members, points, step range, final mean) of a run's stored curves."""
    sources, names = np.asarray(columns["source"], dtype=str), np.asarray(columns["name"], dtype=str)
    if sources.size == 0:
        return ()
    keys = np.char.add(np.char.add(sources, "\x1f"), names)
    unique, inverse = np.unique(keys, return_inverse=True)
    member, step = np.asarray(columns["member"]), np.asarray(columns["step"], dtype=float)
    value = np.asarray(columns["value"], dtype=float)
    out = []
    for i, key in enumerate(unique):
        sel = inverse == i
        steps, values = step[sel], value[sel]
        last = values[steps == steps.max()]
        with np.errstate(all="ignore"):
            final = float(np.nanmean(last)) if np.isfinite(last).any() else float("nan")
        source, name = str(key).split("\x1f", 1)
        out.append(CurveView(source=source, name=name, members=int(np.unique(member[sel]).size),
                             points=int(sel.sum()),
                             steps=f"{fmt_number(steps.min())} … {fmt_number(steps.max())}",
                             final=fmt_number(final)))
    return tuple(out)


def run_view(store: Store, run: RunRecord, copier: _FigureCopier) -> RunView:
    """The view of one stored run (its verdict, figures and metadata)."""
    verdict = store.verdict(run.run_id)
    figures, note = (), ""
    if run.status == "done":
        paths = [path for kind, path in store.artifacts(run.run_id) if kind == "figure"]
        figures, note = figure_views(paths, run.run_id, copier)
    details = (verdict or {}).get("details") or {}
    return RunView(
        run_id=run.run_id, claim=run.claim, preset=run.preset or "–", status=run.status,
        state=run_state(run, verdict),
        metric=(verdict or {}).get("metric") or "",
        value=fmt_number((verdict or {}).get("value")) if verdict else "–",
        threshold=fmt_number((verdict or {}).get("threshold"), 4) if verdict else "–",
        reason=(verdict or {}).get("reason") or _missing_reason(run),
        details=tuple((str(k), fmt_number(float("nan") if v is None else v)) for k, v in details.items()),
        figures=figures, figure_note=note,
        config=json.dumps(run.config, indent=2, sort_keys=True, default=str),
        versions=tuple((str(k), str(v)) for k, v in sorted(run.versions.items())),
        host=run.host or "–", started=fmt_time(run.started_at), finished=fmt_time(run.finished_at),
        seconds=fmt_number(run.seconds, 4), error=run.error or "",
        error_excerpt=traceback_excerpt(run.error), page=_href("runs", f"{run.run_id}.html"),
        preregistrations=preregistration_views(store, run.run_id), started_precise=fmt_precise_time(run.started_at))


def _missing_reason(run: RunRecord) -> str:
    if run.status == "failed":
        return "the run crashed before it was judged"
    if run.status == "running":
        return "the run was started but never finished (its process was stopped); run it again"
    return "the run finished without a verdict"


def _references(refs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """References as (text, href) pairs; href is "" unless the text is an http(s) address."""
    return tuple((str(r), str(r) if str(r).startswith(("http://", "https://")) else "") for r in refs)


def card_views(records: Sequence[RunRecord], claims: Sequence[ClaimLike],
               views: dict[str, RunView]) -> tuple[CardView, ...]:
    """One card per catalog claim, in order, then one per unregistered claim of the store.

    ``records`` are all the store's runs, newest first; ``views`` maps each run id to its view.
    """
    by_claim: dict[str, list[RunRecord]] = {}
    for run in records:
        by_claim.setdefault(run.claim, []).append(run)
    entries = [(c.id, c.pillar, c.statement, _references(c.references)) for c in claims]
    known = {c.id for c in claims}
    entries += [(cid, "monitored loops", "A training loop of your own, logged with learnmech.Recorder "
                 "(curves and figure; no verdict).", ()) if cid.startswith("monitor.") else
                (cid, UNREGISTERED, "This claim has runs in the store but is not in the catalog.", ())
                for cid in sorted(set(by_claim) - known)]
    cards = []
    for cid, pillar, statement, refs in entries:
        runs = by_claim.get(cid, [])
        chosen = pick_run(runs)
        run = views[chosen.run_id] if chosen else None
        others = tuple(views[r.run_id] for r in runs if r is not chosen)[:OTHER_RUNS]
        cards.append(CardView(claim_id=cid, anchor=f"claim-{cid}", pillar=pillar, statement=statement,
                              references=refs, state=run.state if run else "not run", run=run,
                              others=others))
    return tuple(cards)


def _environment() -> jinja2.Environment:
    """The jinja2 environment of the report templates: autoescape on, undefined names raise."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def versions_line(cards: Sequence[CardView]) -> str:
    """The learnmech versions of the cards' runs (comma-separated), else the installed one."""
    found = {dict(card.run.versions).get("learnmech", "") for card in cards if card.run is not None}
    found.discard("")
    return ", ".join(sorted(found)) if found else __version__


def write_report(store: Store, claims: Sequence[ClaimLike], directory: str | os.PathLike | None = None) -> Path:
    """Write the atlas pages of ``store`` into ``directory`` (see the module docstring)."""
    folder = Path(directory) if directory is not None else store.directory / "report"
    copier = _FigureCopier(folder, store.directory)
    records = store.runs()
    views = {run.run_id: run_view(store, run, copier) for run in records}
    cards = card_views(records, list(claims), views)
    counts = {state: sum(card.state == state for card in cards) for state in STATES}
    env = _environment()
    header = {
        "title": "learnmech atlas",
        "generated": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
        "store": str(Path(store.path).resolve()),
        "version": versions_line(cards),
        "counts": counts,
    }
    pillars = list(dict.fromkeys(card.pillar for card in cards))
    index = env.get_template("atlas.html.j2").render(header=header, cards=cards, pillars=pillars,
                                                     states=STATES)
    run_template = env.get_template("run.html.j2")
    for run in records:
        page = run_template.render(run=views[run.run_id], curves=curve_views(store.series(run.run_id)),
                                   statement=_statement(cards, run.claim), generated=header["generated"])
        write_atomic(run_page_path(folder, run.run_id), page.encode("utf-8"))
    index_path = folder / "index.html"
    write_atomic(index_path, index.encode("utf-8"))
    return index_path


def _statement(cards: Sequence[CardView], claim_id: str) -> str:
    return next((card.statement for card in cards if card.claim_id == claim_id), "")
