"""The README's bad-input matrix, run: every row is one line on stderr, exit code 2, nothing written.

The cases live in tests/bad_input_matrix.py (``python tests/bad_input_matrix.py`` prints the table);
here each one runs in a prepared folder, and its row must be in the README as printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bad_input_matrix import CASES, matches, prepare, row, run_case  # noqa: E402

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("matrix")
    prepare(path)
    return path


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.lstat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("shown, argv, expected", CASES, ids=[c[0][:60] for c in CASES])
def test_each_row_is_one_line_exit_2_and_writes_nothing(folder, monkeypatch, shown, argv, expected):
    monkeypatch.chdir(folder)
    before = _listing(folder)
    code, lines, stdout = run_case(argv)
    assert code == 2 and len(lines) == 1 and matches(lines[0], expected), (code, lines)
    assert stdout == ""
    assert _listing(folder) == before
    assert row(shown, 2, expected) in README, f"the README's bad-input matrix lacks:\n{row(shown, 2, expected)}"
