#!/usr/bin/env python
"""Accuracy of every named activation's dual against adaptive scipy quadrature, float64.

For each name of the activation table (``learnmech.theory.dual.ACTIVATIONS``, plus
``leaky_relu:0.2``) and each variance ``q``, the NNGP factor ``E[phi(u) phi(v)]`` and the derivative
kernel ``E[phi'(u) phi'(v)]`` are compared on five pairs ``(q1, q2, c)``: parallel ``(q, q, q)``,
antiparallel ``(q, q, -q)``, nearly parallel ``(q, q, 0.999 q)`` and two generic pairs with
``q2 = q/2`` and correlation 0.6 and -0.3. The reference is a nested ``scipy.integrate.quad``
(``u ~ N(0, q1)`` outside, ``v | u`` inside, both split at 0 where ReLU-like integrands have kinks
and steps, ``epsrel = 1e-11``) of ``phi`` and ``phi'`` written with the ``math`` module, independently of
the jax table; a parallel pair has ``v = (c/q1) u`` exactly. The table prints the
largest relative error ``|dual - reference| / |reference|`` over the five pairs (where the
reference is exactly 0, ReLU's antiparallel pair, relative to ``sqrt(E[f(u)^2] E[f(v)^2])``), and
for the quadratures (``error`` is not ``None``) the largest a-posteriori estimate on the same scale.

Usage: ``python bench/kernel_accuracy.py [--variances 0.1 1 10 100] [--gauss-hermite]``.
"""

from __future__ import annotations

import argparse
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

from learnmech.theory.dual import ACTIVATIONS, gauss_hermite, named_activation

EPSREL = 1e-11  # reference tolerance, far below the 1e-8 the duals are held to


def _normal_mean(f, mean: float, sd: float) -> float:
    """``E[f(mean + sd Z)]`` by adaptive quadrature over ``mean +- 12 sd``, split at 0."""
    if sd == 0.0:
        return f(mean)
    lo, hi = mean - 12 * sd, mean + 12 * sd
    pdf = lambda v: math.exp(-0.5 * ((v - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))  # noqa: E731
    points = [0.0] if lo < 0.0 < hi else None
    val, _ = integrate.quad(lambda v: f(v) * pdf(v), lo, hi, points=points, epsabs=1e-14, epsrel=EPSREL, limit=500)
    return val


def reference(f, q1: float, q2: float, c: float) -> float:
    """``E[f(u) f(v)]`` for ``(u, v) ~ N(0, [[q1, c], [c, q2]])``: ``v | u ~ N(c u/q1, q2 - c^2/q1)``."""
    slope, sd = c / q1, math.sqrt(max(q2 - c * c / q1, 0.0))
    return _normal_mean(lambda u: f(u) * _normal_mean(f, slope * u, sd), 0.0, math.sqrt(q1))


def pairs(q: float) -> list[tuple[float, float, float]]:
    half = q / 2
    generic = math.sqrt(q * half)
    return [(q, q, q), (q, q, -q), (q, q, 0.999 * q), (q, half, 0.6 * generic), (q, half, -0.3 * generic)]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


_K = math.sqrt(2 / math.pi)  # the tanh form of GELU: 0.5 x (1 + tanh(k (x + 0.044715 x^3)))


def _gelu_tanh_grad(x: float) -> float:
    t = math.tanh(_K * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _K * (1 + 3 * 0.044715 * x * x)


# (phi, phi') written with the math module, independently of the jax table
SCALAR = {
    "relu": (lambda x: max(x, 0.0), lambda x: float(x > 0)),
    "abs": (abs, lambda x: math.copysign(1.0, x)),
    "requ": (lambda x: max(x, 0.0) ** 2, lambda x: 2 * max(x, 0.0)),
    "erf": (math.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x)),
    "identity": (lambda x: x, lambda x: 1.0),
    "gelu": (lambda x: x * _cdf(x), lambda x: _cdf(x) + x * _pdf(x)),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + math.tanh(_K * (x + 0.044715 * x**3))), _gelu_tanh_grad),
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "softplus": (lambda x: max(x, 0.0) + math.log1p(math.exp(-abs(x))), _sigmoid),
    "leaky_relu:0.2": (lambda x: x if x > 0 else 0.2 * x, lambda x: 1.0 if x > 0 else 0.2),
}


def row(name: str, q: float, dual=None) -> tuple[float, float, float, float]:
    """Largest relative error (NNGP, derivative) over :func:`pairs` and the largest error estimates
    of ``dual`` (default: the table's dual of ``name``)."""
    dual = named_activation(name).dual if dual is None else dual
    phi, dphi = SCALAR[name]
    cases = np.array(pairs(q))
    args = [jnp.asarray(cases[:, i]) for i in range(3)]
    got = [np.asarray(v) for v in dual(*args)]
    est = [np.asarray(e) for e in dual.error(*args)] if dual.error is not None else None
    errors, estimates = [], []
    for k, f in enumerate((phi, dphi)):
        ref = np.array([reference(f, *case) for case in cases])
        norm = np.array([math.sqrt(_normal_mean(lambda u: f(u) ** 2, 0.0, math.sqrt(q1))
                                   * _normal_mean(lambda v: f(v) ** 2, 0.0, math.sqrt(q2))) for q1, q2, _ in cases])
        denominator = np.where(ref != 0.0, np.abs(ref), norm)  # relative to the scale where E[f f] = 0
        errors.append(float(np.max(np.abs(got[k] - ref) / denominator)))
        estimates.append(float(np.max(est[k] / denominator)) if est is not None else math.nan)
    return errors[0], errors[1], estimates[0], estimates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variances", type=float, nargs="+", default=[0.1, 1.0, 10.0, 100.0])
    parser.add_argument("--gauss-hermite", action="store_true",
                        help="also the former rule of the quadrature activations (24 x 24 Gauss-Hermite)")
    args = parser.parse_args()
    names = [n for n in ACTIVATIONS if n != "linear"] + ["leaky_relu:0.2"]
    missing = set(names) - set(SCALAR)
    if missing:
        raise SystemExit(f"no scalar reference for {sorted(missing)}: add it to SCALAR")
    warnings.simplefilter("ignore", integrate.IntegrationWarning)
    with jax.enable_x64(True):
        head = " ".join(f"{f'q={q:g}':>9s}" for q in args.variances)
        print(f"max relative error vs scipy (est: the quadrature's own estimate)\n{'activation':14s} kernel  {head}")
        for name in names:
            rows = [row(name, q) for q in args.variances]
            for k, kernel in enumerate(("nngp", "deriv")):
                line = " ".join(f"{r[k]:9.1e}" for r in rows)
                est = "" if math.isnan(rows[0][2 + k]) else "   est " + " ".join(f"{r[2 + k]:7.0e}" for r in rows)
                print(f"{name:14s} {kernel:6s}  {line}{est}", flush=True)
            if args.gauss_hermite and named_activation(name).dual.error is not None:
                old = gauss_hermite(named_activation(name).fn, 24)
                rows = [row(name, q, old) for q in args.variances]
                for k, kernel in enumerate(("nngp", "deriv")):
                    print(f"{'  GH 24 x 24':14s} {kernel:6s}  " + " ".join(f"{r[k]:9.1e}" for r in rows), flush=True)


if __name__ == "__main__":
    main()
