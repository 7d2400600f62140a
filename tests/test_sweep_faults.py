"""Faults end to end, on loopback only: a Ray worker killed mid-sweep, the driver killed, and a second
learnmech process on a busy store. Each sweep is a real `learnmech sweep` subprocess of 24 runs of
dln.modes (small networks; every point a different configuration, so every verdict value differs).

What must hold: every run appears exactly once and done; the local and Ray executors give identical
verdicts; the second process is refused in one line naming the busy store and its pid; and no process
started here is left running (each sweep carries a tag in its environment, which every process it
starts inherits: Ray's daemons and workers, the pool's workers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("ray")

from learnmech.store import Store  # noqa: E402

pytestmark = pytest.mark.slow

SPEC = """
claim = "dln.modes"
[set]
seeds = 2
points = 40
random_init = false
[grid]
u0 = [0.001, 0.002, 0.004, 0.008]
s = [[3.0, 1.0], [3.0, 1.5], [3.0, 2.0]]
eta = [0.01, 0.015]
"""
POINTS = 24
TIMEOUT = 420  # seconds for one sweep on 2 cores (about a minute is typical)


class Sweep:
    """A `learnmech sweep` subprocess whose stderr is read line by line in a thread."""

    def __init__(self, spec: Path, store: Path, *args: str) -> None:
        self.tag = uuid.uuid4().hex
        env = {**os.environ, "LEARNMECH_TEST_TAG": self.tag}
        cmd = [sys.executable, "-m", "learnmech.cli", "sweep", str(spec), "--store", str(store), "--workers", "2",
               "--json", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def finished(self) -> list[str]:
        return [line for line in self.lines if line.startswith("sweep: point ")]

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> None:
        end = time.monotonic() + timeout
        while len(self.finished()) < count:
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"sweep ended or stalled before {count} runs: {''.join(self.lines)[-3000:]}")
            time.sleep(0.1)

    def result(self) -> tuple[int, dict]:
        stdout = self.proc.stdout.read()
        rc = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=10)
        return rc, (json.loads(stdout) if stdout.strip() else {})

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)


def tagged(tag: str) -> list:
    """Live processes whose environment carries ``tag`` (zombies are dead and not counted)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get("LEARNMECH_TEST_TAG") == tag:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def assert_nothing_left(tag: str, grace: float = 20.0) -> None:
    end = time.monotonic() + grace
    while (left := tagged(tag)) and time.monotonic() < end:
        time.sleep(0.25)
    for p in left:  # clean up before failing, so that one failure does not leak into the next test
        p.kill()
    assert not left, f"processes left running: {[(p.pid, p.name()) for p in left]}"


def busy_worker(tag: str, seen: dict | None = None):
    """A Ray worker of this sweep that is executing a run (its process title names the task).

    Titles are read first (one cheap read per process) and the environment only of a busy worker:
    reading every process's environment takes long enough on a loaded machine for the sweep to end.
    ``seen`` counts the Ray process titles met (for the failure message).
    """
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"]
        if seen is not None and cmd and cmd[0].startswith("ray::"):
            seen[cmd[0][:30]] = seen.get(cmd[0][:30], 0) + 1
        if not cmd or not cmd[0].startswith("ray::execute_run"):
            continue
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get("LEARNMECH_TEST_TAG") == tag:
                return p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def verdicts(store: Path) -> dict[str, tuple]:
    with Store.open(store, create=False, read_only=True) as db:
        return {r.run_id: (r.status, tuple((db.verdict(r.run_id) or {}).get(k) for k in ("verdict", "metric", "value")))
                for r in db.runs()}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "learnmech.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "sweep.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def ray_sweep(spec, tmp_path_factory):
    """The sweep on a local Ray cluster: other processes try the busy store, then one busy worker is killed."""
    store = tmp_path_factory.mktemp("ray") / "sweep.duckdb"
    sweep = Sweep(spec, store, "--backend", "ray")
    try:
        sweep.wait_for(1)
        # The two other processes try the busy store while the victim is sought: one after the other they can take
        # longer on a loaded machine (each imports learnmech) than the whole sweep takes.
        busy: dict[str, subprocess.CompletedProcess] = {}
        tries = [threading.Thread(target=lambda k=k, a=a: busy.__setitem__(k, cli(*a)))
                 for k, a in (("runs", ("runs", "--store", str(store))),
                              ("check", ("check", "dln.modes", "--store", str(store))))]
        for t in tries:
            t.start()
        sweep.wait_for(6)
        victim, end, seen = None, time.monotonic() + 60, {}
        while victim is None and time.monotonic() < end:
            victim = busy_worker(sweep.tag, seen)
            time.sleep(0.01)
        assert victim is not None, (f"no Ray worker was found executing a run in 60 s ({len(sweep.finished())} of "
                                    f"{POINTS} runs finished; the sweep "
                                    f"{'had ended' if sweep.proc.poll() is not None else 'was running'}; Ray "
                                    f"processes seen: {seen})")
        done_before = len(sweep.finished())
        pids_before = {p.pid for p in tagged(sweep.tag)}
        victim.send_signal(signal.SIGKILL)
        for t in tries:
            t.join()
        rc, summary = sweep.result()
    except BaseException:
        sweep.kill()
        raise
    finally:
        assert_nothing_left(sweep.tag)
    print(f"\nray sweep: {done_before} runs done when worker {victim.pid} was killed; then "
          f"{summary.get('done')} done, {summary.get('failed')} failed, {summary.get('duplicates')} duplicates; "
          f"worker pids {sorted({r['pid'] for r in summary.get('runs', [])})}; busy: "
          + "; ".join(f"{k} rc {v.returncode}: {v.stderr.strip()}" for k, v in busy.items()))
    return {"store": store, "rc": rc, "summary": summary, "lines": sweep.finished(), "stderr": "".join(sweep.lines),
            "busy": busy, "victim": victim.pid, "done_before": done_before, "pids_before": pids_before,
            "driver": sweep.proc.pid}


