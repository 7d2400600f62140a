"""The public face: what ``import learnmech`` offers, and one name meaning one thing across subpackages."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import learnmech

SUBPACKAGES = ("theory", "data", "adapters", "nets", "train", "observe", "fit", "store", "sweep", "report", "atlas")


def test_every_entry_point_resolves_and_is_listed():
    for name in learnmech.__all__:
        assert getattr(learnmech, name) is not None, name
    assert set(learnmech.__all__) <= set(dir(learnmech))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        learnmech.nonsense  # noqa: B018


def test_import_learnmech_does_not_import_jax():
    """The command line imports the package first: it must not pay for JAX before it needs it."""
    code = "import sys, learnmech; print('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_transfer_entry_point_is_the_function_after_its_module_is_imported():
    importlib.import_module("learnmech.width_transfer")
    assert callable(learnmech.transfer) and learnmech.transfer.__name__ == "transfer"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_all_is_exported_and_unique(name):
    module = importlib.import_module(f"learnmech.{name}")
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"learnmech.{name}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"learnmech.{name}.__all__ lists names it does not have: {missing}"


def test_one_name_means_one_thing_across_subpackages():
    """A name exported by two subpackages is the same object in both (a re-export), never two things."""
    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for name in SUBPACKAGES:
        module = importlib.import_module(f"learnmech.{name}")
        for attr in module.__all__:
            obj = getattr(module, attr)
            if attr in seen and seen[attr][1] is not obj:
                clashes.append(f"{attr}: learnmech.{seen[attr][0]} and learnmech.{name}")
            seen.setdefault(attr, (name, obj))
    assert not clashes, clashes
