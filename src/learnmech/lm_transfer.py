"""Learning-rate sweeps of a transformer language model across width or depth: ``eta*`` per size.

Contract. :func:`lr_sweep` takes transformers of one family at several sizes (``{size: TransformerConfig}``:
``size`` is the width ``d_model`` or the depth ``n_layers``, whichever the family varies), trains each
size's learning-rate grid x seeds with :func:`learnmech.lm_train.train_lm` (one compiled program per size;
sizes run one after the other) and returns an :class:`LRSweep`: the held-out losses ``(sizes, K, seeds)`` and
:class:`~learnmech.width_transfer.Transfer`'s ``eta*`` per size (the vertex of the parabola in
``(log2 eta, log L)`` through the grid minimum of the seed mean and its neighbours; a minimum at the grid's
edge is flagged) and the line ``log2 eta* = intercept + slope log2 size``.

``known`` reuses losses measured elsewhere for some sizes (e.g. muP and SP are the same network at the base
width, CompleteP, depth-muP and the unscaled model at the base depth), so that network is trained once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from learnmech.data.text import Corpus
from learnmech.lm_train import LMRecipe, LMResult, train_lm
from learnmech.nets.transformer import TransformerConfig
from learnmech.width_transfer import Transfer

__all__ = ["LRSweep", "lr_sweep"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class LRSweep:
    """``transfer``: the losses and ``eta*`` per size; ``runs``: the :class:`LMResult` of each size trained here."""

    transfer: Transfer
    runs: dict[int, LMResult]

    def losses(self, size: int) -> np.ndarray:
        """``(K, seeds)`` held-out losses of one size."""
        return self.transfer.losses[list(self.transfer.widths).index(size)]


def lr_sweep(configs: Mapping[int, TransformerConfig], corpus: Corpus, *, learning_rates: Sequence[float],
             steps: int, seeds: int | Sequence[int] = 1, recipe: LMRecipe = LMRecipe(),
             known: Mapping[int, np.ndarray] | None = None, label: str = "learning-rate sweep",
             progress: Progress | None = None) -> LRSweep:
    """Train every size's learning rates x seeds (or take its ``known`` losses) and locate ``eta*`` per size.

    Args:
      configs: ``{size: config}`` with sizes strictly increasing.
      corpus: the text; learning_rates: the grid (increasing); steps: the budget of every member.
      seeds: a count or the seeds; recipe: :class:`~learnmech.lm_train.LMRecipe`.
      known: ``{size: (K, seeds) losses}`` used as given instead of training that size.
      progress: ``progress(label, done_steps, total_steps)`` over the sizes trained here.
    """
    sizes = sorted(int(s) for s in configs)
    if len(sizes) < 2 or list(configs) != sizes:
        raise ValueError(f"configs: need at least two sizes, strictly increasing, got {list(configs)}")
    lrs = np.asarray(learning_rates, np.float64)
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    losses = {int(s): np.asarray(v, np.float64) for s, v in (known or {}).items()}
    for s, v in losses.items():
        if s not in sizes or v.shape != (lrs.size, n_seeds):
            raise ValueError(f"known: size {s} must be one of {sizes} with losses of shape ({lrs.size}, {n_seeds}), "
                             f"got {v.shape}")
    todo = [s for s in sizes if s not in losses]
    runs: dict[int, LMResult] = {}
    for i, size in enumerate(todo):
        report = None if progress is None else (
            lambda d, t, i=i, size=size: progress(f"{label} (size {size})", i * t + d, len(todo) * t))
        run = train_lm(configs[size], corpus, learning_rates=lrs, steps=int(steps), seeds=seeds, recipe=recipe,
                       progress=report)
        runs[size] = run
        losses[size] = run.val_loss[0]  # (K, seeds): one budget
    table = np.stack([losses[s] for s in sizes])  # (W, K, seeds)
    return LRSweep(Transfer.from_losses(np.asarray(sizes), lrs, table), runs)
