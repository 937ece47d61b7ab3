"""Writing workflow directories: layout, manifest, atomicity, refusal, reuse,
options, and loading results from a fresh process."""

import json
import os
import subprocess
import sys
import threading

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag import names
from dask_condordag.exceptions import PlanError, WorkflowError, WorkflowExistsError

from .helpers import add, inc


@pytest.mark.usefixtures("one_node_per_task")
def test_layout_and_manifest(tmp_path):
    total = delayed(add)(delayed(inc)(1), delayed(inc)(2))
    wf = dask_condordag.write(total, path=tmp_path / "mytest")
    p = wf.path
    for rel in ("mytest.dag", "mytest.sub", names.MANIFEST, names.OUTPUTS, names.WORKER):
        assert (p / rel).is_file(), rel
    for d in ("nodes", "results", "logs", "data"):
        assert (p / d).is_dir()
    m = json.loads((p / names.MANIFEST).read_text())
    # the three payloads share one pack, which every node names
    (pack,) = (p / "nodes").iterdir()
    assert {info["payload"] for info in m["nodes"].values()} == {f"nodes/{pack.name}"}
    assert m["format"] == names.MANIFEST_FORMAT and m["name"] == "mytest"
    assert set(m["versions"]) == {"python", "dask", "cloudpickle", "dask_condordag"}
    assert m["versions"]["dask"] == dask.__version__
    assert m["created"] and m["dag"] == "mytest.dag"
    (out,) = m["outputs"]
    assert out["kind"] == "task" and out["files"] == [f"results/{out['name']}.pkl"]
    assert out["key"] == repr(total.key)
    node = m["nodes"][out["name"]]
    assert node["outputs"] == {out["name"]: out["files"]} and len(node["parents"]) == 2
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no staging left


