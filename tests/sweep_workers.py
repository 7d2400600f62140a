"""A stand-in sweep worker for tests/test_sweep_driver.py: light imports, so spawned processes start fast."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from learnmech import __version__
from learnmech.store import run_id
from learnmech.sweep.payload import RunPayload


def fake_worker(claim: str, preset: str, config: dict) -> RunPayload:
    """Done with one curve y = x * step, unless the config asks to raise or to kill this process."""
    mode = config.get("mode", "ok")
    marker = Path(config["marker"]) if "marker" in config else None
    if mode == "die-once" and not marker.exists():
        marker.write_text("died")
        os._exit(9)  # as if the process were killed
    if mode == "die-always":
        os._exit(9)
    if mode == "raise":
        raise RuntimeError("the worker function itself raised")
    steps = np.arange(4.0)
    series = {"source": np.array(["experiment"] * 4, dtype=object), "name": np.array(["y"] * 4, dtype=object),
              "member": np.zeros(4, np.int32), "step": steps, "value": config["x"] * steps}
    verdict = {"verdict": "holds", "metric": "x", "value": float(config["x"]), "threshold": 0.0, "reason": "stand-in"}
    return RunPayload(run_id(claim, config, __version__), claim, preset, "done", 0.01, series=series,
                      verdict=verdict, figures={"png": b"\x89PNG stand-in"}, host="here", pid=os.getpid())
