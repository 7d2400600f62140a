"""Test-session configuration: float64 everywhere (theories are compared to 1e-6 and tighter), and
one persistent JAX compilation cache shared by the test process and the CLI subprocesses it starts
(tests/test_kill_resume.py and the CLI tests start subprocesses), so that a program is compiled once per session.
Compiled programs are keyed by their full HLO, so a cached entry is only reused for the same program."""

import importlib.util
import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"learnmech-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


import time  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_payload(tmp_path_factory):
    """``tiny_payload(claim)``: ``execute_run(claim, "tiny", <the tiny config>)``, computed once per test run.

    The conformance test (tests/test_claim_conformance.py) runs every claim's tiny preset; a claim's own
    test file that checks the same run's numbers gets it from here instead of running it again. Under
    pytest-xdist the workers of one run share a folder (the parent of each worker's base temporary
    folder, which belongs to this run only): the first worker to finish a run writes it there, atomically,
    and the others read it. Two workers asking at the same moment both compute it (no lock, no waiting).
    """
    import pickle

    from learnmech.atlas.execute import execute_run

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tiny-payloads"
    shared.mkdir(exist_ok=True)
    seen = {}

    def get(claim):
        if claim.id not in seen:
            path = shared / f"{claim.id}.pickle"
            if path.exists():
                seen[claim.id] = pickle.loads(path.read_bytes())
            else:
                payload = execute_run(claim, "tiny", claim.make_config("tiny").model_dump(mode="json"))
                part = path.with_name(f"{path.name}.{os.getpid()}")
                part.write_bytes(pickle.dumps(payload))
                os.replace(part, path)  # readers see a whole file or none
                seen[claim.id] = payload
        return seen[claim.id]

    return get


@pytest.fixture(scope="session", autouse=True)
def no_process_left_running():
    """At the end of the session no process started by a test is still running (zombies are not running)."""
    yield
    try:
        import psutil
    except ImportError:  # psutil comes with the test extra; without it this check is skipped
        return
    me = psutil.Process()
    deadline = time.monotonic() + 15
    while True:
        left = [p for p in me.children(recursive=True) if _alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    for p in left:
        p.kill()
    assert not left, f"test processes still running at the end of the session: {[(p.pid, p.name()) for p in left]}"


def _alive(process) -> bool:
    """Running, and not multiprocessing's resource tracker (a helper of this process that ends with it)."""
    import psutil

    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return not any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    except psutil.NoSuchProcess:
        return False


# Users' models written with optional frameworks: not collected (as doctest modules) where their
# framework is missing; the tests that use them skip with importorskip.
collect_ignore = [f"models_{name}.py" for name, module in
                  (("torch", "torch"), ("equinox", "equinox"), ("nnx", "flax"), ("transformer", "flax"))
                  if importlib.util.find_spec(module) is None]
