"""dask callbacks while a DAG runs on a pool (dask_condordag.follow), and the
DAGMan log scan interval given to the DAGMan job.

Unit tests read jobstate logs written the way DAGMan writes them
(src/condor_dagman/jobstate_log.cpp) and run the submit path against the
stand-in condor tools (tests/fake_condor); tests marked ``condor`` run on a
real pool (``../shared/htcondor/pool test -m condor -k callbacks``) and
compare what the callbacks saw with what DAGMan recorded.
"""

import os
import re
import threading
import time
from io import StringIO

import dask
import pytest
from dask import delayed
from dask.callbacks import Callback
from dask.diagnostics import ProgressBar

import dask_condordag
from dask_condordag import condor
from dask_condordag.follow import Follower, JobstateReader, NodeProgress, parse_jobstate_line

from . import fake_condor
from .helpers import add, boom, inc, none

# callbacks per node of one task each (group="auto" would make one job): conftest.py
pytestmark = pytest.mark.usefixtures("one_node_per_task")


class Recorder(Callback):
    """Keeps every callback call, with the time it came."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.lock = threading.Lock()

    def _note(self, *what):
        with self.lock:
            self.calls.append((time.time(),) + what)

    def _start(self, dsk):
        self._note("start")

    def _start_state(self, dsk, state):
        self._note("start_state", len(state["ready"]) + len(state["waiting"]))

    def _pretask(self, key, dsk, state):
        self._note("pretask", key)

    def _posttask(self, key, result, dsk, state, worker_id):
        self._note("posttask", key, len(state["finished"]))

    def _finish(self, dsk, state, errored):
        self._note("finish", errored)

    def names(self):
        return [c[1] for c in self.calls]

    def keys(self, kind):
        return [c[2] for c in self.calls if c[1] == kind]


def _check_protocol(rec, tasks):
    """start, start_state first, finish last; each task pretask then posttask once."""
    names = rec.names()
    assert names[:2] == ["start", "start_state"] and names[-1] == "finish"
    assert names.count("start") == names.count("finish") == 1
    pre, post = rec.keys("pretask"), rec.keys("posttask")
    assert sorted(pre) == sorted(set(pre)) and sorted(post) == sorted(set(post))
    assert set(post) <= set(pre) <= set(tasks)
    for k in post:
        i_pre = next(i for i, c in enumerate(rec.calls) if c[1] == "pretask" and c[2] == k)
        i_post = next(i for i, c in enumerate(rec.calls) if c[1] == "posttask" and c[2] == k)
        assert i_pre < i_post


# ------------------------------------------------------------------ pure parts
JOBSTATE = """\
1796550000 INTERNAL *** DAGMAN_STARTED 7.0 ***
1796550001 A SUBMIT 8.0 - - 1
1796550002 A EXECUTE 8.0 - - 1
1796550003 A JOB_TERMINATED 8.0 - - 1
1796550003 A JOB_FAILURE 1 - - 1
1796550004 INTERNAL *** DAGMAN_FINISHED 1 ***
1796550393 INTERNAL *** DAGMAN_STARTED 12.0 ***
1796550394 A SUBMIT 13.0 - - 1
1796550400 A EXECUTE 13.0 - - 1
1796550401 A JOB_TERMINATED 13.0 - - 1
1796550401 A JOB_SUCCESS 0 - - 1
1796550402 B SUBMIT 14.0 - - 2
"""


def test_parse_jobstate_lines():
    assert parse_jobstate_line("1796550401 A JOB_SUCCESS 0 - - 1") == ("A", "JOB_SUCCESS", "0")
    assert parse_jobstate_line("1796550004 INTERNAL *** DAGMAN_FINISHED 1 ***") == (
        "INTERNAL", "DAGMAN_FINISHED", "1")
    assert parse_jobstate_line("1796550004 INTERNAL *** RECOVERY_STARTED ***") == (
        "INTERNAL", "RECOVERY_STARTED", "-")
    assert parse_jobstate_line("") is None and parse_jobstate_line("garbage here") is None


def test_reader_keeps_only_the_lines_of_its_dagman_job(tmp_path):
    log = tmp_path / "w.jobstate.log"
    log.write_text(JOBSTATE)
    assert JobstateReader(log, 7).read() == [("A", "SUBMIT"), ("A", "EXECUTE"),
                                             ("A", "JOB_TERMINATED"), ("A", "JOB_FAILURE")]
    r = JobstateReader(log, 12)
    assert r.read() == [("A", "SUBMIT"), ("A", "EXECUTE"), ("A", "JOB_TERMINATED"),
                        ("A", "JOB_SUCCESS"), ("B", "SUBMIT")]
    assert r.read() == []  # nothing new
    with open(log, "a") as f:  # DAGMan is half way through a line
        f.write("1796550403 B EXECUTE 14.0 - - 2\n1796550404 B JOB_TERM")
    assert r.read() == [("B", "EXECUTE")]
    with open(log, "a") as f:
        f.write("INATED 14.0 - - 2\n")
    assert r.read() == [("B", "JOB_TERMINATED")]
    assert JobstateReader(log, 99).read() == []  # that DAGMan job has not started yet
    assert JobstateReader(tmp_path / "missing.log", 12).read() == []


def test_reader_peeks_for_the_end_of_its_dagman_job_without_losing_events(tmp_path):
    """The waiter reads the jobstate log between its looks at the queue
    (workflow_pool._pause): the events it reads there still reach the
    callbacks, and only our DAGMan job's DAGMAN_FINISHED ends the wait."""
    log = tmp_path / "w.jobstate.log"
    log.write_text(JOBSTATE)
    old = JobstateReader(log, 7)  # the first run finished
    assert old.peek() is True and old.read()[-1] == ("A", "JOB_FAILURE")
    r = JobstateReader(log, 12)
    assert r.peek() is False  # DAGMan 7's DAGMAN_FINISHED is not ours
    with open(log, "a") as f:
        f.write("1796550403 B EXECUTE 14.0 - - 2\n")
    assert r.peek() is False
    with open(log, "a") as f:
        f.write("1796550405 B JOB_TERMINATED 14.0 - - 2\n1796550405 B JOB_SUCCESS 0 - - 2\n"
                "1796550406 INTERNAL *** DAGMAN_FINISHED 0 ***\n")
    assert r.peek() is True
    assert r.read() == [("A", "SUBMIT"), ("A", "EXECUTE"), ("A", "JOB_TERMINATED"),
                        ("A", "JOB_SUCCESS"), ("B", "SUBMIT"), ("B", "EXECUTE"),
                        ("B", "JOB_TERMINATED"), ("B", "JOB_SUCCESS")]
    assert r.read() == [] and r.finished
    with open(log, "a") as f:  # a rescue run of the same workflow: another DAGMan job
        f.write("1796550500 INTERNAL *** DAGMAN_STARTED 20.0 ***\n"
                "1796550501 C SUBMIT 21.0 - - 3\n")
    assert r.peek() is True and r.read() == []  # ours stays finished; not its events