def test_result_from_a_fresh_process(tmp_path):
    wf = dask_condordag.write(delayed(add)(delayed(inc)(1), 10), [delayed(inc)(5)],
                              path=tmp_path / "wf")
    assert wf.run().ok
    code = ("import dask_condordag, sys; "
            "print(repr(dask_condordag.Workflow.open(sys.argv[1]).result()))")
    out = subprocess.run([sys.executable, "-c", code, str(wf.path)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "(12, [6])"


def test_single_collection_result_is_the_value(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    wf.run()
    assert wf.result() == 2


def test_result_reads_outputs_pkl_once(tmp_path, monkeypatch):
    # result() verified and unpickled outputs.pkl twice (once itself, once in values())
    from dask_condordag import workflow_results

    wf = dask_condordag.write(delayed(add)(delayed(inc)(1), 10), [delayed(inc)(5)],
                              path=tmp_path / "wf")
    wf.run()
    real, reads = workflow_results.read_result, []

    def counting(path, *args, **kwargs):
        reads.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(workflow_results, "read_result", counting)
    assert wf.result() == (12, [6])
    assert reads.count(names.OUTPUTS) == 1, reads


def test_result_before_running_says_so(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    with pytest.raises(dask_condordag.ResultMissingError, match="has not finished"):
        wf.result()


def test_refuses_another_workflow(tmp_path):
    dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf", name="first")
    before = sorted(p.name for p in (tmp_path / "wf").rglob("*"))
    with pytest.raises(WorkflowExistsError, match="another workflow.*'first'"):
        dask_condordag.write(delayed(inc)(2), path=tmp_path / "wf", name="second")
    assert sorted(p.name for p in (tmp_path / "wf").rglob("*")) == before


def test_refuses_a_directory_that_is_not_a_workflow(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep me")
    with pytest.raises(WorkflowExistsError, match="not a dask-condordag workflow"):
        dask_condordag.write(delayed(inc)(1), path=tmp_path / "data")
    assert os.listdir(tmp_path / "data") == ["precious.txt"]


def test_empty_directory_is_fine(tmp_path):
    (tmp_path / "wf").mkdir()
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    assert wf.run().ok and wf.result() == 2


def test_error_half_way_leaves_nothing(tmp_path):
    lock = threading.Lock()
    good = [delayed(inc)(i) for i in range(5)]
    bad = delayed(lambda l: 1)(lock)
    with pytest.raises(PlanError, match="cannot be pickled") as info:
        dask_condordag.write(*good, bad, path=tmp_path / "wf")
    assert "lock" in str(info.value)  # names the key
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("one_node_per_task")
def test_same_workflow_again_keeps_results_and_marks_done(tmp_path):
    x = delayed(inc)(delayed(inc)(1))
    wf = dask_condordag.write(x, path=tmp_path / "wf")
    assert wf.run().ok
    results = {p.name: p.stat().st_mtime_ns for p in (wf.path / "results").iterdir()}
    y = delayed(add)(delayed(inc)(delayed(inc)(1)), 100)  # same first two tasks
    wf2 = dask_condordag.write(y, path=tmp_path / "wf", name="wf")
    assert len(wf2.manifest["reused"]) == 2
    done = [l for l in wf2.dag_path.read_text().splitlines() if l.endswith(" DONE")]
    assert len(done) == 2
    report = wf2.run()
    assert report.ok and len(report.skipped) == 2
    assert wf2.result() == 103
    for name, mtime in results.items():  # never rewritten
        assert (wf.path / "results" / name).stat().st_mtime_ns == mtime


@pytest.mark.usefixtures("one_node_per_task")
def test_payloads_travel_in_packs(tmp_path):
    from .payloads import payload

    xs = [delayed(inc)(i) for i in range(150)]
    big = delayed(len)(b"x" * (names.PACK_ALONE + 1))  # a literal argument, in its payload
    wf = dask_condordag.write(xs, big, path=tmp_path / "wf")
    packs = {}
    for node, info in wf.nodes.items():
        packs.setdefault(info["payload"], []).append(node)
        assert len(payload(wf, node)) > 0
    assert sorted(map(len, packs.values())) == [1, 22, 64, 64]  # 150 = 64 + 64 + 22
    (alone,) = [n for n in packs.values() if len(n) == 1]
    assert wf.nodes[alone[0]]["tasks"] == {alone[0]: repr(big.key)}
    assert {f"nodes/{f.name}" for f in (wf.path / "nodes").iterdir()} == set(packs)
    lines = wf.dag_path.read_text().splitlines()
    for node, info in wf.nodes.items():  # the DAG names each node's own pack
        (vars_,) = [l for l in lines if l.startswith(f"VARS {node} ")]
        assert f'dcd_payload="{info["payload"]}"' in vars_
        assert f'dcd_inputs="{info["payload"]}' in vars_
    assert wf.run().ok
    assert wf.result() == (list(range(1, 151)), names.PACK_ALONE + 1)


def test_rewrite_deletes_the_packs_no_node_names(tmp_path):
    wf = dask_condordag.write([delayed(inc)(1), delayed(inc)(2)], path=tmp_path / "wf")
    assert wf.run().ok
    (old,) = (wf.path / "nodes").iterdir()
    wf2 = dask_condordag.write([delayed(inc)(1), delayed(inc)(3)], path=tmp_path / "wf",
                               name="wf")
    assert len(wf2.manifest["reused"]) == 1
    (new,) = (wf.path / "nodes").iterdir()
    assert new.name != old.name
    assert wf2.run().ok and wf2.result() == [2, 4]


def test_compute_twice_runs_nothing_the_second_time(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()

    def touch(d, i):
        import os
        import uuid

        open(os.path.join(d, uuid.uuid4().hex), "w").close()
        return i

    xs = [delayed(touch)(str(calls), i) for i in range(3)]
    assert dask.compute(*xs, scheduler="condordag") == (0, 1, 2)
    assert dask.compute(*xs, scheduler="condordag") == (0, 1, 2)
    assert len(os.listdir(calls)) == 3


def test_run_none_writes_and_says_where(tmp_path):
    x = delayed(inc)(41)
    with pytest.raises(dask_condordag.CondorDagError, match="written to .* but not run") as info:
        x.compute(scheduler="condordag", run="none", path=str(tmp_path / "wf"))
    assert "Workflow.open" in str(info.value)
    wf = dask_condordag.Workflow.open(tmp_path / "wf")
    wf.run()
    assert wf.result() == (42,)  # get() returns a tuple aligned with dask's keys


def test_options_from_config_and_environment(tmp_path, monkeypatch):
    with dask.config.set({"condordag.run": "none"}):
        with pytest.raises(dask_condordag.CondorDagError, match="not run"):
            delayed(inc)(1).compute(scheduler="condordag")
    # keyword beats config
    with dask.config.set({"condordag.run": "none"}):
        assert delayed(inc)(1).compute(scheduler="condordag", run="local") == 2
    # environment variables reach dask's config
    code = ("import dask, dask_condordag\n"
            "from dask_condordag.config import options\n"
            "print(options({}).max_workers, options({}).run)")
    env = {**os.environ, "DASK_CONDORDAG__MAX_WORKERS": "3", "DASK_CONDORDAG__RUN": "none"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["3", "none"]


def test_bad_options_are_named():
    with pytest.raises(TypeError, match="max_wrokers"):
        delayed(inc)(1).compute(scheduler="condordag", max_wrokers=2)
    with pytest.raises(dask_condordag.CondorDagError, match="run='cluster'"):
        delayed(inc)(1).compute(scheduler="condordag", run="cluster")
    with pytest.raises(dask_condordag.CondorDagError, match="max_workers=0"):
        delayed(inc)(1).compute(scheduler="condordag", max_workers=0)


def test_import_reads_no_config_and_writes_nothing(tmp_path):
    code = ("import os, dask_condordag, dask_condordag.config as c\n"
            "assert c.defaults.cache_info().currsize == 0\n"
            "assert os.listdir('.') == []\n"
            "import dask; assert dask.base.named_schedulers['condordag'] is dask_condordag.get")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_newer_manifest_format_is_refused(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    m = json.loads((wf.path / names.MANIFEST).read_text())
    m["format"] = names.MANIFEST_FORMAT + 1
    (wf.path / names.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(WorkflowError, match="upgrade dask-condordag"):
        dask_condordag.Workflow.open(wf.path)
