"""The local runner executes the written files as DAGMan and an execute node
would: file transfer, failures, rescue DAGs, concurrency."""

import os
import time
from pathlib import Path

import pytest
from dask import delayed

import dask_condordag
from dask_condordag.dagfile import parse_dag

from .helpers import inc


def record(log_dir, tag, seconds=0.0, fail_if=None):
    """A task that leaves a trace (for counting runs and overlaps)."""
    start = time.time()
    if seconds:
        time.sleep(seconds)
    with open(os.path.join(log_dir, f"{tag}-{os.getpid()}-{start}"), "w") as f:
        f.write(f"{start} {time.time()}")
    if fail_if and os.path.exists(fail_if):
        raise RuntimeError(f"{tag} failed because {fail_if} exists")
    return tag


def runs(log_dir, tag=None):
    return [p for p in Path(log_dir).iterdir() if tag is None or p.name.startswith(f"{tag}-")]


@pytest.mark.usefixtures("one_node_per_task")
def test_missing_transfer_entry_fails_the_node(tmp_path):
    x = delayed(inc)(1)
    y = delayed(inc)(x)
    wf = dask_condordag.write(y, path=tmp_path / "wf")
    child = next(n for n, i in wf.nodes.items() if i["parents"])
    dag = wf.dag_path.read_text()
    (parent_out,) = next(iter(wf.nodes[wf.nodes[child]["parents"][0]]["outputs"].values()))
    wf.dag_path.write_text(dag.replace(f",{parent_out}", ""))  # forget to transfer it
    report = wf.run()
    assert not report.ok and list(report.failed) == [child]
    with pytest.raises(FileNotFoundError, match=parent_out.split("/")[1]):
        wf.result()


def test_missing_output_is_reported_as_a_hold(tmp_path):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    (node,) = wf.nodes
    dag = wf.dag_path.read_text()
    wf.dag_path.write_text(dag.replace('dcd_outputs="', 'dcd_outputs="results/extra.pkl,'))
    report = wf.run()
    assert "ON HOLD" in report.failed[node]


@pytest.mark.usefixtures("one_node_per_task")
def test_failure_rescue_and_rerun_only_the_rest(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    flag = tmp_path / "flag"
    flag.write_text("fail")
    a = delayed(record)(str(log_dir), "a")
    b = delayed(record)(str(log_dir), "b", fail_if=str(flag))
    c = delayed(record)(str(log_dir), "c")
    d = delayed(lambda *xs: "".join(xs))(a, b, c)
    wf = dask_condordag.write(d, path=tmp_path / "wf")
    r1 = wf.run(max_workers=1)  # b fails; as DAGMan does, c still runs
    assert not r1.ok and len(r1.failed) == 1
    assert r1.rescue == wf.path / f"{wf.dag_path.name}.rescue001"
    rescue = r1.rescue.read_text()
    assert "# Rescue DAG file" in rescue
    done_lines = {l.split()[1] for l in rescue.splitlines() if l.startswith("DONE ")}
    assert len(done_lines) == 2  # a and c; d never ran
    with pytest.raises(RuntimeError, match="failed because"):
        wf.result()
    assert len(runs(log_dir)) == 3

    flag.unlink()
    r2 = dask_condordag.Workflow.open(wf.path).run(max_workers=1)
    assert r2.ok, r2.failed
    assert r2.skipped == done_lines
    assert len(runs(log_dir, "a")) == 1 and len(runs(log_dir, "c")) == 1
    assert len(runs(log_dir, "b")) == 2
    assert wf.result() == "abc"
    assert not (wf.path / f"{wf.dag_path.name}.rescue002").exists()


def test_second_rescue_numbering(tmp_path):
    flag = tmp_path / "flag"
    flag.write_text("x")
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    wf = dask_condordag.write(delayed(record)(str(log_dir), "a", fail_if=str(flag)),
                              path=tmp_path / "wf")
    assert wf.run().rescue.name.endswith(".rescue001")
    assert wf.run().rescue.name.endswith(".rescue002")
    flag.unlink()
    assert wf.run().ok
    assert wf.result() == "a"


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.usefixtures("one_node_per_task")
def test_concurrency_never_exceeds_max_workers(tmp_path, n):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    tasks = [delayed(record)(str(log_dir), f"t{i}", 0.3) for i in range(5)]
    wf = dask_condordag.write(*tasks, path=tmp_path / "wf")
    report = wf.run(max_workers=n)
    assert report.ok and report.max_running <= n
    spans = []
    for p in runs(log_dir):
        s, e = map(float, p.read_text().split())
        spans.append((s, e))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    assert 1 <= peak <= n


def test_done_nodes_are_skipped(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    x = delayed(record)(str(log_dir), "x")
    wf = dask_condordag.write(x, path=tmp_path / "wf")
    (node,) = wf.nodes
    text = wf.dag_path.read_text().replace(f"JOB {node} wf.sub", f"JOB {node} wf.sub DONE")
    wf.dag_path.write_text(text)
    dag = parse_dag(text, "wf.dag")
    assert dag.nodes[node].done
    report = wf.run()
    assert report.ok and report.skipped == {node} and runs(log_dir) == []


def test_job_environment_is_not_the_callers(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDORDAG_TEST_SECRET", "leak")
    x = delayed(lambda: os.environ.get("CONDORDAG_TEST_SECRET"))()
    assert x.compute(scheduler="condordag") is None


def test_progress_bar_works():
    from dask.diagnostics import ProgressBar
    import io

    out = io.StringIO()
    with ProgressBar(out=out, minimum=0, dt=0.01):
        assert delayed(inc)(delayed(inc)(1)).compute(scheduler="condordag") == 3
    assert "100% Completed" in out.getvalue()


def test_dask_callbacks_see_every_task():
    from dask.callbacks import Callback

    seen = []

    class Rec(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            seen.append(key)

        def _finish(self, dsk, state, errored):
            seen.append(("finish", errored))

    with Rec():
        delayed(inc)(delayed(inc)(1)).compute(scheduler="condordag")
    assert len(seen) == 3 and seen[-1] == ("finish", False)


def test_progress_lines(tmp_path, capsys):
    wf = dask_condordag.write(delayed(inc)(1), path=tmp_path / "wf")
    wf.run(progress=True)
    err = capsys.readouterr().err
    assert "1 of 1 nodes done" in err


@pytest.mark.usefixtures("one_node_per_task")
def test_fail_fast_starts_nothing_new(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    flag = tmp_path / "flag"
    flag.write_text("fail")
    first = delayed(record)(str(log_dir), "first", fail_if=str(flag))
    later = [delayed(record)(str(log_dir), f"later{i}") for i in range(3)]
    wf = dask_condordag.write(first, *later, path=tmp_path / "wf")
    order = list(wf.nodes)
    assert wf.nodes[order[0]]["tasks"]  # the failing node is first in the DAG file
    report = wf.run(max_workers=1, fail_fast=True)
    assert len(report.failed) == 1 and len(runs(log_dir)) == 1
