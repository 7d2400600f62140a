"""Bounded input: non-finite numbers, integers out of range, deep nesting and oversized sweeps are
refused in one line (exit code 2) before anything runs or is written, and the refusal itself is cheap.

Every case here failed before the fix: NaN passed pydantic and crashed at the store ("cannot write
the non-finite float"), 2**64 seeds overflowed at run time, deep JSON/TOML/YAML raised
RecursionError, and a 10^7-point grid or a YAML alias bomb grew past gigabytes before a refusal.
"""

from __future__ import annotations

import math
import tracemalloc
import typing

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from learnmech.atlas import all_claims
from learnmech.atlas.config_checks import config_refusal
from learnmech.atlas.contract import SEED_LIMIT
from learnmech.cli import app
from learnmech.sweep import SpecError, expand_grid, load_spec
from learnmech.sweep.grid import MAX_POINTS
from learnmech.value_bounds import MAX_NESTING, ValueRefused, loads_bounded, nesting_depth

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _holds(annotation, kind) -> bool:
    """Whether ``kind`` (float or int) appears anywhere in a field's type (``tuple[float, ...]``, ``float | None``)."""
    if annotation is kind:
        return True
    return any(_holds(arg, kind) for arg in typing.get_args(annotation))


def _fields(kind):
    """``(claim, field name, the quick preset's value)`` for every field of every claim whose type holds ``kind``."""
    for claim in all_claims().values():
        config = claim.make_config("quick")
        for name, info in claim.config.model_fields.items():
            if _holds(info.annotation, kind):
                yield claim, name, getattr(config, name)


def _refusal(claim, overrides):
    with pytest.raises(ValidationError) as info:
        claim.make_config("quick", overrides)
    return config_refusal(claim, info.value, overrides)


FLOAT_FIELDS = list(_fields(float))


def test_the_float_fields_found_cover_the_registry():
    # 31 claims; all but universal.data-spectra have float fields (61 in all before the transformer claims), and
    # 8 are lists of floats: s of the three dln claims, sigmas, alphas, teacher_angles, gd_lrs, flops_range (and,
    # since the coarse-law claims, etas and lr_drops).
    assert len(all_claims()) == 31
    assert len({claim.id for claim, _, _ in FLOAT_FIELDS}) >= 18 and len(FLOAT_FIELDS) >= 61
    assert sum(isinstance(v, tuple) for _, _, v in FLOAT_FIELDS) >= 8


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "inf"])
def test_every_float_field_of_every_claim_refuses_non_finite_numbers(bad):
    for claim, name, value in FLOAT_FIELDS:
        given = (bad, *value[1:]) if isinstance(value, tuple) else bad  # one bad item in a list (or the only one)
        refusal = _refusal(claim, {name: given})
        assert refusal.field == name and refusal.text.startswith("must be finite numbers (got "), (claim.id, name)


def test_a_nan_inside_a_list_names_the_field_and_shows_the_list():
    claim = all_claims()["dln.modes"]
    refusal = _refusal(claim, {"s": [3.0, math.nan]})
    assert (refusal.field, refusal.path, refusal.text) == ("s", "s", "must be finite numbers (got [3.0, nan])")


def test_every_integer_field_refuses_integers_beyond_64_bits():
    fields = list(_fields(int))
    assert len(fields) > 100  # sizes, counts, seeds and widths of 16 claims
    for claim, name, value in fields:
        for bad in (2**64, -(2**63) - 1):
            given = (bad, *value[1:]) if isinstance(value, tuple) and value else bad
            with pytest.raises(ValidationError):  # a stated bound of the claim, or the 64-bit rule
                claim.make_config("quick", {name: given})


