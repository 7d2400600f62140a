"""Figures for claims and fits, and the static HTML atlas (``write_report``)."""

from learnmech.report.figures import (COLORS, band, figure_bytes, finish_figure, new_figure, save_figure, theory_line,
                                      verdict_banner)
from learnmech.report.html import STATES, run_page_path, write_report
from learnmech.report.coord_plot import coord_check_figure, plot_coord_check
from learnmech.report.transfer import plot_transfer

__all__ = [
    # figure parts shared by every claim's plot
    "COLORS",
    "band",
    "figure_bytes",
    "finish_figure",
    "new_figure",
    "save_figure",
    "theory_line",
    "verdict_banner",
    # figures of one experiment that several commands draw
    "coord_check_figure",
    "plot_coord_check",
    "plot_transfer",
    # the atlas page
    "STATES",
    "run_page_path",
    "write_report",
]
