"""Local runner wall time for 1,000 trivial nodes, beside dask's own schedulers.

    python benchmarks/local_run.py [--nodes 1000] [--group none|chains|auto] [--json out.json]

Measured in one run on the same graph (1,000 independent ``inc`` calls and a
sum): ``compute(scheduler="sync")``, ``compute(scheduler="processes")`` and
``compute(scheduler="condordag")`` (compile + write + local runner, one
process per node, as on a pool). ``--group`` passes the ``group`` option
(default ``none``: one node per task, so the figure is the runner's cost per
job and compares with commits older than ``group="auto"``; ``auto`` shows what
a user gets by default). Also times the worker shim's start-to-exit
for one trivial node against ``python -c pass`` (target: within 2x).
Prints a table and writes JSON (default: benchmarks/results/local_run.json).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from dask import delayed

import dask_condordag
from dask_condordag import names


def inc(x):
    return x + 1


def graph(n):
    return delayed(sum)([delayed(inc)(i) for i in range(n)])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def shim_vs_python(where, repeat=20):
    """Median start-to-exit of the shim on a trivial node vs ``python -c pass``."""
    wf = dask_condordag.write(delayed(inc)(1), path=os.path.join(where, "shim"))
    (node,) = wf.nodes
    scratch = os.path.join(where, "scratch")
    pack = wf.nodes[node]["payload"]
    for rel in (names.WORKER, pack):
        os.makedirs(os.path.dirname(os.path.join(scratch, rel)), exist_ok=True)
        shutil.copyfile(wf.path / rel, os.path.join(scratch, rel))
    py = sys.executable

    def run(cmd):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=scratch, check=True, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    base = statistics.median(run([py, "-c", "pass"]) for _ in range(repeat))
    shim = statistics.median(run([py, names.WORKER, node, "0", pack]) for _ in range(repeat))
    return base, shim


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--group", default="none", choices=("none", "chains", "auto"))
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "local_run.json"))
    args = p.parse_args(argv)
    n = args.nodes
    rows = {}
    with tempfile.TemporaryDirectory(prefix="condordag-bench-") as where:
        rows["sync"], expect = timed(lambda: graph(n).compute(scheduler="sync"))
        rows["processes"], got = timed(lambda: graph(n).compute(scheduler="processes"))
        assert got == expect
        rows["condordag"], got = timed(lambda: graph(n).compute(
            scheduler="condordag", path=os.path.join(where, "wf"), group=args.group))
        assert got == expect
        base, shim = shim_vs_python(where)
    print(f"{n} trivial tasks (+1 sum), group={args.group}, {os.cpu_count()} cores")
    print(f"{'scheduler':<12} {'wall s':>8} {'per node ms':>12}")
    for k, v in rows.items():
        print(f"{k:<12} {v:>8.2f} {1000 * v / (n + 1):>12.2f}")
    print(f"shim start-to-exit {1000 * shim:.1f} ms vs python -c pass {1000 * base:.1f} ms "
          f"({shim / base:.2f}x; target <= 2x)")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"nodes": n, "group": args.group, "cpus": os.cpu_count(), "wall_s": rows,
                   "shim_s": shim, "python_pass_s": base}, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
