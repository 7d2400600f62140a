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

Bounds, each checked before the thing it bounds is built: the file is at most
:data:`MAX_SPEC_BYTES`; its values nest at most :data:`~learnmech.value_bounds.MAX_NESTING` deep;
YAML aliases (``*name``) are refused, so that a few hundred bytes cannot expand into gigabytes
(the "billion laughs"); and a spec has at most :data:`~learnmech.sweep.grid.MAX_POINTS` points,
the product of the grid's axis lengths and the zip's rows, counted before any point is made.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from learnmech.sweep.grid import MAX_POINTS, expand_grid, grid_size
from learnmech.value_bounds import MAX_NESTING, TOO_DEEP, echo, nesting_depth

__all__ = ["MAX_SPEC_BYTES", "SPEC_SUFFIXES", "SpecError", "SweepSpec", "load_spec", "parse_spec"]

SPEC_SUFFIXES = (".toml", ".yaml", ".yml")
MAX_SPEC_BYTES = 2**20  # 1 MiB: a zip of MAX_POINTS rows of three 10-digit numbers takes 400 kB


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
        lengths = [len(values) for values in [*self.grid.values(), *list(self.zip.values())[:1]]]  # zip rows last
        size = grid_size(*lengths)
        if size > MAX_POINTS:
            sections = ", ".join(section for section in ("grid", "zip") if getattr(self, section))
            raise ValueError(f"{sections}: {size:,} points ({' x '.join(map(str, lengths))}) exceed the limit of "
                             f"{MAX_POINTS:,} points per sweep (MAX_POINTS); split the sweep")
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
    if nesting_depth(data) > MAX_NESTING:
        raise SpecError(f"SPEC {source}: {TOO_DEEP}")
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
            message = f"must be a list of values, got {echo(first.get('input'))}"
        prefix = f"SPEC {source}: " + (f"{where}: " if where else "")
        raise SpecError(prefix + message) from None


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML was built with it: much faster


class _Refused(Exception):
    """A spec refused while it is read, before its values are built; the message is the reason."""


def _yaml_data(text: str) -> Any:
    """The YAML document in ``text``, after a pass over its events that refuses aliases and deep nesting.

    An alias (``*name``) repeats a whole subtree, and nested aliases multiply (nine levels of nine
    aliases are 9^9 copies from a few hundred bytes), so none is accepted: no value is built until
    the events are known to hold no alias and to nest at most ``MAX_NESTING`` deep.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed; "
                           "write the values out")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                raise _Refused(TOO_DEEP)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return yaml.load(text, Loader=_YAML_LOADER)  # a safe loader: plain data only


_TOML_QUOTES_AND_COMMENTS = re.compile(r"""[#"']""")
_TOML_STRING_REST = {  # what follows a string's opening quotes, up to and including its closing ones
    '"""': re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""(?:"{0,2})', re.S),
    "'''": re.compile(r"(?:[^']|'(?!''))*'''(?:'{0,2})"),
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"'),
    "'": re.compile(r"[^'\n]*'"),
}
_TOML_KEY_ENDS = re.compile(r"[=,\[\]{}\n]")


def _toml_key_depth(text: str) -> int:
    """The most dots in one stretch of TOML ``text`` between ``= , [ ] { }`` and line ends, outside
    strings and comments: at least the depth of its deepest dotted key (a number has one dot).

    Checked before parsing because :mod:`tomllib` spends memory quadratic in a key's depth (one
    key ``a.a.a...`` of 20,000 parts, 40 kB, takes 2.4 GB). Linear in the text: one pass that drops
    strings and comments, then a split at the characters that end a key.

    >>> _toml_key_depth('a.b."c.d" = 1.5  # x.y.z')
    2
    """
    bare, pos = [], 0
    while (quote := _TOML_QUOTES_AND_COMMENTS.search(text, pos)) is not None:
        bare.append(text[pos:quote.start()])
        char = quote.group()
        if char == "#":
            pos = text.find("\n", quote.end())
        else:
            opener = char * 3 if text.startswith(char * 3, quote.start()) else char
            rest = _TOML_STRING_REST[opener].match(text, quote.start() + len(opener))
            pos = -1 if rest is None else rest.end()  # an unterminated string: tomllib reports it
            bare.append("s")  # a quoted key part
        if pos < 0:
            break
    else:
        bare.append(text[pos:])
    return max(map(str.count, _TOML_KEY_ENDS.split("".join(bare)), itertools.repeat(".")), default=0)


def _decode(path: Path, text: str) -> Any:
    """The data of a spec's text, TOML or YAML by ``path``'s suffix; ``SpecError`` in one line otherwise."""
    kind = "TOML" if path.suffix.lower() == ".toml" else "YAML"
    try:
        if kind == "YAML":
            return _yaml_data(text)
        if _toml_key_depth(text) > MAX_NESTING:
            raise _Refused(TOO_DEEP)
        return tomllib.loads(text)
    except _Refused as exc:
        raise SpecError(f"SPEC {path}: {exc}") from None
    except RecursionError:
        raise SpecError(f"SPEC {path}: {TOO_DEEP}") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit (1,000), met while scanning ahead
            raise SpecError(f"SPEC {path}: {TOO_DEEP}") from None
        raise SpecError(f"SPEC {path}: not valid {kind} ({' '.join(str(exc).split())})") from None
    except ValueError as exc:  # an integer of more digits than Python converts, an impossible date
        if "integer string conversion" in str(exc):
            raise SpecError(f"SPEC {path}: an integer has thousands of digits; integers must fit in 64 bits") from None
        raise SpecError(f"SPEC {path}: a value cannot be read ({' '.join(str(exc).split())})") from None


def _read_text(path: Path) -> str:
    """The file's text, read only if it is at most :data:`MAX_SPEC_BYTES` (a larger file is not read)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"SPEC {path}: larger than {MAX_SPEC_BYTES:,} bytes (MAX_SPEC_BYTES); a sweep spec is a "
                        "short file of axes")
    return data.decode("utf-8")


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check the spec file at ``path`` (TOML or YAML by suffix)."""
    p = Path(path)
    if p.suffix.lower() not in SPEC_SUFFIXES:
        raise SpecError(f"SPEC {p}: must end in .toml, .yaml or .yml")
    if not p.is_file():
        raise SpecError(f"SPEC {p}: no such file")
    try:
        text = _read_text(p)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"SPEC {p}: cannot be read ({' '.join(str(exc).split())})") from None
    return parse_spec(_decode(p, text), str(p))
