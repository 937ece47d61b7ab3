"""The HTCondor backend: command construction and output parsing against
outputs recorded from HTCondor's manual and source, and the submit path end
to end against a stand-in condor_submit_dag / condor_q / condor_rm
(tests/fake_condor) that runs the DAG with our local runner."""

import json
import os
import time
from types import SimpleNamespace

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import condor
from dask_condordag.condor import (Condor, CondorCommandError, JobHeldError, parse_classads,
                                   parse_queue_json, parse_submit_output, queue_command,
                                   queue_from_ads, read_status_file, submit_dag_command)

from . import fake_condor
from .helpers import add, boom, inc

# condor_submit_dag's stdout, HTCondor 25.x: the block printed by submitDag()
# in src/condor_dagman/condor_submit_dag.cpp around condor_submit's own
# "Submitting job(s)." / "N job(s) submitted to cluster C." lines.
SUBMIT_DAG_25 = """
-----------------------------------------------------------------------
File for submitting this DAG to HTCondor           : diamond.dag.condor.sub
Log of DAGMan debugging messages                   : diamond.dag.dagman.out
Log of HTCondor library output                     : diamond.dag.lib.out
Log of HTCondor library error messages             : diamond.dag.lib.err
Log of the life of condor_dagman itself            : diamond.dag.dagman.log

Submitting job(s).
1 job(s) submitted to cluster 5140155.
-----------------------------------------------------------------------
"""
# Older releases (8.x-10.x) aligned the columns differently; this one was
# recorded on a pool and published in CMSSW's Alignment/OfflineValidation README.
SUBMIT_DAG_OLD = """-----------------------------------------------------------------------
File for submitting this DAG to HTCondor           : /afs/x/DAG/dagFile.condor.sub
Log of DAGMan debugging messages                 : /afs/x/DAG/dagFile.dagman.out
Log of HTCondor library output                     : /afs/x/DAG/dagFile.lib.out
Log of HTCondor library error messages             : /afs/x/DAG/dagFile.lib.err
Log of the life of condor_dagman itself          : /afs/x/DAG/dagFile.dagman.log

Submitting job(s).
1 job(s) submitted to cluster 413143.
-----------------------------------------------------------------------
"""
# A resubmission after a failure prints this first
# (src/condor_utils/dagman_utils.cpp ensureOutputFilesExist).
RESCUE_LINE = "Running rescue DAG 1\n"

# The example of the manual's node status file page
# (docs/automated-workflows/dagman-node-status-file.rst).
STATUS_FILE_MANUAL = """[
  Type = "DagStatus";
  DagFiles = {
    "job_dagman_node_status.dag"
  };
  Timestamp = 1399674138;
  DagStatus = 3;
  NodesTotal = 12;
  NodesDone = 11;
  NodesPre = 0;
  NodesQueued = 1;
  NodesPost = 0;
  NodesReady = 0;
  NodesUnready = 0;
  NodesFailed = 0;
  JobProcsHeld = 0;
  JobProcsIdle = 1;
]
[
  Type = "NodeStatus";
  Node = "A";
  NodeStatus = 5;
  StatusDetails = "";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "NodeStatus";
  Node = "C";
  NodeStatus = 3;
  StatusDetails = "idle";
  RetryCount = 0;
  JobProcsQueued = 1;
  JobProcsHeld = 0;
]
[
  Type = "StatusEnd";
  EndTime = 1399674138;
  NextUpdate = 1399674141;
]
"""
# DAGMan 25.x writes comments after values and quotes in details (src
# condor_dagman/dag.cpp DumpNodeStatus; our local runner writes the same).
STATUS_FILE_FAILED = """[
  Type = "DagStatus";
  DagFiles = {
    "w.dag"
  };
  Timestamp = 1795625699; /* "Wed Nov 25 16:54:59 2026" */
  DagStatus = 6; /* "STATUS_ERROR (failed)" */
  NodesTotal = 2;
  NodesDone = 0;
  NodesPre = 0;
  NodesQueued = 0;
  NodesPost = 0;
  NodesReady = 0;
  NodesUnready = 0;
  NodesFutile = 1;
  NodesFailed = 1;
  JobProcsHeld = 0;
  JobProcsIdle = 0; /* includes held */
]
[
  Type = "NodeStatus";
  Node = "boom_1";
  NodeStatus = 6; /* "STATUS_ERROR" */
  StatusDetails = "Job proc (7.0.0) failed with status 1; \\"quoted\\"";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "NodeStatus";
  Node = "inc_2";
  NodeStatus = 7; /* "STATUS_FUTILE" */
  StatusDetails = "Had an ancestor node fail";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "StatusEnd";
  EndTime = 1795625699; /* "Wed Nov 25 16:54:59 2026" */
  NextUpdate = 0; /* "none" */
]
"""
# condor_q -json: "[\n" ad ",\n" ad "\n]\n" (src/condor_utils/compat_classad.cpp
# CondorClassAdListWriter::appendAd/appendFooter), each ad as HTCondor's
# ClassAdJsonUnParser prints it (this text is what classad2.ClassAd.printJson
# of the htcondor 25.14 wheel printed for these ads). The hold reason is the
# transfer-output failure text seen on pools (HoldReasonCode 12, manual:
# codes-other-values/hold-reason-codes).
CONDOR_Q_JSON = """[
{
  "ProcId": 0,
  "ClusterId": 7,
  "JobStatus": 2,
  "EnteredCurrentStatus": 1795625000
}
,
{
  "ProcId": 0,
  "ClusterId": 8,
  "JobStatus": 5,
  "HoldReason": "Transfer output files failure at execution point slot1@node7 while sending files to access point submit. Details: reading from file /var/lib/condor/execute/dir_1/results/x.pkl: (errno 2) No such file or directory",
  "DAGManJobId": 7,
  "DAGNodeName": "inc_adf7909d5d82b5d1",
  "HoldReasonCode": 12,
  "EnteredCurrentStatus": 1795625699
}
,
{
  "ProcId": 0,
  "ClusterId": 9,
  "JobStatus": 1,
  "DAGManJobId": 7,
  "DAGNodeName": "add_172e139cf81e6ad3",
  "EnteredCurrentStatus": 1795625699
}
]
"""
# condor_rm's acknowledgement, as recorded from a pool in a public log.
CONDOR_RM_OUT = "All jobs in cluster 9647386 have been marked for removal\n"


