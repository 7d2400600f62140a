"""``learnmech docs``: write (or check) the claim catalog pages, ``docs/claims.md`` and ``docs/claims/``.

The pages are rendered from the claim registry by :mod:`learnmech.atlas.catalog_docs`; ``--check``
writes nothing and exits 1, listing the stale pages, when the folder differs from the registry.
A folder that cannot be used (a file in its place, ``claims/`` holding other files) is bad input:
one line, exit code 2, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import typer

from learnmech.cli_common import doing, err, fail_input, out

__all__ = ["docs"]


def docs(
    out_dir: Path = typer.Option(Path("docs"), "--out", help="the docs folder (claims.md and claims/ go there)"),
    check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if the pages differ from the registry"),
) -> None:
    """Write the claim catalog pages (statement, equation, verdict rule, references, presets per claim)."""
    from learnmech.atlas.catalog_docs import REGENERATE, stale_pages, write_catalog
    from learnmech.store import FolderInUse

    if out_dir.exists() and not out_dir.is_dir():
        fail_input(f"--out: {out_dir} exists and is not a folder")
    if check:
        stale = stale_pages(out_dir)
        for line in stale:
            out.print(f"stale: {out_dir / line}", highlight=False)
        if stale:
            err.print(f"regenerate with: learnmech docs --out {out_dir} (or {REGENERATE})", highlight=False)
            raise typer.Exit(1)
        out.print(f"{out_dir}: current", highlight=False)
        return
    try:
        with doing("writing the catalog pages"):
            written = write_catalog(out_dir)
    except FolderInUse as exc:
        fail_input(f"--out: {exc}")
    out.print(f"wrote {len(written)} pages: {out_dir / 'claims.md'} and {out_dir / 'claims'}/", highlight=False)
