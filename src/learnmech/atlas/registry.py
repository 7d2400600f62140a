"""The registry of claims. Adding a claim is one module exposing ``CLAIM`` and one line here."""

from __future__ import annotations

import fnmatch
import importlib
from functools import cache

from learnmech.atlas.contract import Claim

__all__ = ["CLAIM_MODULES", "all_claims", "get_claim", "select_claims"]

CLAIM_MODULES: tuple[str, ...] = (
    "learnmech.atlas.dln.modes",
    "learnmech.atlas.dln.depth",
    "learnmech.atlas.dln.saddle",
    "learnmech.atlas.solvable.teacher_student",
    "learnmech.atlas.solvable.max_margin",
    "learnmech.atlas.conservation.balancedness",
    "learnmech.atlas.kernels.eigenlearning",
    "learnmech.atlas.kernels.hea",
    "learnmech.atlas.limits.convergence",
    "learnmech.atlas.limits.linearized",
    "learnmech.atlas.limits.lazy_rich",
    "learnmech.atlas.limits.signal_propagation",
    "learnmech.atlas.limits.richness_lr",
    "learnmech.atlas.laws.edge_of_stability",
    "learnmech.atlas.laws.scaling_fit",
    "learnmech.atlas.laws.kernel_scaling",
    "learnmech.atlas.laws.lm_scaling",
    "learnmech.atlas.laws.neural_collapse",
    "learnmech.atlas.laws.feature_ansatz",
    "learnmech.atlas.laws.central_flow",
    "learnmech.atlas.hparams.coord_check",
    "learnmech.atlas.hparams.mup_transfer",
    "learnmech.atlas.hparams.linear_scaling",
    "learnmech.atlas.hparams.critical_batch",
    "learnmech.atlas.hparams.mup_transfer_lm",
    "learnmech.atlas.hparams.depth_transfer",
    "learnmech.atlas.universal.representations",
    "learnmech.atlas.universal.data_spectra",
    "learnmech.atlas.universal.fourier_features",
    "learnmech.atlas.dev.llc_calibration",
    "learnmech.atlas.dev.stagewise",
)


@cache
def all_claims() -> dict[str, Claim]:
    """Every registered claim by id, in catalog order."""
    claims = {}
    for name in CLAIM_MODULES:
        claim = importlib.import_module(name).CLAIM
        if claim.id in claims:
            raise RuntimeError(f"claim id {claim.id!r} registered twice")
        claims[claim.id] = claim
    return claims


def get_claim(claim_id: str) -> Claim:
    """The claim with this id; ``KeyError`` naming the allowed ids otherwise."""
    claims = all_claims()
    if claim_id not in claims:
        raise KeyError(f"claim: unknown claim {claim_id!r}; allowed: {', '.join(claims)}")
    return claims[claim_id]


def _matches(claim_id: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(claim_id, pattern) or pattern in claim_id


def select_claims(pattern: str | None = None, skip: tuple[str, ...] = ()) -> list[Claim]:
    """Claims whose id matches a glob (``dln.*``) or contains ``pattern`` as a substring, less those matching any
    pattern of ``skip``."""
    claims = [c for c in all_claims().values() if not pattern or _matches(c.id, pattern)]
    return [c for c in claims if not any(_matches(c.id, s) for s in skip)]
