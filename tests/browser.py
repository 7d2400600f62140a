"""A small headless-Chromium check of the HTML atlas page (used by tests/test_report_html.py).

Contract
--------
* ``find_chromium()`` is the browser to drive: env ``LEARNMECH_CHROMIUM`` if set, else
  ``shutil.which("chromium")``; None when there is none. ``have_playwright()`` says whether the
  playwright package can be imported (it is imported lazily, so this module always imports).
* ``check_page(index, screenshot=None, executable=None)`` opens ``index`` by its ``file://``
  URL in headless Chromium, waits for the load event and returns a :class:`BrowserReport`: the
  card ids with, per card, whether each ``<img>`` loaded (``complete && naturalWidth > 0``), the
  console messages of type error and the page errors, and the result of selecting each option of
  the pillar and verdict filters (visible cards, expected cards, the "showing k of n" counter).
  With ``screenshot`` it saves a full-page PNG there. The browser is always closed.
* ``BrowserReport.problems`` lists what is wrong: an image that did not load, a card whose run
  is judged (holds / fails / inconclusive) but shows no loaded figure, a console or page error,
  a filter that shows the wrong cards or a wrong counter. ``ok`` is ``not problems``.
* ``python tests/browser.py PATH/index.html [--screenshot out.png]`` prints the summary and
  exits 1 when there is a problem (2 when the browser cannot be started).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BrowserReport", "CardState", "FilterCheck", "check_page", "find_chromium", "have_playwright"]

CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")
JUDGED = ("holds", "fails", "inconclusive")

_CARDS_JS = """() => Array.from(document.querySelectorAll("article.claim-card")).map(c => ({
    id: c.id, verdict: c.dataset.verdict || "", pillar: c.dataset.pillar || "",
    run: c.dataset.run || "",
    images: Array.from(c.querySelectorAll("img")).map(i => i.complete && i.naturalWidth > 0)}))"""
_VISIBLE_JS = """() => Array.from(document.querySelectorAll("article.claim-card"))
    .filter(c => c.getClientRects().length > 0).map(c => c.id)"""


@dataclass(frozen=True)
class CardState:
    """One card as the browser saw it: its id, data attributes and which images loaded."""

    id: str
    verdict: str
    pillar: str
    run: str
    images: tuple[bool, ...]


@dataclass(frozen=True)
class FilterCheck:
    """The outcome of selecting one filter option: what was visible against what should be."""

    control: str
    value: str
    visible: tuple[str, ...]
    expected: tuple[str, ...]
    counter: str

    @property
    def ok(self) -> bool:
        """True when the visible cards are the expected ones and the counter says so."""
        return (set(self.visible) == set(self.expected)
                and self.counter.strip().startswith(f"showing {len(self.expected)} of "))


@dataclass
class BrowserReport:
    """What the browser found on the page; see ``problems``."""

    url: str
    cards: list[CardState] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    filters: list[FilterCheck] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def card_ids(self) -> list[str]:
        """The ids of every card, in page order."""
        return [card.id for card in self.cards]

    @property
    def problems(self) -> list[str]:
        """Every problem, one line each (empty when the page is fine)."""
        out = []
        for card in self.cards:
            if not all(card.images):
                out.append(f"{card.id}: {card.images.count(False)} image(s) did not load")
            elif card.run and card.verdict in JUDGED and not card.images:
                out.append(f"{card.id}: run {card.run} is judged ({card.verdict}) but shows no figure")
        out += [f"console error: {text}" for text in self.console_errors]
        out += [f"page error: {text}" for text in self.page_errors]
        for check in self.filters:
            if not check.ok:
                out.append(f"filter {check.control}={check.value!r}: {len(check.visible)} visible, "
                           f"{len(check.expected)} expected, counter {check.counter!r}")
        return out

    @property
    def ok(self) -> bool:
        """True when there is no problem."""
        return not self.problems

    def summary(self) -> str:
        """A plain-text summary: cards, filters, errors, problems."""
        lines = [f"page: {self.url}", f"cards: {len(self.cards)}"]
        for card in self.cards:
            shown = "".join("y" if loaded else "n" for loaded in card.images) or "-"
            lines.append(f"  {card.id:<40} {card.verdict:<13} {card.pillar:<16} images {shown}")
        lines.append("filters:")
        lines += [f"  {c.control}={c.value!r}: {len(c.visible)} visible ({c.counter})" for c in self.filters]
        lines.append(f"console errors: {len(self.console_errors)}; page errors: {len(self.page_errors)}")
        if self.screenshot is not None:
            lines.append(f"screenshot: {self.screenshot}")
        problems = self.problems
        lines.append(f"problems: {len(problems)}")
        lines += [f"  {p}" for p in problems]
        return "\n".join(lines)


def find_chromium() -> str | None:
    """The Chromium executable: env LEARNMECH_CHROMIUM, else ``chromium`` on PATH, else None."""
    return os.environ.get("LEARNMECH_CHROMIUM") or shutil.which("chromium")


def usable_or_skip() -> None:
    """In a test: skip when playwright or Chromium is missing, or fail if LEARNMECH_REQUIRE_BROWSER=1 (CI)."""
    import pytest

    if have_playwright() and find_chromium() is not None:
        return
    if os.environ.get("LEARNMECH_REQUIRE_BROWSER") == "1":
        pytest.fail("LEARNMECH_REQUIRE_BROWSER=1 but playwright or chromium is missing")
    pytest.skip("playwright or chromium is missing")


def artifact_path(name: str) -> Path:
    """Where a test artifact (a screenshot) goes: env LEARNMECH_TEST_ARTIFACTS or test-artifacts/ in the repo."""
    folder = Path(os.environ.get("LEARNMECH_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.unlink(missing_ok=True)
    return path


def have_playwright() -> bool:
    """Whether the playwright package is installed."""
    return importlib.util.find_spec("playwright") is not None


def _exercise_filters(page, cards: list[CardState]) -> list[FilterCheck]:
    """Select every option of both filters in turn (the other left at 'all'), then reset."""
    checks = []
    for control, attribute in (("filter-pillar", "pillar"), ("filter-verdict", "verdict")):
        values = page.eval_on_selector(f"#{control}", "s => Array.from(s.options).map(o => o.value)")
        for value in values:
            page.select_option(f"#{control}", value)
            expected = tuple(c.id for c in cards if not value or getattr(c, attribute) == value)
            checks.append(FilterCheck(control=control, value=value,
                                      visible=tuple(page.evaluate(_VISIBLE_JS)), expected=expected,
                                      counter=page.inner_text("#showing")))
        page.select_option(f"#{control}", "")
    return checks


def check_page(index: Path, screenshot: Path | None = None, executable: str | None = None) -> BrowserReport:
    """Open ``index`` in headless Chromium and report what it shows (module docstring)."""
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found (set LEARNMECH_CHROMIUM or put chromium on PATH)")
    report = BrowserReport(url=Path(index).resolve().as_uri())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: report.page_errors.append(str(exc)))
            page.goto(report.url, wait_until="load")
            report.cards = [CardState(id=c["id"], verdict=c["verdict"], pillar=c["pillar"], run=c["run"],
                                      images=tuple(c["images"])) for c in page.evaluate(_CARDS_JS)]
            report.filters = _exercise_filters(page, report.cards)
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
                report.screenshot = Path(screenshot)
        finally:
            browser.close()
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: check one index page, print the summary, 0 when fine, 1 on a problem."""
    parser = argparse.ArgumentParser(description="Check a learnmech atlas page in headless Chromium.")
    parser.add_argument("index", type=Path, help="the report's index.html")
    parser.add_argument("--screenshot", type=Path, default=None, help="write a full-page PNG here")
    args = parser.parse_args(argv)
    if not args.index.is_file():
        print(f"no such file: {args.index}", file=sys.stderr)
        return 2
    if not have_playwright() or find_chromium() is None:
        print("playwright or chromium is missing", file=sys.stderr)
        return 2
    report = check_page(args.index, args.screenshot)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
