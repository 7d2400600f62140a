"""Grid expansion: size, order and validation."""

import pytest

from learnmech.sweep import expand_grid


def test_product_size_order_and_base():
    grid = expand_grid({"a": [1, 2, 3], "b": ["x", "y"]}, {"c": 0})
    assert len(grid) == 6  # 3 x 2 combinations
    assert grid[0] == {"c": 0, "a": 1, "b": "x"} and grid[1] == {"c": 0, "a": 1, "b": "y"}  # last axis fastest
    assert {(g["a"], g["b"]) for g in grid} == {(a, b) for a in (1, 2, 3) for b in "xy"}


def test_no_axes_is_the_base_alone():
    assert expand_grid({}, {"c": 1}) == [{"c": 1}]


@pytest.mark.parametrize("axes, base", [({"a": []}, None), ({"a": "abc"}, None), ({"a": [1]}, {"a": 2})])
def test_bad_axes_are_refused(axes, base):
    with pytest.raises(ValueError, match="grid axis 'a'"):
        expand_grid(axes, base)
