"""How the loss-minimising Adam learning rate moves with width, under muP and under SP.

Yang et al. 2022 ("Tensor Programs V", arXiv:2203.03466, Section 5 and Table 3): with Adam an
update moves every entry of a weight matrix by about ``eta``, so a hidden ``n x n`` matrix whose
update is aligned with its input changes a pre-activation by ``eta n``. The standard
parameterisation must take ``eta* ~ 1/n`` to keep that ``O(1)``; muP scales the hidden and output
learning rates by ``1/m`` (``m = n / n_0``), so ``eta*`` does not depend on ``n``:
``log2 eta*(n) - log2 eta*(n_0) = slope x log2(n / n_0)``, slope 0 (muP) or -1 (SP).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ADAM_LR_SLOPES", "predicted_lr_shift"]

ADAM_LR_SLOPES = {"mup": 0.0, "sp": -1.0}  # d log2 eta* / d log2 width with Adam (TP-V)


def predicted_lr_shift(widths, parameterization: str) -> np.ndarray:
    """``log2 eta*(n) - log2 eta*(n_0)``, ``(W,)``, ``n_0 = widths[0]``: 0 under muP, ``-log2(n / n_0)`` under SP.

    >>> predicted_lr_shift([32, 64, 256], "sp").tolist()
    [-0.0, -1.0, -3.0]
    """
    if parameterization not in ADAM_LR_SLOPES:
        raise ValueError(f"parameterization: must be one of {sorted(ADAM_LR_SLOPES)}, got {parameterization!r}")
    return ADAM_LR_SLOPES[parameterization] * np.log2(np.asarray(widths, np.float64) / widths[0])
