"""The static HTML atlas (learnmech.report.html) on a synthetic store, and in a real browser.

The store is built through the Store API with real matplotlib figures: a claim with an older
failing run, a newer holding run and a newest crashed run; a failing run whose reason holds
markup; a crashed run; a run left running; a run whose figure path is relative and stale; a run
whose figure is gone; a claim with no run; a claim in the store but not in the catalog.
"""

from __future__ import annotations

import html
import importlib.util
import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from learnmech.report import new_figure, save_figure
from learnmech.report.html import (
    pick_run,
    run_page_path,
    run_state,
    traceback_excerpt,
    write_report,
)
from learnmech.store import RunRecord, Store

REPO = Path(__file__).resolve().parents[1]
TRACEBACK = ('Traceback (most recent call last):\n  File "claim.py", line 3, in measure\n'
             "    step()\n  File \"claim.py\", line 9, in step\n    raise FloatingPointError(x)\n"
             "FloatingPointError: loss diverged to nan at step 17\n")
EVIL = "loss < 0.5 is false: <script>alert(1)</script> & more"


@dataclass(frozen=True)
class FakeClaim:
    id: str
    pillar: str
    statement: str
    references: tuple[str, ...] = ()


CLAIMS = (
    FakeClaim("toy.holds", "alpha", "The toy quantity holds.", ("Someone et al. 2020", "https://example.org/p")),
    FakeClaim("toy.fails", "beta", "Markup <em>in</em> a statement is text."),
    FakeClaim("toy.crash", "beta", "This experiment crashes."),
    FakeClaim("toy.never", "alpha", "Nobody ran this."),
    FakeClaim("toy.stale", "alpha", "The figure path was recorded relative to another folder."),
    FakeClaim("toy.gone", "gamma", "The figure file was deleted."),
    FakeClaim("toy.pending", "gamma", "The process was killed."),
)
CARD_IDS = [f"claim-{c.id}" for c in CLAIMS] + ["claim-ghost.claim"]
CHOSEN = {"toy.holds": "r-holds-new", "toy.fails": "r-fails", "toy.crash": "r-crash", "toy.never": "",
          "toy.stale": "r-stale", "toy.gone": "r-gone", "toy.pending": "r-pending", "ghost.claim": "r-ghost"}
STATES = {"toy.holds": "holds", "toy.fails": "fails", "toy.crash": "crashed", "toy.never": "not run",
          "toy.stale": "inconclusive", "toy.gone": "holds", "toy.pending": "unfinished", "ghost.claim": "holds"}
ALL_RUNS = ("r-holds-old", "r-holds-new", "r-holds-crash", "r-fails", "r-crash", "r-stale", "r-gone",
            "r-pending", "r-ghost")


