"""A process killed mid-atlas loses nothing: two claims, the kill synchronised on the store's state.

The subprocess runs ``kernel.hea`` (tiny: the cheapest registered claim to run in a fresh process, and
any registered claim gives the same state) and then the test claim ``test.slow``
(``tests/slow_claim.py``), whose measurement prints ``measuring`` only after its run is marked
``running`` in the store; the test kills it (SIGKILL) at that line, so the store is in a known state
without any sleep: the first claim done, the second running. Run again (in this process, through the
same ``slow_claim.main``: the resume reads only the store the killed process left), the first is
skipped and the second is redone to completion.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

from learnmech.store import Store

HERE = Path(__file__).parent
FIRST = "kernel.hea"


def _two_claims(store: Path, seconds: float) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE / "slow_claim.py"), str(store), str(seconds), "--first", FIRST]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _slow_claim_module():
    """tests/slow_claim.py imported here, the SIGINT handler this process had left as it was."""
    previous = signal.getsignal(signal.SIGINT)  # the module restores Python's handler for its own process
    spec = importlib.util.spec_from_file_location("learnmech_test_slow_claim", HERE / "slow_claim.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the Config's annotations through its module
    try:
        spec.loader.exec_module(module)
    finally:
        signal.signal(signal.SIGINT, previous)
    return module


def _statuses(store: Path) -> dict[str, str]:
    with Store.open(store, create=False, read_only=True) as db:
        return {r.claim: r.status for r in db.runs()}


def test_a_killed_run_is_redone_and_a_finished_one_skipped(tmp_path, capsys):
    store = tmp_path / "learnmech.duckdb"
    proc = _two_claims(store, 600.0)
    assert proc.stdout.readline().strip() == f"{FIRST} done"
    assert proc.stdout.readline().strip() == "measuring"  # test.slow is marked running: kill it now
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _statuses(store) == {FIRST: "done", "test.slow": "running"}

    module = sys.modules.get("learnmech_test_slow_claim") or _slow_claim_module()
    capsys.readouterr()
    module.main(str(store), 0.0, False, FIRST)
    assert capsys.readouterr().out.splitlines() == [f"{FIRST} skipped", "measuring", "done 1.0"]
    assert _statuses(store) == {FIRST: "done", "test.slow": "done"}
