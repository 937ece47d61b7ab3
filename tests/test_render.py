"""Rendering: exact DAG lines for small graphs, and every submit description we
write, expanded by HTCondor's own submit-language code (``htcondor2``), gives
the job attributes we intend."""

import sys
from operator import add

import pytest
from dask import delayed

import dask_condordag
from dask_condordag import names
from dask_condordag.dagfile import parse_dag
from dask_condordag.graph import read_graph
from dask_condordag.plan import make_plan
from dask_condordag.render import render_dag, render_vars, vars_value

from .helpers import inc


def test_render_dag_exact_lines():
    g = read_graph({"a": (inc, 1), "b": (inc, 2), "c": (add, "a", "b")}, ["c"])
    plan = make_plan(g, name="demo", group="none")
    a, b, c = (t.name for n in plan.nodes.values() for t in n.tasks)
    packs = {a: "nodes/pack_1.pkl", b: "nodes/pack_1.pkl", c: "nodes/pack_2.pkl"}
    text = render_dag(plan, packs=packs, done={a})
    body = [l for l in text.splitlines() if l and not l.startswith("#")]
    assert body == [
        f"JOB {a} demo.sub DONE",
        f'VARS {a} dcd_inputs="nodes/pack_1.pkl" dcd_outputs="results/{a}.pkl" '
        'dcd_payload="nodes/pack_1.pkl"',
        f"JOB {b} demo.sub",
        f'VARS {b} dcd_inputs="nodes/pack_1.pkl" dcd_outputs="results/{b}.pkl" '
        'dcd_payload="nodes/pack_1.pkl"',
        f"JOB {c} demo.sub",
        f'VARS {c} dcd_inputs="nodes/pack_2.pkl,results/{a}.pkl,results/{b}.pkl" '
        f'dcd_outputs="results/{c}.pkl" dcd_payload="nodes/pack_2.pkl"',
        f"PARENT {a} {b} CHILD {c}",
        "NODE_STATUS_FILE demo.status 30",
        "JOBSTATE_LOG demo.jobstate.log",
    ]


def test_vars_escaping():
    assert vars_value('a"b') == '"a\\"b"'
    assert vars_value("a\\b") == '"a\\\\b"'
    assert vars_value("$5") == '"$5"'
    assert vars_value("$(x) $ENV(y)") == '"$(DOLLAR)(x) $(DOLLAR)ENV(y)"'
    assert render_vars("n", [("x", "1"), ("y", "two words")]) == 'VARS n x="1" y="two words"'
    with pytest.raises(ValueError, match="newline"):
        vars_value("a\nb")


def _expanded_jobs(wf):
    """For each node: the submit description expanded by htcondor2 with the
    node's VARS applied the way DAGMan applies them (prepended)."""
    htcondor2 = pytest.importorskip("htcondor2")
    dag = parse_dag(wf.dag_path.read_text(), str(wf.dag_path))
    out = {}
    for name, node in dag.nodes.items():
        text = (wf.path / node.submit).read_text()
        pre = "".join(f"{k} = {v}\n" for k, v in node.vars) + f"JOB = {name}\n"
        sub = htcondor2.Submit(pre + text)
        out[name] = {k: sub.expand(k) for k in (
            "universe", "executable", "transfer_executable", "arguments",
            "should_transfer_files", "when_to_transfer_output", "preserve_relative_paths",
            "transfer_input_files", "transfer_output_files", "output", "error",
            "My.DaskCondorDagNode")}
        out[name]["queue"] = sub.getQArgs()
    return out


def test_submit_descriptions_expand_with_htcondor(tmp_path):
    x = delayed(inc)(1)
    y = delayed(add)(x, delayed(inc)(2))
    wf = dask_condordag.write(y, path=tmp_path / "wf")
    jobs = _expanded_jobs(wf)
    assert set(jobs) == set(wf.nodes)
    for node, job in jobs.items():
        info = wf.nodes[node]
        assert job["universe"] == "vanilla"
        assert job["executable"] == sys.executable
        assert job["transfer_executable"] == "false"
        pack = info["payload"]
        assert job["arguments"] == f'"{names.WORKER} {node} 0 {pack}"'  # $(Process) of queue 1
        assert job["should_transfer_files"] == "YES"
        assert job["when_to_transfer_output"] == "ON_EXIT"
        assert job["preserve_relative_paths"] == "true"
        inputs = job["transfer_input_files"].split(",")
        shim = list(names.WORKER_FILES.values())  # the shim's files, then the payload
        assert inputs[:len(shim) + 1] == shim + [pack]
        parents = info["parents"]
        assert sorted(inputs[len(shim) + 1:]) == sorted(
            f for p in parents for fs in wf.nodes[p]["outputs"].values() for f in fs)
        for f in inputs:
            assert (wf.path / f).exists() or f.startswith("results/"), f
        assert job["transfer_output_files"].split(",") == [
            f for fs in info["outputs"].values() for f in fs]
        assert (job["output"], job["error"]) == names.log_files(node)
        assert job["My.DaskCondorDagNode"] == f'"{node}"'
        assert job["queue"] == ""


def test_fast_node_lines_equal_the_general_ones():
    from dask_condordag.render import _node_lines, node_vars, submit_files

    g = read_graph({"a": (inc, 1), "b": (inc, 2), "c": (add, "a", "b"), "d": (inc, "c")},
                   ["d", "a"])
    plan = make_plan(g, name="demo", group="none")
    subs = submit_files(plan)
    done = {next(iter(plan.nodes))}
    packs = {n: f"nodes/pack_{i // 2}.pkl" for i, n in enumerate(plan.nodes)}
    general = []
    for node in plan.nodes.values():
        general += _node_lines(node, subs[node.name][0], node.name in done,
                               node_vars(plan, node, packs[node.name]))
    text = render_dag(plan, packs=packs, submits=subs, done=done)
    got = [l for l in text.splitlines() if l.startswith(("JOB ", "VARS "))]
    assert got == general
