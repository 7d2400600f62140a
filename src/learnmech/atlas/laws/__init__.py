"""Simple laws of macroscopic observables: the edge of stability (and, later, scaling laws)."""