def test_seed_fields_are_bounded_to_32_bits_by_their_name():
    seeds = [(claim, name) for claim, name, _ in _fields(int) if name.endswith("seed")]
    assert {name for _, name in seeds} == {"data_seed", "teacher_seed", "split_seed", "init_seed", "llc_seed"}
    for claim, name in seeds:
        assert getattr(claim.make_config("quick", {name: SEED_LIMIT - 1}), name) == 2**32 - 1  # the largest allowed
        for bad in (SEED_LIMIT, 2**64):
            refusal = _refusal(claim, {name: bad})
            assert refusal.text == f"a seed must be an integer from 0 to 2**32 - 1 = 4294967295 (got {bad})"
        assert _refusal(claim, {name: -1}).field == name  # the claim's ge=0 or the seed rule


def test_a_64_bit_overflow_in_a_list_of_integers_is_refused():
    claim = all_claims()["dln.depth"]
    refusal = _refusal(claim, {"depths": [1, 2**63]})
    assert refusal.text == ("integers must fit in 64 bits, -9223372036854775808 to 9223372036854775807 "
                            "(got [1, 9223372036854775808])")


DEEP_JSON = "[" * 100_000 + "]" * 100_000  # 10^5 levels: json.loads raised RecursionError
DIGITS = "9" * 5000  # beyond Python's 4300-digit conversion limit: json.loads raised ValueError

CHECK_CASES = [
    ("s=[NaN]", "error: --set s: must be finite numbers (got [NaN])"),
    ("eta=Infinity", "error: --set eta: must be finite numbers (got Infinity)"),
    ("eta=-Infinity", "error: --set eta: must be finite numbers (got -Infinity)"),
    ("eta=1e999", "error: --set eta: must be finite numbers (got 1e999)"),
    ("eta=nan", "error: --set eta: must be finite numbers (got 'nan')"),
    ("u0=inf", "error: --set u0: must be finite numbers (got 'inf')"),
    ("s=[3.0, NaN]", "error: --set s: must be finite numbers (got [3.0, NaN])"),
    ("teacher_seed=18446744073709551616",
     "error: --set teacher_seed: a seed must be an integer from 0 to 2**32 - 1 = 4294967295 (got 18446744073709551616)"),
    ("teacher_seed=-1", "error: --set teacher_seed: a seed must be an integer from 0 to 2**32 - 1 = 4294967295 (got -1)"),
    ("teacher_seed=1e30", "error: --set teacher_seed: integers must fit in 64 bits, -9223372036854775808 to "
                          "9223372036854775807 (got 1e+30)"),
    (f"teacher_seed={DIGITS}", "error: --set teacher_seed: integers must fit in 64 bits, -9223372036854775808 to "
                               f"9223372036854775807 (got {'9' * 77}...)"),
    (f"x={DEEP_JSON}", f"error: --set x: nested too deeply, at most 32 levels of lists and tables (got {'[' * 77}...)"),
]


@pytest.mark.parametrize("pair, line", CHECK_CASES, ids=[c[0][:24] for c in CHECK_CASES])
def test_check_refuses_in_one_line_and_writes_nothing(workdir, pair, line):
    result = runner.invoke(app, ["check", "dln.modes", "--set", pair])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [line] and result.stdout == ""
    assert list(workdir.iterdir()) == []  # no store, no figures


def test_other_claims_seed_fields_through_the_command_line(workdir):
    for claim, field in (("hparams.mup-transfer", "data_seed"), ("universal.data-spectra", "split_seed")):
        result = runner.invoke(app, ["check", claim, "--set", f"{field}=18446744073709551616"])
        assert result.exit_code == 2
        assert result.stderr.strip() == (f"error: --set {field}: a seed must be an integer from 0 to 2**32 - 1 = "
                                         "4294967295 (got 18446744073709551616)")
    assert list(workdir.iterdir()) == []


