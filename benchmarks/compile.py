"""Compile + write speed and peak memory for large delayed graphs.

    python benchmarks/compile.py [--sizes 10000 100000] [--group auto|none|chains] [--json out.json]

For each shape and size, in a fresh process: build the graph ("build s"), do
what ``dask.compute`` does before calling a scheduler ("dask s": dask's own
cost, the same for every scheduler), then time our compile -- graph reading,
planning, rendering, writing every payload, the DAG and the manifest ("ours
s", which tasks/s is computed from) -- and record the process's peak RSS. Prints a table and writes JSON
(default: benchmarks/results/compile.json).

Targets (issue 2): at least 20,000 tasks/s on a 2-core machine; 100k
tasks under 2 GB peak memory. Payloads are written 64 to a file (names.PACK_NODES),
so a 100k-task workflow is ~1,600 payload files, not 100k: creating a file
costs 50-90 us on a VM disk, which alone used to cap the rate near 15,000/s.
``--group`` sets the ``group`` option (default: the package's default,
``auto``; ``none`` compares with commits older than ``group="auto"``).
``--dir /dev/shm`` (tmpfs) shows the compiler's rate without the disk.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

SHAPES = ("independent", "chains", "fanin")

CHILD = r'''
import json, resource, sys, time
import dask
from dask import delayed
import dask_condordag

def inc(x):
    return x + 1

def add(x, y):
    return x + y

def total(xs):
    return sum(xs)

shape, n, path, group = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
t0 = time.perf_counter()
if shape == "independent":
    outs = [delayed(inc)(i) for i in range(n)]
elif shape == "chains":  # 100 chains of n/100 tasks each
    outs = []
    for c in range(100):
        x = delayed(inc)(c)
        for _ in range(n // 100 - 1):
            x = delayed(inc)(x)
        outs.append(x)
else:  # fan-in: n leaves summed by a tree of 100-wide sums
    level = [delayed(inc)(i) for i in range(n - n // 99 - 1)]
    while len(level) > 1:
        level = [delayed(total)(level[i:i + 100]) for i in range(0, len(level), 100)]
    outs = level
t1 = time.perf_counter()
# what dask.compute does before it calls a scheduler (dask's own cost, not ours)
from dask.base import collections_to_expr
from dask.core import flatten
from dask_condordag._compat import FinalizeCompute
from dask_condordag.config import options
from dask_condordag.scheduler import _compile
expr = FinalizeCompute(collections_to_expr(outs)).optimize()
keys = list(flatten(expr.__dask_keys__()))
t2 = time.perf_counter()
# ours: read the graph, plan, render, write the directory
settings = {"path": path, "name": "bench"}
if group:
    settings["group"] = group
wf = _compile(expr, keys, options(settings))
t3 = time.perf_counter()
tasks = sum(len(info["tasks"]) for info in wf.nodes.values())
import os
files = sum(len(fs) for _, _, fs in os.walk(path))
print(json.dumps({"files": files, "build_s": t1 - t0, "dask_s": t2 - t1, "write_s": t3 - t2, "tasks": tasks,
                  "nodes": len(wf.nodes),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def measure(shape, n, where, group=""):
    # Deleting many files just before creating many is slow on some disks
    # (online discard): workflows are deleted only after all measurements.
    os.sync()
    out = subprocess.run([sys.executable, "-c", CHILD, shape, str(n),
                          os.path.join(where, f"{shape}-{n}"), group],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(shape=shape, size=n, group=group or "default", tasks_per_s=row["tasks"] / row["write_s"])
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "compile.json"))
    p.add_argument("--dir", default=None,
                   help="where to write the workflows (default: the system temp directory; "
                        "file creation costs differ a lot between file systems)")
    p.add_argument("--group", default="", choices=("", "auto", "none", "chains"),
                   help="the group option (default: the package's default)")
    args = p.parse_args(argv)
    rows = []
    print(f"{'shape':<12} {'tasks':>8} {'nodes':>8} {'build s':>8} {'dask s':>8} "
          f"{'ours s':>8} {'tasks/s':>9} {'peak MB':>8} {'files':>6}")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="condordag-bench-") as where:
        for n in args.sizes:
            for shape in args.shapes:
                r = measure(shape, n, where, args.group)
                rows.append(r)
                print(f"{shape:<12} {r['tasks']:>8} {r['nodes']:>8} {r['build_s']:>8.2f} "
                      f"{r['dask_s']:>8.2f} {r['write_s']:>8.2f} {r['tasks_per_s']:>9.0f} "
                      f"{r['peak_rss_mb']:>8.0f} {r['files']:>6}", flush=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                   "rows": rows}, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
