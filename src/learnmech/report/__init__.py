"""Figures for claims and fits (and, later, the HTML atlas page)."""

from learnmech.report.figures import COLORS, band, finish_figure, new_figure, save_figure, theory_line, verdict_banner

__all__ = ["COLORS", "band", "finish_figure", "new_figure", "save_figure", "theory_line", "verdict_banner"]
