"""Granularity: what group="auto" makes of issue 12's reference graphs.

    python benchmarks/granularity.py [--only a,b] [--no-local] [--json out.json]

For each reference graph (a)-(g): the dask tasks, the nodes written, the
simulated makespan on ``slots=4`` with ``job_overhead=6`` s
(``dask_condordag.local.simulate``, DAGMan's state machine on a simulated
clock) next to the lower bound, and the local runner's wall time next to
``scheduler="processes"`` in the same run. Prints a table and writes JSON
(default: benchmarks/results/granularity.json).

Task seconds in the simulation: 2 s for the tasks of (e) (which say so with
``condor={"duration": 2}``), the cost model's default (cost.DEFAULT_TASK_SECONDS)
for every other task. A node's seconds: the sum of its tasks' seconds, or,
for a node the planner gave several threads (its payload's ``"threads"``),
``cost.threaded_seconds`` -- its tasks in order on that many threads, each
after what it reads inside the node. A node of n threads requests n cores
and the simulator holds n of the 4 for it (``request_cpus``, as one
partitionable slot); the table's ``cores`` column shows the most cores the
simulated run held at once, counted again from its events, and a row where
it passes 4 is marked ``OVER`` (a simulator that lost count of cores).

Lower bound, issue 12's: ``max(critical path, total work / slots) +
job_overhead x levels``. The critical path is the makespan of the
one-node-per-task workflow on unlimited slots without overhead (the longest
chain of task seconds); total work the sum of all task seconds. ``levels`` is
the number of jobs any partition must run one after the other
(``grouping.forced_levels``): along a path of tasks, a task starts a new node
when it or the task before it may not share a node (``processes``/
``cluster`` tasks, shell jobs, ``condor={"group": False}``) or their
scheduling settings differ; the most such nodes along any path. Each of them
is a job with its own overhead, after the one before it. It is 1 for
every reference graph here: all their tasks may share one node, so the
bound is what one job holding all the work on all 4 slots would take, and a
strict bound (no task starts before one job overhead has passed; after it,
the critical path and work / slots remain). With more levels it is the
issue's reference figure, not a strict bound: the path that forces the
levels need not be the critical one.
Targets (issue 12): makespan at most 1.25x the bound; local wall at most 2x
processes on (a), (b), (c), (d), (f).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import dask

import dask_condordag
from dask_condordag import dagfile
from dask_condordag.cost import DEFAULT_TASK_SECONDS, threaded_seconds
from dask_condordag.grouping import forced_levels
from dask_condordag.local import simulate
from dask_condordag.worker_files import read_payload

SLOTS, OVERHEAD = 4, 6.0


def sleep2(i):
    time.sleep(2)
    return i


def tiny(i):
    return i + 1


def total(xs):
    return sum(xs)


def graphs():
    import dask.array as da
    import dask.bag as db
    import pandas as pd
    import dask.dataframe as dd
    from dask import delayed

    def a():
        x = da.random.default_rng(0).random((2000, 2000), chunks=500)
        return (x @ x.T).mean()

    def b():
        return da.ones((4000, 4000), chunks=500).sum()

    def c():
        words = db.from_sequence([f"w{i % 97}" for i in range(20000)], npartitions=20)
        return words.map(str.upper).filter(lambda w: not w.endswith("7")).frequencies()

    def d():
        df = pd.DataFrame({"k": [i % 50 for i in range(16000)], "v": range(16000)})
        left = dd.from_pandas(df, npartitions=16)
        right = dd.from_pandas(pd.DataFrame({"k": range(50), "w": range(50)}), npartitions=1)
        return left.merge(right, on="k").groupby("k").v.mean()

    def e():
        with dask.annotate(condor={"duration": 2.0}):
            xs = [delayed(sleep2)(i) for i in range(40)]
        return delayed(total)(xs)

    def f():
        return delayed(total)([delayed(tiny)(i) for i in range(10000)])

    def g():
        outs = []
        for c_ in range(50):
            x = delayed(tiny)(c_)
            for _ in range(9):
                x = delayed(tiny)(x)
            outs.append(x)
        return delayed(list)(outs)

    return {"a": ("matmul-mean 2000^2, chunks 500", a), "b": ("ones(4000^2).sum", b),
            "c": ("bag 20 partitions map/filter/frequencies", c),
            "d": ("dataframe 16 partitions merge + groupby.mean", d),
            "e": ("40 x 2 s tasks + sum", e), "f": ("10,000 tiny tasks + sum", f),
            "g": ("50 chains of 10", g)}


def task_seconds(name: str) -> float:
    return 2.0 if name.startswith("sleep2") else DEFAULT_TASK_SECONDS


def threads_of(wf) -> dict:
    """node -> the threads its payload asks for (1 when it says nothing)."""
    out = {}
    for node, info in wf.nodes.items():
        meta, _ = read_payload(node, wf.path / info["payload"])
        out[node] = int(meta.get("threads") or 1)
    return out


def seconds_of(wf, threads=None, parents=None) -> dict:
    """node -> simulated seconds: the sum of its tasks' seconds, or on
    ``threads[node]`` threads their ``threaded_seconds`` (``parents``: task
    name -> the task names it reads, from the one-node-per-task DAG)."""
    out = {}
    for node, info in wf.nodes.items():
        tasks = list(info["tasks"])
        n = (threads or {}).get(node, 1)
        secs = {t: task_seconds(t) for t in tasks}
        out[node] = (threaded_seconds(tasks, parents, secs, n) if n > 1
                     else sum(secs.values()))
    return out


def peak_cores(sim, threads: dict) -> int:
    """The most cores the simulated jobs held at once (a job: its node's threads)."""
    changes = []
    for t, node, event, _ in sim.events:
        if event == "EXECUTE":
            changes.append((t, 1, threads.get(node, 1)))
        elif event == "JOB_TERMINATED":
            changes.append((t, 0, -threads.get(node, 1)))
    held = peak = 0
    for _, _, d in sorted(changes):  # at one instant, ends before starts
        held += d
        peak = max(peak, held)
    return peak


def levels_of(coll) -> int:
    """``grouping.forced_levels`` of ``coll``'s tasks, with the settings and
    the eligibility ``plangroups.auto_groups`` gives them."""
    from dask.base import collections_to_expr
    from dask.core import flatten

    from dask_condordag._compat import FinalizeCompute
    from dask_condordag.graph import read_graph
    from dask_condordag.jobs import run_shell
    from dask_condordag.plan import make_plan
    from dask_condordag.plandata import func_of

    expr = FinalizeCompute(collections_to_expr([coll])).optimize()
    graph = read_graph(expr, list(flatten(expr.__dask_keys__())))
    plan = make_plan(graph, name="bound", group="none")
    nodes = plan.nodes

    def eligible(n):
        node = nodes[n]
        ann = (graph.annotations.get(node.tasks[0].key) or {}).get("condor") or {}
        return (node.mode == "single" and ann.get("group", True) is not False
                and func_of(node.tasks[0]) is not run_shell)

    return forced_levels(list(nodes), {n: node.parents for n, node in nodes.items()},
                         {n: node.settings for n, node in nodes.items()}, eligible)


def critical_path(wf, seconds: dict) -> float:
    """The longest path of the one-node-per-task DAG, in task seconds."""
    dag = dagfile.parse_dag(wf.dag_path.read_text(), str(wf.dag_path))
    finish: dict = {}
    order, seen = [], set()
    for start in dag.nodes:
        stack = [(start, False)]
        while stack:
            n, expanded = stack.pop()
            if n in seen:
                continue
            if expanded:
                seen.add(n)
                order.append(n)
                continue
            stack.append((n, True))
            stack.extend((p, False) for p in dag.parents.get(n, ()) if p not in seen)
    for n in order:
        finish[n] = seconds.get(n, 0.0) + max((finish[p] for p in dag.parents.get(n, ())),
                                              default=0.0)
    return max(finish.values(), default=0.0)


def measure(label, make, tmp, local=True):
    coll = make()
    wf = dask_condordag.write(coll, path=tmp / f"{label}-auto", job_overhead=OVERHEAD,
                              slots=SLOTS)
    ntasks = sum(len(info["tasks"]) for info in wf.nodes.values())
    one = dask_condordag.write(coll, path=tmp / f"{label}-none", group="none")
    dag = dagfile.parse_dag(one.dag_path.read_text(), str(one.dag_path))
    parents = {n: tuple(ps) for n, ps in dag.parents.items()}
    threads = threads_of(wf)
    sim = simulate(wf.path, slots=SLOTS, job_latency=OVERHEAD,
                   durations=seconds_of(wf, threads, parents))
    per_task = seconds_of(one)
    cp = critical_path(one, per_task)
    work = sum(per_task.values())
    levels = levels_of(coll)
    bound = max(cp, work / SLOTS) + OVERHEAD * levels
    cores = peak_cores(sim, threads)
    row = {"graph": label, "tasks": ntasks, "nodes": len(wf.nodes), "makespan": sim.makespan,
           "bound": bound, "ratio": sim.makespan / bound, "critical_path": cp, "work": work,
           "levels": levels, "threads": max(threads.values(), default=1), "peak_cores": cores,
           "written": sum(len(info["outputs"]) for info in wf.nodes.values())}
    if local:
        t0 = time.perf_counter()
        dask.compute(coll, scheduler="condordag", run="local", path=tmp / f"{label}-run",
                     progress=False)
        row["local_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dask.compute(coll, scheduler="processes")
        row["processes_s"] = time.perf_counter() - t0
        row["local_x"] = row["local_s"] / row["processes_s"]
    return row


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="abcdefg")
    ap.add_argument("--no-local", action="store_true")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "granularity.json"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix="granularity-") as d:
        for label, (title, make) in graphs().items():
            if label not in args.only:
                continue
            row = measure(label, make, Path(d), local=not args.no_local)
            row["title"] = title
            rows.append(row)
            print(f"({label}) {title:46} tasks {row['tasks']:6} nodes {row['nodes']:4} "
                  f"written {row['written']:5} cores {row['peak_cores']}"
                  f"{' OVER' if row['peak_cores'] > SLOTS else ''} "
                  f"sim {row['makespan']:7.1f} s bound {row['bound']:7.1f} s "
                  f"x{row['ratio']:.2f}"
                  + (f"  local {row['local_s']:6.2f} s processes {row['processes_s']:6.2f} s "
                     f"x{row['local_x']:.2f}" if "local_s" in row else ""), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"slots": SLOTS, "job_overhead": OVERHEAD,
                                           "python": sys.version.split()[0], "rows": rows},
                                          indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