def test_node_progress_post_scripts_and_status_file():
    p = NodeProgress(post_nodes={"P"}, done={"R"})
    # a node with a POST script is done when the POST script succeeds,
    # even after its job failed; one without is done at JOB_SUCCESS
    assert p.apply([("P", "EXECUTE"), ("P", "JOB_FAILURE"), ("A", "JOB_SUCCESS")]) == (
        ["P", "A"], ["A"])
    assert p.apply([("P", "POST_SCRIPT_STARTED"), ("P", "POST_SCRIPT_SUCCESS"),
                    ("R", "JOB_SUCCESS")]) == ([], ["P"])
    text = """[ Type = "DagStatus"; DagStatus = 3; NodesTotal = 4; NodesDone = 1; ]
[ Type = "NodeStatus"; Node = "Q"; NodeStatus = 3; StatusDetails = "idle"; ]
[ Type = "NodeStatus"; Node = "S"; NodeStatus = 3; StatusDetails = ""; ]
[ Type = "NodeStatus"; Node = "D"; NodeStatus = 5; StatusDetails = ""; ]
[ Type = "StatusEnd"; EndTime = 0; ]"""
    state = condor.dag_state(condor.parse_classads(text))
    assert p.apply_status(state) == (["S", "D"], ["D"])  # an idle job has not started
    assert p.apply_status(None) == ([], [])


