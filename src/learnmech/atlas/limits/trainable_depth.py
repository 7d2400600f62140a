"""The trainable-depth diagram of deep tanh networks: train accuracy over (depth, ``sigma_w^2``) and its boundary.

Protocol (Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, arXiv:1611.01232, section "Experimental
results", scaled down as :mod:`learnmech.atlas.limits.signal_propagation` states): fully connected tanh MLPs
``784 -> width x D -> 10`` initialised with ``w ~ N(0, sigma_w^2 / fan_in)``, ``b ~ N(0, sigma_b^2)``, trained
by plain SGD on softmax cross-entropy with one learning rate for every ``(D, sigma_w^2)``; the train accuracy
after a fixed number of steps forms a heat map over depth and ``sigma_w^2`` whose trainable region the paper
compares with multiples of ``xi_c``.

Boundary (this module's reading of the heat map, one number per ``sigma_w^2``): the threshold is relative to
chance and to the shallowest net of the grid at the same ``sigma_w^2``,
``A_thr = A_chance + f (A_shallow - A_chance)``; the boundary ``D*`` is the first crossing of ``A_thr`` going
deeper, interpolated linearly in ``ln D`` between the last grid depth above and the first below:
``ln D* = ln D_j + (A_j - A_thr) / (A_j - A_{j+1}) (ln D_{j+1} - ln D_j)``. A diverged net (NaN accuracy)
counts as chance: it did not train.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHANCE", "boundary_depth", "train_accuracy_grid", "trainable_threshold"]

CHANCE = 0.1  # ten balanced classes (MNIST-5k): the accuracy of a constant prediction


def trainable_threshold(shallow: float, fraction: float, chance: float = CHANCE) -> float:
    """``A_thr = chance + fraction (shallow - chance)``: the accuracy a net must reach to count as trained.

    ``shallow``: the shallowest grid net's accuracy at the same ``sigma_w^2``; ``fraction`` in (0, 1).

    >>> trainable_threshold(0.7, 0.5)
    0.4
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: must lie in (0, 1), got {fraction}")
    return float(chance + fraction * (shallow - chance))


def boundary_depth(depths, accuracy, threshold: float, chance: float = CHANCE) -> float:
    """Depth ``D*`` where ``accuracy`` first falls below ``threshold``, interpolated linearly in ``ln D``.

    ``depths`` increasing ``(J,)``, ``accuracy`` ``(J,)`` (NaN = diverged, read as ``chance``). NaN when the
    shallowest depth is already below the threshold or no depth falls below it (boundary outside the grid).

    >>> round(boundary_depth([4, 16], [0.8, 0.2], 0.5), 6)  # halfway in ln D between 4 and 16
    8.0
    """
    d = np.asarray(depths, np.float64)
    a = np.nan_to_num(np.asarray(accuracy, np.float64), nan=chance)
    below = np.flatnonzero(a < threshold)
    if below.size == 0 or below[0] == 0:
        return math.nan
    j = int(below[0]) - 1  # a[j] >= threshold > a[j + 1]
    t = (a[j] - threshold) / (a[j] - a[j + 1])
    return float(np.exp(np.log(d[j]) + t * (np.log(d[j + 1]) - np.log(d[j]))))


def _mlp_problem(net, sigma_b2: float, X, y):
    """``init``, ``loss`` and ``observe`` of the protocol for one MLP (module docstring)."""

    def init(key, hp):
        keys = jax.random.split(key, 2 * net.depth)
        return [{"w": jnp.sqrt(hp["sigma_w2"] / fan_in) * jax.random.normal(keys[2 * i], (fan_in, fan_out)),
                 "b": math.sqrt(sigma_b2) * jax.random.normal(keys[2 * i + 1], (fan_out,))}
                for i, (fan_in, fan_out) in enumerate(zip(net.widths[:-1], net.widths[1:]))]

    def loss(params, batch):
        logits = net.apply(params, batch[0])  # (batch, 10)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch[1][:, None], axis=1))

    def observe(params, params0):
        return {"accuracy": jnp.mean(jnp.argmax(net.apply(params, X), axis=1) == y)}

    return init, loss, observe


def train_accuracy_grid(depths, sigma_w2s, *, width: int, steps: int, learning_rate: float, batch: int,
                        sigma_b2: float, seeds: int, data_seed: int = 0) -> np.ndarray:
    """Train accuracy on MNIST-5k after ``steps`` SGD steps, ``(depths, sigma_w2s, seeds)``; NaN where diverged.

    Inputs are scaled so that ``|x|^2 / d = 1`` on average (``q^1 = sigma_w^2 + sigma_b^2``, as in the
    random-network measurement); seed ``s`` of every cell is ``data_seed * 1000 + s``.
    """
    from learnmech.data import load_mnist5k
    from learnmech.nets import MLP
    from learnmech.train import OptimizerSpec, train

    X, y = load_mnist5k(dtype="float32")
    X = X / jnp.sqrt(jnp.mean(X * X))
    sgd = OptimizerSpec("sgd", {"learning_rate": learning_rate})
    out = []
    for depth in depths:
        net = MLP((X.shape[1],) + (width,) * depth + (10,), "tanh", "sp", dtype="float32")
        init, loss, observe = _mlp_problem(net, sigma_b2, X, y)
        result = train(init=init, loss=loss, data=(X, y), optimizer=sgd,
                       seeds=[data_seed * 1000 + s for s in range(seeds)],
                       grid={"sigma_w2": np.asarray(sigma_w2s, np.float32)}, steps=[steps], observe=observe,
                       record_loss=False, batch_size=batch, layout="map")
        out.append(np.asarray(result["accuracy"], np.float64)[:, :, -1])  # (sigmas, seeds)
    return np.asarray(out)
