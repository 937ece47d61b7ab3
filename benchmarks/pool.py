"""dask-condordag on a real HTCondor pool, beside dask-jobqueue's HTCondorCluster.

    # as root, in the checkout, with the pool of ../shared/htcondor/ started:
    python benchmarks/pool.py [--only chain,map,e,a,big] [--repeat 2] [--map-width 100]

    # or as the pool user, with this checkout installed with its "bench" extra
    # (pip install -e ".[bench]": dask-jobqueue and distributed):
    python benchmarks/pool.py --here [...]

HTCondor never runs a job owned by root, so whoever submits must be the pool's
user (``../shared/htcondor/README.md``). Run as root, the script does what
``pool test`` does: it copies the checkout (tracked and untracked files, not
ignored ones) to ``~<pool user>/dcd-bench/repo``, makes a venv there with
``/usr/bin/python3`` (a path the jobs can run) and ``pip install -e
".[bench]"`` into it (kept between runs), runs itself with ``--here`` through
``pool run`` and copies the JSON back to ``benchmarks/results/``. The pool is
neither started nor stopped here; ``pool status`` says which profile it runs
(the fast profile has 1 s cycles and ``DAGMAN_USER_LOG_SCAN_INTERVAL = 1``;
the stock profile 5 s cycles, HTCondor's own defaults -- closer to a real pool).

Measured in one run, on the same pool (each line is ``compute()`` end to end:
compile, write, submit, wait, load the values):

* ``chain``: a chain of ``--chain`` (5) trivial tasks through
  ``compute(run="condor")``, once with ``dagman_scan_interval=5`` (HTCondor's
  default) and once with the option's default; per node latency = wall / nodes,
  and DAGMan's own span (``DAGMAN_STARTED`` .. ``DAGMAN_FINISHED`` in the
  jobstate log), with the scan interval DAGMan reported in its ``.dagman.out``
  (the job's environment overrides the pool's configuration).
* ``map``: ``--map-width`` independent trivial tasks: nodes per second.
* ``e``: 40 calls of a 2-second task plus a sum (issue 12's reference (e)).
* ``a``: ``(x @ x.T).mean()`` of a 2000x2000 array in 500x500 chunks (issue
  12's reference (a)).
* ``big`` (only with ``--only big``): ``--big-width`` (2000) trivial nodes, every
  result checksum verified as the values load, and ``status()``'s latency
  while the DAG runs -- issue 10's 2,000-node run, too long for CI.
* ``e`` and ``a`` with ``--repeat 2``: the second run is planned with the
  task times the first recorded (cost.py: the same key prefix in another
  workflow of the same directory).
* ``e`` and ``a`` also on dask-jobqueue's ``HTCondorCluster`` with 4 one-core
  workers submitted to the same pool: the wall time from creating the cluster to
  the value (workers' start-up included, as a user sees it), and the compute
  alone once the workers are up.

Each compute() uses the options' defaults (``poll_interval`` 5 s, as a user
gets; ``--poll`` sets it). Columns: wall time; from calling compute() to
DAGMan's ``DAGMAN_STARTED`` (compile, write, condor_submit_dag, the schedd
starting the DAGMan job); DAGMan's span; from ``DAGMAN_FINISHED`` to the
value (noticing the end, loading the results) -- jobstate log times are
whole seconds, so these are +-1 s; job seconds idle and running, summed.

Prints a table and writes JSON to ``benchmarks/results/pool-<time>.json``.
Workflows are written under a temporary folder of the checkout's
``benchmarks/results/`` and removed at the end (``--keep``: kept, for
``dask-condordag report`` / ``plan``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent
RESULTS = HERE / "results"
POOL = Path(os.environ.get("DCD_POOL", TOP.parent / "shared" / "htcondor" / "pool"))
POOL_USER = os.environ.get("DCD_POOL_USER", "condorpool")
WORKLOADS = ("chain", "map", "e", "a")  # the default run
EXTRA = ("big",)  # only when asked: --only big
KEEP = False  # --keep: leave the workflow directories for ``dask-condordag report``
POLL = None  # --poll: compute()'s poll_interval (None: the option's default)


# ------------------------------------------------------------------ tasks
def inc(x):
    return x + 1


def two_seconds(i):
    time.sleep(2)
    return i


# ------------------------------------------------------------------ graphs
def chain(n):
    from dask import delayed

    x = delayed(inc)(0, dask_key_name="chain-0")
    for i in range(1, n):
        x = delayed(inc)(x, dask_key_name=f"chain-{i}")
    return x, n


def wide_map(n):
    from dask import delayed

    return [delayed(inc)(i, dask_key_name=f"map-{i}") for i in range(n)], n


def reference_e():
    from dask import delayed

    return delayed(sum)([delayed(two_seconds)(i) for i in range(40)]), 41


def reference_a():
    import dask.array as da

    x = da.random.default_rng(42).random((2000, 2000), chunks=500)
    return (x @ x.T).mean(), None


# ------------------------------------------------------------------ dask-condordag
def dagman_record(path) -> dict:
    """From a finished workflow: DAGMan's span (jobstate log, whole seconds),
    the job seconds spent idle in the queue (SUBMIT..EXECUTE) and running
    (EXECUTE..JOB_TERMINATED), summed over nodes, the scan interval DAGMan
    reported, and how many nodes it ran."""
    import dask_condordag

    wf = dask_condordag.Workflow.open(path)
    started = finished = None
    ran = queued = running = 0
    seen = {}
    for line in (wf.path / f"{wf.name}.jobstate.log").read_text().splitlines():
        parts = line.split()
        if "DAGMAN_STARTED" in parts:
            started, ran, queued, running, seen = int(parts[0]), 0, 0, 0, {}
        elif "DAGMAN_FINISHED" in parts:
            finished = int(parts[0])
        elif len(parts) > 3:
            t, node, event = int(parts[0]), parts[1], parts[2]
            if event == "EXECUTE" and node in seen:
                queued += t - seen[node]
            elif event == "JOB_TERMINATED" and node in seen:
                running += t - seen[node]
            elif event == "JOB_SUCCESS":
                ran += 1
            seen[node] = t
    scan = None
    for line in wf.dagman_out.read_text().splitlines():
        if "DAGMAN_USER_LOG_SCAN_INTERVAL setting:" in line:
            scan = int(line.rsplit(":", 1)[1])
    span = finished - started if started is not None and finished is not None else None
    return {"dagman_span_s": span, "queued_s": queued, "running_s": running,
            "dagman_scan_interval": scan, "nodes_run": ran, "nodes": len(wf.nodes),
            "started": started, "finished": finished}


def run_condordag(name, build, where, **options) -> dict:
    import dask

    coll, tasks = build()
    path = Path(where) / name
    if POLL is not None:
        options = {"poll_interval": POLL, **options}
    t0 = time.time()
    t = time.perf_counter()
    value = dask.compute(coll, scheduler="condordag", run="condor", path=path,
                         progress=False, **options)[0]
    wall = time.perf_counter() - t
    t1 = time.time()
    rec = dagman_record(path)
    started, finished = rec.pop("started"), rec.pop("finished")
    row = {"system": "dask-condordag", "wall_s": round(wall, 2), "tasks": tasks,
           "options": options, **rec}
    if started is not None and finished is not None:
        # whole seconds in the jobstate log: +-1 s
        row["before_dagman_s"] = round(started - t0, 1)
        row["after_dagman_s"] = round(t1 - finished, 1)
    if not KEEP:
        shutil.rmtree(path, ignore_errors=True)
    return row, value


def run_big(width, where) -> dict:
    """``width`` trivial nodes (``group="none"``), every result's checksum
    verified as the values load; and how long ``status()`` takes while the DAG
    runs (another thread asks every 2 s, as a user at another terminal would)."""
    import statistics
    import threading

    import dask_condordag

    path = Path(where) / "big"
    took, stop = [], threading.Event()

    def ask():
        while not stop.wait(2):
            try:
                wf = dask_condordag.Workflow.open(path)
            except (OSError, dask_condordag.CondorDagError):
                continue  # not written yet
            if wf.cluster is not None:
                t = time.perf_counter()
                wf.status()
                took.append(time.perf_counter() - t)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    try:
        row, value = run_condordag("big", lambda: wide_map(width), where, group="none")
    finally:
        stop.set()
        asker.join()
    assert list(value) == list(range(1, width + 1))
    row["nodes_per_s"] = round(width / row["wall_s"], 2)
    if took:
        row["status_s_median"] = round(statistics.median(took), 3)
        row["status_s_max"] = round(max(took), 3)
        row["status_calls"] = len(took)
    return row


# ------------------------------------------------------------------ dask-jobqueue
def run_jobqueue(build, workers=4) -> tuple:
    """HTCondorCluster with ``workers`` one-core workers: wall from creating the
    cluster to the value, and the compute alone with the workers up."""
    import dask
    from dask.distributed import Client
    from dask_jobqueue import HTCondorCluster

    coll, tasks = build()
    t = time.perf_counter()
    with HTCondorCluster(cores=1, processes=1, memory="1GB", disk="1GB",
                         scheduler_options={"host": "127.0.0.1"}) as cluster:
        cluster.scale(workers)
        with Client(cluster) as client:
            value = dask.compute(coll, scheduler=client)[0]
            wall = time.perf_counter() - t
            client.wait_for_workers(workers, timeout=300)
            coll2, _ = build()
            t2 = time.perf_counter()
            value2 = dask.compute(coll2, scheduler=client)[0]
            warm = time.perf_counter() - t2
    assert _same(value, value2)
    return {"system": f"HTCondorCluster ({workers} x 1 core)", "wall_s": round(wall, 2),
            "warm_s": round(warm, 2), "tasks": tasks}, value


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    except TypeError:
        return a == b


# ------------------------------------------------------------------ the run
def measure(args, where) -> list:
    rows = []

    def add(workload, row, **extra):
        row = {"workload": workload, **extra, **row}
        rows.append(row)
        print(_line(row), flush=True)

    only = set(args.only)
    for r in range(args.repeat):
        if "chain" in only:  # alternate the two settings: the pool's load drifts
            for scan in (5, None):
                opts = {"dagman_scan_interval": scan} if scan is not None else {}
                row, value = run_condordag(f"chain-{r}-{scan}", lambda: chain(args.chain),
                                           where, group="none", **opts)
                assert value == args.chain
                row["per_node_s"] = round(row["wall_s"] / args.chain, 2)
                add("chain", row, repeat=r)
        if "map" in only:
            row, value = run_condordag(f"map-{r}", lambda: wide_map(args.map_width), where,
                                       group="none")
            assert list(value) == list(range(1, args.map_width + 1))
            row["nodes_per_s"] = round(args.map_width / row["wall_s"], 2)
            add("map", row, repeat=r)
    if "big" in only:
        add("big", run_big(args.big_width, where))
    expected = {}
    for name, build in (("e", reference_e), ("a", reference_a)):
        if name not in only:
            continue
        for r in range(args.repeat):
            row, value = run_condordag(f"{name}-{r}", build, where)
            expected.setdefault(name, value)
            assert _same(value, expected[name])
            add(name, row, repeat=r)
            if not args.no_jobqueue:
                row, value = run_jobqueue(build)
                assert _same(value, expected[name])
                add(name, row, repeat=r)
    return rows


def _line(row) -> str:
    keys = ("workload", "system", "dagman_scan_interval", "tasks", "nodes", "wall_s",
            "warm_s", "per_node_s", "nodes_per_s", "before_dagman_s", "dagman_span_s",
            "after_dagman_s", "queued_s", "running_s", "status_s_median", "status_s_max")
    return "  ".join(f"{k}={row[k]}" for k in keys if row.get(k) is not None)


def table(rows) -> str:
    head = ("workload", "system", "scan s", "nodes", "wall s", "warm s", "per node s",
            "nodes/s", "to DAGMan start s", "DAGMan span s", "after DAGMan s", "queued s",
            "running s")
    keys = ("workload", "system", "dagman_scan_interval", "nodes", "wall_s", "warm_s",
            "per_node_s", "nodes_per_s", "before_dagman_s", "dagman_span_s",
            "after_dagman_s", "queued_s", "running_s")
    cells = [head] + [tuple("" if r.get(k) is None else str(r[k]) for k in keys)
                      for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pool_profile() -> dict:
    out = {}
    for knob in ("DAGMAN_USER_LOG_SCAN_INTERVAL", "NEGOTIATOR_INTERVAL", "SCHEDD_INTERVAL"):
        r = subprocess.run(["condor_config_val", knob], capture_output=True, text=True)
        out[knob] = r.stdout.strip() if r.returncode == 0 else None
    return out


def main_here(args) -> int:
    import dask

    import dask_condordag

    global KEEP, POLL
    KEEP, POLL = args.keep, args.poll
    RESULTS.mkdir(parents=True, exist_ok=True)
    where = tempfile.mkdtemp(prefix="pool-bench-", dir=RESULTS)
    try:
        rows = measure(args, where)
    finally:
        if args.keep:
            print(f"workflows kept in {where}")
        else:
            shutil.rmtree(where, ignore_errors=True)
    print()
    print(table(rows))
    info = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
            "cores": os.cpu_count(), "pool_config": pool_profile(),
            "dask": dask.__version__, "dask_condordag": dask_condordag.__version__,
            "python": platform.python_version(), "rows": rows}
    try:
        import dask_jobqueue
        import distributed

        info["dask_jobqueue"], info["distributed"] = (dask_jobqueue.__version__,
                                                      distributed.__version__)
    except ImportError:
        pass
    out = Path(args.json or RESULTS / f"pool-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.write_text(json.dumps(info, indent=2))
    print(f"\nJSON: {out}")
    return 0


# ------------------------------------------------------------------ as root
def _pool(*cmd, cwd=None, check=True, **kw):
    return subprocess.run([str(POOL), *map(str, cmd)], cwd=cwd, check=check, **kw)


def stage_and_rerun(argv) -> int:
    """Copy the checkout for the pool user, install it there, rerun as that user."""
    if not POOL.exists():
        sys.exit(f"{POOL} is missing: run as the pool's user with --here instead")
    home = Path(pwd.getpwnam(POOL_USER).pw_dir)
    stage = home / "dcd-bench"
    repo = stage / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=TOP, check=True,
                           capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src, dst = TOP / rel, repo / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    subprocess.run(["chown", "-R", POOL_USER, str(stage)], check=True)
    venv = stage / "venv"
    if not (venv / "bin" / "python").exists():
        _pool("run", "/usr/bin/python3", "-m", "venv", venv, cwd=repo)
    print(f"[pool.py] installing {repo}[bench] for {POOL_USER} (pip)", flush=True)
    _pool("run", venv / "bin" / "python", "-m", "pip", "install", "-q", "-e", ".[bench]",
          cwd=repo)
    r = _pool("run", venv / "bin" / "python", repo / "benchmarks" / "pool.py", "--here",
              *argv, cwd=repo, check=False)
    made = sorted((repo / "benchmarks" / "results").glob("pool-*.json"))
    if made:
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(made[-1], RESULTS / made[-1].name)
        print(f"[pool.py] copied to {RESULTS / made[-1].name}")
    return r.returncode


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--here", action="store_true",
                   help="run in this interpreter (as the pool's user)")
    p.add_argument("--only", type=lambda s: s.split(","), default=list(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS + EXTRA)} "
                        f"(default: {','.join(WORKLOADS)})")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--chain", type=int, default=5, help="nodes along the chain")
    p.add_argument("--map-width", type=int, default=100, help="tasks of the wide map")
    p.add_argument("--big-width", type=int, default=2000, help="nodes of the big DAG")
    p.add_argument("--no-jobqueue", action="store_true", help="skip HTCondorCluster")
    p.add_argument("--poll", type=float, default=None,
                   help="compute()'s poll_interval (default: the option's default)")
    p.add_argument("--keep", action="store_true",
                   help="keep the workflow directories (printed) for dask-condordag report")
    p.add_argument("--json", help="where to write the JSON (default: benchmarks/results/)")
    args = p.parse_args(argv)
    bad = set(args.only) - set(WORKLOADS + EXTRA)
    if bad:
        p.error(f"unknown workload(s) {sorted(bad)}: choose from {WORKLOADS + EXTRA}")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.here or os.geteuid() != 0:
        return main_here(args)
    return stage_and_rerun([a for a in argv if a != "--here"])


if __name__ == "__main__":
    sys.exit(main())