def _series() -> dict[str, np.ndarray]:
    steps = np.array([1.0, 10.0, 100.0])
    return {"source": np.array(["theory"] * 3 + ["experiment"] * 6, dtype=object),
            "name": np.array(["loss"] * 9, dtype=object),
            "member": np.array([0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=np.int32),
            "step": np.concatenate([steps, steps, steps]),
            "value": np.array([1.0, 0.5, 0.25, 1.1, 0.6, 0.3, 0.9, 0.4, 0.2])}


def _figure(folder: Path, stem: str) -> list[Path]:
    fig, (ax,) = new_figure(title=stem)
    x = np.linspace(0.0, 1.0, 20)
    ax.plot(x, x**2, label="measured")
    ax.plot(x, x, linestyle="--", label="theory")
    ax.legend()
    return save_figure(fig, folder, stem)


def _done(store: Store, rid: str, claim: str, verdict: str, *, reason: str = "as predicted",
          figures: list[str] | None = None, preset: str = "quick") -> None:
    store.begin_run(rid, claim=claim, preset=preset, config={"seeds": 2, "width": 64},
                    versions={"learnmech": "0.2.0", "jax": "0.4.30"}, host="testhost")
    if figures is None:
        figures = [str(p) for p in _figure(store.directory / "figures", f"{claim}-{rid}")]
    store.finish_run(rid, series=_series(), seconds=1.23456,
                     verdict={"verdict": verdict, "metric": "rel_err", "value": 0.0123456,
                              "threshold": 0.05, "reason": reason, "details": {"slope": 1.5, "r2": 0.999}},
                     artifacts=[("figure", p) for p in figures])


def _build_store(path: Path) -> None:
    with Store.open(path) as store:
        _done(store, "r-holds-old", "toy.holds", "fails", reason="old attempt")
        _done(store, "r-holds-new", "toy.holds", "holds", preset="full")
        store.begin_run("r-holds-crash", claim="toy.holds", preset="quick", config={}, versions={})
        store.fail_run("r-holds-crash", error=TRACEBACK, seconds=0.5)
        _done(store, "r-fails", "toy.fails", "fails", reason=EVIL)
        store.begin_run("r-crash", claim="toy.crash", preset="quick", config={"seeds": 1}, versions={})
        store.fail_run("r-crash", error=TRACEBACK, seconds=0.25)
        made = _figure(store.directory / "figures", "toy.stale-r-stale")
        _done(store, "r-stale", "toy.stale", "inconclusive",
              figures=[f"old-cwd/figures/{made[0].name}", f"/nonexistent/elsewhere/{made[1].name}"])
        _done(store, "r-gone", "toy.gone", "holds", figures=["/nonexistent/toy.gone-r-gone.png"])
        store.begin_run("r-pending", claim="toy.pending", preset="quick", config={}, versions={})
        _done(store, "r-ghost", "ghost.claim", "holds")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(store path, index path) of the synthetic store and its report."""
    root = tmp_path_factory.mktemp("atlas")
    _build_store(root / "store" / "learnmech.duckdb")
    with Store.open(root / "store" / "learnmech.duckdb", read_only=True) as store:
        index = write_report(store, CLAIMS)
    return root / "store" / "learnmech.duckdb", index


class _Tags(HTMLParser):
    """Every start tag of a page as (tag, attrs)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _tags(text: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def _cards(text: str) -> dict[str, str]:
    """Card id -> the card's HTML."""
    return dict(re.findall(r'<article class="claim-card" id="([^"]+)"(.*?)</article>', text, re.S))


def _index(built) -> str:
    return built[1].read_text(encoding="utf-8")


def test_write_report_writes_index_runs_and_figures_where_promised(built):
    store_path, index = built
    assert index == store_path.parent / "report" / "index.html"
    for rid in ALL_RUNS:
        assert run_page_path(index.parent, rid).is_file(), rid
    assert run_page_path("x", "abc") == Path("x") / "runs" / "abc.html"
    assert sorted(p.suffix for p in (index.parent / "figures").iterdir()) == [".png"] * 5 + [".svg"] * 5
    assert not list(index.parent.rglob("*.partial"))


def test_every_claim_has_a_card_in_catalog_order_and_the_right_run(built):
    text = _index(built)
    articles = [attrs for tag, attrs in _tags(text) if tag == "article"]
    assert [a["id"] for a in articles] == CARD_IDS
    for attrs in articles:
        claim = attrs["data-claim"]
        assert attrs["data-run"] == CHOSEN[claim], claim
        assert attrs["data-verdict"] == STATES[claim], claim
    assert {a["data-claim"]: a["data-pillar"] for a in articles}["ghost.claim"] == "unregistered"
    rows = [attrs for tag, attrs in _tags(text) if tag == "tr" and "data-claim" in attrs]
    assert [r["data-claim"] for r in rows] == [a["data-claim"] for a in articles]


def test_header_counts_and_card_contents(built):
    text = _index(built)
    assert "learnmech atlas" in text and "learnmech 0.2.0" in text
    counts = dict((s, int(n)) for n, s in re.findall(r'data-set-verdict="[^"]+"[^>]*>(\d+) ([a-z ]+)<', text))
    assert counts == {"holds": 3, "fails": 1, "inconclusive": 1, "crashed": 1, "unfinished": 1, "not run": 1}
    cards = _cards(text)
    holds = cards["claim-toy.holds"]
    assert "rel_err = 0.0123456" in holds and "(threshold 0.05)" in holds and "1.235" in holds
    assert "<span class=\"k\">slope</span> <span class=\"v\">1.5</span>" in holds and "&#34;width&#34;: 64" in holds.replace("&quot;", "&#34;")
    assert "https://example.org/p" in holds and "Someone et al. 2020" in holds
    other_runs = re.findall(r'href="runs/(r-[a-z-]+)\.html"><code>', holds.split("other runs")[1])
    assert other_runs == ["r-holds-crash", "r-holds-old"]
    crash = cards["claim-toy.crash"]
    assert "<img" not in crash and "Traceback (most recent call last):" in crash
    assert "FloatingPointError: loss diverged to nan at step 17" in crash and "step()" not in crash
    assert "not run" in cards["claim-toy.never"] and "<img" not in cards["claim-toy.never"]
    assert "figure missing" in cards["claim-toy.gone"] and "<img" not in cards["claim-toy.gone"]
    assert "unfinished" in cards["claim-toy.pending"] and "never finished" in cards["claim-toy.pending"]


def test_text_is_escaped(built):
    text = _index(built)
    assert "<script>alert(1)" not in text and "<em>in</em>" not in text
    assert html.escape(EVIL, quote=False) in text.replace("&#39;", "'").replace("&#34;", '"')
    assert "&lt;em&gt;in&lt;/em&gt;" in text


def _local_refs(page: Path) -> list[str]:
    return [attrs[key] for tag, attrs in _tags(page.read_text(encoding="utf-8"))
            for key in ("href", "src") if attrs.get(key) and not attrs[key].startswith(("https://", "data:"))]


def test_relative_links_resolve_to_files_and_anchors(built):
    index = built[1]
    pages = [index, *sorted((index.parent / "runs").glob("*.html"))]
    ids = {attrs["id"] for tag, attrs in _tags(index.read_text(encoding="utf-8")) if "id" in attrs}
    checked = 0
    for page in pages:
        for ref in _local_refs(page):
            target, _, fragment = ref.partition("#")
            assert not target.startswith(("http:", "file:", "/")), (page, ref)
            resolved = (page.parent / target).resolve() if target else page
            assert resolved.is_file(), (page.name, ref)
            if fragment and resolved == index:
                assert fragment in ids, (page.name, ref)
            checked += 1
    assert checked > 40


def test_no_external_scripts_styles_or_images(built):
    index = built[1]
    for page in [index, *(index.parent / "runs").glob("*.html")]:
        text = page.read_text(encoding="utf-8")
        for tag, attrs in _tags(text):
            if tag in ("script", "img", "link", "iframe", "source"):
                assert not re.match(r"(https?:)?//", attrs.get("src", "") + attrs.get("href", "")), (page, attrs)
        assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)


def test_stale_and_relative_figure_paths_are_found_beside_the_store(built):
    card = _cards(_index(built))["claim-toy.stale"]
    assert 'src="figures/toy.stale-r-stale.png"' in card and 'href="figures/toy.stale-r-stale.svg"' in card


def test_run_pages_show_verdict_curves_error_and_link_back(built):
    runs = built[1].parent / "runs"
    crash = (runs / "r-crash.html").read_text(encoding="utf-8")
    assert re.search(r"<pre[^>]*>Traceback.*step\(\).*FloatingPointError", crash, re.S)
    assert 'href="../index.html#claim-toy.crash"' in crash
    page = (runs / "r-holds-new.html").read_text(encoding="utf-8")
    assert 'src="../figures/toy.holds-r-holds-new.png"' in page
    rows = re.findall(r"<tr><td>(theory|experiment)</td><td>loss</td><td[^>]*>(\d+)</td>\s*<td[^>]*>(\d+)</td>", page)
    assert sorted(rows) == [("experiment", "2", "6"), ("theory", "1", "3")]
    assert "testhost" in page and "0.4.30" in page and "rel_err = 0.0123456" in page


def test_rerunning_replaces_the_pages(built, tmp_path):
    store_path, index = built
    before = index.read_text(encoding="utf-8")
    with Store.open(store_path, read_only=True) as store:
        again = write_report(store, CLAIMS[:2], tmp_path / "elsewhere")
        assert write_report(store, CLAIMS[:2], tmp_path / "elsewhere") == again
    cards = [a["id"] for t, a in _tags(again.read_text(encoding="utf-8")) if t == "article"]
    assert cards == ["claim-toy.holds", "claim-toy.fails", "claim-ghost.claim", "claim-toy.crash",
                     "claim-toy.gone", "claim-toy.pending", "claim-toy.stale"]
    assert index.read_text(encoding="utf-8") == before
    assert not list(again.parent.rglob("*.partial"))


def _record(run_id: str, status: str) -> RunRecord:
    return RunRecord(run_id, "toy.x", "quick", {}, status, None, None, None, None, {}, None)


def test_pick_run_and_state():
    done, failed, running = _record("a", "done"), _record("b", "failed"), _record("c", "running")
    assert pick_run([failed, running, done]) is done
    assert pick_run([running, failed]) is running and pick_run([]) is None
    assert run_state(None, None) == "not run" and run_state(failed, None) == "crashed"
    assert run_state(running, None) == "unfinished" and run_state(done, None) == "inconclusive"
    assert run_state(done, {"verdict": "fails"}) == "fails"
    assert traceback_excerpt(TRACEBACK).splitlines()[0] == "Traceback (most recent call last):"
    assert traceback_excerpt(None) == "" and traceback_excerpt("one\ntwo") == "one\ntwo"


def _browser_module():
    spec = importlib.util.spec_from_file_location("learnmech_test_browser", Path(__file__).with_name("browser.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_the_page_in_a_real_browser(built):
    browser = _browser_module()
    browser.usable_or_skip()
    shot = browser.artifact_path("report-synthetic.png")
    report = browser.check_page(built[1], shot)
    assert report.card_ids == CARD_IDS
    assert report.console_errors == [] and report.page_errors == []
    images = {card.id: card.images for card in report.cards}
    for claim in ("toy.holds", "toy.fails", "toy.stale", "ghost.claim"):
        assert images[f"claim-{claim}"] == (True,), claim
    assert images["claim-toy.gone"] == () and images["claim-toy.never"] == ()
    # the one problem on this page is deliberate: a judged run whose figure file is gone
    assert report.problems == ["claim-toy.gone: run r-gone is judged (holds) but shows no figure"]
    shown = {(c.control, c.value): len(c.visible) for c in report.filters}
    assert shown[("filter-verdict", "holds")] == 3 and shown[("filter-pillar", "alpha")] == 3
    assert shown[("filter-pillar", "")] == len(CARD_IDS) and all(c.ok for c in report.filters)
    assert shot.is_file() and shot.stat().st_size > 10_000
