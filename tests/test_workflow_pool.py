"""The pure parts of the pool side of a Workflow (``workflow_pool.py``): the
job counts ``status()`` and ``wait()`` show, the progress line, the hold
check, the DAG's CONFIG file. No pool, no process: plain data in."""

import time

import pytest

from dask_condordag import condor
from dask_condordag.statusfile import STATUS_SUBMITTED, DagState, NodeState
from dask_condordag.workflow_pool import (check_holds, dag_config_lines, job_counts,
                                          progress_line)


def _queue(*statuses, dagman=True, since=None):
    jobs = tuple(condor.Job(cluster=8, proc=p, status=s, node=f"n{p}", hold_reason="disk full",
                            since=since) for p, s in enumerate(statuses))
    return condor.Queue(condor.Job(7, 0, condor.JOB_RUNNING) if dagman else None, jobs)


def _state(**kw):
    nodes = {"a": NodeState("a", STATUS_SUBMITTED, "idle"),
             "b": NodeState("b", STATUS_SUBMITTED, "running")}
    return DagState(status=0, total=4, done=1, failed=1, nodes=nodes, **kw)


def test_job_counts_come_from_the_queue_first_then_the_status_file():
    q = _queue(condor.JOB_IDLE, condor.JOB_RUNNING, condor.JOB_RUNNING, condor.JOB_HELD)
    assert job_counts(_state(), q) == {"idle": 1, "running": 2, "held": 1}
    # the status file counts held procs among the idle ones
    assert job_counts(_state(procs_idle=3, procs_held=1), None) == {
        "idle": 2, "running": 1, "held": 1}
    assert job_counts(None, None) is None


def test_progress_line():
    assert progress_line(_state(procs_idle=1), None) == (
        "1 done, 1 idle, 1 running, 0 held, 1 failed of 4 nodes")
    # the jobstate log may know of more done nodes than the status file yet
    assert progress_line(_state(), None, done_seen=3).startswith("3 done")
    # before the node status file exists: the result files' counts
    counts = {"done": 0, "failed": 0, "total": 4}
    assert progress_line(None, _queue(), counts=counts) == (
        "0 done, 0 idle, 0 running, 0 held, 0 failed of 4 nodes (DAGMan is starting)")


def test_a_job_held_too_long_ends_the_wait_naming_it(tmp_path):
    q = _queue(condor.JOB_HELD, since=time.time() - 100)
    check_holds(q, 1000, tmp_path)  # held, but not for long enough
    check_holds(None, 0, tmp_path)  # the queue cannot be read here
    with pytest.raises(condor.JobHeldError, match=r"(?s)job 8\.0 \(node n0\).*disk full.*"
                                                  r"condor_release 8\.0") as e:
        check_holds(q, 60, tmp_path)
    assert e.value.node == "n0" and str(tmp_path) in str(e.value)


def test_dag_config_lines(tmp_path):
    dag = tmp_path / "w.dag"
    dag.write_text("JOB a a.sub\n")
    assert dag_config_lines(dag) == []
    dag.write_text("CONFIG w.config\nJOB a a.sub\n")
    assert dag_config_lines(dag) == []  # named but not there
    (tmp_path / "w.config").write_text("DAGMAN_AVOID_SLASH_TMP = False\n")
    assert dag_config_lines(dag) == ["DAGMAN_AVOID_SLASH_TMP = False"]
