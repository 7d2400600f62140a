"""Kernel regimes: learning curves and convergence of infinite-width kernels."""