def _follower(tmp_path, *tasks, cluster=5, callbacks=()):
    wf = dask_condordag.write(list(tasks), path=tmp_path / "wf", node_status_interval=1)
    condor.write_cluster(wf.path, cluster)
    return wf, Follower.for_workflow(wf, callbacks)


@pytest.mark.usefixtures("one_node_per_task")
def test_follower_drives_callbacks_from_the_jobstate_log(tmp_path):
    rec = Recorder()
    a = delayed(inc)(1, dask_key_name="a")
    wf, f = _follower(tmp_path, delayed(inc)(a, dask_key_name="b"), callbacks=[rec])
    na, nb = wf.nodes  # the DAG's order: a first
    f.start()
    assert rec.calls[1][1:] == ("start_state", 2)
    assert f.state["ready"] == {na} and set(f.state["waiting"]) == {nb}
    log = wf.path / f"{wf.name}.jobstate.log"
    with open(log, "a") as fh:
        fh.write(f"1 INTERNAL *** DAGMAN_STARTED 5.0 ***\n1 {na} SUBMIT 6.0 - - 1\n")
    f.update()
    assert rec.keys("pretask") == []  # submitted is not running yet
    with open(log, "a") as fh:
        fh.write(f"2 {na} EXECUTE 6.0 - - 1\n")
    f.update()
    assert rec.keys("pretask") == [na] and f.state["running"] == {na}
    with open(log, "a") as fh:  # a ends and b runs and ends between two looks
        fh.write(f"3 {na} JOB_TERMINATED 6.0 - - 1\n3 {na} JOB_SUCCESS 0 - - 1\n"
                 f"4 {nb} SUBMIT 7.0 - - 2\n5 {nb} JOB_TERMINATED 7.0 - - 2\n"
                 f"5 {nb} JOB_SUCCESS 0 - - 2\n")
    f.update()
    f.finish(errored=False)
    assert rec.keys("pretask") == [na, nb] and rec.keys("posttask") == [na, nb]
    assert f.state["finished"] == {na, nb} and not f.state["running"] and f.done == 2
    assert rec.calls[-1][1:] == ("finish", False)
    _check_protocol(rec, [na, nb])


@pytest.mark.usefixtures("one_node_per_task")
def test_follower_counts_results_already_there_as_finished(tmp_path):
    """Reused results (or nodes done before a reattach) start out finished."""
    a = delayed(inc)(1, dask_key_name="a")
    wf = dask_condordag.write(delayed(inc)(a, dask_key_name="b"), path=tmp_path / "wf")
    wf.run()
    na, nb = wf.nodes
    (wf.path / wf.nodes[nb]["outputs"][nb][0]).unlink()
    rec = Recorder()
    f = Follower.for_workflow(wf, [rec])
    f.start()
    assert f.state["finished"] == {na} and f.state["ready"] == {nb} and f.done == 1
    assert rec.calls[1][1:] == ("start_state", 1)


def test_follower_without_jobstate_log_uses_the_status_file(tmp_path):
    rec = Recorder()
    wf = dask_condordag.write([delayed(inc)(1)], path=tmp_path / "wf", jobstate_log=False,
                              node_status_interval=1)
    condor.write_cluster(wf.path, 5)
    f = Follower.for_workflow(wf, [rec])
    assert f.reader is None
    f.start()
    wf.run()  # the local runner writes the node status file as DAGMan does
    f.update(wf.dag_state())
    f.finish(errored=False)
    (n,) = wf.nodes
    assert rec.keys("pretask") == [n] and rec.keys("posttask") == [n]


