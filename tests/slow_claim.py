"""A claim whose measurement can be made slow, for the kill and interrupted-redo tests (run in a subprocess).

``python tests/slow_claim.py STORE SECONDS [--force] [--first CLAIM]`` runs the claim ``test.slow``
once against the store with :func:`learnmech.atlas.run_claim` (after running the registered claim
``CLAIM``'s tiny preset, when given); its measurement prints ``measuring`` once its run is marked
``running`` in the store and then sleeps ``SECONDS``, so a test can kill the process, or interrupt a
``--force`` redo, at a known state of the store. The curves and the verdict carry the sleep length,
so a test can tell the first result from a redo's.
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np

from learnmech.atlas.contract import Claim, ClaimConfig, Curve
from learnmech.atlas.rules import Check, Rules


class Config(ClaimConfig):
    value: float = 1.0


SLEEP = {"seconds": 0.0}

# A process started in the background by a shell without job control inherits SIGINT ignored (POSIX), and so
# would every test process under it: restore Python's handler, so that an interrupt is one whatever the parent.
signal.signal(signal.SIGINT, signal.default_int_handler)


def _predict(cfg):
    return {"line": Curve(np.arange(5.0), cfg.value * np.arange(5.0))}


def _measure(cfg, progress=None):
    print("measuring", flush=True)
    time.sleep(SLEEP["seconds"])
    return {"line": Curve(np.arange(5.0), (cfg.value + SLEEP["seconds"]) * np.arange(5.0))}


def _summarize(cfg, prediction, measurement):
    return {"slope": float(measurement["line"].y[0, 1])}


def _plot(cfg, prediction, measurement, summary, verdict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(measurement["line"].x, measurement["line"].y[0])
    return fig


CLAIM = Claim(id="test.slow", pillar="test", statement="a test claim", references=(), config=Config,
              presets={"tiny": {}, "quick": {}, "full": {}}, predict=_predict, measure=_measure,
              summarize=_summarize, rules=Rules(checks=(Check("slope", "slope", ">=", 1.0),)), plot=_plot)


def main(store_path: str, seconds: float, force: bool, first: str | None = None) -> None:
    from learnmech.atlas import get_claim, run_claim
    from learnmech.store import Store

    SLEEP["seconds"] = seconds
    with Store.open(store_path) as store:
        if first is not None:
            claim = get_claim(first)
            before = run_claim(claim, claim.make_config("tiny"), preset="tiny", store=store)
            print(f"{first} {before.state}", flush=True)
        outcome = run_claim(CLAIM, CLAIM.make_config("quick"), preset="quick", store=store, force=force)
    print(f"{outcome.state} {outcome.verdict.value}", flush=True)


if __name__ == "__main__":
    args = sys.argv[3:]
    main(sys.argv[1], float(sys.argv[2]), "--force" in args, args[args.index("--first") + 1] if "--first" in args else None)
