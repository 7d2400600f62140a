"""A sweep specification: one claim, a preset, fixed overrides, and the axes to vary.

A spec is a TOML or YAML file (chosen by its suffix: ``.toml``; ``.yaml`` or ``.yml``)::

    claim = "dln.modes"          # a registered claim id
    preset = "quick"             # the preset the points start from: quick (default) or full
    [set]                        # fields fixed for every point
    points = 100
    [grid]                       # Cartesian product: every combination (the last axis varies fastest)
    teacher_seed = [0, 1, 2]
    seeds = [2, 4]
    [zip]                        # lists of equal length taken together, crossed with the grid
    eta = [0.01, 0.02]
    u0 = [0.001, 0.002]

Any config field of the claim can be set, gridded or zipped, ``seeds`` (the ensemble size) and
the claim's own seed fields (``data_seed``, ``teacher_seed``, ...) included. The points are the
grid's combinations, each crossed with every zip row (the zip varies fastest); a spec with
neither grid nor zip axes is refused (``learnmech check`` runs one configuration).

Contract. ``load_spec(path)`` reads and checks the file's structure and raises
:class:`SpecError` with one line naming the file and the offending key; it knows nothing of the
claims (the caller validates every point against the claim's config model). ``spec.points()``
returns the override dicts in order, with ``spec.origin(field)`` naming where each field came from
(``set.x``, ``grid.x`` or ``zip.x``) for error messages.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from learnmech.sweep.grid import expand_grid

__all__ = ["SPEC_SUFFIXES", "SpecError", "SweepSpec", "load_spec", "parse_spec"]

SPEC_SUFFIXES = (".toml", ".yaml", ".yml")


class SpecError(ValueError):
    """A malformed sweep spec; the message is one line naming the file and the key."""


class SweepSpec(BaseModel):
    """The checked content of a sweep spec (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: str
    preset: Literal["quick", "full"] = "quick"
    set: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    zip: dict[str, list[Any]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        for section in ("grid", "zip"):
            for name, values in getattr(self, section).items():
                if not values:
                    raise ValueError(f"{section}.{name}: must be a non-empty list of values")
        if not self.grid and not self.zip:
            raise ValueError("no grid or zip axes: a sweep varies at least one field "
                             "(learnmech check runs a single configuration)")
        lengths = {name: len(values) for name, values in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError("zip: lists must have equal lengths, got "
                             + ", ".join(f"{k} {n}" for k, n in lengths.items()))
        for a, b in itertools.combinations(("set", "grid", "zip"), 2):
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if both:
                raise ValueError(f"{a}.{both[0]}: also given in [{b}]; each field has one place")
        return self

    def origin(self, name: str) -> str:
        """Where field ``name`` is given in the spec: ``grid.name``, ``zip.name`` or ``set.name``."""
        for section in ("grid", "zip", "set"):
            if name in getattr(self, section):
                return f"{section}.{name}"
        return f"set.{name}"

    def points(self) -> list[dict[str, Any]]:
        """The override dict of every point, in order (grid outer, zip rows fastest)."""
        combos = expand_grid(self.grid, self.set) if self.grid else [dict(self.set)]
        if not self.zip:
            return combos
        names = list(self.zip)
        rows = [dict(zip(names, row)) for row in zip(*(self.zip[n] for n in names))]
        return [{**combo, **row} for combo in combos for row in rows]

    def varied(self) -> list[str]:
        """The fields that differ between points (grid axes then zip fields)."""
        return [*self.grid, *self.zip]


def _location(error: dict) -> str:
    return ".".join(str(part) for part in error["loc"])


def parse_spec(data: Any, source: str) -> SweepSpec:
    """Check a decoded spec (a mapping) and return it; ``SpecError`` naming ``source`` otherwise."""
    if not isinstance(data, dict):
        raise SpecError(f"SPEC {source}: must be a table of keys (claim, preset, set, grid, zip), "
                        f"got {type(data).__name__}")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(first)
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key; allowed: claim, preset, set, grid, zip"
        elif first["type"] == "missing":
            message = "missing; name a registered claim, e.g. claim = \"dln.modes\""
        elif first["type"] == "list_type":
            message = f"must be a list of values, got {first.get('input')!r}"
        prefix = f"SPEC {source}: " + (f"{where}: " if where else "")
        raise SpecError(prefix + message) from None


def _decode(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"SPEC {path}: not valid TOML ({exc})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"SPEC {path}: not valid YAML ({' '.join(str(exc).split())})") from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check the spec file at ``path`` (TOML or YAML by suffix)."""
    p = Path(path)
    if p.suffix.lower() not in SPEC_SUFFIXES:
        raise SpecError(f"SPEC {p}: must end in .toml, .yaml or .yml")
    if not p.is_file():
        raise SpecError(f"SPEC {p}: no such file")
    try:
        data = _decode(p)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"SPEC {p}: cannot be read ({' '.join(str(exc).split())})") from None
    return parse_spec(data, str(p))
