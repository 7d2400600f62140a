"""Limits of wide networks: linearised (kernel) training and its validity."""
