"""What the real pool showed (tests/test_pool.py), checked where no pool is:
the local runner keeps DAGMan's behaviour as observed on HTCondor 25.14."""

import os

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import DagFailedError

from .helpers import add


def env_state():
    return os.environ["STATE"]


def test_a_refused_submit_fails_the_node_at_once_without_retries(tmp_path):
    # condor_submit refuses the environment (an unescaped double quote): on the
    # pool DAGMan logged SUBMIT_FAILURE, "Job submit failed", did not use the
    # node's RETRY, and ran the other node to the end (DAGMAN_FINISHED 1)
    with dask.annotate(retries=2, condor={"vars": {"state": 'say "hi" x'},
                                          "submit": {"environment": "\"STATE='$(state)'\""}}):
        bad = delayed(env_state)()
    good = delayed(add)(1, 2)
    wf = dask_condordag.write([bad, good], path=tmp_path / "wf", node_status_interval=1)
    report = wf.run(progress=False)
    assert not report.ok
    (node,) = [n for n in wf.nodes if n.startswith("env_state")]
    st = wf.dag_state()
    assert st.nodes[node].word == "failed" and st.nodes[node].retries == 0
    assert st.nodes[node].details.startswith("Job submit failed: submit description")
    assert st.done == 1
    log = (wf.path / "wf.jobstate.log").read_text().splitlines()
    assert [x.split()[2] for x in log if x.split()[1] == node] == ["SUBMIT_FAILURE"]
    assert log[-1].split()[-3:] == ["DAGMAN_FINISHED", "1", "***"]
    with pytest.raises(DagFailedError, match="Job submit failed"):
        wf.wait(progress=False)