# ------------------------------------------------------------------ stand-in pool
@pytest.fixture
def fake(tmp_path, monkeypatch):
    state = fake_condor.install(tmp_path, monkeypatch)
    yield state
    fake_condor.stop_all(state)


@pytest.mark.usefixtures("one_node_per_task")
def test_compute_on_condor_drives_callbacks_and_progress_bar(fake, tmp_path):
    """Before dask_condordag.follow, run="condor" called no callback at all:
    a ProgressBar sat at 0% for the whole run."""
    rec = Recorder()
    out = StringIO()
    one = delayed(inc)(1, dask_key_name="one")
    slow = delayed(none)(one, delayed(time.sleep)(1.5, dask_key_name="nap"), dask_key_name="slow")
    total = delayed(add)(one, 2, dask_key_name="total")
    with rec, ProgressBar(out=out, dt=0.05):
        got = dask.compute(total, slow, scheduler="condordag", run="condor",
                           path=tmp_path / "wf", poll_interval=0.1, progress=False)
    assert got == (4, None)
    wf = dask_condordag.Workflow.open(tmp_path / "wf")
    tasks = list(wf.nodes)
    _check_protocol(rec, tasks)
    assert sorted(rec.keys("posttask")) == sorted(tasks)
    assert rec.calls[-1][1:] == ("finish", False)
    # the first task was seen finished well before the end of the run
    first_post = next(c[0] for c in rec.calls if c[1] == "posttask")
    assert first_post < rec.calls[-1][0]
    bar = out.getvalue()
    assert "100% Completed" in bar
    percents = {int(p) for p in re.findall(r"\|\s*(\d+)% Completed", bar)}
    assert percents - {0, 100}, f"the bar never moved between 0% and 100%: {bar!r}"


@pytest.mark.usefixtures("one_node_per_task")
def test_compute_on_condor_failure_runs_finish_errored(fake, tmp_path):
    rec = Recorder()
    bad = delayed(inc)(delayed(boom)(3, dask_key_name="bad"), dask_key_name="after")
    ok = delayed(inc)(5, dask_key_name="fine")
    with rec, pytest.raises(ZeroDivisionError, match="boom on 3"):
        dask.compute(bad, ok, scheduler="condordag", run="condor", path=tmp_path / "wf",
                     poll_interval=0.1, progress=False)
    wf = dask_condordag.Workflow.open(tmp_path / "wf")
    nodes = {info["tasks"][next(iter(info["tasks"]))]: n for n, info in wf.nodes.items()}
    assert rec.calls[-1][1:] == ("finish", True)
    assert rec.keys("posttask") == [nodes["'fine'"]]  # a failed task gets no posttask
    assert nodes["'after'"] not in rec.keys("pretask")  # never ran


def test_compute_with_nothing_to_submit_still_starts_and_finishes(fake, tmp_path):
    x = delayed(inc)(1)
    assert x.compute(scheduler="condordag", run="condor", path=tmp_path / "wf",
                     poll_interval=0.1) == 2
    rec = Recorder()
    with rec:
        assert x.compute(scheduler="condordag", run="condor", path=tmp_path / "wf") == 2
    assert rec.names() == ["start", "start_state", "finish"]
    assert rec.calls[-1][1:] == ("finish", False)


def test_wait_sees_the_end_of_the_dag_at_once_whatever_poll_interval(fake, tmp_path):
    """compute() used to sleep a whole ``poll_interval`` (5 s by default)
    after DAGMan had finished before it noticed; it now reads DAGMan's
    jobstate log between looks and looks again at DAGMAN_FINISHED."""
    x = delayed(time.sleep)(1.0, dask_key_name="nap")
    t = time.monotonic()
    assert x.compute(scheduler="condordag", run="condor", path=tmp_path / "wf",
                     poll_interval=120, progress=False) is None
    assert time.monotonic() - t < 60


