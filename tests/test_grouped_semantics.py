"""Per-task semantics inside nodes of several tasks (issue 12 item 3): each
task keeps its name and result whatever the grouping; a failing task is
reported by its own key; the tasks that finished before it are kept and not
computed again; inspect, errors and result work per key."""

import json
import os
from pathlib import Path

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import names
from dask_condordag.cli import main as cli


def step(x, tag, log):
    """x + 1, appending ``tag`` to the file ``log`` (counts executions)."""
    with open(log, "a") as f:
        f.write(tag + "\n")
    return x + 1


def step_bad(x, tag, log):
    with open(log, "a") as f:
        f.write(tag + "\n")
    raise ValueError(f"bad step {tag}")


def step_flaky(x, tag, log, flag):
    with open(log, "a") as f:
        f.write(tag + "\n")
    if os.path.exists(flag):
        raise ValueError(f"flaky step {tag}")
    return x + 1


def runs(log) -> dict:
    out: dict = {}
    for line in Path(log).read_text().split():
        out[line] = out.get(line, 0) + 1
    return out


def chain(log, third=step, extra=()):
    a = delayed(step)(0, "a", log, dask_key_name="a")
    b = delayed(step)(a, "b", log, dask_key_name="b")
    c = delayed(third)(b, "c", log, *extra, dask_key_name="c")
    return delayed(step)(c, "d", log, dask_key_name="d")


def test_a_failing_task_in_a_chain_is_reported_by_its_key_and_the_rest_is_kept(tmp_path):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    d = chain(log, third=step_bad)
    w = dask_condordag.write(d, path=wf, group="chains")
    assert len(w.nodes) == 1
    with pytest.raises(ValueError, match="bad step c") as info:
        d.compute(scheduler="condordag", path=wf, group="chains")
    assert info.value.dask_condordag.key == "'c'"  # the failing task, not the node's output
    assert "Task 'c'" in "\n".join(getattr(info.value, "__notes__", [])) + str(info.value)
    assert runs(log) == {"a": 1, "b": 1, "c": 1}
    (err,) = dask_condordag.Workflow.open(wf).errors()
    assert err["key"] == "'c'" and err["task"].startswith("c_")
    # b (read by c, which did not finish) is kept as its own result; a is not needed
    [b_name] = [t for t in json.loads((Path(wf) / "manifest.json").read_text())["nodes"]
                .popitem()[1]["tasks"] if t.startswith("b_")]
    assert (Path(wf) / names.result_file(b_name)).exists()

    # the fix: c's code changes, so c and d get new names; a and b keep theirs
    fixed = chain(log)
    assert fixed.compute(scheduler="condordag", path=wf, group="chains") == 4
    assert runs(log) == {"a": 1, "b": 1, "c": 2, "d": 1}


def test_rescue_after_a_transient_failure_skips_the_finished_tasks(tmp_path):
    log, wf, flag = str(tmp_path / "log"), str(tmp_path / "wf"), tmp_path / "flag"
    flag.write_text("")
    d = chain(log, third=step_flaky, extra=(str(flag),))
    with pytest.raises(ValueError, match="flaky step c"):
        d.compute(scheduler="condordag", path=wf, group="chains")
    flag.unlink()
    assert d.compute(scheduler="condordag", path=wf, group="chains") == 4
    assert runs(log) == {"a": 1, "b": 1, "c": 2, "d": 1}
    manifest = json.loads((Path(wf) / "manifest.json").read_text())
    (node,) = manifest["nodes"].values()
    assert [t[:2] for t in node["reused_tasks"]] == ["b_"]  # a: not needed, not run


@pytest.mark.parametrize("first,second", [("none", "chains"), ("chains", "none")])
def test_results_are_reused_whatever_the_next_grouping(tmp_path, first, second):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    d = chain(log)
    assert d.compute(scheduler="condordag", path=wf, group=first) == 4
    assert runs(log) == {"a": 1, "b": 1, "c": 1, "d": 1}
    e = delayed(step)(d, "e", log, dask_key_name="e")
    assert e.compute(scheduler="condordag", path=wf, group=second) == 5
    assert runs(log) == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}
    status = dask_condordag.Workflow.open(wf).status()
    assert status["done"] == status["total"] and status["failed"] == 0


def test_inspect_errors_and_lookups_per_key(tmp_path, capsys):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    d = chain(log, third=step_bad)
    with pytest.raises(ValueError):
        d.compute(scheduler="condordag", path=wf, group="chains")
    capsys.readouterr()
    assert cli(["errors", wf]) == 1
    out = capsys.readouterr().out
    assert "=== key 'c' (node d_" in out and "bad step c" in out
    assert cli(["inspect", wf, "b"]) == 1  # found inside the grouped node
    out = capsys.readouterr().out
    assert "task b_" in out and "b_" in out.split("results:")[1] and "= 2" in out
    assert "failed in task c_" in out
    assert cli(["result", wf, "--key", "b"]) == 0
    assert capsys.readouterr().out.strip() == "2"
    w = dask_condordag.Workflow.open(wf)
    assert w.value("b") == 2 and w.value("'b'") == 2
    with pytest.raises(ValueError, match="bad step c"):
        w.value("c")
    with pytest.raises(dask_condordag.ResultMissingError):
        w.value("a")  # finished, but not needed again: not kept


