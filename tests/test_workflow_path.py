"""Where ``compute()`` wrote its workflow (issue 9, item 7): printed once
(unless ``progress=False``: see test_messages.py),
kept on the exceptions it raises, and ``dask_condordag.last_workflow()``."""

import os
import subprocess
import sys
from pathlib import Path

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag.exceptions import CondorDagError, GraphError

from .helpers import add, boom, inc

LINE = "[dask-condordag] workflow written to "


def _written(err: str) -> list:
    return [x[len(LINE):] for x in err.splitlines() if x.startswith(LINE)]


def test_compute_without_path_prints_the_folder_once(tmp_path, capsys):
    total = delayed(add)(delayed(inc)(1), 2)
    assert total.compute(scheduler="condordag", run="local") == 4
    (where,) = _written(capsys.readouterr().err)
    wf = dask_condordag.last_workflow()
    assert Path(where) == wf.path and wf.path.parent == tmp_path / "workflows"
    assert wf.values() == (4,)  # get() stores no repack step: the raw values
    # again: same graph, same folder, printed again once for this compute
    assert total.compute(scheduler="condordag", run="local") == 4
    assert _written(capsys.readouterr().err) == [where]


def test_compute_with_a_path_prints_nothing_but_remembers_it(tmp_path, capsys):
    assert delayed(inc)(1).compute(scheduler="condordag", run="local", progress=False,
                                   path=tmp_path / "mine") == 2
    assert _written(capsys.readouterr().err) == []
    assert dask_condordag.last_workflow().path == tmp_path / "mine"
    w = dask_condordag.write(delayed(inc)(5), path=tmp_path / "written")
    assert dask_condordag.last_workflow().path == w.path


def test_task_exception_carries_the_workflow_path(capsys):
    with pytest.raises(ZeroDivisionError, match="boom on 3") as info:
        delayed(inc)(delayed(boom)(3)).compute(scheduler="condordag", run="local")
    (where,) = _written(capsys.readouterr().err)
    assert info.value.workflow_path == Path(where)
    assert (Path(where) / "manifest.json").exists()
    assert dask_condordag.last_workflow().path == Path(where)
    assert dask_condordag.last_workflow().errors()[0]["exc_type"].endswith("ZeroDivisionError")


def test_condordag_error_from_a_run_carries_the_workflow_path(tmp_path):
    with pytest.raises(CondorDagError, match="run='none'") as info:
        dask.compute(delayed(inc)(1), scheduler="condordag", run="none",
                     path=tmp_path / "none")
    assert info.value.workflow_path == tmp_path / "none"


def test_error_before_anything_is_written_has_no_workflow_path(tmp_path):
    with pytest.raises(GraphError) as info:
        dask_condordag.get({"a": (inc, 1)}, ["missing"], run="local", path=tmp_path / "x")
    assert info.value.workflow_path is None and not (tmp_path / "x").exists()
    assert CondorDagError("x").workflow_path is None


def test_notice_and_folder_together_in_a_fresh_process(tmp_path):
    """run="auto" without HTCondor on PATH: the run-mode notice, then the folder."""
    code = ("import dask, dask_condordag\n"
            "print(dask.delayed(sum)([1, 2]).compute(scheduler='condordag'))\n"
            "print(dask_condordag.last_workflow().path)\n")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    value, path = r.stdout.split("\n")[:2]
    assert value == "3" and Path(path).parent == tmp_path / "condordag-workflows"
    lines = [x for x in r.stderr.splitlines() if x.startswith("[dask-condordag]")]
    assert "running with the local runner" in lines[0]
    assert lines[1] == LINE + path
    assert sum(x.startswith(LINE) for x in lines) == 1
