"""Solvable models beyond linearisation: the soft committee machine and the implicit bias of gradient descent."""
