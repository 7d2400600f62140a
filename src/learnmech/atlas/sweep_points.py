"""A sweep spec made into runs: every point validated by its claim's config model, before anything runs.

Contract. ``sweep_points(spec)`` returns one :class:`~learnmech.sweep.driver.SweepPoint` per point
of the spec, in the spec's order, each with the canonical config its run id is hashed from and the
values of the varied fields as its label. Every problem is a :class:`~learnmech.sweep.spec.SpecError`
with one line naming the spec key it comes from: an unknown claim (``claim``), a field the claim does
not have or a value its model refuses (``grid.x``, ``zip.x`` or ``set.x``, with the point's number),
or two points that are the same run.
"""

from __future__ import annotations

from pydantic import ValidationError

from learnmech import __version__
from learnmech.atlas.config_checks import config_refusal
from learnmech.atlas.registry import all_claims, get_claim
from learnmech.store import run_id
from learnmech.sweep.driver import SweepPoint
from learnmech.sweep.spec import SpecError, SweepSpec

__all__ = ["sweep_points"]


def _field_error(claim, spec: SweepSpec, index: int, total: int, exc: ValidationError, given) -> SpecError:
    refusal = config_refusal(claim, exc, given)
    where = spec.origin(refusal.field) + (f" (point {index + 1} of {total})" if refusal.field in spec.varied() else "")
    return SpecError(f"{where}: {refusal.text}")


def sweep_points(spec: SweepSpec) -> list[SweepPoint]:
    """Validate every point of ``spec`` against its claim (see the module docstring)."""
    try:
        claim = get_claim(spec.claim)
    except KeyError:
        raise SpecError(f"claim: unknown claim {spec.claim!r}; allowed: {', '.join(all_claims())}") from None
    overrides = spec.points()
    points, seen = [], {}
    for i, values in enumerate(overrides):
        try:
            config = claim.make_config(spec.preset, values)
        except ValidationError as exc:
            raise _field_error(claim, spec, i, len(overrides), exc, values) from None
        cfg_json = config.model_dump(mode="json")
        rid = run_id(claim.id, cfg_json, __version__)
        if rid in seen:
            raise SpecError(f"{', '.join(spec.varied())}: points {seen[rid] + 1} and {i + 1} are the same "
                            "configuration (repeated values); every point must be a distinct run")
        seen[rid] = i
        label = {name: cfg_json.get(name, values[name]) for name in spec.varied()}
        points.append(SweepPoint(i, rid, claim.id, spec.preset, cfg_json, label))
    return points
