"""The command line needs no ``click`` package of its own: typer 0.2x carries its copy, and a fresh install
(`pip install -e .`) then has no top-level ``click`` to import (found on a fresh machine: every command that
ended by raising, a bad option or ``typer.Exit``, crashed with ``ModuleNotFoundError: click``)."""

from __future__ import annotations

import sys

import pytest
import typer
from typer.testing import CliRunner

from learnmech.cli import app
from learnmech.cli_common import _usage_errors


def test_usage_errors_are_found_without_the_click_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "click", None)  # `import click` now raises ImportError
    classes = _usage_errors()
    assert classes and all(c.__name__ == "UsageError" for c in classes)
    assert isinstance(typer.BadParameter("x"), classes)


def test_a_bad_option_is_one_line_and_exit_2_without_click(monkeypatch):
    monkeypatch.setitem(sys.modules, "click", None)
    out = CliRunner().invoke(app, ["list", "--no-such-option"])
    assert out.exit_code == 2, out.output
    assert "--no-such-option" in out.output and "Traceback" not in out.output
