"""The figure of a monitored run: every logged curve against the training step.

Contract. ``monitor_figure(columns, title)`` draws the stored curves of one run (the columns of
``Store.series``) as a row of panels sharing the step axis: ``loss``; ``sharpness``; the noise
scale ``B_simple``; the per-layer coordinate RMS (``coord_rms/<layer>``, one line per layer); and
one panel for every other scalar the loop logged (at most ``MAX_OTHER`` lines, the rest named in
the panel). Several members are drawn as a mean line with a 10-90% band
(:func:`learnmech.report.figures.band`). A panel whose values are all positive and span more than
a decade uses a log scale. Beside the per-step noise scale (a ratio of two noisy unbiased estimates,
negative when the ``|G|^2`` estimate is), the noise panel draws, dashed, the ratio of their running
means over the steps so far, the pooled estimate McCandlish et al. (2018, arXiv:1812.06162, App.
A.1) recommend.
It returns the matplotlib figure, or None when the run has no curve.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["MAX_OTHER", "PANELS", "monitor_figure"]

MAX_OTHER = 8
# panel title, y label, and whether a curve name belongs to it
PANELS = (
    ("loss", "loss", lambda name: name == "loss"),
    ("sharpness", "lambda_max(H)", lambda name: name == "sharpness"),
    ("gradient noise scale", "B_simple (examples)", lambda name: name == "noise_scale"),
    ("coordinate size", "RMS of the layer's entries", lambda name: name.startswith("coord_rms/")),
)
_SKIPPED = ("noise_scale/",)  # the noise scale's numerator and denominator: stored, not drawn


def _curve(columns: Mapping[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``(T,)`` and values ``(members, T)`` (NaN where a member has no point) of one curve."""
    sel = np.asarray(columns["name"], dtype=str) == name
    steps, members = np.asarray(columns["step"])[sel], np.asarray(columns["member"])[sel]
    x, col = np.unique(steps, return_inverse=True)
    ids, row = np.unique(members, return_inverse=True)
    y = np.full((ids.size, x.size), np.nan)
    y[row, col] = np.asarray(columns["value"])[sel]
    return x, y


def _draw(ax, columns, names, colors) -> None:
    from learnmech.report.figures import band

    finite = []
    for i, name in enumerate(names):
        x, y = _curve(columns, name)
        finite.append(y[np.isfinite(y)])
        label = name.removeprefix("coord_rms/")
        if y.shape[0] == 1:
            ax.plot(x, y[0], color=colors[i % len(colors)], linewidth=1.4, marker="." if x.size < 30 else None,
                    label=label)
        else:
            band(ax, x, y, color=colors[i % len(colors)], label=label)
    values = np.concatenate(finite)
    if values.size and np.all(values > 0) and values.max() > 10 * values.min():
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    if len(names) > 1:
        ax.legend(fontsize=7)


def _pooled_noise(ax, columns) -> None:
    """The ratio of the running means of ``tr(Sigma)`` and ``|G|^2`` (member 0), dashed."""
    x, trace = _curve(columns, "noise_scale/trace_cov")
    x2, grad = _curve(columns, "noise_scale/grad_sq_norm")
    if x.size == 0 or not np.array_equal(x, x2):
        return
    with np.errstate(all="ignore"):
        pooled = np.cumsum(trace[0]) / np.cumsum(grad[0])
    ax.plot(x, pooled, linestyle="--", color="black", linewidth=1.2, label="ratio of running means")
    ax.legend(fontsize=7)


def _panels(names: list[str]) -> list[tuple[str, str, list[str]]]:
    """(title, y label, curve names) of each panel to draw, in order."""
    out, used = [], set()
    for title, ylabel, belongs in PANELS:
        chosen = [n for n in names if belongs(n)]
        if chosen:
            out.append((title, ylabel, chosen))
            used.update(chosen)
    others = [n for n in names if n not in used and not n.startswith(_SKIPPED)]
    if others:
        extra = len(others) - MAX_OTHER
        title = "other scalars" + (f" (+{extra} not drawn)" if extra > 0 else "")
        out.append((title, "value", others[:MAX_OTHER]))
    return out


def monitor_figure(columns: Mapping[str, np.ndarray], title: str):
    """The run's figure (module docstring), or None when ``columns`` hold no curve."""
    names = sorted(set(np.asarray(columns["name"], dtype=str).tolist()))
    panels = _panels(names)
    if not panels:
        return None
    from learnmech.report.figures import COLORS, new_figure

    fig, axes = new_figure(len(panels), title=title, width=3.9, height=3.2)
    for ax, (panel_title, ylabel, chosen) in zip(axes, panels):
        _draw(ax, columns, chosen, COLORS)
        if chosen == ["noise_scale"]:
            _pooled_noise(ax, columns)
        ax.set_title(panel_title, fontsize=10)
        ax.set_ylabel(ylabel)
    return fig
