"""Figures for claims and fits (and, later, the HTML atlas page)."""

from learnmech.report.figures import COLORS, band, new_figure, save_figure, theory_line, verdict_banner

__all__ = ["COLORS", "band", "new_figure", "save_figure", "theory_line", "verdict_banner"]
