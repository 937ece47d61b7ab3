"""Load: a 20,000-node workflow run to completion on the local runner.

    python benchmarks/load.py [--nodes 20000] [--jobs N] [--json out.json]

Writes a workflow of N independent trivial nodes plus a fan-in tree of sums
(100 wide), then runs it with ``dask-condordag``'s local runner in a separate
process and reports: wall time, nodes per second, per-node overhead (wall time
x jobs / nodes), the runner process's peak RSS, and the result check. The
runner's memory must stay bounded: it keeps a few small records per node, not
results. Prints a table and writes JSON (default: benchmarks/results/load.json).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from dask import delayed

import dask_condordag

RUNNER = r'''
import json, resource, sys, time
from dask_condordag.local import run
t = time.perf_counter()
report = run(sys.argv[1], max_workers=int(sys.argv[2]), progress=False)
print(json.dumps({"ok": report.ok, "done": len(report.done), "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


def graph(n):
    level = [delayed(inc)(i) for i in range(n)]
    while len(level) > 1:
        level = [delayed(total)(level[i:i + 100]) for i in range(0, len(level), 100)]
    return level[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=20_000)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "load.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="condordag-load-") as where:
        g = graph(args.nodes)
        t = time.perf_counter()
        wf = dask_condordag.write(g, path=os.path.join(where, "wf"))
        write_s = time.perf_counter() - t
        out = subprocess.run([sys.executable, "-c", RUNNER, str(wf.path), str(args.jobs)],
                             capture_output=True, text=True, check=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        ok = run["ok"] and wf.result() == sum(range(1, args.nodes + 1))
    nodes = len(wf.nodes)
    row = {"nodes": nodes, "jobs": args.jobs, "write_s": write_s, "run_s": run["seconds"],
           "nodes_per_s": nodes / run["seconds"],
           "per_node_ms": 1000 * run["seconds"] * args.jobs / nodes,
           "runner_peak_rss_mb": run["peak_rss_mb"], "ok": ok}
    print(f"{'nodes':>7} {'jobs':>5} {'write s':>8} {'run s':>8} {'nodes/s':>8} "
          f"{'ms/node':>8} {'runner RSS MB':>14} {'ok':>4}")
    print(f"{nodes:>7} {args.jobs:>5} {write_s:>8.1f} {row['run_s']:>8.1f} "
          f"{row['nodes_per_s']:>8.1f} {row['per_node_ms']:>8.1f} "
          f"{row['runner_peak_rss_mb']:>14.0f} {str(ok):>4}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(row, f, indent=1)
    print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