def test_pause_after_dagman_finished_backs_off_to_poll(monkeypatch):
    """Once DAGMAN_FINISHED is in the log the wait looks again quickly, but a
    DAGMan job slow to leave the queue is not asked about 5 times a second."""
    import dask_condordag.workflow_pool as w
    from types import SimpleNamespace

    slept = []
    monkeypatch.setattr(w, "time", SimpleNamespace(sleep=slept.append, time=time.time,
                                                   monotonic=time.monotonic))
    done = SimpleNamespace(dagman_finished=lambda: True)
    seen = 0
    for _ in range(6):
        seen = w._pause(done, 3.0, seen)
    assert seen == 6 and slept == [0.2, 0.4, 0.8, 1.6, 3.0, 3.0]


def test_wait_takes_callbacks_and_ctrl_c_still_finishes(fake, tmp_path, monkeypatch):
    wf = dask_condordag.write(delayed(time.sleep)(30), path=tmp_path / "wf")
    wf.submit()
    import dask_condordag.workflow_pool as w
    from types import SimpleNamespace

    def interrupt(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(w, "time", SimpleNamespace(sleep=interrupt, time=time.time,
                                                   monotonic=time.monotonic))
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        wf.wait(progress=False, callbacks=[rec])  # a Callback object, as dask accepts
    assert rec.names()[0] == "start" and rec.calls[-1][1:] == ("finish", True)
    wf.remove()


# ------------------------------------------------------------------ scan interval
def test_submit_gives_dagman_the_scan_interval(fake, tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    calls = []

    def run(cmd, cwd=None, timeout=None, env=None):
        calls.append((cmd, env))
        return condor._run(cmd, cwd=cwd, timeout=timeout, env=env)

    wf.backend = condor.Condor(run)
    wf.submit(dagman_scan_interval=3)
    cmd, env = calls[-1]
    assert cmd == ["condor_submit_dag", "-batch-name", "wf", "-include_env",
                   "_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL", "wf.dag"]
    assert env["_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL"] == "3"
    assert env["PATH"] == os.environ["PATH"]  # the rest of the environment is kept
    wf.wait(poll=0.1, progress=False)
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL setting: 3" in wf.dagman_out.read_text()


def test_scan_interval_option_default_and_none(fake, tmp_path):
    assert condor.submit_dag_command("w.dag", include_env=()) == ["condor_submit_dag", "w.dag"]
    x = delayed(inc)(1)
    assert x.compute(scheduler="condordag", run="condor", path=tmp_path / "a",
                     poll_interval=0.1) == 2
    out = (tmp_path / "a" / "a.dag.dagman.out").read_text()
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL setting: 1" in out  # the documented default
    with dask.config.set({"condordag.dagman-scan-interval": None}):
        assert x.compute(scheduler="condordag", run="condor", path=tmp_path / "b",
                         poll_interval=0.1) == 2
    # None: nothing is passed, the pool's configuration (here HTCondor's 5) decides
    out = (tmp_path / "b" / "b.dag.dagman.out").read_text()
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL setting: 5" in out


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1", True])
def test_scan_interval_bad_values_are_refused(bad):
    with pytest.raises(dask_condordag.CondorDagError, match="dagman_scan_interval"):
        delayed(inc)(1).compute(scheduler="condordag", run="none", dagman_scan_interval=bad)


# ------------------------------------------------------------------ real pool
def _jobstate(wf):
    """(time, node, event) of the last DAGMan run, from its jobstate log."""
    out = []
    for line in (wf.path / f"{wf.name}.jobstate.log").read_text().splitlines():
        parts = line.split()
        if parts[1] == "INTERNAL" and parts[3] == "DAGMAN_STARTED":
            out = []
        out.append((int(parts[0]), parts[1], parts[3] if parts[1] == "INTERNAL" else parts[2]))
    return out


@pytest.mark.condor
def test_pool_callbacks_follow_dagman(tmp_path):
    """A chain of 3 on the pool: the callbacks see each node finish as DAGMan
    records it, in DAGMan's order, and the ProgressBar moves during the run."""
    rec = Recorder()
    out = StringIO()
    x = delayed(inc)(0, dask_key_name="c0")
    for i in (1, 2):
        x = delayed(inc)(x, dask_key_name=f"c{i}")
    path = tmp_path / "wf"  # the pool lets DAGMan keep node logs under /tmp
    with rec, ProgressBar(out=out, dt=0.1):
        assert x.compute(scheduler="condordag", run="condor", path=path,
                         poll_interval=0.5) == 3
    wf = dask_condordag.Workflow.open(path)
    log = _jobstate(wf)
    success = [n for _, n, e in log if e == "JOB_SUCCESS"]
    assert success == list(wf.nodes)  # DAGMan ran the chain in order
    _check_protocol(rec, list(wf.nodes))
    assert rec.keys("posttask") == success and rec.keys("pretask") == success
    assert rec.calls[-1][1:] == ("finish", False)
    # each posttask came while the DAG was still running: the first one before
    # DAGMan even started the last node's job (1 s slack for whole-second stamps)
    last_execute = max(t for t, n, e in log if e == "EXECUTE" and n == success[-1])
    first_post = next(c[0] for c in rec.calls if c[1] == "posttask")
    assert first_post < last_execute + 1
    percents = {int(p) for p in re.findall(r"\|\s*(\d+)% Completed", out.getvalue())}
    assert 100 in percents and percents - {0, 100}
    # DAGMan used our scan interval (the option's default), not only the pool's
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL setting: 1" in wf.dagman_out.read_text()


@pytest.mark.condor
def test_pool_callbacks_finish_errored_on_failure(tmp_path):
    rec = Recorder()
    path = tmp_path / "wf"
    bad = delayed(inc)(delayed(boom)(3, dask_key_name="bad"), dask_key_name="after")
    with rec, pytest.raises(ZeroDivisionError, match="boom on 3"):
        bad.compute(scheduler="condordag", run="condor", path=path, poll_interval=0.5)
    wf = dask_condordag.Workflow.open(path)
    log = _jobstate(wf)
    assert [e for _, n, e in log if e in ("JOB_SUCCESS", "JOB_FAILURE")] == ["JOB_FAILURE"]
    assert rec.calls[-1][1:] == ("finish", True) and rec.keys("posttask") == []


@pytest.mark.condor
def test_pool_scan_interval_reaches_dagman(tmp_path):
    """The job's environment overrides the pool's configuration (the shared
    pool's fast profile sets DAGMAN_USER_LOG_SCAN_INTERVAL = 1)."""
    x = delayed(inc)(1)
    path = tmp_path / "wf"
    assert x.compute(scheduler="condordag", run="condor", path=path, poll_interval=0.5,
                     dagman_scan_interval=2) == 2
    wf = dask_condordag.Workflow.open(path)
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL setting: 2" in wf.dagman_out.read_text()
    # condor_submit_dag -include_env adds the name to the DAGMan job's getenv
    sub = (wf.path / f"{wf.dag_path.name}.condor.sub").read_text()
    getenv = next(line for line in sub.splitlines() if line.startswith("getenv"))
    assert "_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL" in getenv.split("=", 1)[1].split(",")
    # the DAG's own CONFIG file (dag_config) wins over the environment
    other = tmp_path / "wf2"
    assert x.compute(scheduler="condordag", run="condor", path=other, poll_interval=0.5,
                     dagman_scan_interval=2, dag_config={"DAGMAN_USER_LOG_SCAN_INTERVAL": 3}) == 2
    out = dask_condordag.Workflow.open(other).dagman_out.read_text()
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL setting: 3" in out
