"""The worker shim, run in a fresh interpreter with a controlled environment,
exactly as a job runs it: ``python bin/dask_condordag_worker.py NODE PROC PACK`` in a
scratch directory holding only the transferred files."""

import json
import os
import shutil
import subprocess
import sys
import traceback

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import dagfile, names, submitdesc
from dask_condordag.results import read_error, read_result

from .payloads import edit_payload
from .test_remote_exceptions import own_message
from .helpers import add, boom, inc


def _transferred(wf, node):
    """The files the node's job transfers in: its submit description's
    ``transfer_input_files``, expanded with the node's VARS (as doctor does)."""
    dag = dagfile.parse_dag(wf.dag_path.read_text(), str(wf.dag_path))
    n = dag.nodes[node]
    sub = submitdesc.parse_submit((wf.path / n.submit).read_text(), n.submit)
    cmds = submitdesc.expand_for_proc(sub, {**dict(n.vars), "JOB": node}, cluster=1, process=0)
    return submitdesc.split_file_list(cmds["transfer_input_files"])


def _scratch_for(wf, node, tmp_path):
    """A scratch directory holding only what the node's job transfers in,
    at their relative paths (``preserve_relative_paths``)."""
    scratch = tmp_path / f"scratch-{node}"
    scratch.mkdir()
    for rel in _transferred(wf, node):
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wf.path / rel, scratch / rel)
    return scratch


def _run_shim(wf, scratch, node, env=None):
    return subprocess.run(
        [sys.executable, names.WORKER, node, "0", wf.nodes[node]["payload"]], cwd=scratch, capture_output=True,
        text=True,
        env=env if env is not None else {"PATH": os.environ.get("PATH", "")},
    )


@pytest.mark.usefixtures("one_node_per_task")
def test_shim_runs_without_dask(tmp_path):
    # a fake "dask" on the path that refuses to import: plain delayed payloads
    # must not need dask on the execute node
    fake = tmp_path / "fake"
    (fake / "dask").mkdir(parents=True)
    (fake / "dask" / "__init__.py").write_text("raise ImportError('dask must not be imported')\n")
    x = delayed(add)(delayed(inc)(1), [1, {"k": 2}][0])
    wf = dask_condordag.write(x, path=tmp_path / "wf")
    first = next(n for n, info in wf.nodes.items() if not info["parents"])
    scratch = _scratch_for(wf, first, tmp_path)
    proc = _run_shim(wf, scratch, first, env={"PYTHONPATH": str(fake)})
    assert proc.returncode == 0, proc.stderr
    assert "host" in proc.stderr and "Python" in proc.stderr
    assert wf.nodes[first]["payload"] in proc.stderr  # the scratch listing
    ((out,),) = wf.nodes[first]["outputs"].values()
    assert read_result(scratch / out) == 2


def test_shim_failure_writes_report_and_exits_nonzero(tmp_path):
    x = delayed(boom)(7)
    wf = dask_condordag.write(x, path=tmp_path / "wf")
    (node,) = wf.nodes
    scratch = _scratch_for(wf, node, tmp_path)
    proc = _run_shim(wf, scratch, node)
    assert proc.returncode == 1
    ((out,),) = wf.nodes[node]["outputs"].values()
    report = read_error(scratch / out)
    assert report["exc_type"] == "builtins.ZeroDivisionError"
    assert report["message"] == "boom on 7"
    assert "in boom" in report["traceback"]
    assert report["node"] == node and report["python"] and report["host"]
    assert "ZeroDivisionError" in proc.stderr


@pytest.mark.usefixtures("one_node_per_task")
def test_shim_reports_missing_input(tmp_path):
    x = delayed(inc)(delayed(inc)(1))
    wf = dask_condordag.write(x, path=tmp_path / "wf")
    child = next(n for n, info in wf.nodes.items() if info["parents"])
    scratch = tmp_path / "s"
    (scratch / "nodes").mkdir(parents=True)
    (scratch / "bin").mkdir()
    for shipped in names.WORKER_FILES.values():
        shutil.copyfile(wf.path / shipped, scratch / shipped)
    pack = wf.nodes[child]["payload"]
    shutil.copyfile(wf.path / pack, scratch / pack)
    proc = _run_shim(wf, scratch, child)
    assert proc.returncode == 1
    ((out,),) = wf.nodes[child]["outputs"].values()
    report = read_error(scratch / out)  # the output exists even so: no hold on a pool
    assert report["exc_type"] == "builtins.FileNotFoundError"
    assert "loading input" in report["stage"]


