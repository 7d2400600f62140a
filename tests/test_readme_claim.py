"""The README's "Adding a claim" example, run as a new user would: its tiny preset end to end, judged
and re-decided from its summary, and its verdict the one the closed form gives (it holds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from learnmech.atlas.execute import execute_run, verdict_from_row

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def claim():
    text = README.read_text()
    match = re.search(r"<!-- readme-claim:[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "README has no readme-claim block"
    namespace: dict = {"__name__": "readme_claim"}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102  (the project's own README)
    return namespace["CLAIM"]


@pytest.mark.parametrize("preset", ["tiny", "quick"])
def test_the_readme_claim_runs_and_holds(claim, preset):
    payload = execute_run(claim, preset, claim.make_config(preset).model_dump(mode="json"))
    assert payload.state == "done", payload.error
    verdict = verdict_from_row(payload.verdict)
    assert verdict.status == "holds" and verdict.metric == "max rel. error"
    assert verdict.value < 1e-6  # GD (float64 in a claim run) against the closed form, 10-50 steps
    assert set(payload.figures) == {"png", "svg"}