def test_submit_dag_command():
    assert submit_dag_command("w.dag", batch_name="w") == [
        "condor_submit_dag", "-batch-name", "w", "w.dag"]
    assert submit_dag_command("w.dag", force=True)[-2:] == ["-force", "w.dag"]
    assert submit_dag_command("w.dag", update_submit=True)[-2:] == ["-update_submit", "w.dag"]
    # -force wins over -update_submit; -import_env is never given; DAG file last
    cmd = submit_dag_command("w.dag", force=True, update_submit=True, batch_name="b")
    assert "-update_submit" not in cmd and "-import_env" not in cmd and cmd[-1] == "w.dag"


def test_parse_submit_output():
    assert parse_submit_output(SUBMIT_DAG_25) == 5140155
    assert parse_submit_output(SUBMIT_DAG_OLD) == 413143
    assert parse_submit_output(RESCUE_LINE + SUBMIT_DAG_25) == 5140155
    with pytest.raises(CondorCommandError, match="submitted to cluster"):
        parse_submit_output("-no_submit given, not submitting DAG to HTCondor.")


def test_queue_command_and_json():
    cmd = queue_command(7)
    assert cmd[:4] == ["condor_q", "-json", "-constraint", "ClusterId == 7 || DAGManJobId == 7"]
    assert cmd[4] == "-attributes" and "HoldReason" in cmd[5].split(",")
    assert parse_queue_json("") == []  # no job matched: condor_q -json prints nothing
    q = queue_from_ads(parse_queue_json(CONDOR_Q_JSON), 7)
    assert q.dagman.id == "7.0" and not q.dagman.held
    assert [j.node for j in q.jobs] == ["inc_adf7909d5d82b5d1", "add_172e139cf81e6ad3"]
    (held,) = q.held
    assert held.id == "8.0" and held.hold_code == 12 and held.since == 1795625699
    assert held.hold_reason.startswith("Transfer output files failure")
    assert q.count(condor.JOB_IDLE) == 1
    with pytest.raises(CondorCommandError):
        parse_queue_json("-- Failed to fetch ads from: <127.0.0.1:9618>")


def test_status_file_manual_example(tmp_path):
    (tmp_path / "s").write_text(STATUS_FILE_MANUAL)
    st = read_status_file(tmp_path / "s")
    assert (st.status, st.total, st.done, st.queued, st.procs_idle) == (3, 12, 11, 1, 1)
    assert not st.finished and st.next_update == 1399674141
    assert st.nodes["C"].details == "idle" and st.nodes["A"].word == "done"
    assert st.running_nodes() == 0


