"""Faults on the local runner, with real processes and real signals: jobs that
die, time out or are killed while writing; the runner itself killed and
started again; two runners at once. In every case no result is lost or
duplicated, the rerun completes, and the values equal scheduler="sync"."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import names
from dask_condordag.results import read_error, verify


def armed(flag):
    """True while the fault should happen (the flag file exists)."""
    return os.path.exists(flag)


def die_with_exit(flag, x):
    if armed(flag):
        os._exit(3)
    return x * 2


def die_with_abort(flag, x):
    if armed(flag):
        os.abort()
    return x * 2


def die_while_writing(flag, x):
    """Return a big value and SIGKILL ourselves as soon as the worker starts
    writing it (its temporary file appears)."""
    import glob
    import threading

    if armed(flag):
        def killer():
            while not glob.glob("results/*.tmp-*"):
                time.sleep(0.0005)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=killer, daemon=True).start()
    return bytes(200_000_000) if armed(flag) else x * 2


def hang(flag, x):
    if armed(flag):
        time.sleep(600)
    return x * 2


def combine(*xs):
    return sum(xs)


def _graph(func, flag, n=3, **ann):
    with dask.annotate(**ann):
        bad = delayed(func)(str(flag), 10)
    good = [delayed(lambda i: i + 1)(i) for i in range(n)]
    return delayed(combine)(bad, *good)


def _results(wf):
    return sorted(p.name for p in (wf.path / "results").iterdir())


@pytest.mark.parametrize("func,code", [(die_with_exit, 3), (die_with_abort, -signal.SIGABRT),
                                       (die_while_writing, -signal.SIGKILL)])
@pytest.mark.usefixtures("one_node_per_task")
def test_job_that_dies_fails_its_node_and_the_rerun_completes(tmp_path, func, code):
    flag = tmp_path / "flag"
    flag.write_text("x")
    total = _graph(func, flag)
    wf = dask_condordag.write(total, path=tmp_path / "wf")
    r1 = wf.run()
    assert not r1.ok and len(r1.failed) == 1, r1.failed
    (bad,) = r1.failed
    assert "ON HOLD" not in r1.failed[bad]  # the placeholder report came back
    (out,) = wf.nodes[bad]["outputs"].values()
    report = read_error(wf.path / out[0])
    assert "ended before this task finished" in report["message"]
    assert str(code) in r1.failed[bad] or f"signal {-code}" in r1.failed[bad]
    assert not any(".tmp-" in n or ".transfer-" in n for n in _results(wf))
    with pytest.raises(RuntimeError, match="ended before this task finished"):
        wf.result()

    flag.unlink()
    r2 = wf.run()
    assert r2.ok and len(r2.skipped) == 3  # the three good leaves are not rerun
    expected = dask.compute(total, scheduler="sync")[0]
    assert wf.result() == expected
    assert all(verify(wf.path / "results" / n) for n in _results(wf))


def test_node_that_times_out(tmp_path):
    flag = tmp_path / "flag"
    flag.write_text("x")
    total = _graph(hang, flag, condor={"max_runtime": 1})
    wf = dask_condordag.write(total, path=tmp_path / "wf")
    t = time.monotonic()
    r1 = wf.run()
    assert time.monotonic() - t < 30
    assert not r1.ok and "124" in next(iter(r1.failed.values()))
    with pytest.raises(TimeoutError, match="max_runtime of 1 s"):
        wf.result()
    flag.unlink()
    assert wf.run().ok
    assert wf.result() == dask.compute(total, scheduler="sync")[0]


def test_timeout_with_retries_retries(tmp_path):
    count = tmp_path / "count"

    def slow_once(path):
        n = int(open(path).read()) if os.path.exists(path) else 0
        with open(path, "w") as f:
            f.write(str(n + 1))
        if n == 0:
            time.sleep(600)
        return n

    with dask.annotate(retries=1, condor={"max_runtime": 1}):
        x = delayed(slow_once)(str(count))
    assert x.compute(scheduler="condordag") == 1


def _runner(path, *args, temp=None):
    """A runner subprocess; ``temp``: its TMPDIR (where its jobs' scratch folders go)."""
    env = {**os.environ, "TMPDIR": str(temp)} if temp is not None else None
    return subprocess.Popen([sys.executable, "-m", "dask_condordag.cli", "run", str(path),
                             "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)


def slow_leaf(log_dir, i, seconds=0.4):
    time.sleep(seconds)
    Path(log_dir, f"{i}-{os.getpid()}").write_text("ran")
    return i


@pytest.mark.usefixtures("one_node_per_task")
def test_runner_killed_part_way_and_started_again(tmp_path):
    log_dir = tmp_path / "ran"
    log_dir.mkdir()
    leaves = [delayed(slow_leaf)(str(log_dir), i) for i in range(8)]
    total = delayed(combine)(*leaves)
    wf = dask_condordag.write(total, path=tmp_path / "wf")
    temp = tmp_path / "temp"  # SIGKILL leaves the running job's scratch folder: keep it here
    temp.mkdir()
    proc = _runner(wf.path, "-j", "1", temp=temp)
    deadline = time.monotonic() + 60
    while len(os.listdir(log_dir)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let the runner collect at least one more
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its jobs, no cleanup at all
    proc.wait()
    # what a SIGKILL leaves by nature: the scratch folder of the job that was
    # running (`dask-condordag gc` removes such folders of dead runners)
    for left in Path(tempfile.gettempdir()).glob("condordag-*"):
        shutil.rmtree(left)
    journal = wf.dag_path.with_name(wf.dag_path.name + ".local.log")
    done_before = {l.split()[1] for l in journal.read_text().splitlines()}
    assert 2 <= len(done_before) < 9
    ran_before = {p.name.split("-")[0] for p in log_dir.iterdir()}

    report = wf.run(max_workers=1)  # started again: recovers from the journal
    assert report.ok
    assert report.skipped == done_before
    ran = [p.name.split("-")[0] for p in log_dir.iterdir()]
    # nodes recorded as done ran once; only a node killed mid-run may have run twice
    assert len(ran) - len(set(ran)) <= len(ran_before) - len(done_before) + 1
    assert sorted(set(ran)) == sorted(str(i) for i in range(8))
    assert wf.result() == sum(range(8))
    assert not journal.exists()


@pytest.mark.usefixtures("one_node_per_task")  # five jobs one after the other: time to refuse
def test_two_runners_at_once_the_second_refuses(tmp_path):
    log_dir = tmp_path / "ran"
    log_dir.mkdir()
    leaves = [delayed(slow_leaf)(str(log_dir), i) for i in range(4)]
    wf = dask_condordag.write(delayed(combine)(*leaves), path=tmp_path / "wf")
    first = _runner(wf.path, "-j", "1")
    lock = wf.dag_path.with_name(wf.dag_path.name + ".lock")
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    second = _runner(wf.path)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert "being run right now" in err and f"pid {first.pid}" in err
    with pytest.raises(dask_condordag.WorkflowExistsError, match="being run right now"):
        dask_condordag.write(delayed(combine)(*leaves), path=tmp_path / "wf")
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert wf.result() == 6
    assert len(os.listdir(log_dir)) == 4  # nothing ran twice
    assert not lock.exists()


@pytest.mark.usefixtures("one_node_per_task")
def test_sigterm_cleans_scratch_folders_and_the_run_resumes(tmp_path):
    """SIGTERM to a runner mid-run unwinds like Ctrl-C: its jobs are killed,
    their scratch folders removed, the recovery log kept; it still dies by
    SIGTERM. Started again, the run completes."""
    log_dir = tmp_path / "ran"
    log_dir.mkdir()
    temp = tmp_path / "temp"
    temp.mkdir()
    leaves = [delayed(slow_leaf)(str(log_dir), i, 3.0) for i in range(2)]
    wf = dask_condordag.write(delayed(combine)(*leaves), path=tmp_path / "wf")
    proc = _runner(wf.path, "-j", "2", temp=temp)
    deadline = time.monotonic() + 60
    while len(os.listdir(temp)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(os.listdir(temp)) == 2, "the jobs never started"
    assert all(p.startswith(names.SCRATCH_PREFIX) for p in os.listdir(temp))
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert os.listdir(temp) == []
    assert os.listdir(log_dir) == []  # the jobs were killed, not left to finish
    assert not wf.dag_path.with_name(wf.dag_path.name + ".lock").exists()
    report = wf.run()
    assert report.ok and wf.result() == 1
