"""Minibatch SGD on Gaussian linear regression, exactly: second moments and gradient noise scales.

Contract: pure float64 numpy functions, no randomness. Arrays are in the eigenbasis of the input
covariance: ``spectrum`` is ``lambda`` ``(d,)``, errors ``e = w - w*`` and second moments
``m_k = E e_k^2`` are ``(..., d)``.

Task. ``x ~ N(0, Lambda)``, ``Lambda = diag(lambda)``, ``y = w*.x + sigma xi`` (``sigma`` the label
noise, argument ``noise``), model ``f(x) = w.x``, per-example loss ``(w.x - y)^2 / 2``. With
``e = w - w*`` the per-example gradient is ``g = x (x.e - sigma xi)``; Isserlis' theorem
(``E[x x^T A x x^T] = 2 Lambda A Lambda + Lambda tr(Lambda A)``) gives the true gradient
``G = Lambda e`` and the covariance of one example's gradient

    Sigma(e) = Lambda e e^T Lambda + (e^T Lambda e + sigma^2) Lambda,

hence the simple noise scale ``B_simple = tr(Sigma) / |G|^2`` and McCandlish's
``B_noise = tr(H Sigma) / G^T H G`` with ``H = Lambda`` in closed form (:func:`b_simple_linear`,
:func:`b_crit_linear`; McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2).

SGD with learning rate ``eta`` and batches of ``B`` fresh examples, ``w' = w - eta G_B``: the
diagonal second moments obey the closed linear recursion (the off-diagonal moments do not feed
back)

    m_k' = (1 - eta lambda_k)^2 m_k + (eta^2 / B) (lambda_k^2 m_k + (lambda . m + sigma^2) lambda_k),

and the expected excess loss is ``(1/2) lambda . m`` (:func:`sgd_second_moments`). It is exact for
batches of fresh Gaussian examples, i.e. for the population a training set samples.

The linear scaling rule in closed form. Per example seen, the ``eta^2 / B`` terms depend on
``eta / B`` only, while the ``eta^2 lambda_k^2 m_k`` part of ``(1 - eta lambda_k)^2`` grows ``k``-fold
under ``(eta, B) -> (k eta, k B)``: the rule of Goyal et al. 2017 (arXiv:1706.02677) holds to
first order in ``eta`` and breaks as ``k eta`` approaches the stability edge ``2 / lambda_max`` (the
``G^T H G`` term of McCandlish et al. 2018; the SDE limit is Li, Malladi & Arora 2021,
arXiv:2102.12470).
"""

from __future__ import annotations

import numpy as np

__all__ = ["b_crit_linear", "b_simple_linear", "sgd_second_moments"]


def b_simple_linear(spectrum, error, noise: float) -> np.ndarray:
    """``B_simple = tr(Sigma) / |G|^2`` of linear regression at ``w = w* + error``.

    ``x ~ N(0, diag(spectrum))``, ``y = w*.x + noise xi``, per-example loss ``(w.x - y)^2 / 2``:
    ``G = Lambda e`` and ``tr(Sigma) = e^T Lambda^2 e + (e^T Lambda e + sigma^2) tr(Lambda)``
    (Isserlis), so ``B_simple = 1 + (e^T Lambda e + sigma^2) tr(Lambda) / (e^T Lambda^2 e)``
    (the definition of McCandlish et al. 2018, arXiv:1812.06162, Sec. 2). ``error`` is ``(..., d)``
    in the eigenbasis; pass ``sqrt(m)`` for second moments ``m`` (a ratio of expectations).

    >>> float(b_simple_linear(np.ones(4), np.array([1.0, 0, 0, 0]), 0.0))  # isotropic, noiseless: d + 1
    5.0
    """
    lam, e2 = np.asarray(spectrum, np.float64), np.asarray(error, np.float64) ** 2
    return 1.0 + (e2 @ lam + noise**2) * lam.sum() / (e2 @ lam**2)


def b_crit_linear(spectrum, error, noise: float) -> np.ndarray:
    """McCandlish's ``B_noise = tr(H Sigma) / G^T H G`` with ``H = Lambda`` (conventions of :func:`b_simple_linear`).

    ``tr(H Sigma) = e^T Lambda^3 e + (e^T Lambda e + sigma^2) tr(Lambda^2)``, ``G^T H G = e^T Lambda^3 e``
    (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162, Sec. 2).

    >>> float(b_crit_linear(np.ones(4), np.array([1.0, 0, 0, 0]), 0.0))  # H = I: equals B_simple
    5.0
    """
    lam, e2 = np.asarray(spectrum, np.float64), np.asarray(error, np.float64) ** 2
    return 1.0 + (e2 @ lam + noise**2) * (lam**2).sum() / (e2 @ lam**3)


def sgd_second_moments(spectrum, m0, noise: float, learning_rates, batch: float, steps: int) -> np.ndarray:
    """Exact ``m_k(t) = E e_k(t)^2`` of minibatch SGD on Gaussian linear regression, ``(steps + 1, L, d)``.

    Model: ``x ~ N(0, diag(lambda))``, ``y = w* . x + noise xi``, loss ``(1/2)(w . x - y)^2``, SGD
    with learning rate ``eta`` and ``batch`` (``B``) i.i.d. examples per step. With ``e = w - w*``
    and ``m_k = E e_k^2`` (``m0`` at step 0; only the diagonal matters), Isserlis' theorem
    ``E[x x^T A x x^T] = 2 L A L + L tr(L A)`` (``L = diag(lambda)``) gives the closed recursion

        m' = (1 - eta lambda)^2 m + (eta^2 / B) (lambda^2 m + (lambda . m + sigma^2) lambda),

    one row per learning rate ``eta`` (``L`` of them); ``spectrum`` and ``m0`` are ``(d,)`` in the
    eigenbasis, ``batch`` is ``B`` (``inf``: gradient descent), ``noise`` is ``sigma``. The expected
    excess loss (risk) is ``(1/2) lambda . m``. Diverging rows are capped at 1e30. Per example, the
    ``(eta^2 / B)`` terms depend on ``eta / B`` only and the ``eta^2 lambda^2`` term grows ``k``-fold
    under ``(k eta, k B)`` (the ``G^T H G`` term of McCandlish et al. 2018, arXiv:1812.06162): the
    linear scaling rule and its breakdown (module docstring; SDE limit: Li, Malladi & Arora 2021,
    arXiv:2102.12470).

    >>> m = sgd_second_moments(np.ones(2), np.ones(2), 0.0, [0.5], batch=np.inf, steps=1)
    >>> m[-1, 0].tolist()  # gradient descent: m (1 - eta)^2
    [0.25, 0.25]
    >>> float(0.5 * sgd_second_moments([1.0], [1.0], 0.0, [0.5], 1, 1)[1, 0] @ [1.0])  # m' = 0.25 + 0.5
    0.375
    """
    lam = np.asarray(spectrum, np.float64)  # (d,)
    eta = np.asarray(learning_rates, np.float64)[:, None]  # (L, 1)
    m = np.broadcast_to(np.asarray(m0, np.float64), (eta.shape[0], lam.size)).copy()  # (L, d)
    out = np.empty((steps + 1, *m.shape))
    out[0] = m
    for k in range(steps):
        total = m @ lam + noise**2  # (L,)
        m = (1 - eta * lam) ** 2 * m + eta**2 / batch * (lam**2 * m + total[:, None] * lam)
        m = np.minimum(m, 1e30)
        out[k + 1] = m
    return out
