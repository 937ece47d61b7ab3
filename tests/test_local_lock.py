"""The runner's lock (``<dag>.lock``) with real processes racing for it."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

CONTENDER = textwrap.dedent("""\
    import fcntl, os, sys, time
    from pathlib import Path

    role, dag, sig = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def wait_for(name):
        while not (sig / name).exists():
            time.sleep(0.01)

    def mark(name, text=""):
        (sig / (name + ".tmp")).write_text(text)
        os.replace(sig / (name + ".tmp"), sig / name)

    if role == "B":  # open the lock file, then stall before flock until told
        real = fcntl.flock

        def stalled(fd, op):
            fcntl.flock = real
            mark("B-opened")
            wait_for("B-go")
            return real(fd, op)

        fcntl.flock = stalled

    from dask_condordag.exceptions import RunnerError
    from dask_condordag.local.files import Lock as _Lock

    try:
        with _Lock(dag):
            mark(role + "-held")
            wait_for(role + "-release")
        mark(role + "-released")
    except RunnerError as e:
        mark(role + "-refused", str(e))
""")


def _wait_for(sig, *names, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in names:
            if (sig / name).exists():
                return name
        time.sleep(0.01)
    pytest.fail(f"none of {names} appeared in {timeout} s: {sorted(os.listdir(sig))}")


def test_three_runners_racing_for_the_lock_never_both_hold_it(tmp_path):
    """A holds the lock; B opens the lock file and stalls before flock; A
    finishes (its lock file goes); C creates a new lock file and takes it;
    then B's flock on the old, unlinked file succeeds. B must notice that
    the file it locked is no longer the lock and refuse, since C holds it."""
    dag = tmp_path / "w.dag"
    dag.write_text("JOB a a.sub\n")
    sig = tmp_path / "sig"
    sig.mkdir()
    script = tmp_path / "contender.py"
    script.write_text(CONTENDER)
    procs = {}

    def start(role):
        procs[role] = subprocess.Popen([sys.executable, str(script), role, str(dag), str(sig)])

    try:
        start("A")
        _wait_for(sig, "A-held")
        start("B")
        _wait_for(sig, "B-opened")
        (sig / "A-release").write_text("")
        _wait_for(sig, "A-released")
        start("C")
        assert _wait_for(sig, "C-held", "C-refused") == "C-held"
        (sig / "B-go").write_text("")
        got = _wait_for(sig, "B-held", "B-refused")
        assert got == "B-refused", "B and C both hold the lock"
        assert f"pid {procs['C'].pid}" in (sig / "B-refused").read_text()
    finally:
        for name in ("A-release", "B-go", "B-release", "C-release"):
            (sig / name).write_text("")
        for p in procs.values():
            p.wait(timeout=30)
    assert not dag.with_name("w.dag.lock").exists()
