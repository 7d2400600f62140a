"""Test-session configuration: float64 everywhere (theories are compared to 1e-6 and tighter)."""

import jax

jax.config.update("jax_enable_x64", True)