def test_nesting_is_measured_without_recursion():
    deep: list = []
    for _ in range(100_000):  # 10^5 levels: a recursive walk would raise RecursionError
        deep = [deep]
    assert nesting_depth(deep) == MAX_NESTING + 1  # counting stops past the limit
    assert nesting_depth({"grid": {"s": [[3.0, 1.0]]}}) == 4 and nesting_depth(1.5) == 0
    with pytest.raises(ValueRefused, match="nested too deeply"):
        loads_bounded("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1))
    assert loads_bounded("[" * MAX_NESTING + "]" * MAX_NESTING) is not None  # exactly at the limit


# ---------------------------------------------------------------------------------------------
# Sweep specs


def _alias_bomb() -> str:
    """The "billion laughs" in YAML: 9 levels of 10 aliases each expand to 10^9 "lol"s from 605 bytes."""
    lines = ["claim: dln.modes", "l0: &l0 [" + ", ".join(['"lol"'] * 10) + "]"]
    for level in range(1, 9):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    lines.append("grid: {s: *l8, seeds: *l8, eta: *l8}")
    return "\n".join(lines) + "\n"


def _refused_cheaply(path):
    """``load_spec(path)``'s SpecError, checking it was refused within a few MB (nothing expanded first)."""
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as info:
            load_spec(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak
    return str(info.value)


def test_a_yaml_alias_bomb_is_refused_before_anything_is_built(tmp_path):
    text = _alias_bomb()
    assert len(text.encode()) < 1000
    (tmp_path / "bomb.yaml").write_text(text)
    message = _refused_cheaply(tmp_path / "bomb.yaml")
    assert message == f"SPEC {tmp_path / 'bomb.yaml'}: line 3: YAML aliases (*l0) are not allowed; write the values out"


def test_a_ten_million_point_grid_is_refused_by_its_size_alone(tmp_path):
    axes = ["teacher_seed", "seeds", "points", "n_samples", "hidden", "d_in", "d_out"]
    text = 'claim = "dln.modes"\n[grid]\n' + "".join(f"{a} = {list(range(20, 30))}\n" for a in axes)
    (tmp_path / "big.toml").write_text(text)
    message = _refused_cheaply(tmp_path / "big.toml")
    assert message == (f"SPEC {tmp_path / 'big.toml'}: grid: 10,000,000 points (10 x 10 x 10 x 10 x 10 x 10 x 10) "
                       "exceed the limit of 10,000 points per sweep (MAX_POINTS); split the sweep")


def test_zip_rows_count_towards_the_points(tmp_path):
    rows = list(range(1, 1001))
    (tmp_path / "z.toml").write_text(f'claim = "dln.modes"\n[grid]\nseeds = {list(range(1, 12))}\n'
                                     f"[zip]\neta = {rows}\nu0 = {rows}\n")
    assert "grid, zip: 11,000 points (11 x 1000) exceed the limit" in _refused_cheaply(tmp_path / "z.toml")
    (tmp_path / "ok.toml").write_text(f'claim = "dln.modes"\n[grid]\nseeds = {list(range(1, 11))}\n'
                                      f"[zip]\neta = {rows}\nu0 = {rows}\n")
    assert len(load_spec(tmp_path / "ok.toml").points()) == MAX_POINTS  # exactly at the limit: allowed


def test_expand_grid_counts_before_it_expands():
    axes = {f"a{i}": list(range(10)) for i in range(7)}
    with pytest.raises(ValueError, match=r"^grid: 10,000,000 points .* \(MAX_POINTS\)$"):
        expand_grid(axes)
    assert len(expand_grid({"a": [1, 2], "b": [1, 2, 3]}, max_points=6)) == 6


@pytest.mark.parametrize("name, text", [
    ("deep.toml", 'claim = "dln.modes"\n[grid]\nseeds = ' + DEEP_JSON + "\n"),
    ("deep.yaml", "claim: dln.modes\ngrid:\n  seeds: " + DEEP_JSON + "\n"),
    ("deep33.yaml", "claim: dln.modes\ngrid:\n  seeds: " + "[" * 33 + "]" * 33 + "\n"),
    ("dotted.toml", 'claim = "dln.modes"\n[grid]\nseeds = [1]\n[set]\n' + ".".join(["a"] * 20_000) + " = 1\n"),
    ("inline.toml", 'claim = "dln.modes"\n[grid]\nseeds = [1]\n[set]\nx = ' + "{a=" * 2000 + "1" + "}" * 2000 + "\n"),
])
def test_deeply_nested_specs_are_one_line(tmp_path, name, text):
    # dotted.toml: tomllib spends memory quadratic in a key's depth (2.4 GB for this 40 kB key); refused first
    (tmp_path / name).write_text(text)
    assert _refused_cheaply(tmp_path / name) == (f"SPEC {tmp_path / name}: nested too deeply, at most 32 levels "
                                                 "of lists and tables")


def test_oversized_and_many_digit_specs_are_refused(tmp_path):
    (tmp_path / "huge.toml").write_text('claim = "dln.modes"\n[grid]\nseeds = [1]\n# ' + "x" * 2**20 + "\n")
    assert _refused_cheaply(tmp_path / "huge.toml").endswith(
        "huge.toml: larger than 1,048,576 bytes (MAX_SPEC_BYTES); a sweep spec is a short file of axes")
    for name, text in (("d.toml", f'claim = "dln.modes"\n[grid]\nteacher_seed = [{DIGITS}]\n'),
                       ("d.yaml", f"claim: dln.modes\ngrid: {{teacher_seed: [{DIGITS}]}}\n")):
        (tmp_path / name).write_text(text)
        assert _refused_cheaply(tmp_path / name).endswith(
            f"{name}: an integer has thousands of digits; integers must fit in 64 bits")


def test_anchors_without_aliases_and_dotted_keys_within_the_limit_still_load(tmp_path):
    (tmp_path / "a.yaml").write_text("claim: dln.modes\ngrid: &g {seeds: [2, 3]}\n")
    assert len(load_spec(tmp_path / "a.yaml").points()) == 2
    (tmp_path / "d.toml").write_text('claim = "dln.modes"\ngrid.seeds = [2, 3]\nset.eta = 0.015\n'
                                     'set.u0 = 1.5e-3  # a comment with dots a.b.c.d\n')
    spec = load_spec(tmp_path / "d.toml")
    assert spec.points() == [{"eta": 0.015, "u0": 0.0015, "seeds": 2}, {"eta": 0.015, "u0": 0.0015, "seeds": 3}]


SWEEP_CASES = [
    ("nan.toml", 'claim = "dln.modes"\n[grid]\neta = [0.01, nan]\n',
     "error: grid.eta (point 2 of 2): must be finite numbers (got nan)"),
    ("inf.toml", 'claim = "dln.modes"\n[set]\nu0 = inf\n[grid]\nseeds = [2, 3]\n',
     "error: set.u0: must be finite numbers (got inf)"),
    ("nan.yaml", "claim: dln.modes\ngrid: {s: [[3.0, 1.0], [3.0, .nan]]}\n",
     "error: grid.s (point 2 of 2): must be finite numbers (got [3.0, nan])"),
    ("inf.yaml", "claim: dln.modes\nzip: {eta: [0.01, .inf], u0: [0.001, 0.002]}\n",
     "error: zip.eta (point 2 of 2): must be finite numbers (got inf)"),
    ("seed.toml", 'claim = "dln.modes"\n[grid]\nteacher_seed = [0, 18446744073709551616]\n',
     "error: grid.teacher_seed (point 2 of 2): a seed must be an integer from 0 to 2**32 - 1 = 4294967295 "
     "(got 18446744073709551616)"),
    ("bomb.yaml", _alias_bomb(),
     "error: SPEC bomb.yaml: line 3: YAML aliases (*l0) are not allowed; write the values out"),
]


@pytest.mark.parametrize("name, text, line", SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_sweep_refuses_in_one_line_and_writes_nothing(workdir, name, text, line):
    (workdir / name).write_text(text)
    result = runner.invoke(app, ["sweep", name, "--store", "s.duckdb"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [line] and result.stdout == ""
    assert [p.name for p in workdir.iterdir()] == [name]  # no store, no report
