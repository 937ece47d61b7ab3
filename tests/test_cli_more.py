"""The dask-condordag commands added for pools: end to end, on the local
runner and on the stand-in HTCondor tools (tests/fake_condor)."""

import os
import subprocess
import sys
import time

import pytest
from dask import delayed

import dask_condordag

from . import fake_condor
from .helpers import add, boom, inc


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dask_condordag.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def failed(tmp_path):
    wf = dask_condordag.write([delayed(inc)(delayed(boom)(3)), delayed(add)(delayed(inc)(1), 2)],
                              path=tmp_path / "wf")
    wf.run()
    return wf


@pytest.mark.usefixtures("one_node_per_task")
def test_status_errors_wait_result_of_failed_run(failed):
    st = cli("status", failed.path)
    assert st.returncode == 1
    assert "2 done, 1 failed, 1 pending of 4 nodes" in st.stdout
    assert "DAGMan: failed" in st.stdout and "1 futile" in st.stdout
    e = cli("errors", failed.path)
    assert e.returncode == 1 and "ZeroDivisionError: boom on 3" in e.stdout
    w = cli("wait", failed.path)
    assert w.returncode == 1 and "ZeroDivisionError" in w.stderr
    assert "wf.dag.rescue001" in w.stderr
    assert cli("result", failed.path).returncode == 1


@pytest.mark.usefixtures("one_node_per_task")
def test_inspect(failed):
    nodes = failed.nodes
    add_node = next(n for n in nodes if n.startswith("add_"))
    r = cli("inspect", failed.path, add_node)
    assert r.returncode == 0, r.stderr
    assert "tests.helpers.add(<inc_" in r.stdout and ", 2)" in r.stdout
    assert "reads:" in r.stdout and "results/inc_" in r.stdout and "(ok)" in r.stdout
    assert "= 4" in r.stdout and "pickles are code" in r.stdout
    # by key, as the manifest stores it, and by the key's plain text
    key = nodes[add_node]["tasks"][add_node]
    assert add_node in cli("inspect", failed.path, key).stdout
    assert add_node in cli("inspect", failed.path, eval(key)).stdout
    boom_node = next(n for n in nodes if n.startswith("boom_"))
    b = cli("inspect", failed.path, boom_node)
    assert b.returncode == 1
    assert "tests.helpers.boom(3)" in b.stdout and "error report: builtins.ZeroDivisionError" in b.stdout
    assert 'raise ZeroDivisionError(f"boom on {x}")' in b.stdout
    futile = next(n for n in nodes if n.startswith("inc_") and boom_node in nodes[n]["parents"])
    f = cli("inspect", failed.path, futile)
    assert "(error report)" in f.stdout and "not there yet" in f.stdout
    bad = cli("inspect", failed.path, "no-such-node")
    assert bad.returncode == 2 and str(failed.path) in bad.stderr


@pytest.mark.usefixtures("one_node_per_task")
def test_graph(failed, tmp_path):
    g = cli("graph", failed.path)
    assert g.returncode == 0 and g.stdout.startswith('digraph "wf" {')
    assert g.stdout.count(" -> ") == 2 and "fillcolor=salmon" in g.stdout
    out = tmp_path / "g.dot"
    assert cli("graph", failed.path, "-o", out).returncode == 0
    assert out.read_text() == g.stdout
    svg = cli("graph", failed.path, "-o", tmp_path / "g.svg")
    assert svg.returncode == 0
    if (tmp_path / "g.svg").exists():  # graphviz installed
        assert "<svg" in (tmp_path / "g.svg").read_text()
    else:
        assert "DOT written to" in svg.stdout and (tmp_path / "g.dot").exists()


@pytest.mark.parametrize("cmd", ["submit", "wait", "remove", "inspect", "graph", "doctor"])
def test_not_a_workflow(tmp_path, cmd):
    (tmp_path / "empty").mkdir()
    args = [cmd, tmp_path / "empty"] + (["x"] if cmd == "inspect" else [])
    r = cli(*args)
    assert r.returncode == 2 and str(tmp_path / "empty") in r.stderr
    assert cli(cmd, tmp_path / "nope", *args[2:]).returncode == 2


def test_submit_without_htcondor(tmp_path, monkeypatch):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    env = {**os.environ, "PATH": str(tmp_path)}  # no condor_submit_dag here
    r = subprocess.run([sys.executable, "-m", "dask_condordag.cli", "submit", str(wf.path)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "condor_submit_dag is not on PATH" in r.stderr


@pytest.mark.usefixtures("one_node_per_task")
def test_submit_wait_status_remove_with_stand_in_htcondor(tmp_path, monkeypatch):
    state = fake_condor.install(tmp_path, monkeypatch)  # PATH for this test's commands
    try:
        quick = dask_condordag.write(delayed(add)(delayed(inc)(1), 2), path=tmp_path / "quick",
                                     node_status_interval=1)
        s = cli("submit", quick.path)
        assert s.returncode == 0, s.stderr
        assert "as DAGMan job 1001" in s.stdout
        w = cli("wait", quick.path, "--poll", "0.1")
        assert w.returncode == 0, w.stderr
        assert "2 done, 0 idle, 0 running, 0 held, 0 failed of 2 nodes" in w.stderr
        assert cli("result", quick.path).stdout.strip() == "4"
        st = cli("status", quick.path)
        assert st.returncode == 0 and "DAGMan: done (DAGMan job 1001)" in st.stdout

        slow = dask_condordag.write(delayed(time.sleep)(30), path=tmp_path / "slow",
                                    node_status_interval=1)
        assert cli("submit", slow.path).returncode == 0
        assert cli("submit", slow.path).returncode == 1  # already in the queue
        t = cli("wait", slow.path, "--timeout", "0.5", "--poll", "0.1")
        assert t.returncode == 3 and "still running" in t.stderr
        assert "DAGMan: running (DAGMan job 1002)" in cli("status", slow.path).stdout
        (node,) = slow.nodes
        fake_condor.hold(state, 1002, node, "Job has gone over memory limit of 2048 megabytes.")
        h = cli("status", slow.path)
        assert h.returncode == 1 and "HELD job" in h.stdout and "memory limit" in h.stdout
        e = cli("errors", slow.path)
        assert "is ON HOLD: Job has gone over memory limit" in e.stdout
        hw = cli("wait", slow.path, "--hold-timeout", "0", "--poll", "0.1")
        assert hw.returncode == 1 and f"node {node}" in hw.stderr and "condor_release" in hw.stderr
        r = cli("remove", slow.path)
        assert r.returncode == 0 and "All jobs in cluster 1002 have been marked for removal" in r.stdout
        assert "DAGMan: not in the queue" in cli("status", slow.path).stdout
    finally:
        fake_condor.stop_all(state)


def test_doctor_command_is_wired(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    r = cli("doctor", wf.path)
    assert r.returncode in (0, 1), r.stderr
    assert r.stdout.strip()