def test_status_file_failed_with_comments(tmp_path):
    (tmp_path / "s").write_text(STATUS_FILE_FAILED)
    st = read_status_file(tmp_path / "s")
    assert st.finished and not st.ok and st.futile == 1
    assert st.failed_nodes() == {"boom_1": 'Job proc (7.0.0) failed with status 1; "quoted"'}
    assert read_status_file(tmp_path / "missing") is None
    (tmp_path / "half").write_text(STATUS_FILE_FAILED[:200])  # caught mid-rewrite
    assert read_status_file(tmp_path / "half") is None


@pytest.mark.usefixtures("one_node_per_task")
def test_status_file_of_local_runner(tmp_path):
    wf = dask_condordag.write(delayed(add)(delayed(inc)(1), 2), path=tmp_path / "wf")
    wf.run()
    st = wf.dag_state()
    assert st.ok and st.done == st.total == 2
    assert set(st.nodes) == set(wf.nodes)


def test_parse_classads_lists_and_escapes():
    ads = parse_classads('[ A = { "x", "y\\\\z" }; B = true; C = 1.5; D = "a\\"b" ]\n[ E = 1 ]')
    assert ads == [{"A": ["x", "y\\z"], "B": True, "C": 1.5, "D": 'a"b'}, {"E": 1}]


class Recorded:
    """A command runner replaying recorded outputs; keeps what it was asked."""

    def __init__(self, **outputs):
        self.outputs = outputs
        self.calls = []

    def __call__(self, cmd, cwd=None, timeout=None):
        self.calls.append((cmd, cwd))
        out = self.outputs[cmd[0]]
        if isinstance(out, tuple):
            return SimpleNamespace(returncode=out[0], stdout=out[1], stderr=out[2])
        return SimpleNamespace(returncode=0, stdout=out, stderr="")


def test_condor_backend_with_recorded_outputs(tmp_path):
    run = Recorded(condor_submit_dag=SUBMIT_DAG_25, condor_q=CONDOR_Q_JSON,
                   condor_rm=CONDOR_RM_OUT)
    c = Condor(run)
    assert c.submit_dag(tmp_path, "w.dag", batch_name="w")[0] == 5140155
    assert run.calls[-1] == (["condor_submit_dag", "-batch-name", "w", "w.dag"], tmp_path)
    assert c.query(7).held[0].node == "inc_adf7909d5d82b5d1"
    assert c.remove(9647386) == CONDOR_RM_OUT.strip()
    existing = ('ERROR: "w.dag.condor.sub" already exists.\n\nSome file(s) needed by '
                'condor_dagman already exist.')
    bad = Condor(Recorded(condor_submit_dag=(1, "\n", existing)))
    with pytest.raises(CondorCommandError, match="already exists"):
        bad.submit_dag(tmp_path, "w.dag")

    def missing(cmd, cwd=None, timeout=None):
        raise FileNotFoundError(cmd[0])

    with pytest.raises(CondorCommandError, match="not on PATH"):
        Condor(missing).query(7)


def test_wait_raises_for_held_job_from_recorded_queue(tmp_path):
    wf = dask_condordag.write(delayed(add)(delayed(inc)(1), 2), path=tmp_path / "wf")
    condor.write_cluster(wf.path, 7)
    wf.backend = Condor(Recorded(condor_q=CONDOR_Q_JSON))
    with pytest.raises(JobHeldError, match="Transfer output files failure") as e:
        wf.wait(hold_timeout=0, poll=0.01, progress=False)
    assert e.value.node == "inc_adf7909d5d82b5d1" and e.value.job == "8.0"
    assert "condor_release 8.0" in str(e.value) and "dask-condordag remove" in str(e.value)
    s = wf.status()
    assert s["dagman"] == "running" and s["cluster"] == 7
    assert s["jobs"] == {"idle": 1, "running": 0, "held": 1}
    assert s["held"][0]["hold_reason"].startswith("Transfer output")
    held = [e for e in wf.errors() if e["kind"] == "held"]
    assert held[0]["job"] == "8.0" and held[0]["logs"][0].endswith(".out")
    with pytest.raises(condor.WaitTimeout):  # held, but not for long enough yet
        wf.wait(timeout=0.05, hold_timeout=10 ** 10, poll=0.01, progress=False)


