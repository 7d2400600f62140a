"""Modular addition: the task, Gromov's analytic two-layer network, and the Fourier concentration of weights.

Contract: pure float64 numpy functions, no randomness (the seeded split of the pairs into training and test
sets is data: :func:`learnmech.data.modular.train_test_split`).

Task. Inputs are pairs ``(a, b)`` of residues mod ``p``, encoded as the concatenation of two one-hot
vectors, ``x = [e_a, e_b]`` in ``R^{2p}``; the label is ``(a + b) mod p``. The ``p^2`` pairs are ordered
``a * p + b`` (:func:`all_pairs`).

Network (Gromov 2023, arXiv:2301.02679, Eqs. 7-8). Two layers, no biases: ``h = x W1`` with ``W1`` of
shape ``(2p, N)``, so neuron ``k`` sees ``u_k(a) + v_k(b)`` (``u_k = W1[:p, k]``, ``v_k = W1[p:, k]``);
outputs ``f_q = sum_k W2[k, q] phi(h_k)`` with ``W2`` of shape ``(N, p)`` and, in Gromov's solution,
``phi(z) = z^2``. The analytic weights give neuron ``k`` one frequency ``s_k`` and two phases:

    u_k(a) = cos(2 pi s_k a / p + alpha_k),    v_k(b) = cos(2 pi s_k b / p + beta_k),
    W2[k, q] = cos(2 pi s_k q / p + alpha_k + beta_k)

(Gromov writes ``cos(-2 pi s_k q / p - alpha_k - beta_k)``, the same number). With ``w = 2 pi s / p``,
``A = w a + alpha``, ``B = w b + beta``, ``(cos A + cos B)^2 = 1 + cos(2A)/2 + cos(2B)/2 + cos(A + B) +
cos(A - B)``; times the readout, the only term that does not carry a phase factor
``exp(i (m alpha + n beta))`` with ``(m, n) in {(1, 1), (1, -1), (3, 1), (1, 3), (2, 2), (2, 0), (0, 2)}`` is
``cos(w (a + b - q)) / 2``. Gromov draws the phases i.i.d. uniform, so those terms average out over the
neurons (noise ``~ sqrt(N)`` against a signal ``~ N``) and, summed over the frequencies ``1 .. (p-1)/2``,
``sum_s cos(2 pi s d / p) = (p [d = 0 mod p] - 1) / 2`` is a delta on ``q = a + b``: 100% accuracy for
``N`` large enough. On the ``M x M`` phase grid ``alpha, beta in {2 pi j / M}`` with ``M >= 3`` every
unwanted phase factor sums to exactly zero (:func:`grid_phases`), and with all ``M^2`` phase pairs at each
frequency ``1 .. (p-1)/2`` the output is exactly ``f_q(a, b) = (M^2 / 4) (p [q = a + b mod p] - 1)``.

Fourier concentration. The DFT of a neuron's input weights over residues, ``u_hat(k) = sum_a u(a)
exp(-2 pi i k a / p)``; a real ``u`` has ``|u_hat(p - k)| = |u_hat(k)|``, so the power of the frequency pair
``(k, p - k)`` is ``2 |u_hat(k)|^2`` (``|u_hat(k)|^2`` at ``k = 0`` and, for even ``p``, ``k = p/2``).
A neuron's pair power adds its ``a`` and ``b`` halves, ``P(k) = P_u(k) + P_v(k)``. Convention: the
constant term ``k = 0`` (the mean of the weights over residues) is excluded from numerator and
denominator: it shifts the neuron's pre-activation by the same amount for every input, a bias that
carries no information about ``a`` or ``b``. The concentration is ``max_{k >= 1} P(k) / sum_{k >= 1} P(k)``
(1 for a pure cosine, 1/2 for two frequencies of equal amplitude).

>>> acc = gromov_accuracy(7, np.arange(1, 4).repeat(9), *grid_phases(3, 3))
>>> float(acc)
1.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["all_pairs", "fourier_concentration", "gromov_accuracy", "gromov_forward", "gromov_weights", "grid_phases",
           "modular_labels", "one_hot_pairs", "pair_power"]


_CONSTANT_RTOL = 1e-20  # share of power off k = 0 below which a neuron's weights count as constant


def _check_p(p: int) -> int:
    if int(p) != p or p < 2:
        raise ValueError(f"p: must be an integer >= 2, got {p!r}")
    return int(p)


def all_pairs(p: int) -> np.ndarray:
    """Every pair ``(a, b)`` of residues mod ``p``, ``(p^2, 2)`` int64, row ``a * p + b``."""
    p = _check_p(p)
    a, b = np.divmod(np.arange(p * p), p)
    return np.stack([a, b], axis=1)


def modular_labels(pairs: np.ndarray, p: int) -> np.ndarray:
    """``(a + b) mod p`` for pairs ``(n, 2)``: ``(n,)`` int64."""
    pairs = np.asarray(pairs, np.int64)
    return (pairs[:, 0] + pairs[:, 1]) % _check_p(p)


def one_hot_pairs(pairs: np.ndarray, p: int) -> np.ndarray:
    """The inputs ``x = [e_a, e_b]``: ``(n, 2p)`` float64 with ones at columns ``a`` and ``p + b``."""
    pairs = np.asarray(pairs, np.int64)
    p = _check_p(p)
    x = np.zeros((pairs.shape[0], 2 * p))
    rows = np.arange(pairs.shape[0])
    x[rows, pairs[:, 0]] = 1.0
    x[rows, p + pairs[:, 1]] = 1.0
    return x


def grid_phases(m: int, per_frequency_blocks: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``M x M`` phase grid ``alpha_j = 2 pi j / M``, ``beta_l = 2 pi l / M`` as two ``(M^2 blocks,)`` arrays.

    For ``M >= 3`` it cancels every phase factor of Gromov's expansion (module docstring) exactly; the grid
    is repeated ``per_frequency_blocks`` times, one block per frequency, to pair with
    ``frequencies = s.repeat(M^2)``.
    """
    if m < 3:
        raise ValueError(f"m: the phase grid cancels the unwanted terms only for m >= 3, got {m!r}")
    j, l = np.divmod(np.arange(m * m), m)
    alpha, beta = 2 * np.pi * j / m, 2 * np.pi * l / m
    return np.tile(alpha, per_frequency_blocks), np.tile(beta, per_frequency_blocks)


