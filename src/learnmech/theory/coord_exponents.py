"""How activation coordinates scale with width at initialisation and after one Adam step, under muP and SP.

A coordinate check (Yang et al. 2022, "Tensor Programs V", arXiv:2203.03466) measures the RMS of
each layer's activations and of their change after a step, at several widths ``n``; a
parameterisation is right when both are ``Theta(1)`` in ``n`` (exponent 0) for every layer. With
Adam every weight entry moves by about ``eta``, so a layer with fan-in ``n`` changes its output by
``eta n`` (exponent 1) unless the learning rate is scaled by ``1/n`` (muP); the readout of SP, whose
input also moved, by ``n^{3/2}`` (Yang, Simon & Bernstein 2023, arXiv:2310.17813, the spectral
argument). These are the exponents the ``hparams.coord-check`` claim compares with the measured
slopes; the parameterisation names are ``"mup"`` (``learnmech.nets.MLP``'s ``"mup-adam"``) and
``"sp"``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["init_exponents", "update_exponents"]


def update_exponents(parameterization: str, hidden_layers: int) -> np.ndarray:
    """Width exponents ``a_l`` of the first-step activation update, ``RMS(Delta h_l) ~ n^{a_l}``, ``(L,)``.

    Layers are the ``hidden_layers`` hidden post-activations, then the output (``L = hidden_layers
    + 1``). muP: 0 for every layer (Yang et al. 2022, arXiv:2203.03466). SP with Adam: 0 for the
    first hidden layer (fixed fan-in ``d_in``), 1 for the other hidden layers (``eta fan_in``),
    3/2 for the output with two or more hidden layers and 1 with one (spectral
    argument of Yang, Simon & Bernstein 2023, arXiv:2310.17813).

    >>> update_exponents("sp", 3).tolist()
    [0.0, 1.0, 1.0, 1.5]
    """
    if parameterization == "mup":
        return np.zeros(hidden_layers + 1)
    if parameterization != "sp":
        raise ValueError(f"parameterization: must be 'mup' or 'sp', got {parameterization!r}")
    hidden = [0.0] + [1.0] * (hidden_layers - 1)
    return np.array(hidden + [1.5 if hidden_layers >= 2 else 1.0])


def init_exponents(parameterization: str, hidden_layers: int) -> np.ndarray:
    """Width exponents of the activation RMS at initialisation, ``(L,)``.

    Every hidden layer: 0 (fan-in initialisation). Output: ``-1/2`` under muP (readout variance
    ``base/fan_in^2``, so ``Var f = (base/n) mean(z^2)``), 0 under SP.

    >>> init_exponents("mup", 2).tolist()
    [0.0, 0.0, -0.5]
    """
    if parameterization not in ("mup", "sp"):
        raise ValueError(f"parameterization: must be 'mup' or 'sp', got {parameterization!r}")
    return np.array([0.0] * hidden_layers + [-0.5 if parameterization == "mup" else 0.0])