@pytest.fixture(scope="module")
def local_sweep(spec, tmp_path_factory):
    """The same sweep on the local pool: the driver (and its process group) killed after 5 runs, then re-run."""
    store = tmp_path_factory.mktemp("local") / "sweep.duckdb"
    first = Sweep(spec, store)
    try:
        first.wait_for(5)
    finally:
        first.kill()
        assert_nothing_left(first.tag)
    after_kill = verdicts(store)
    second = Sweep(spec, store)
    try:
        rc, summary = second.result()
    finally:
        assert_nothing_left(second.tag)
    states = [status for status, _ in after_kill.values()]
    print(f"\nlocal sweep: driver killed with {states.count('done')} done and {states.count('running')} running; "
          f"re-run: {summary.get('skipped')} skipped, {summary.get('done')} done, {summary.get('failed')} failed")
    return {"store": store, "after_kill": after_kill, "rc": rc, "summary": summary, "lines": second.finished()}


def test_ray_worker_killed_every_run_done_exactly_once(ray_sweep):
    summary = ray_sweep["summary"]
    assert ray_sweep["rc"] == 0, ray_sweep["stderr"][-3000:]
    assert (summary["points"], summary["done"], summary["failed"], summary["duplicates"]) == (POINTS, POINTS, 0, 0)
    # one result line per run, each point once
    numbers = [line.split()[2] for line in ray_sweep["lines"]]
    assert sorted(numbers) == sorted(f"{i}/{POINTS}" for i in range(1, POINTS + 1))
    assert 6 <= ray_sweep["done_before"] < POINTS  # killed midway
    pids = {run["pid"] for run in summary["runs"]}
    assert ray_sweep["victim"] not in pids or ray_sweep["done_before"] > 0
    if POINTS - ray_sweep["done_before"] > 4:  # with only a few runs left the surviving worker may take them all
        assert pids - ray_sweep["pids_before"], "no run was computed by the worker Ray started after the kill"
    stored = verdicts(ray_sweep["store"])
    assert len(stored) == POINTS and {status for status, _ in stored.values()} == {"done"}


def test_second_process_on_a_busy_store_is_told_so(ray_sweep):
    pid = ray_sweep["driver"]
    assert set(ray_sweep["busy"]) == {"runs", "check"}
    for name, result in ray_sweep["busy"].items():
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, (name, result.stderr)
        assert len(lines) == 1 and "is in use by another learnmech process" in lines[0], (name, lines)
        assert f"(pid {pid})" in lines[0]
    # the refused `check` wrote nothing: the store holds the sweep's runs only
    assert len(verdicts(ray_sweep["store"])) == POINTS


def test_driver_killed_then_rerun_completes_the_rest(local_sweep):
    after = local_sweep["after_kill"]
    done = sum(status == "done" for status, _ in after.values())
    assert done >= 5 and all(status in ("done", "running") for status, _ in after.values())
    assert all(v[0] is not None for status, v in after.values() if status == "done")  # done means all results
    summary = local_sweep["summary"]
    assert local_sweep["rc"] == 0
    assert summary["skipped"] == done and summary["done"] == POINTS - done and summary["failed"] == 0
    stored = verdicts(local_sweep["store"])
    assert len(stored) == POINTS and {status for status, _ in stored.values()} == {"done"}


def test_local_and_ray_executors_give_identical_verdicts(ray_sweep, local_sweep):
    ray, local = verdicts(ray_sweep["store"]), verdicts(local_sweep["store"])
    assert ray.keys() == local.keys()
    assert ray == local  # status, verdict, metric and value, bit for bit
    values = [v[2] for _, v in ray.values()]
    assert len(set(values)) > POINTS // 2  # the points really differ
