"""Put a stand-in condor_submit_dag / condor_q / condor_rm on PATH for one test.

    state = install(tmp_path, monkeypatch)   # PATH and $FAKE_CONDOR_STATE, this test only
    hold(state, cluster, node, "Transfer output files failure ...")
    stop_all(state)                          # condor_rm any fake DAGMan still running

The commands are sh wrappers running ``fake_condor.py`` with this
interpreter (``sys.executable``), so they see the same installed packages.
Collection has already happened when a test changes PATH, so tests marked
``condor`` stay skipped (conftest.py decides at collection).
"""

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

FAKE = Path(__file__).with_name("fake_condor.py")
COMMANDS = ("condor_submit_dag", "condor_q", "condor_rm")


def install(tmp_path, monkeypatch) -> Path:
    bindir = Path(tmp_path) / "fake-condor-bin"
    bindir.mkdir(exist_ok=True)
    for name in COMMANDS:
        p = bindir / name
        p.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {name} "$@"\n')
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    state = Path(tmp_path) / "fake-condor-state"
    state.mkdir(exist_ok=True)
    monkeypatch.setenv("FAKE_CONDOR_STATE", str(state))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return state


def hold(state, cluster, node, reason, *, since=None, code=12):
    """Make condor_q show ``node``'s job of DAGMan job ``cluster`` as held."""
    p = Path(state) / "holds.json"
    holds = json.loads(p.read_text()) if p.exists() else {}
    holds.setdefault(str(cluster), []).append(
        {"node": node, "reason": reason, "code": code,
         "since": int(time.time() if since is None else since)})
    p.write_text(json.dumps(holds))


def stop_all(state) -> None:
    """Remove every fake DAGMan still running as condor_rm does (SIGUSR1: the
    runner kills its jobs and removes their scratch folders), then SIGKILL
    whatever is left of its process group after 10 s."""
    p = Path(state) / "state.json"
    if not p.exists():
        return
    pids = [info["pid"] for info in json.loads(p.read_text())["clusters"].values()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.time() + 10
    for pid in pids:
        while _running(pid) and time.time() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _running(pid) -> bool:
    """True while ``pid`` runs (a zombie our parent has not reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