def test_choose_run_mode(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(condor, "_announced", set())
    monkeypatch.setenv("PATH", str(tmp_path))
    assert condor.choose_run_mode("local") == "local"
    assert condor.choose_run_mode("auto") == "local"
    assert condor.choose_run_mode("auto") == "local"
    err = capsys.readouterr().err
    assert err.count("not on PATH") == 1  # said once
    fake_condor.install(tmp_path, monkeypatch)
    assert condor.choose_run_mode("auto") == "condor"
    assert "submitting to HTCondor" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end
@pytest.fixture
def fake(tmp_path, monkeypatch):
    state = fake_condor.install(tmp_path, monkeypatch)
    yield state
    fake_condor.stop_all(state)


@pytest.mark.usefixtures("one_node_per_task")
def test_compute_run_condor_end_to_end(fake, tmp_path, capsys):
    total = delayed(add)(delayed(inc)(1), delayed(inc)(2))
    got = total.compute(scheduler="condordag", run="condor", path=tmp_path / "wf",
                        poll_interval=0.1, node_status_interval=1)
    assert got == 5
    err = capsys.readouterr().err
    assert "submitted wf.dag as DAGMan job 1001" in err
    assert "3 done, 0 idle, 0 running, 0 held, 0 failed of 3 nodes" in err
    wf = dask_condordag.Workflow.open(tmp_path / "wf")
    assert wf.cluster == 1001 and wf.status()["dagman"] == "done"
    assert "EXITING WITH STATUS 0" in wf.dagman_out.read_text()
    # computing again finds everything done: nothing is submitted
    assert total.compute(scheduler="condordag", run="condor", path=tmp_path / "wf") == 5
    assert "nothing to submit" in capsys.readouterr().err


@pytest.mark.usefixtures("one_node_per_task")
def test_failed_dag_raises_remote_error_and_resubmits_from_rescue(fake, tmp_path, capsys):
    wf = dask_condordag.write([delayed(inc)(delayed(boom)(3)), delayed(inc)(5)],
                              path=tmp_path / "wf", node_status_interval=1)
    assert wf.submit() == 1001
    with pytest.raises(ZeroDivisionError, match="boom on 3") as e:
        wf.wait(poll=0.1)
    msg = "\n".join(e.value.__notes__)  # the task's own exception, with our notes
    assert "wf.dag.rescue001" in msg and "wf.dag.dagman.out" in msg and "logs/boom_" in msg
    s = wf.status()
    assert s["dagman"] == "failed" and s["done"] == 1 and s["failed"] == 1
    done_before = {n for n in wf.nodes if n.startswith("inc_")
                   and (wf.path / wf.nodes[n]["outputs"][n][0]).exists()}
    mtimes = {n: os.path.getmtime(wf.path / wf.nodes[n]["outputs"][n][0]) for n in done_before}
    # resubmitting uses the rescue DAG: the finished node does not run again
    assert wf.submit() == 1002
    assert "resuming from wf.dag.rescue001" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):
        wf.wait(poll=0.1, progress=False)
    for n in done_before:
        assert os.path.getmtime(wf.path / wf.nodes[n]["outputs"][n][0]) == mtimes[n]
    assert (wf.path / "wf.dag.rescue002").exists()


def test_held_job_then_remove(fake, tmp_path):
    import dask

    slow = delayed(time.sleep)(30, dask_key_name="slow")
    with dask.config.set({"condordag.node-status-interval": 1}):
        wf = dask_condordag.write(slow, path=tmp_path / "wf")
    cluster = wf.submit()
    submit_error = dask_condordag.CondorDagError
    with pytest.raises(submit_error, match="already in the queue"):
        wf.submit()
    (node,) = wf.nodes
    fake_condor.hold(fake, cluster, node, "Transfer input files failure at access point "
                                          "submit while sending files to the execution point.")
    with pytest.raises(JobHeldError, match="Transfer input files failure") as e:
        wf.wait(hold_timeout=0, poll=0.1, progress=False)
    assert e.value.node == node
    assert any(x["kind"] == "held" for x in wf.errors())
    assert "marked for removal" in wf.remove()
    with pytest.raises(submit_error, match="failed"):
        wf.wait(poll=0.1, progress=False)
    assert wf.rescue_dags() and wf.status()["dagman"] == "not in the queue"


