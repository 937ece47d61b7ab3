"""Bad input: a clear error that names the culprit, before anything is written
(or, for what only the execute side can see, reported by the worker)."""

import io
import json
import os
import socket
import sys
import threading
import types

import dask
import numpy as np
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import (
    CondorDagError, CorruptResultError, GraphError, MissingKeyError, PlanError, WorkflowError,
    WorkflowExistsError, names,
)
from dask_condordag._compat import Task, TaskRef

from .payloads import edit_payload
from .helpers import inc


def use(x):
    return 1


def _gen():
    yield 1


# -- refused before anything is written ---------------------------------------
# (name, builder returning the collections, expected exception, regex on message)

def _unpicklable(obj_factory):
    def build():
        return [delayed(use)(obj_factory(), dask_key_name="the-key")]
    return build


def _closure_over_lock():
    lock = threading.Lock()

    def f():
        return lock.locked()

    return [delayed(f)(dask_key_name="the-key")]


def _big_inline_list():
    return [delayed(len)(list(range(2_000_000)), dask_key_name="the-key")]


def _big_inline_array():
    return [delayed(np.sum)(np.zeros(3_000_000), dask_key_name="the-key")]


def _procid_alone():
    return [delayed(inc)(dask_condordag.procid, dask_key_name="the-key")]


def _ann(**ann):
    def build():
        with dask.annotate(**ann):
            return [delayed(inc)(1, dask_key_name="the-key")]
    return build


WRITE_TIME = [
    ("lock argument", _unpicklable(threading.Lock), PlanError, "'the-key'.*cannot be pickled"),
    ("generator argument", _unpicklable(_gen), PlanError, "'the-key'.*cannot be pickled"),
    ("open file argument", _unpicklable(lambda: open(__file__)), PlanError,
     "'the-key'.*open file.*cannot travel"),
    ("socket argument", _unpicklable(socket.socket), PlanError, "'the-key'.*cannot be pickled"),
    ("closure over a lock", _closure_over_lock, PlanError, "'the-key'.*cannot be pickled"),
    ("large list inline", _big_inline_list, PlanError, r"'the-key'.*MiB.*dask\.delayed\(obj\)"),
    ("large array inline", _big_inline_array, PlanError, r"'the-key'.*ndarray.*dask\.delayed"),
    ("procid without processes", _procid_alone, PlanError, "'the-key'.*processes"),
    ("negative retries", _ann(retries=-1), PlanError, "'the-key'.*retries"),
    ("float retries", _ann(retries=0.5), PlanError, "'the-key'.*retries"),
    ("float priority", _ann(priority=2.5), PlanError, "'the-key'.*priority"),
    ("bad category", _ann(condor={"category": "a b"}), PlanError, "'the-key'.*category"),
    ("vars name with space", _ann(condor={"vars": {"a b": "1"}}), PlanError, "'the-key'.*vars"),
    ("vars name queue*", _ann(condor={"vars": {"queueing": "1"}}), PlanError, "queue"),
    ("vars newline", _ann(condor={"vars": {"a": "x\ny"}}), PlanError, "line break"),
    ("submit newline", _ann(condor={"submit": {"requirements": "x\r"}}), PlanError, "line break"),
    ("unknown resource", _ann(resources={"ram": 1}), PlanError, "'ram'.*unknown resource"),
    ("bad memory size", _ann(resources={"memory": "4 potatoes"}), PlanError, "memory.*4 potatoes"),
    ("processes zero", _ann(condor={"processes": 0}), PlanError, "processes"),
    ("owned submit command", _ann(condor={"submit": {"transfer_output_files": "x"}}), PlanError,
     "cannot be overridden"),
    ("max_runtime negative", _ann(condor={"max_runtime": -3}), PlanError, "max_runtime"),
]


@pytest.mark.parametrize("name,build,exc,match", WRITE_TIME, ids=[c[0] for c in WRITE_TIME])
def test_refused_before_writing(tmp_path, name, build, exc, match):
    colls = build()
    with pytest.raises(exc, match=match):
        dask_condordag.write(*colls, path=tmp_path / "wf")
    assert os.listdir(tmp_path) == []


def test_another_workflow_in_the_directory(tmp_path):
    dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf", name="one")
    with pytest.raises(WorkflowExistsError, match="another workflow"):
        dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf", name="two")


def test_path_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WorkflowExistsError, match="not a directory"):
        dask_condordag.write(delayed(inc)(1), path=tmp_path / "f")


def test_empty_graph():
    with pytest.raises(GraphError, match="nothing to compute"):
        dask_condordag.get({}, [])
    with pytest.raises(CondorDagError, match="no dask collections"):
        dask_condordag.write(path="wf")


def test_graph_with_a_cycle():
    with pytest.raises(GraphError, match="cycle"):
        dask_condordag.get({"a": (inc, "b"), "b": (inc, "c"), "c": (inc, "a")}, "a")


def test_reference_to_a_missing_key():
    with pytest.raises(MissingKeyError, match="'a'.*'gone'"):
        dask_condordag.get({"a": Task("a", inc, TaskRef("gone"))}, "a")


