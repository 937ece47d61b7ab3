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
for every other task. Lower bound: ``max(critical path, total work / slots) +
job_overhead`` (any plan pays at least one job's overhead); the critical path
is the makespan of the one-node-per-task workflow on unlimited slots without
overhead, from the same simulator. Targets (issue 12): makespan at most 1.25x
the bound; local wall at most 2x processes on (a), (b), (c), (d), (f).
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
from dask_condordag.cost import DEFAULT_TASK_SECONDS
from dask_condordag.local import simulate

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


def seconds_of(wf):
    """node -> simulated seconds: the sum of its tasks' seconds."""
    out = {}
    for node, info in wf.nodes.items():
        out[node] = sum(2.0 if t.startswith("sleep2") else DEFAULT_TASK_SECONDS
                        for t in info["tasks"])
    return out


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
    sim = simulate(wf.path, slots=SLOTS, job_latency=OVERHEAD, durations=seconds_of(wf))
    one = dask_condordag.write(coll, path=tmp / f"{label}-none", group="none")
    per_task = seconds_of(one)
    cp = critical_path(one, per_task)
    work = sum(per_task.values())
    bound = max(cp, work / SLOTS) + OVERHEAD
    row = {"graph": label, "tasks": ntasks, "nodes": len(wf.nodes), "makespan": sim.makespan,
           "bound": bound, "ratio": sim.makespan / bound, "critical_path": cp, "work": work}
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