def test_shim_refuses_python_version_mismatch(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    (node,) = wf.nodes
    scratch = _scratch_for(wf, node, tmp_path)

    def edit(data):
        head, rest = data[len(names.PAYLOAD_MAGIC):].split(b"\n", 1)
        meta = json.loads(head)
        meta["python"] = "2.7"
        return names.PAYLOAD_MAGIC + json.dumps(meta).encode() + b"\n" + rest

    edit_payload(wf, node, edit, root=scratch)
    proc = _run_shim(wf, scratch, node)
    assert proc.returncode == 1
    ((out,),) = wf.nodes[node]["outputs"].values()
    assert "Python version mismatch" in read_error(scratch / out)["message"]


def test_unpicklable_result_falls_back_to_cloudpickle(tmp_path):
    x = delayed(lambda: (lambda y: y * 3))()
    f = x.compute(scheduler="condordag")
    assert f(2) == 6


@pytest.mark.usefixtures("one_node_per_task")
def test_exception_reaches_caller_with_type_and_remote_traceback():
    x = delayed(boom)(delayed(inc)(1))
    with pytest.raises(ZeroDivisionError) as info:
        delayed(inc)(x).compute(scheduler="condordag")
    assert type(info.value) is ZeroDivisionError and own_message(info.value) == "boom on 2"
    # what Python shows under the traceback: the message, then our note
    msg = "".join(traceback.format_exception_only(type(info.value), info.value))
    assert "Remote traceback" in msg and 'raise ZeroDivisionError(f"boom on {x}")' in msg
    assert "boom-" in msg  # the key
    assert info.value.dask_condordag.node in msg and "logs/" in msg


def test_exception_of_a_local_class_comes_back_by_value():
    def fail():
        class Local(Exception):
            pass

        raise Local("odd")

    with pytest.raises(Exception) as info:
        delayed(fail)().compute(scheduler="condordag")
    assert own_message(info.value) == "odd"
    assert type(info.value).__name__ == "Local" and isinstance(info.value, Exception)
    assert info.value.dask_condordag.rebuilt


def test_unpicklable_exception_of_an_unimportable_type_becomes_remote_error():
    def fail():
        import threading

        class Local(Exception):
            pass

        e = Local("odd")
        e.lock = threading.Lock()
        raise e

    with pytest.raises(dask_condordag.RemoteError, match="odd") as info:
        delayed(fail)().compute(scheduler="condordag")
    assert "Local" in info.value.exc_type
    assert "could not be pickled on the execute node" in str(info.value)
    assert "cannot pickle '_thread.lock' object" in str(info.value)


def test_why_an_error_falls_back_to_remote_error_is_logged(caplog):
    import logging

    from dask_condordag.results import remote_exception

    report = {"exc_type": "no_such_module_dcd.Oops", "message": "odd", "node": "n1",
              "exc_pickle": "bm90IGEgcGlja2xl"}  # base64 of b"not a pickle"
    with caplog.at_level(logging.DEBUG, logger="dask_condordag.results"):
        exc = remote_exception(report, key="k")
    assert isinstance(exc, dask_condordag.RemoteError)
    text = caplog.text
    assert "no_such_module_dcd.Oops" in text and "cannot be imported" in text
    assert "did not come back" in text and "does not unpickle" in text


@pytest.mark.parametrize("delivery", ["shared", "transfer"])
@pytest.mark.parametrize("layout", ["preserved", "flat"])
def test_shim_runs_from_a_scratch_dir_holding_only_the_transferred_files(
        tmp_path, delivery, layout):
    # the shim is several files (names.WORKER_FILES): the entry script finds
    # its siblings beside it, at their relative paths (preserve_relative_paths)
    # or flattened, run directly or by the boot script; neither dask nor
    # dask_condordag is importable on this "execute node"
    fake = tmp_path / "fake"
    for pkg in ("dask", "dask_condordag"):
        (fake / pkg).mkdir(parents=True)
        (fake / pkg / "__init__.py").write_text(f"raise ImportError('no {pkg} here')\n")
    x = delayed(sum)([delayed(abs)(-3), 4])
    wf = dask_condordag.write(x, path=tmp_path / "wf", delivery=delivery,
                              worker_python=sys.executable if delivery == "transfer" else None)
    (node,) = wf.nodes
    files = _transferred(wf, node)
    assert set(names.WORKER_FILES.values()) <= set(files)
    scratch = tmp_path / "scratch"
    place = (lambda rel: rel) if layout == "preserved" else os.path.basename
    for rel in files:
        (scratch / place(rel)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wf.path / rel, scratch / place(rel))
    entry = names.BOOT if delivery == "transfer" else names.WORKER
    proc = subprocess.run(
        [sys.executable, place(entry), node, "0", place(wf.nodes[node]["payload"])],
        cwd=scratch, capture_output=True, text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(fake)})
    assert proc.returncode == 0, proc.stderr
    ((out,),) = wf.nodes[node]["outputs"].values()
    assert read_result(scratch / out) == 7
