"""A claim whose measurement can be made slow, for the interrupted-redo tests (run in a subprocess).

``python tests/slow_claim.py STORE SECONDS [--force]`` runs the claim ``test.slow`` once against the
store with :func:`learnmech.atlas.run_claim`; its measurement prints ``measuring`` and then sleeps
``SECONDS``, so a test can interrupt a ``--force`` redo while it runs. The curves and the verdict
carry the sleep length, so a test can tell the first result from a redo's.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from learnmech.atlas.contract import Claim, ClaimConfig, Curve, Verdict


class Config(ClaimConfig):
    value: float = 1.0


SLEEP = {"seconds": 0.0}


def _predict(cfg):
    return {"line": Curve(np.arange(5.0), cfg.value * np.arange(5.0))}


def _measure(cfg, progress=None):
    print("measuring", flush=True)
    time.sleep(SLEEP["seconds"])
    return {"line": Curve(np.arange(5.0), (cfg.value + SLEEP["seconds"]) * np.arange(5.0))}


def _judge(cfg, prediction, measurement):
    value = float(measurement["line"].y[0, 1])
    return Verdict(status="holds", metric="slope", value=value, threshold=1.0, reason="a test claim")


def _plot(cfg, prediction, measurement, verdict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(measurement["line"].x, measurement["line"].y[0])
    return fig


CLAIM = Claim(id="test.slow", pillar="test", statement="a test claim", references=(), config=Config,
              presets={"quick": {}, "full": {}}, predict=_predict, measure=_measure, judge=_judge, plot=_plot)


def main(store_path: str, seconds: float, force: bool) -> None:
    from learnmech.atlas import run_claim
    from learnmech.store import Store

    SLEEP["seconds"] = seconds
    with Store.open(store_path) as store:
        outcome = run_claim(CLAIM, CLAIM.make_config("quick"), preset="quick", store=store, force=force)
    print(f"{outcome.state} {outcome.verdict.value}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), "--force" in sys.argv[3:])
