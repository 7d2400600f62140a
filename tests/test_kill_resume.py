"""A process killed mid-atlas loses nothing: two claims, the kill synchronised on the store's state.

The subprocess runs ``dln.modes`` (tiny) and then the test claim ``test.slow``
(``tests/slow_claim.py``), whose measurement prints ``measuring`` only after its run is marked
``running`` in the store; the test kills it (SIGKILL) at that line, so the store is in a known state
without any sleep: the first claim done, the second running. Run again, the first is skipped and
the second is redone to completion.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from learnmech.store import Store

HERE = Path(__file__).parent


def _two_claims(store: Path, seconds: float) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE / "slow_claim.py"), str(store), str(seconds), "--first", "dln.modes"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _statuses(store: Path) -> dict[str, str]:
    with Store.open(store, create=False, read_only=True) as db:
        return {r.claim: r.status for r in db.runs()}


def test_a_killed_run_is_redone_and_a_finished_one_skipped(tmp_path):
    store = tmp_path / "learnmech.duckdb"
    proc = _two_claims(store, 600.0)
    assert proc.stdout.readline().strip() == "dln.modes done"
    assert proc.stdout.readline().strip() == "measuring"  # test.slow is marked running: kill it now
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _statuses(store) == {"dln.modes": "done", "test.slow": "running"}

    again = _two_claims(store, 0.0)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.splitlines() == ["dln.modes skipped", "measuring", "done 1.0"]
    assert _statuses(store) == {"dln.modes": "done", "test.slow": "done"}