def test_function_from_a_module_made_at_run_time_travels_by_value():
    mod = types.ModuleType("made_at_run_time")
    exec("def triple(x):\n    return 3 * x\n", mod.__dict__)
    sys.modules["made_at_run_time"] = mod
    try:
        assert delayed(mod.triple)(5).compute(scheduler="condordag") == 15
    finally:
        del sys.modules["made_at_run_time"]


@pytest.mark.parametrize("key", [7, 2.5, b"bytes-key", ("x", 1, 2.0), ("nested", ("t", 1)),
                                 "line\nbreak"])
def test_keys_of_unusual_types_work(key):
    dsk = {key: Task(key, inc, 1), "out": Task("out", inc, TaskRef(key))}
    assert dask_condordag.get(dsk, ["out", key]) == (3, 2)


# -- workflows that were edited or come from elsewhere --------------------------


def _ran(tmp_path):
    wf = dask_condordag.write(delayed(inc)(delayed(inc)(1)), path=tmp_path / "wf")
    assert wf.run().ok
    return wf


@pytest.mark.usefixtures("one_node_per_task")
def test_results_folder_edited_by_hand(tmp_path):
    wf = _ran(tmp_path)
    files = sorted((wf.path / "results").iterdir())
    files[0].write_bytes(files[1].read_bytes())  # one result copied over another
    with pytest.raises(CorruptResultError, match="holds the result of"):
        for f in files:
            dask_condordag.results.read_result(f)


def test_manifest_from_a_newer_version(tmp_path):
    wf = _ran(tmp_path)
    m = json.loads((wf.path / names.MANIFEST).read_text())
    m["format"] = 99
    (wf.path / names.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(WorkflowError, match="format 99.*upgrade"):
        dask_condordag.Workflow.open(wf.path)


def test_manifest_damaged(tmp_path):
    wf = _ran(tmp_path)
    (wf.path / names.MANIFEST).write_text("{not json")
    with pytest.raises(WorkflowError, match="manifest.json"):
        dask_condordag.Workflow.open(wf.path)


def test_not_a_workflow(tmp_path):
    with pytest.raises(WorkflowError, match="not a dask-condordag workflow"):
        dask_condordag.Workflow.open(tmp_path)


# -- what only the execute side can see: reported by the worker ----------------


def _rewrite_payload_meta(wf, **changes):
    def edit(data):
        head, body = data[len(names.PAYLOAD_MAGIC):].split(b"\n", 1)
        meta = {**json.loads(head), **changes}
        return names.PAYLOAD_MAGIC + json.dumps(meta).encode() + b"\n" + body

    for node in wf.nodes:
        edit_payload(wf, node, edit)


def test_python_version_mismatch_is_reported_by_the_worker(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    _rewrite_payload_meta(wf, python="3.2")
    assert not wf.run().ok
    with pytest.raises(RuntimeError, match="Python version mismatch.*3.2"):
        wf.result()


def test_cloudpickle_version_mismatch_is_reported_by_the_worker(tmp_path):
    wf = dask_condordag.write(delayed(lambda: 1)(), path=tmp_path / "wf")
    _rewrite_payload_meta(wf, cloudpickle="0.1.0", needs_cloudpickle=True)
    assert not wf.run().ok
    with pytest.raises(RuntimeError, match="cloudpickle version mismatch"):
        wf.result()


def test_module_missing_on_the_execute_node(tmp_path, monkeypatch):
    # a module importable here (on sys.path) and treated as installed, so it is
    # pickled by reference: the job cannot import it and says what to do
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "only_here.py").write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(libdir))
    import only_here
    from dask_condordag import usercode

    prefixes = usercode.installed_prefixes() + (str(libdir) + os.sep,)
    monkeypatch.setattr(usercode, "installed_prefixes", lambda: prefixes)
    usercode._module_cache.clear()
    try:
        with pytest.raises(ModuleNotFoundError, match="only_here") as info:
            delayed(only_here.f)(1).compute(scheduler="condordag")
        assert "by_value" in str(info.value) or "by value" in str(info.value)
    finally:
        usercode._module_cache.clear()


class Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this object")


def test_result_that_cannot_be_pickled(tmp_path):
    def make():
        return Unpicklable()

    with pytest.raises(Exception, match="pickle"):
        delayed(make)().compute(scheduler="condordag")


def test_result_that_is_a_lock_is_refused_as_local_state(tmp_path):
    def make():
        return threading.Lock()

    with pytest.raises(dask_condordag.exceptions.LocalStateError, match="returned a lock"):
        delayed(make)().compute(scheduler="condordag")


def test_result_before_the_workflow_ran(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    with pytest.raises(dask_condordag.ResultMissingError, match="not there yet"):
        wf.result()


def test_io_objects_inside_containers_are_named(tmp_path):
    with pytest.raises(PlanError, match="'the-key'.*cannot be pickled"):
        dask_condordag.write(delayed(use)({"f": io.BufferedReader(io.BytesIO(b"x"))},
                                          dask_key_name="the-key"), path=tmp_path / "wf")
