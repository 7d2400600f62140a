"""The abc-parameterisation of a network as data: SP, NTK, muP and mean-field are rows of one table.

Yang & Hu 2021 (TP-IV, arXiv:2011.14522) write every width-scaling of a network as three
exponents per parameter tensor ``W``: the trained tensor ``w`` enters the forward pass as
``W = n^{-a} w``, it starts at ``w ~ N(0, n^{-2b})`` and is trained with learning rate
``eta n^{-c}``. learnmech states the exponents *relative to a base model* (muP's "base shapes",
Yang et al. 2022, TP-V, arXiv:2203.03466, Section 6): with ``m = n / n_0`` the width multiplier,
a tensor of kind ``k`` has

    forward multiplier   mult(m)    = mult_0 * m^{-a_k}
    initial std          std(m)     = std_0  * m^{-b_k}
    learning rate        eta(m)     = eta    * m^{-c_k}

where ``mult_0`` and ``std_0`` are what the model uses at its base width (``std_0 =
sigma/sqrt(fan_in_0)`` for a weight whose ``sigma`` lives in the initialisation). At ``m = 1``
every row is the base model itself. The *kind* of a tensor is fixed by which of its dimensions
grow with the width ``n`` (TP-V, Table 3 and Section J.2; Yang, Simon & Bernstein 2023,
arXiv:2310.17813, spectral form):

- ``input``:  only the fan-out grows (the first weight matrix; ``(d, n)``);
- ``hidden``: fan-in and fan-out grow (``(n, n)``);
- ``output``: only the fan-in grows (the readout; ``(n, d_out)``);
- ``vector``: a one-dimensional tensor of length ``n`` (biases, gains): scales as ``input``.

Tensors none of whose dimensions grow ("scalar-like") are not scaled by any row. For the
``input`` and ``vector`` kinds ``m`` is the ratio of fan-outs; for ``hidden`` and ``output`` the
ratio of fan-ins (the two coincide when all hidden widths scale together).

Named rows (``PARAMETERIZATIONS``), in the gauge the papers print them:

=============  ===========================  ===========================  ==========================
name           input (a, b, c)              hidden (a, b, c)             output (a, b, c)
=============  ===========================  ===========================  ==========================
``sp``         (0, 0, 0)                    (0, 1/2, 0)                  (0, 1/2, 0)
``ntk``        (0, 0, 0)                    (1/2, 0, 0)                  (1/2, 0, 0)
``mup-sgd``    (0, 0, -1)                   (0, 1/2, 0)                  (0, 1, 1)
``mup-adam``   (0, 0, 0)                    (0, 1/2, 1)                  (0, 1, 1)
``mean-field`` (0, 0, -1)                   (1/2, 0, -1)                 (1, 0, -1)
=============  ===========================  ===========================  ==========================

``vector`` has the ``input`` row throughout. ``sp`` is the standard ``1/fan_in`` initialisation
with one learning rate; ``ntk`` puts ``1/sqrt(fan_in)`` (and ``sigma``) in the forward multiplier
with ``N(0, 1)`` weights (Jacot, Gabriel & Hongler 2018, arXiv:1806.07572); ``mup-sgd`` and
``mup-adam`` are TP-V Table 3 (init var ``1/fan_in`` except the readout ``1/fan_in^2``;
learning rates: SGD ``eta fan_out`` / ``eta`` / ``eta/fan_in``, Adam ``eta`` / ``eta/fan_in`` /
``eta/fan_in`` for input / hidden / output); ``mean-field`` is the ``1/n`` readout of Mei,
Montanari & Nguyen 2018 (arXiv:1804.06561) and Chizat & Bach 2018 (arXiv:1805.09545) with
``N(0, 1)`` weights and learning rate ``eta n``, extended to depth as in TP-IV, where for one
hidden layer it is muP.

Symmetry (TP-IV, Section 3, "abc-parametrisations are equivalent up to a shift"): the change
``(a, b, c) -> (a + theta, b - theta, c - 2 theta)`` of one tensor's row leaves the function and
its whole SGD trajectory unchanged (``W = n^{-a} w`` is the same tensor, its gradient in ``w`` is
``n^{-a}`` times that in ``W``, so the step ``eta n^{-c} n^{-a} dL/dW`` on ``w`` moves ``W`` by
``eta n^{-c-2a} dL/dW`` — invariant when ``c + 2a`` is). For Adam, whose update is invariant to
the scale of the gradient, the matching shift is ``(a + theta, b - theta, c - theta)``. With
``theta = 1/2`` (hidden) and ``1`` (output) the SGD shift maps ``mup-sgd`` onto ``mean-field``,
the statement that the two are one parameterisation: :func:`shift` computes it and the tests
train both and compare.

This module is data and arithmetic only; :mod:`learnmech.nets` builds models from it and
:mod:`learnmech.nets.mup` applies it to any pytree model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

__all__ = ["KINDS", "PARAMETERIZATIONS", "Exponents", "Parameterization", "get_parameterization", "shift"]

Kind = Literal["input", "hidden", "output", "vector"]
KINDS: tuple[str, ...] = ("input", "hidden", "output", "vector")


@dataclass(frozen=True)
class Exponents:
    """One row of the table: ``mult ~ m^{-a}``, ``std ~ m^{-b}``, ``lr ~ m^{-c}``."""

    a: float
    b: float
    c: float

    def scales(self, m: float) -> tuple[float, float, float]:
        """``(multiplier, init_std, learning_rate)`` factors at width multiplier ``m``.

        >>> Exponents(0.0, 0.5, 1.0).scales(4.0)
        (1.0, 0.5, 0.25)
        """
        if not m > 0:
            raise ValueError(f"m: the width multiplier must be positive, got {m}")
        return m ** (-self.a), m ** (-self.b), m ** (-self.c)


@dataclass(frozen=True)
class Parameterization:
    """A named abc-parameterisation: one :class:`Exponents` per tensor kind.

    Attributes:
      name: the key in ``PARAMETERIZATIONS``.
      rows: ``{kind: Exponents}`` for every kind of ``KINDS``.
      optimizer: the optimiser the learning-rate exponents are derived for (``"sgd"``,
        ``"adam"``, or ``"any"`` when the learning rate does not scale).
      sigma_in_multiplier: the base model keeps ``sigma/sqrt(fan_in)`` in the forward multiplier
        and starts from ``N(0, 1)`` (``ntk``), instead of ``N(0, sigma^2/fan_in)`` with
        multiplier 1.
      reference: where the row comes from.
    """

    name: str
    rows: Mapping[str, Exponents]
    optimizer: Literal["sgd", "adam", "any"]
    sigma_in_multiplier: bool = False
    reference: str = ""

    def __post_init__(self):
        missing = set(KINDS) - set(self.rows)
        if missing:
            raise ValueError(f"rows: missing kinds {sorted(missing)}")

    def scales(self, kind: str, m: float) -> tuple[float, float, float]:
        """``(multiplier, init_std, learning_rate)`` factors of a tensor of ``kind`` at ``m``."""
        if kind not in self.rows:
            raise ValueError(f"kind: must be one of {list(KINDS)}, got {kind!r}")
        return self.rows[kind].scales(m)

    @property
    def multiplier_free(self) -> bool:
        """Whether every forward multiplier is width-independent (``a = 0`` for every kind).

        Such a row can be applied to a model from outside, by rescaling its initialisation and
        its learning rates only.
        """
        return all(e.a == 0 for e in self.rows.values())


def _table(inp: Exponents, hidden: Exponents, out: Exponents) -> dict[str, Exponents]:
    return {"input": inp, "hidden": hidden, "output": out, "vector": inp}


PARAMETERIZATIONS: dict[str, Parameterization] = {
    p.name: p
    for p in (
        Parameterization(
            "sp", _table(Exponents(0, 0, 0), Exponents(0, 0.5, 0), Exponents(0, 0.5, 0)), "any",
            reference="standard parameterisation: init var 1/fan_in, one learning rate",
        ),
        Parameterization(
            "ntk", _table(Exponents(0, 0, 0), Exponents(0.5, 0, 0), Exponents(0.5, 0, 0)), "any",
            sigma_in_multiplier=True, reference="Jacot, Gabriel & Hongler 2018, arXiv:1806.07572",
        ),
        Parameterization(
            "mup-sgd", _table(Exponents(0, 0, -1), Exponents(0, 0.5, 0), Exponents(0, 1, 1)), "sgd",
            reference="Yang et al. 2022 (TP-V), arXiv:2203.03466, Table 3, SGD",
        ),
        Parameterization(
            "mup-adam", _table(Exponents(0, 0, 0), Exponents(0, 0.5, 1), Exponents(0, 1, 1)), "adam",
            reference="Yang et al. 2022 (TP-V), arXiv:2203.03466, Table 3, Adam",
        ),
        Parameterization(
            "mean-field", _table(Exponents(0, 0, -1), Exponents(0.5, 0, -1), Exponents(1, 0, -1)), "sgd",
            reference="Mei, Montanari & Nguyen 2018, arXiv:1804.06561; Yang & Hu 2021 (TP-IV), arXiv:2011.14522",
        ),
    )
}


def get_parameterization(name: str) -> Parameterization:
    """The named row; ``ValueError`` naming the allowed names otherwise."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: must be one of {sorted(PARAMETERIZATIONS)}, got {name!r}")
    return PARAMETERIZATIONS[name]


def shift(row: Exponents, theta: float, optimizer: Literal["sgd", "adam"]) -> Exponents:
    """The equivalent row ``(a + theta, b - theta, c - k theta)``, ``k = 2`` (SGD) or ``1`` (Adam).

    Both rows give the same function at initialisation and the same training trajectory
    (TP-IV, arXiv:2011.14522; the module docstring derives it).

    >>> shift(Exponents(0, 1, 1), 1.0, "sgd")  # muP-SGD readout -> mean-field readout
    Exponents(a=1.0, b=0.0, c=-1.0)
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer: must be 'sgd' or 'adam', got {optimizer!r}")
    k = 2.0 if optimizer == "sgd" else 1.0
    return Exponents(row.a + theta, row.b - theta, row.c - k * theta)
