"""The atlas: claims (prediction + experiment + verdict), their registry and their runner."""

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Record, Verdict
from learnmech.atlas.registry import all_claims, get_claim, select_claims
from learnmech.atlas.runner import Outcome, run_claim

__all__ = [
    "Claim",
    "ClaimConfig",
    "Curve",
    "Outcome",
    "Record",
    "Verdict",
    "all_claims",
    "get_claim",
    "run_claim",
    "select_claims",
]
