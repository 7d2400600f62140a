"""Theories of hyperparameters: muP coordinate check and transfer, batch-size rules."""
