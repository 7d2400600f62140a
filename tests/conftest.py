"""Test-session configuration: float64 everywhere (theories are compared to 1e-6 and tighter), and
one persistent JAX compilation cache shared by the test process and the CLI subprocesses it starts
(the quick atlas runs twice in tests/test_claims.py), so that a program is compiled once per session.
Compiled programs are keyed by their full HLO, so a cached entry is only reused for the same program."""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"learnmech-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