def test_ctrl_c_leaves_dag_running(fake, tmp_path, monkeypatch, caplog):
    wf = dask_condordag.write(delayed(time.sleep)(30), path=tmp_path / "wf")
    wf.submit()

    def interrupt(_):
        raise KeyboardInterrupt

    import dask_condordag.workflow_pool as w

    fake_time = SimpleNamespace(sleep=interrupt, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(w, "time", fake_time)  # Ctrl-C arrives while waiting
    with pytest.raises(KeyboardInterrupt):
        wf.wait(progress=False)
    monkeypatch.setattr(w, "time", time)
    # a warning on the workflow module's logger (stderr when no logging is set up)
    err = "\n".join(r.getMessage() for r in caplog.records
                    if r.name == "dask_condordag.workflow_pool" and r.levelname == "WARNING")
    assert "still running as DAGMan job 1001" in err
    assert f"dask_condordag.Workflow.open({str(wf.path)!r}).wait()" in err
    assert f"dask-condordag remove {wf.path}" in err
    assert wf.status()["dagman"] == "running"
    # writing the workflow again under the running DAG is refused, nothing changes
    before = sorted(p.name for p in (wf.path / "nodes").iterdir())
    with pytest.raises(dask_condordag.WorkflowExistsError,
                       match="running on the pool .*DAGMan job 1001"):
        dask_condordag.write(delayed(time.sleep)(31), path=wf.path, name="wf")
    assert sorted(p.name for p in (wf.path / "nodes").iterdir()) == before


def test_wait_on_unsubmitted_workflow(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    with pytest.raises(dask_condordag.CondorDagError, match="has not been submitted"):
        wf.wait()
    with pytest.raises(dask_condordag.CondorDagError, match="never submitted"):
        wf.remove()


def test_wait_after_local_run_uses_status_file(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    wf.run()
    assert wf.wait(progress=False)["done"] == 1


def test_submit_runs_the_preflight_and_refuses_a_broken_workflow(fake, tmp_path):
    from dask import delayed

    import dask_condordag
    from dask_condordag import PreflightError, names

    wf = dask_condordag.write(delayed(sum)([1, 2]), path=tmp_path / "pre")
    m = json.loads((wf.path / names.MANIFEST).read_text())
    m["versions"]["python"] = "3.1.0"  # as if written by another Python
    (wf.path / names.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(PreflightError, match="Python version mismatch") as info:
        wf.submit()
    assert not info.value.report.ok
    assert wf.cluster is None  # nothing was submitted


# What HTCondor 25.14 recorded after `condor_rm` of a DAGMan job (this project's
# pool, shared/htcondor): condor_history's ad of the DAGMan job, and the node
# status file DAGMan wrote on its way out (SIGUSR1).
HISTORY_REMOVED = """[
{
  "ClusterId": 314,
  "DAG_Status": 4,
  "JobStatus": 3,
  "RemoveReason": "via condor_rm (by user condorpool)"
}
]
"""
STATUS_FILE_REMOVED = """[
  Type = "DagStatus";
  DagFiles = {
    "wf.dag"
  };
  Timestamp = 1796551424; /* "Sun Dec  6 10:03:44 2026" */
  DagStatus = 6; /* "STATUS_ERROR (removed)" */
  NodesTotal = 1;
  NodesDone = 0;
  NodesPre = 0;
  NodesQueued = 0;
  NodesPost = 0;
  NodesReady = 0;
  NodesUnready = 0;
  NodesFutile = 0;
  NodesFailed = 1;
  JobProcsHeld = 0;
  JobProcsIdle = 0; /* includes held */
]
[
  Type = "NodeStatus";
  Node = "NODE";
  NodeStatus = 6; /* "STATUS_ERROR" */
  StatusDetails = "Was STATUS_SUBMITTED";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "StatusEnd";
  EndTime = 1796551424; /* "Sun Dec  6 10:03:44 2026" */
  NextUpdate = 0; /* "none" */
]
"""


def test_removed_dag_is_told_from_the_job_history(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf", node_status_interval=1)
    (node,) = wf.nodes
    condor.write_cluster(wf.path, 314)
    wf.status_path.write_text(STATUS_FILE_REMOVED.replace("NODE", node))
    wf.backend = Condor(Recorded(condor_q="", condor_history=HISTORY_REMOVED))
    assert wf.status()["dagman"] == "removed"
    with pytest.raises(dask_condordag.DagFailedError,
                       match=r"was removed \(via condor_rm \(by user condorpool\)\)") as e:
        wf.wait(poll=0.01, progress=False)
    assert e.value.nodes == {node: "Was STATUS_SUBMITTED"}
    # a failed DAG (not removed) stays "failed"
    wf.backend = Condor(Recorded(condor_q="", condor_history=HISTORY_REMOVED.replace(
        '"JobStatus": 3', '"JobStatus": 4').replace('"DAG_Status": 4', '"DAG_Status": 2')))
    assert wf.status()["dagman"] == "failed"
    assert condor.history_command(314) == [
        "condor_history", "-json", "-limit", "1", "314", "-attributes",
        "ClusterId,JobStatus,DAG_Status,ExitCode,RemoveReason"]