def gromov_weights(p: int, frequencies, phase_a, phase_b) -> tuple[np.ndarray, np.ndarray]:
    """Gromov's analytic weights (Gromov 2023, arXiv:2301.02679, Eqs. 7-8): ``W1`` ``(2p, N)``, ``W2`` ``(N, p)``.

    ``W1[a, k] = cos(2 pi s_k a / p + alpha_k)``, ``W1[p + b, k] = cos(2 pi s_k b / p + beta_k)``,
    ``W2[k, q] = cos(2 pi s_k q / p + alpha_k + beta_k)``; ``frequencies`` ``s`` and the phases are ``(N,)``.
    """
    p = _check_p(p)
    s, alpha, beta = (np.asarray(v, np.float64).ravel() for v in (frequencies, phase_a, phase_b))
    if not s.size == alpha.size == beta.size or s.size == 0:
        raise ValueError(f"frequencies, phase_a, phase_b: must be non-empty and equally long, got "
                         f"{s.size}, {alpha.size}, {beta.size}")
    w = 2 * np.pi * np.outer(np.arange(p), s) / p  # (p, N): 2 pi s_k r / p
    W1 = np.concatenate([np.cos(w + alpha), np.cos(w + beta)], axis=0)  # (2p, N)
    W2 = np.cos(w + alpha + beta).T  # (N, p)
    return W1, W2


def gromov_forward(W1: np.ndarray, W2: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Outputs ``f_q = sum_k W2[k, q] (u_k(a) + v_k(b))^2`` of the quadratic network: ``(n, p)``."""
    W1, W2 = np.asarray(W1, np.float64), np.asarray(W2, np.float64)
    p = W2.shape[1]
    pairs = np.asarray(pairs, np.int64)
    h = W1[pairs[:, 0]] + W1[p + pairs[:, 1]]  # (n, N): the one-hot product x W1, gathered
    return (h * h) @ W2


def gromov_accuracy(p: int, frequencies, phase_a, phase_b) -> float:
    """Accuracy of Gromov's network (:func:`gromov_weights`) on all ``p^2`` pairs: ``mean(argmax_q f_q = a + b)``."""
    pairs = all_pairs(p)
    out = gromov_forward(*gromov_weights(p, frequencies, phase_a, phase_b), pairs)
    return float(np.mean(np.argmax(out, axis=1) == modular_labels(pairs, p)))


def pair_power(weights: np.ndarray, p: int) -> np.ndarray:
    """Power of each frequency pair ``(k, p - k)``, ``k = 0 .. floor(p/2)``, of weights ``(p, N)`` over residues.

    ``P(k) = |u_hat(k)|^2 + |u_hat(p - k)|^2 = 2 |u_hat(k)|^2`` for ``0 < k < p/2``, ``|u_hat(k)|^2`` at ``k = 0``
    and ``k = p/2``; Parseval: ``sum_k P(k) = p sum_a u(a)^2``. Returns ``(floor(p/2) + 1, N)``.
    """
    u = np.asarray(weights, np.float64)
    if u.ndim != 2 or u.shape[0] != _check_p(p):
        raise ValueError(f"weights: must be (p, neurons) = ({p}, N), got shape {u.shape}")
    power = np.abs(np.fft.rfft(u, axis=0)) ** 2  # (floor(p/2) + 1, N)
    paired = np.ones(power.shape[0])
    paired[1: (p + 1) // 2] = 2.0  # k and p - k; k = 0 and (even p) k = p/2 are their own pair
    return power * paired[:, None]


def fourier_concentration(W1: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron of ``W1`` ``(2p, N)``: ``(concentration (N,), dominant k (N,))``.

    ``concentration = max_{k >= 1} P(k) / sum_{k >= 1} P(k)`` with ``P = P_u + P_v`` the pair powers
    (:func:`pair_power`) of the neuron's ``a`` and ``b`` halves; the constant ``k = 0`` is excluded (module
    docstring). NaN for a neuron whose weights are constant over residues.
    """
    W1 = np.asarray(W1, np.float64)
    if W1.ndim != 2 or W1.shape[0] != 2 * _check_p(p):
        raise ValueError(f"W1: must be (2p, neurons) = ({2 * p}, N), got shape {W1.shape}")
    full = pair_power(W1[:p], p) + pair_power(W1[p:], p)  # (floor(p/2) + 1, N)
    power = full[1:]  # k >= 1
    total = power.sum(axis=0)
    varies = total > _CONSTANT_RTOL * full.sum(axis=0)  # else constant up to the FFT's rounding
    with np.errstate(invalid="ignore", divide="ignore"):
        conc = np.where(varies, power.max(axis=0) / total, np.nan)
    return conc, 1 + np.argmax(power, axis=0)
