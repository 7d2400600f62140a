"""Ready-made probes for the trainer's costly, scheduled measurements.

Contract. Each builder returns a :class:`learnmech.train.Probe`: a function
``fn(params, preconditioner, data)`` run per member by :func:`learnmech.train.train` (``preconditioner``:
the diagonal ``P`` of the member's update ``w <- w - eta P^{-1} m``, handed over by the trainer;
``data``: the probe's batch, by default the training data), the schedule (``every`` or ``steps``),
the members and the probe's own batch as keyword arguments, and the layout rule measured for its
method (``map_from``)::

    train(..., probes=[sharpness_probe(loss, every=20, method="lanczos", iterations=20)])

- :func:`sharpness_probe`: ``lambda_max(H)`` by Lanczos or power iteration
  (:func:`learnmech.observe.curvature.sharpness`; Cohen, Kaur, Li, Kolter & Talwalkar 2021,
  arXiv:2103.00065).
- :func:`preconditioned_sharpness_probe`: ``lambda_max(P^{-1} H)``, the quantity Adam drives to
  ``(2 + 2 b1) / ((1 - b1) eta)`` (Cohen et al. 2022, arXiv:2207.14484;
  :func:`learnmech.theory.stability.stability_threshold`).
- :func:`ntk_probe`: the empirical NTK Gram matrix on a small batch of inputs (Jacot, Gabriel &
  Hongler 2018, arXiv:1806.07572; :func:`learnmech.observe.ntk.empirical_ntk`).
- :func:`noise_scale_probe`: ``tr(Sigma)`` and ``|G|^2`` of the two-batch-size estimator on groups
  of i.i.d. small batches (McCandlish, Kaplan, Amodei et al. 2018, arXiv:1812.06162).

Layouts: the sharpness probes use the thresholds :func:`learnmech.observe.ensemble_curvature.ensemble_sharpness`
measured (power iteration maps members at every size, a vmapped while-loop running to its slowest
member; Lanczos, a fixed number of HVPs, batches them below 256 parameters); the others use the
trainer's rule.
"""

from __future__ import annotations

from typing import Callable

from learnmech.observe.curvature import preconditioned_sharpness, sharpness
from learnmech.observe.ensemble_curvature import _AUTO_MAP_PARAMETERS
from learnmech.observe.noise import noise_scale_two_batch
from learnmech.observe.ntk import empirical_ntk
from learnmech.train import Probe

__all__ = ["noise_scale_probe", "ntk_probe", "preconditioned_sharpness_probe", "sharpness_probe"]


def sharpness_probe(loss: Callable, *, name: str = "sharpness", method: str = "lanczos", iterations: int = 20,
                    tol: float = 1e-4, key=None, **schedule) -> Probe:
    """``lambda_max(H)`` of ``loss(params, batch)`` at the member's parameters on the probe's batch.

    ``method``, ``iterations``, ``tol``, ``key``: as in :func:`learnmech.observe.curvature.sharpness`
    (Lanczos: a fixed number of HVPs, the same for every member; power iteration stops at its own
    convergence). ``schedule``: the :class:`~learnmech.train.Probe` fields ``every``/``steps``,
    ``members``, ``data``, ``layout``.
    """

    def fn(params, preconditioner, data):
        del preconditioner
        return sharpness(loss, params, data, method=method, iterations=iterations, tol=tol, key=key).eigenvalue

    return Probe(name, fn, map_from=_AUTO_MAP_PARAMETERS[method], **schedule)


def preconditioned_sharpness_probe(loss: Callable, *, name: str = "preconditioned_sharpness", method: str = "lanczos",
                                   iterations: int = 20, tol: float = 1e-4, key=None, **schedule) -> Probe:
    """``lambda_max(P^{-1} H)`` with the member's preconditioner ``P``.

    For SGD and heavy ball the trainer hands ``P = 1`` and this is the sharpness; for Adam, ``P`` of
    :func:`learnmech.theory.stability.adam_preconditioner` (NaN before the first update, and so is the
    value). Arguments as in :func:`sharpness_probe`.
    """

    def fn(params, preconditioner, data):
        return preconditioned_sharpness(loss, params, data, preconditioner, method=method, iterations=iterations,
                                        tol=tol, key=key).eigenvalue

    return Probe(name, fn, map_from=_AUTO_MAP_PARAMETERS[method], **schedule)


def ntk_probe(apply: Callable, x, *, name: str = "ntk", outputs: str = "mean", strategy: str = "auto",
              extra_axes: str = "outputs", **schedule) -> Probe:
    """``Theta(x, x)``, the empirical NTK Gram matrix on the inputs ``x`` (the probe's batch).

    ``(n, n)`` for ``outputs="mean"`` (averaged over output units); keep ``n`` small (tens to hundreds):
    the value is stored at every probe step. ``strategy`` and ``extra_axes`` (outputs ``(n, ..., O)``, e.g.
    sequences): as in :func:`learnmech.observe.ntk.empirical_ntk`.
    """

    def fn(params, preconditioner, inputs):
        del preconditioner
        return empirical_ntk(apply, params, inputs, outputs=outputs, strategy=strategy, extra_axes=extra_axes)

    return Probe(name, fn, data=x, **schedule)


def noise_scale_probe(loss: Callable, groups, **schedule) -> Probe:
    """``{"trace_cov", "grad_sq_norm"}`` of :func:`learnmech.observe.noise.noise_scale_two_batch` on ``groups``.

    ``groups`` (the probe's batch): leaves ``(G, b, ...)``, ``G >= 2`` i.i.d. batches of ``b`` examples.
    Average numerator and denominator over seeds or steps before taking their ratio ``B_simple``
    (McCandlish et al. 2018).
    """

    def fn(params, preconditioner, data):
        del preconditioner
        ns = noise_scale_two_batch(loss, params, data)
        return {"trace_cov": ns.trace_cov, "grad_sq_norm": ns.grad_sq_norm}

    return Probe("noise_scale", fn, data=groups, **schedule)
