"""Figures for claims and fits, and the static HTML atlas (``write_report``)."""

from learnmech.report.figures import (COLORS, band, figure_bytes, finish_figure, new_figure, save_figure, theory_line,
                                      verdict_banner)
from learnmech.report.html import STATES, run_page_path, write_report

__all__ = ["COLORS", "STATES", "band", "figure_bytes", "finish_figure", "new_figure", "run_page_path", "save_figure",
           "theory_line", "verdict_banner", "write_report"]
