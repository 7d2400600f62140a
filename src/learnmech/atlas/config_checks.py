"""One line for a config a claim refuses: which field, what is allowed, what was given.

``learnmech check --set`` and sweep specs both describe pydantic's first error with
:func:`config_refusal`, so a value is refused in the same words wherever it was typed. A problem
with a number inside a list (``NaN`` in ``s = [3.0, NaN]``) names the field and shows the whole
value given for it; every value shown is cut to one short line (:func:`learnmech.value_bounds.echo`).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from pydantic import ValidationError

from learnmech.value_bounds import INT64_MAX, INT64_MIN, echo

__all__ = ["ConfigRefusal", "config_refusal"]

# pydantic error types that concern a whole field's value, and what to say about them
_WHOLE_FIELD = {
    "finite_number": "must be finite numbers",
    "int_parsing_size": f"integers must fit in 64 bits, {INT64_MIN} to {INT64_MAX}",
}


class ConfigRefusal(NamedTuple):
    """``field`` (top-level name), ``path`` (dotted, e.g. ``s.1``) and ``text`` (what is allowed, what was given)."""

    field: str
    path: str
    text: str


def config_refusal(claim, exc: ValidationError, given: Mapping[str, Any]) -> ConfigRefusal:
    """The first problem of ``exc`` (raised by ``claim``'s config model on the overrides ``given``)."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    field = loc[0] if loc else "config"
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(claim.config.model_fields)
        return ConfigRefusal(field, field, f"{claim.id} has no such field; allowed: {allowed}")
    message, got = first["msg"].removeprefix("Value error, "), first.get("input")
    if first["type"] in _WHOLE_FIELD:
        message, loc = _WHOLE_FIELD[first["type"]], loc[:1]
        got = given.get(field, got)
    return ConfigRefusal(field, ".".join(loc) or field, f"{message} (got {echo(got)})")
