"""docs/ holds the claim catalog exactly as the registry renders it (CI fails when it is stale)."""

from __future__ import annotations

from pathlib import Path

from learnmech.atlas import all_claims
from learnmech.atlas.catalog_docs import REGENERATE, render_catalog, stale_pages, write_catalog

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_folder_is_the_current_rendering_of_the_registry():
    stale = stale_pages(DOCS)
    assert not stale, f"docs/ is out of date with the claim registry: {', '.join(stale)}; regenerate it with: " \
                      f"{REGENERATE}"


def test_every_claim_page_carries_its_statement_equation_rule_and_references():
    pages = render_catalog()
    claims = all_claims()
    assert set(pages) == {"claims.md", *(f"claims/{cid}.md" for cid in claims)}
    for cid, claim in claims.items():
        page = pages[f"claims/{cid}.md"]
        assert claim.statement.replace("|", "\\|") in page and f"](claims/{cid}.md)" in pages["claims.md"]
        statement = page.split("## Statement and equation")[1].split("## Verdict rule")[0]
        assert statement.strip().startswith("Statement"), cid  # the module's equation paragraph, not a stub
        rule = page.split("## Verdict rule")[1].split("## References")[0]
        assert rule.strip().startswith("Verdict") and all(f"`{c.key} {c.op} " in rule for c in claim.rules.checks)
        refs = page.split("## References")[1].split("## Configuration")[0]
        assert all(r.replace("|", "\\|") in refs for r in claim.references), cid
        assert "CLAIMS.md" not in page and ":func:" not in page, cid
    modes = pages["claims/dln.modes.md"]  # one known equation and threshold, as the module writes them
    assert "``t_half = ln(s/u0 - 1) / (2s)``" in modes and "| `r2 >= 0.99` |" in modes


def test_a_stale_page_is_named_and_write_catalog_repairs_it(tmp_path):
    write_catalog(tmp_path)
    assert stale_pages(tmp_path) == []
    (tmp_path / "claims" / "dln.modes.md").write_text("edited by hand\n")
    (tmp_path / "claims" / "retired.claim.md").write_text("a removed claim\n")
    (tmp_path / "claims" / "dln.depth.md").unlink()
    assert stale_pages(tmp_path) == ["claims/dln.depth.md (missing)", "claims/dln.modes.md (changed)",
                                     "claims/retired.claim.md (not generated)"]
    write_catalog(tmp_path)
    assert stale_pages(tmp_path) == [] and not (tmp_path / "claims" / "retired.claim.md").exists()
    assert render_catalog() == render_catalog()  # deterministic


def test_the_docs_command_checks_and_writes(tmp_path):
    import typer
    from typer.testing import CliRunner

    from learnmech.cli_common import GuardedGroup
    from learnmech.cli_docs import docs

    app = typer.Typer(cls=GuardedGroup)
    app.command("docs")(docs)
    app.command("version")(lambda: None)  # two commands: the group keeps "docs" as a subcommand
    runner = CliRunner()
    stale = runner.invoke(app, ["docs", "--out", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "stale: " in stale.output and "regenerate with: learnmech docs" in stale.output
    assert not (tmp_path / "claims.md").exists()  # --check writes nothing
    assert runner.invoke(app, ["docs", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["docs", "--out", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "claims" / "notes.txt").write_text("mine\n")
    refused = runner.invoke(app, ["docs", "--out", str(tmp_path)])
    assert refused.exit_code == 2 and refused.output.startswith("error: --out: ") and "notes.txt" in refused.output
