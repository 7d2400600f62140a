"""Universal behaviours: regularities seen across architectures, seeds and data sets."""
