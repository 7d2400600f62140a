"""Doctest collection of the package: skip the torch subpackage where PyTorch is not installed."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["torch"]
