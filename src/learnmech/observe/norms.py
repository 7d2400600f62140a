"""Parameter norms and relative weight movement, per leaf of any parameter pytree."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["leaf_names", "parameter_norms", "relative_movement"]


def leaf_names(params) -> list[str]:
    """Readable names of the leaves in flattening order, e.g. ``"[0]['w']"`` -> ``"0.w"``."""
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    return [".".join(_key(k) for k in path) or "param" for path, _ in paths]


def _key(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def parameter_norms(params) -> jax.Array:
    """Frobenius norm of every leaf, ``(n_leaves,)`` in :func:`leaf_names` order."""
    return jnp.stack([jnp.linalg.norm(jnp.ravel(x)) for x in jax.tree.leaves(params)])


def relative_movement(params, params0) -> jax.Array:
    """``||W_t - W_0||_F / ||W_0||_F`` per leaf, ``(n_leaves,)``.

    A leaf that starts at zero (a bias) is reported relative to 1 instead (its absolute
    movement), so the ratio stays finite.
    """
    out = []
    for w, w0 in zip(jax.tree.leaves(params), jax.tree.leaves(params0)):
        n0 = jnp.linalg.norm(jnp.ravel(w0))
        out.append(jnp.linalg.norm(jnp.ravel(w - w0)) / jnp.where(n0 > 0, n0, 1.0))
    return jnp.stack(out)
