"""The dask-condordag command, end to end on the local runner."""

import pickle
import shutil
import subprocess
import sys

import pytest
from dask import delayed

import dask_condordag

from .helpers import add, boom, inc


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dask_condordag.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_console_script_is_installed():
    assert shutil.which("dask-condordag"), "pip install -e . puts it on PATH"


@pytest.mark.usefixtures("one_node_per_task")
def test_run_status_result(tmp_path):
    wf = dask_condordag.write(delayed(add)(delayed(inc)(1), 2), path=tmp_path / "wf")
    st = cli("status", wf.path)
    assert st.returncode == 0 and "0 done, 0 failed, 2 pending of 2 nodes" in st.stdout
    r = cli("run", wf.path, "-j", "1")
    assert r.returncode == 0, r.stderr
    assert "2 of 2 nodes done" in r.stderr
    assert "2 done, 0 failed, 0 pending" in cli("status", wf.path).stdout
    res = cli("result", wf.path)
    assert res.returncode == 0 and res.stdout.strip() == "4"
    out = tmp_path / "r.pkl"
    assert cli("result", wf.path, "-o", out).returncode == 0
    assert pickle.loads(out.read_bytes()) == 4


def test_failed_workflow(tmp_path):
    wf = dask_condordag.write(delayed(inc)(delayed(boom)(3)), path=tmp_path / "wf")
    r = cli("run", wf.path)
    assert r.returncode == 1 and "failed" in r.stderr
    assert "rescue DAG" in r.stderr
    e = cli("errors", wf.path)
    assert e.returncode == 1
    assert "ZeroDivisionError: boom on 3" in e.stdout and "logs/" in e.stdout
    assert 'raise ZeroDivisionError(f"boom on {x}")' in e.stdout  # source line, from here
    res = cli("result", wf.path)
    assert res.returncode == 1 and "ZeroDivisionError" in res.stderr
    assert cli("status", wf.path).returncode == 1


@pytest.mark.parametrize("cmd", ["run", "status", "errors", "result"])
def test_not_a_workflow(tmp_path, cmd):
    (tmp_path / "empty").mkdir()
    r = cli(cmd, tmp_path / "empty")
    assert r.returncode == 2
    assert str(tmp_path / "empty") in r.stderr


def test_run_force_reruns_everything(tmp_path):
    wf = dask_condordag.write(delayed(add)(delayed(inc)(1), 2), path=tmp_path / "wf")
    assert cli("run", wf.path).returncode == 0
    forced = cli("run", wf.path, "--force")
    assert forced.returncode == 0 and "(0 already done before)" in forced.stderr
    assert cli("result", wf.path).stdout.strip() == "4"