def merged(plan):
    """``plan`` (group="none") with all its tasks in one node of several
    outputs, as a general grouping (not a chain) would make it."""
    from dataclasses import replace

    from dask_condordag.plan import PlannedNode

    tasks = tuple(t for n in plan.nodes.values() for t in n.tasks)
    requested = {o.name for o in plan.outputs}
    outputs = {t.name: (names.result_file(t.name),) for t in tasks if t.name in requested}
    name = "grp_" + tasks[-1].name.rsplit("_", 1)[1]
    node = PlannedNode(name=name, tasks=tasks, inputs=(), outputs=outputs, parents=())
    return replace(plan, nodes={name: node}, task_node={t.name: name for t in tasks},
                   files=dict(outputs))


def fan(log, bad):
    """p -> q, p -> r, (q, r) -> s: a diamond, not a chain."""
    p = delayed(step)(0, "p", log, dask_key_name="p")
    q = delayed(step)(p, "q", log, dask_key_name="q")
    r = delayed(step_bad if bad else step)(p, "r", log, dask_key_name="r")
    s = delayed(lambda a, b: a + b)(q, r, dask_key_name="s")
    return q, s


def write_merged(objs, wf):
    from dask_condordag.graph import read_graph
    from dask_condordag.plan import make_plan
    from dask_condordag.write import write_workflow

    dsk, keys = {}, []
    for o in objs:
        dsk.update(o.__dask_graph__())
        keys.append(o.key)
    plan = merged(make_plan(read_graph(dsk, keys), name="fan"))
    write_workflow(plan, wf, keys=keys)
    return dask_condordag.Workflow.open(wf)


def test_a_hand_made_group_of_several_outputs(tmp_path):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    w = write_merged(fan(log, bad=True), wf)
    (node,) = w.nodes.values()
    assert len(node["tasks"]) == 4 and len(node["outputs"]) == 2
    w.run()
    assert runs(log) == {"p": 1, "q": 1, "r": 1}
    (err,) = w.errors()
    assert err["key"] == "'r'"
    assert w.value("q") == 2  # written: requested, finished before r failed
    assert w.value("p") == 1  # kept: r, which did not finish, reads it
    with pytest.raises(ValueError, match="bad step r") as info:
        w.result()
    assert info.value.dask_condordag.key == "'r'"

    w = write_merged(fan(log, bad=False), wf)  # the fix: r and s get new names
    (node,) = w.nodes.values()
    assert {t[:2] for t in node["reused_tasks"]} == {"p_", "q_"}
    assert set(node["outputs"]) == {t for t in node["tasks"] if t[:2] in ("q_", "s_")}
    w.run()
    assert w.result() == (2, 4)
    assert runs(log) == {"p": 1, "q": 1, "r": 2}
    # gc keeps the reused output q (requested) and the kept task p
    dask_condordag.gc(wf)
    assert w.result() == (2, 4) and w.value("p") == 1


def test_one_failure_in_a_node_of_several_outputs_is_one_error(tmp_path):
    log, wf = str(tmp_path / "log"), str(tmp_path / "wf")
    objs = [delayed(step_bad)(0, "x", log, dask_key_name="x")] + [
        delayed(step)(i, t, log, dask_key_name=t) for i, t in enumerate("yz")]
    w = write_merged(objs, wf)
    w.run()
    (node,) = w.nodes.values()
    ok = [t for t, (f,) in node["outputs"].items() if (Path(wf) / f).read_bytes()
          .startswith(b"DCDAG-OK")]
    errs = [t for t, (f,) in node["outputs"].items() if (Path(wf) / f).read_bytes()
            .startswith(b"DCDAG-ERR")]
    assert len(ok) + len(errs) == 3  # every output is there (else: ON HOLD on a pool)
    (err,) = w.errors()  # the report is in each unfinished output, listed once
    assert err["key"] == "'x'"


def test_worker_keeps_only_what_the_tasks_that_did_not_run_read(tmp_path):
    import threading

    from dask_condordag import results, worker_errors

    tasks = [("a", (0, 1)), ("b", (2, step, ((1, "a"),), ())),
             ("it", (2, iter, ((1, "b"),), ())), ("lock", (2, threading.Lock, (), ())),
             ("out", (2, step, ((1, "b"),), ())),
             ("c", (2, step, ((1, "b"), (1, "it"), (1, "lock"), (1, "out")), ())),
             ("d", (2, step, ((1, "c"),), ()))]
    env = {"a": 1, "b": [2], "it": iter([2]), "lock": threading.Lock(), "out": 3}
    kept = worker_errors.keep_finished(tasks, env, {"out"}, "c", {"keys": {"b": "'b'"}})
    assert set(kept) == {"b"}  # a: not read by c or d; it: lazy; lock: local state; out: written
    assert results.keep_finished(tmp_path, {"finished": kept}) == ["b"]
    assert results.read_result(tmp_path / names.result_file("b")) == [2]
    assert results.keep_finished(tmp_path, {"finished": kept}) == []  # there already
    # a kept result is checked against its own name before it is written
    assert results.keep_finished(tmp_path, {"finished": {"x": kept["b"]}}) == []
    assert not (tmp_path / names.result_file("x")).exists()
