"""The catalog of claims as Markdown pages in ``docs/``, generated from the registry.

Contract
--------
* ``render_catalog() -> {relative path: text}`` renders ``claims.md`` (the index: every
  registered claim by pillar, its one-sentence statement and a link) and ``claims/<id>.md`` for
  each claim: its statement; the equation, from the ``Statement`` paragraph of the claim module's
  docstring; the verdict rule, from its ``Verdict`` paragraph and the claim's ``Rules`` (checks and
  guards as a table); its references; its config fields with each preset's values; and the rest of
  the module docstring (conventions, experiment, derivations). The output depends on the registry
  alone: the same code gives the same bytes on every machine (no dates, no versions, no paths).
* ``write_catalog(docs_dir)`` writes that rendering: ``claims.md`` atomically, the ``claims/``
  folder swapped in whole (:func:`learnmech.store.files.write_folder`: never a mix of old and new
  pages, and a page of a removed claim goes away). ``claims/`` must hold only ``.md`` files.
* ``stale_pages(docs_dir)`` lists the pages that differ from the rendering (changed, missing or
  left over); the test suite fails on any and prints ``REGENERATE``.

Docstrings are reStructuredText-flavoured: a role such as ``:func:`~a.b.c``` becomes ```c```,
double-backquoted code stays code (Markdown reads it as such), and the older name of this catalog,
``CLAIMS.md``, is dropped from the text.

Run as ``python -m learnmech.atlas.catalog_docs --write [--docs DIR]`` (or ``--check``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from learnmech.atlas.contract import PRESETS, Claim
from learnmech.atlas.registry import CLAIM_MODULES, all_claims

__all__ = ["INDEX", "PAGES", "REGENERATE", "render_catalog", "render_claim", "render_index", "stale_pages",
           "write_catalog"]

INDEX = "claims.md"
PAGES = "claims"
REGENERATE = "python -m learnmech.atlas.catalog_docs --write"
_GENERATED = (f"Generated from the claim registry (`learnmech.atlas.registry`) by `{REGENERATE}`; do not edit "
              "by hand: the test suite fails when these pages differ from the registry.")
_ROLE = re.compile(r":(?:func|mod|class|meth|data|attr|obj|exc):`~?([^`]+)`")
_HEADING = re.compile(r"^(Statement|Verdict)\b")


def _markdown(text: str) -> str:
    """Docstring text as Markdown: roles -> code, the retired ``CLAIMS.md`` name dropped."""
    def role(match: re.Match) -> str:
        target = match.group(1)
        short = target.rsplit(".", 1)[-1] if match.group(0).split("`")[1].startswith("~") else target
        return f"`{short}`"

    text = _ROLE.sub(role, text)
    text = re.sub(r" ?\(CLAIMS\.md\)", "", text)
    text = re.sub(r"CLAIMS\.md[;,] ?", "", text)
    return text.replace("CLAIMS.md", "the catalog")


def _paragraphs(doc: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]


def _sections(doc: str) -> dict[str, list[str]]:
    """The docstring's title, Statement and Verdict paragraphs (each with the indented or lower-case
    paragraphs that continue it, e.g. a displayed equation), and the rest."""
    paras = _paragraphs(doc)
    out: dict[str, list[str]] = {"title": paras[:1], "Statement": [], "Verdict": [], "notes": []}
    current = "notes"
    for para in paras[1:]:
        heading = _HEADING.match(para)
        if heading:
            current = heading.group(1)
        elif not (para[:1].isspace() or para[:1].islower() or para[:1] in "(-"):
            current = "notes"
        out[current].append(para)
    return out


def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, on one line."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _rules_table(claim: Claim) -> list[str]:
    rules = claim.rules
    lines = ["Checks (the verdict holds when every check passes; the first is the headline):", "",
             "| check | summary value | rule |", "|---|---|---|"]
    lines += [f"| {_cell(_markdown(c.metric))} | `{_cell(c.key)} {c.op} {_cell(c.threshold)}` | "
              f"{'threshold from the summary' if isinstance(c.threshold, str) else 'fixed threshold'} |"
              for c in rules.checks]
    if rules.guards:
        lines += ["", "Guards (the first that does not pass makes the run `inconclusive`):", "",
                  "| guard | summary value | advice |", "|---|---|---|"]
        lines += [f"| {_cell(g.metric)} | `{_cell(g.key)} {g.op} {_cell(g.threshold)}` | {_cell(_markdown(g.advice))} |"
                  for g in rules.guards]
    if rules.decisive_failures:
        lines += ["", "A check that fails on a number decides `fails` before the guards are read "
                      "(`decisive_failures`)."]
    return lines


def _value(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _config_table(claim: Claim) -> list[str]:
    configs = {p: claim.make_config(p).model_dump(mode="json") for p in PRESETS}
    lines = [f"| field | {' | '.join(PRESETS)} | description |", "|---|" + "---|" * len(PRESETS) + "---|"]
    for name, info in claim.config.model_fields.items():
        values = " | ".join(f"`{_cell(_value(configs[p][name]))}`" for p in PRESETS)
        lines.append(f"| `{name}` | {values} | {_cell(info.description or '')} |")
    return lines


def _module_of(claim: Claim) -> str:
    return next(m for m in CLAIM_MODULES if sys.modules[m].CLAIM is claim)


def render_claim(claim: Claim) -> str:
    """The Markdown page of one claim (module docstring)."""
    module = _module_of(claim)
    parts = _sections(sys.modules[module].__doc__ or claim.id)
    tags = f" · tags: {', '.join(claim.tags)}" if claim.tags else ""
    lines = [f"# {_markdown(parts['title'][0]) if parts['title'] else claim.id}", "",
             f"Claim `{claim.id}` · pillar: {claim.pillar}{tags} · module `{module}` · "
             f"run it: `learnmech check {claim.id}`", "", f"> {_cell(claim.statement)}", "",
             "## Statement and equation", "", *(_join(parts["Statement"]) or ["(the module states none)"]), "",
             "## Verdict rule", "", *_join(parts["Verdict"]), "", *_rules_table(claim), "",
             "## References", "", *[f"- {_cell(ref)}" for ref in claim.references], "",
             "## Configuration and presets", "", *_config_table(claim), ""]
    if parts["notes"]:
        lines += ["## Notes from the claim module", "", *_join(parts["notes"]), ""]
    lines += ["---", "", f"[All claims](../{INDEX}) · {_GENERATED}", ""]
    return "\n".join(lines)


def _join(paragraphs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for para in paragraphs:
        out += [_markdown(para), ""]
    return out[:-1]


def render_index(claims: Mapping[str, Claim]) -> str:
    """The index page: the claims grouped by pillar, in registry order."""
    pillars = list(dict.fromkeys(c.pillar for c in claims.values()))
    lines = ["# The learnmech claims", "", _GENERATED, "",
             f"{len(claims)} claims in {len(pillars)} pillars. Each is a falsifiable prediction paired with the "
             "experiment that tests it: run one with `learnmech check CLAIM`, all of them with "
             "`learnmech atlas --quick`. Each page gives the statement and its equation, the verdict rule "
             "(checks and guards with their thresholds), the references, and the config of every preset.", ""]
    for pillar in pillars:
        lines += [f"## {pillar}", "", "| claim | statement | references |", "|---|---|---|"]
        for claim in (c for c in claims.values() if c.pillar == pillar):
            refs = "; ".join(_cell(r) for r in claim.references)
            lines.append(f"| [`{claim.id}`]({PAGES}/{claim.id}.md) | {_cell(claim.statement)} | {refs} |")
        lines.append("")
    return "\n".join(lines)


def render_catalog() -> dict[str, str]:
    """``{"claims.md": index, "claims/<id>.md": page, ...}`` for every registered claim."""
    claims = all_claims()
    pages = {INDEX: render_index(claims)}
    pages.update({f"{PAGES}/{cid}.md": render_claim(claim) for cid, claim in claims.items()})
    return pages


def write_catalog(docs_dir: str | Path) -> list[Path]:
    """Write the rendering into ``docs_dir`` (module docstring); return the paths written."""
    from learnmech.store.files import write_atomic, write_folder

    docs = Path(docs_dir)
    pages = render_catalog()
    folder = docs / PAGES
    present = {p.name for p in folder.iterdir() if p.suffix == ".md"} if folder.is_dir() else set()

    def fill(staged: Path) -> None:
        for rel, text in pages.items():
            if rel != INDEX:
                (staged / Path(rel).name).write_bytes(text.encode("utf-8"))

    write_folder(folder, present, fill)
    write_atomic(docs / INDEX, pages[INDEX].encode("utf-8"))
    return [docs / rel for rel in pages]


def stale_pages(docs_dir: str | Path) -> list[str]:
    """The pages under ``docs_dir`` that differ from the rendering: ``"<path> (changed|missing|not generated)"``."""
    docs = Path(docs_dir)
    pages = render_catalog()
    problems = []
    for rel, text in pages.items():
        path = docs / rel
        if not path.is_file():
            problems.append(f"{rel} (missing)")
        elif path.read_bytes() != text.encode("utf-8"):
            problems.append(f"{rel} (changed)")
    folder = docs / PAGES
    if folder.is_dir():
        problems += [f"{PAGES}/{p.name} (not generated)" for p in sorted(folder.iterdir())
                     if f"{PAGES}/{p.name}" not in pages]
    return sorted(problems)


def main(argv: Sequence[str] | None = None) -> int:
    """``--write`` the pages or ``--check`` them (exit 1 and the list when stale)."""
    parser = argparse.ArgumentParser(prog="python -m learnmech.atlas.catalog_docs",
                                     description="Write or check the claim catalog pages in docs/.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="write docs/claims.md and docs/claims/*.md")
    action.add_argument("--check", action="store_true", help="exit 1 when docs/ differs from the registry")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder (default: docs)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages(args.docs)
        for line in stale:
            print(f"stale: {args.docs / line}")
        if stale:
            print(f"regenerate with: {REGENERATE}", file=sys.stderr)
        return 1 if stale else 0
    written = write_catalog(args.docs)
    print(f"wrote {len(written)} pages under {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
