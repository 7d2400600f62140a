"""Sweep specs: TOML and YAML read alike, points in a stated order, and every mistake named in one line."""

from __future__ import annotations

import pytest

from learnmech.atlas import all_claims
from learnmech.atlas.sweep_points import sweep_points
from learnmech.store import run_id
from learnmech import __version__
from learnmech.sweep import SpecError, load_spec, parse_spec

TOML = """
claim = "dln.modes"
preset = "quick"
[set]
points = 40
[grid]
teacher_seed = [0, 1, 2]
seeds = [2, 3]
[zip]
eta = [0.01, 0.02]
u0 = [0.001, 0.002]
"""

YAML = """
claim: dln.modes
preset: quick
set: {points: 40}
grid: {teacher_seed: [0, 1, 2], seeds: [2, 3]}
zip: {eta: [0.01, 0.02], u0: [0.001, 0.002]}
"""


def test_toml_and_yaml_give_the_same_points_in_order(tmp_path):
    (tmp_path / "s.toml").write_text(TOML)
    (tmp_path / "s.yaml").write_text(YAML)
    a, b = load_spec(tmp_path / "s.toml"), load_spec(tmp_path / "s.yaml")
    assert a == b
    points = a.points()
    assert len(points) == 3 * 2 * 2  # grid product times zip rows
    # grid combinations outer (last grid axis fastest), zip rows fastest of all
    assert points[0] == {"points": 40, "teacher_seed": 0, "seeds": 2, "eta": 0.01, "u0": 0.001}
    assert points[1] == {"points": 40, "teacher_seed": 0, "seeds": 2, "eta": 0.02, "u0": 0.002}
    assert points[2]["seeds"] == 3 and points[4]["teacher_seed"] == 1
    assert a.varied() == ["teacher_seed", "seeds", "eta", "u0"]
    assert a.origin("eta") == "zip.eta" and a.origin("points") == "set.points" and a.origin("seeds") == "grid.seeds"


def test_points_become_runs_with_the_ids_of_check(tmp_path):
    (tmp_path / "s.toml").write_text(TOML)
    points = sweep_points(load_spec(tmp_path / "s.toml"))
    claim = all_claims()["dln.modes"]
    config = claim.make_config("quick", {"points": 40, "teacher_seed": 2, "seeds": 3, "eta": 0.02, "u0": 0.002})
    last = points[-1]
    assert last.run_id == run_id("dln.modes", config.model_dump(mode="json"), __version__)  # what `check` would run
    assert dict(last.label) == {"teacher_seed": 2, "seeds": 3, "eta": 0.02, "u0": 0.002}
    assert len({p.run_id for p in points}) == len(points) == 12


@pytest.mark.parametrize("data, message", [
    ({"grid": {"seeds": [1]}}, "claim: missing"),
    ({"claim": "dln.modes"}, "no grid or zip axes"),
    ({"claim": "dln.modes", "grid": {"seeds": []}}, "grid.seeds: must be a non-empty list"),
    ({"claim": "dln.modes", "grid": {"seeds": 3}}, "grid.seeds: must be a list of values, got 3"),
    ({"claim": "dln.modes", "grdi": {"seeds": [1]}}, "grdi: unknown key; allowed: claim, preset, set, grid, zip"),
    ({"claim": "dln.modes", "zip": {"eta": [0.1], "u0": [0.001, 0.002]}}, "zip: lists must have equal lengths"),
    ({"claim": "dln.modes", "set": {"eta": 0.1}, "grid": {"eta": [0.1]}}, "set.eta: also given in [grid]"),
    ({"claim": "dln.modes", "preset": "medium", "grid": {"seeds": [1]}}, "preset: Input should be 'quick' or 'full'"),
    ([1, 2], "must be a table of keys"),
    ({"claim": "dln.modes", "grid": {"seeds": list(range(1, 101)), "points": list(range(20, 121))}},
     "grid: 10,100 points (100 x 101) exceed the limit of 10,000 points per sweep (MAX_POINTS)"),
    ({"claim": "dln.modes", "set": {"s": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1.0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
      "grid": {"seeds": [1]}}, "nested too deeply, at most 32 levels of lists and tables"),
])
def test_malformed_specs_are_named(data, message):
    with pytest.raises(SpecError, match="^SPEC s.toml: ") as info:
        parse_spec(data, "s.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("data, message", [
    ({"claim": "dln.nope", "grid": {"seeds": [1]}}, "claim: unknown claim 'dln.nope'; allowed: dln.modes"),
    ({"claim": "dln.modes", "grid": {"nosuch": [1]}}, "grid.nosuch (point 1 of 1): dln.modes has no such field; allowed: seeds"),
    ({"claim": "dln.modes", "grid": {"eta": [0.01, "fast"]}}, "grid.eta (point 2 of 2): Input should be a valid number"),
    ({"claim": "dln.modes", "set": {"eta": -1}, "grid": {"seeds": [2]}}, "set.eta: Input should be greater than 0 (got -1)"),
    ({"claim": "dln.modes", "grid": {"seeds": [2, 2]}}, "seeds: points 1 and 2 are the same configuration"),
    ({"claim": "dln.modes", "grid": {"eta": [0.01, float("nan")]}},
     "grid.eta (point 2 of 2): must be finite numbers (got nan)"),
    ({"claim": "dln.modes", "set": {"s": [3.0, float("-inf")]}, "grid": {"seeds": [2]}},
     "set.s: must be finite numbers (got [3.0, -inf])"),
    ({"claim": "dln.modes", "grid": {"teacher_seed": [0, 2**64]}},
     "grid.teacher_seed (point 2 of 2): a seed must be an integer from 0 to 2**32 - 1 = 4294967295"),
])
def test_points_the_claim_refuses_are_named(data, message):
    with pytest.raises(SpecError) as info:
        sweep_points(parse_spec(data, "s.toml"))
    assert message in str(info.value)


@pytest.mark.parametrize("name, text, message", [
    ("s.toml", "claim = \n", "not valid TOML"),
    ("s.yaml", "claim: [unclosed\n", "not valid YAML"),
    ("s.json", "{}", "must end in .toml, .yaml or .yml"),
    ("missing.toml", None, "no such file"),
])
def test_unreadable_files_are_named(tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(SpecError, match=message):
        load_spec(tmp_path / name)


def test_the_readme_example_is_a_valid_24_point_sweep():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```toml\n(claim = .*?)```", readme, re.S).group(1)
    import tomllib

    points = sweep_points(parse_spec(tomllib.loads(block), "README.md"))
    assert len(points) == 4 * 3 * 2
    assert dict(points[1].label) == {"u0": 0.001, "s": [3.0, 1.0], "eta": 0.015, "seeds": 4}
