"""The common MLP of the twin tests, written in PyTorch the way a user writes it (shared by tests and bench).

``d_in -> width -> width -> d_out``, ReLU, biases, standard fan-in initialisation: weights
``N(0, 1/fan_in)``, biases zero (learnmech's ``MLP(..., "relu", "sp")`` draws the same
distribution). ``nn.Linear`` stores its weight ``(out, in)``: :func:`from_jax` loads the plain
JAX pytree twin ``[{"w": (in, out), "b": (out,)}, ...]`` by transposing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["D_IN", "D_OUT", "LAYER_NAMES", "MLP", "from_jax", "make", "to_jax"]

D_IN, D_OUT = 6, 3
LAYER_NAMES = ("l1", "l2", "l3")


class MLP(nn.Module):
    """``l3(relu(l2(relu(l1(x)))))``."""

    def __init__(self, width: int, *, d_in: int = D_IN, d_out: int = D_OUT, dtype=torch.float64, device=None):
        super().__init__()
        self.l1 = nn.Linear(d_in, width, dtype=dtype, device=device)
        self.l2 = nn.Linear(width, width, dtype=dtype, device=device)
        self.l3 = nn.Linear(width, d_out, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))

    def reset_parameters(self, generator: torch.Generator | None = None) -> "MLP":
        """Weights ``N(0, 1/fan_in)``, biases 0."""
        with torch.no_grad():
            for layer in (self.l1, self.l2, self.l3):
                layer.weight.normal_(0.0, 1.0 / math.sqrt(layer.in_features), generator=generator)
                layer.bias.zero_()
        return self


def make(width: int, seed: int = 0, *, d_in: int = D_IN, d_out: int = D_OUT, dtype=torch.float64) -> MLP:
    """The MLP at ``width``, initialised from ``seed`` (its own generator; the global RNG is untouched)."""
    model = MLP(width, d_in=d_in, d_out=d_out, dtype=dtype)
    return model.reset_parameters(torch.Generator().manual_seed(int(seed)))


def from_jax(params, *, dtype=torch.float64) -> MLP:
    """The MLP holding the JAX twin's weights: ``params = [{"w": (in, out), "b": (out,)}] * 3``."""
    w = [np.asarray(layer["w"]) for layer in params]
    model = MLP(w[0].shape[1], d_in=w[0].shape[0], d_out=w[2].shape[1], dtype=dtype)
    with torch.no_grad():
        for name, layer in zip(LAYER_NAMES, params):
            mod = getattr(model, name)
            mod.weight.copy_(torch.tensor(np.array(layer["w"]).T))  # (in, out) -> (out, in)
            mod.bias.copy_(torch.tensor(np.array(layer["b"])))
    return model


def to_jax(model: MLP) -> list[dict[str, np.ndarray]]:
    """The inverse of :func:`from_jax`, as numpy arrays."""
    return [{"w": getattr(model, n).weight.detach().numpy().T.copy(), "b": getattr(model, n).bias.detach().numpy().copy()}
            for n in LAYER_NAMES]

