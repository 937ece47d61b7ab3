"""A failure inside a node of several tasks, on a real pool (marker
``condor``; ``../shared/htcondor/pool test -m condor -k grouped``): the kept
results come back inside the error report (no extra output, no hold), the
failing task is named, and computing again starts at it."""

from __future__ import annotations

import json
import shutil

import pytest

from dask_condordag import Workflow, names

from .test_grouped_semantics import chain, runs, step_flaky

pytestmark = [pytest.mark.condor, pytest.mark.skipif(
    shutil.which("condor_submit_dag") is None, reason="needs HTCondor (condor_submit_dag)")]


def test_grouped_failure_on_the_pool(tmp_path):
    log, flag, wf = str(tmp_path / "log"), tmp_path / "flag", tmp_path / "wf"
    flag.write_text("")
    d = chain(log, third=step_flaky, extra=(str(flag),))
    opts = dict(scheduler="condordag", run="condor", path=wf, group="chains",
                poll_interval=0.5, node_status_interval=1)
    with pytest.raises(ValueError, match="flaky step c") as info:
        d.compute(**opts)
    assert info.value.dask_condordag.key == "'c'"
    w = Workflow.open(wf)
    (node,) = w.nodes.values()
    (b,) = [t for t in node["tasks"] if t.startswith("b_")]
    assert (wf / names.result_file(b)).exists()  # came back inside the error report
    assert not w.status()["held"]
    flag.unlink()
    assert d.compute(**opts) == 4
    assert runs(log) == {"a": 1, "b": 1, "c": 2, "d": 1}
    (node,) = json.loads((wf / names.MANIFEST).read_text())["nodes"].values()
    assert node["reused_tasks"] == [b]
