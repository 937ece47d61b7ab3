"""The rough edges a new user meets on the command line (issue 9, item 6),
driven end to end: through ``cli.main([...])`` in this process and through
the installed ``dask-condordag`` script."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import cli

from .helpers import add, inc


def script() -> str:
    """The console script installed with this interpreter (a ``dask-condordag``
    elsewhere on PATH may be another install's)."""
    exe = Path(sys.executable).with_name("dask-condordag")
    assert exe.exists(), "pip install -e . installs the dask-condordag script"
    return str(exe)


def console(*args, env=None):
    """The installed console script, as a user runs it."""
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture
def wf(tmp_path):
    return dask_condordag.write(delayed(add)(delayed(inc)(1), 2), path=tmp_path / "wf")


@pytest.mark.parametrize("jobs", ["-1", "0", "two"])
def test_run_jobs_must_be_one_or_more(wf, jobs, capsys):
    assert cli.main(["run", str(wf.path), "-j", jobs]) == 2
    err = capsys.readouterr().err
    assert "-j/--jobs" in err and "Traceback" not in err
    if jobs != "two":
        assert f"{jobs} jobs at once: give 1 or more, or omit -j to use all" in err
    assert wf.status()["done"] == 0  # nothing ran


def test_run_jobs_console_script(wf):
    r = console("run", wf.path, "-j", "-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "omit -j to use all" in r.stderr
    r = console("run", wf.path, "-j", "0")
    assert r.returncode == 2 and "omit -j to use all" in r.stderr
    ok = console("run", wf.path, "-j", "1", "-q")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.usefixtures("one_node_per_task")
def test_commands_take_the_dag_file(wf, capsys):
    assert cli.main(["status", str(wf.dag_path)]) == 0
    assert "0 done, 0 failed, 2 pending of 2 nodes" in capsys.readouterr().out
    assert cli.main(["run", str(wf.dag_path), "-q"]) == 0
    assert cli.main(["result", str(wf.dag_path)]) == 0
    assert capsys.readouterr().out.strip() == "4"
    r = console("status", wf.dag_path)
    assert r.returncode == 0 and "2 done, 0 failed, 0 pending of 2 nodes" in r.stdout


def test_another_file_of_a_workflow_says_what_to_pass(wf, capsys):
    sub = wf.path / f"{wf.name}.sub"
    assert cli.main(["status", str(sub)]) == 2
    err = capsys.readouterr().err
    assert str(sub) in err and f"pass the workflow directory ({wf.path})" in err
    r = console("status", wf.path / "manifest.json")
    assert r.returncode == 2 and "not its DAG file" in r.stderr and "Errno" not in r.stderr


@pytest.mark.parametrize("cmd", ["run", "status", "result", "graph"])
def test_arbitrary_file_is_refused(tmp_path, cmd, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("JOB a a.sub\nthis is not a workflow\n")
    assert cli.main([cmd, str(notes)]) == 2
    err = capsys.readouterr().err
    assert f"{notes} is a file, not a dask-condordag workflow" in err
    assert "manifest.json" in err
    assert notes.read_text() == "JOB a a.sub\nthis is not a workflow\n"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]  # nothing written next to it
    r = console(cmd, notes)
    assert r.returncode == 2 and f"{notes} is a file" in r.stderr


def test_missing_path(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def _slow_workflow(tmp_path):
    return dask_condordag.write(
        delayed(sum)([delayed(time.sleep)(0.5 + i / 10) for i in range(4)]
                     + [delayed(time.sleep)(20)]),
        path=tmp_path / "slow", node_status_interval=1)


def _start_run(wf, tmp_path):
    """``dask-condordag run`` in the background, its jobs' scratch folders in
    a temp folder of this test's own; returns once the node status file shows
    jobs running."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch)}
    p = subprocess.Popen([script(), "run", str(wf.path), "-j", "2", "-q"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = wf.status()
        if st["dagman"] == "running" and st["jobs"] and st["jobs"]["running"]:
            return p
        time.sleep(0.1)
    p.kill()
    pytest.fail(f"the run did not start: {p.communicate()[1]}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_status_of_an_interrupted_local_run(tmp_path, sig, capsys):
    wf = _slow_workflow(tmp_path)
    p = _start_run(wf, tmp_path)
    try:
        assert cli.main(["status", str(wf.path)]) == 0
        out = capsys.readouterr().out
        assert f"DAGMan: running (local runner: pid {p.pid} on" in out
        assert "jobs: " in out and "running" in out
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert cli.main(["status", str(wf.path)]) == 4
    out = capsys.readouterr().out
    assert "DAGMan: interrupted: a local run stopped before the DAG finished" in out
    assert f"resume it: dask-condordag run {wf.path}" in out
    assert "jobs:" not in out and "node status file" not in out  # no stale numbers
    s = wf.status()
    assert s["dagman"] == "interrupted" and s["jobs"] is None and s["nodes"] is None
    r = console("status", wf.path)
    assert r.returncode == 4 and "interrupted" in r.stdout
    # a DAGMan started by hand (condor_submit_dag, no dagman.cluster) keeps
    # <dag>.lock without flock: that may be running, so it is not "interrupted"
    (wf.path / f"{wf.dag_path.name}.condor.sub").write_text("universe = scheduler\n")
    (wf.path / f"{wf.dag_path.name}.lock").write_text("ProcessId = 1234\n")
    assert cli.main(["status", str(wf.path)]) == 0
    assert "DAGMan: unknown" in capsys.readouterr().out
    if sig == signal.SIGKILL:  # its jobs live on a little: let them end
        time.sleep(2)


def test_status_of_a_finished_local_run_is_not_interrupted(wf, capsys):
    assert cli.main(["run", str(wf.path), "-q"]) == 0
    assert cli.main(["status", str(wf.path)]) == 0
    out = capsys.readouterr().out
    assert "DAGMan: done" in out and "interrupted" not in out


def test_top_level_help_lists_each_command_once(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^    ([a-z]+)  ", out, re.M)
    assert listed == ["run", "submit", "wait", "status", "errors", "result", "remove",
                      "inspect", "graph", "doctor", "plan", "report", "gc"], out
    assert out.count("{run,") == 0
    assert "Exit codes:" in out and "4 ``status``" in out
    r = console("--help")
    assert r.returncode == 0 and r.stdout == out


def test_no_command_is_bad_usage(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_graph_label_quotes_the_key_once(tmp_path, capsys):
    w = dask_condordag.write(delayed(inc)(1, dask_key_name="load-a1"), path=tmp_path / "g")
    assert cli.main(["graph", str(w.path)]) == 0
    out = capsys.readouterr().out
    assert "\\n'load-a1'\"" in out and "''load" not in out
    tup = dask_condordag.write(delayed(inc)(1), path=tmp_path / "t")
    assert cli.main(["graph", str(tup.path)]) == 0
    (key,) = tup.nodes[next(iter(tup.nodes))]["tasks"].values()
    assert "\\n" + key[:40] in capsys.readouterr().out


def test_result_of_a_failed_task_exits_1_with_the_remote_traceback(tmp_path, capsys):
    # the task's own exception comes back (not one of ours): the CLI still
    # reports it with its remote traceback and exit code 1, not a traceback of its own
    from dask import delayed

    from .helpers import boom

    wf = dask_condordag.write(delayed(boom)(3), path=tmp_path / "wf")
    wf.run(progress=False)
    capsys.readouterr()
    assert cli.main(["result", str(wf.path)]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError: boom on 3" in err
    assert "Remote traceback:" in err and "in boom" in err
