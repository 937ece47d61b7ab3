"""``group="auto"``: partition the task graph into DAG nodes by the cost model.

Data
    In: the planned tasks (dependency order), their node settings, planner
    hints (``condor={"duration": s, "group": False}``), ordering-only edges
    and a :class:`~dask_condordag.cost.CostModel`. Out: a :class:`Partition`
    -- groups of task keys, each in dependency order (a valid order to run
    them in one job), and the threads of the groups that get several cores.

Policy
    * Only tasks that must run and may share a job are grouped ("eligible"):
      not a ``processes``/``cluster`` task, not a shell job
      (``jobs.run_shell``: its files live in its own job's scratch
      directory), not ``condor={"group": False}``, not a task whose result
      already exists in the workflow directory (``History.done``: it is
      reused as its own node). Tasks with different node settings (resources,
      category, submit commands, retries, priority, vars, scripts,
      max_runtime) never share a group.
    * Cores: a node may request ``c = min(cores_per_node, slots)`` cores
      (``request_cpus``) and run its independent tasks on that many threads
      (payload ``"threads"``; the worker keeps dependencies and per-task
      results as in one thread). Tasks that request cpus, memory or gpus
      themselves (``resources={"cpus": k}``: ``threadable``) keep one
      thread. Threads speed up what releases the GIL (numpy, pandas, I/O,
      ``time.sleep``), as dask's own threaded scheduler does; for
      pure-Python work set ``cores_per_node=1``.
    * One job, when it is cheap: if all eligible tasks share their settings,
      their bytes fit ``max_node_bytes``, the set is convex (no path leaves
      it and comes back) and one job on ``c`` threads, ``job_overhead +
      max(cp, T / c)`` (``T``: their estimated work, ``cp``: its critical
      path), is within one ``job_overhead`` of the best any plan could reach,
      ``job_overhead + max(cp, T / slots)`` (more jobs would save less than
      the overhead one more level of jobs costs), they are one node. It runs
      on the fewest threads ``t <= c`` whose ``job_overhead + max(cp, T /
      t)`` is within 10% of ``c``'s (a node of cheap tasks keeps one thread).
    * A guess is not a measurement: when the seconds of a node's tasks are
      only the default (``guessed``: nothing recorded, nothing annotated --
      a first run), the node gets as many threads as it has tasks that can
      run at once (tasks at one depth; a chain keeps one), up to ``c``, as
      dask's threaded scheduler would run them: if the tasks turn out to take
      seconds, they do not run one after the other for want of a record. A
      run records their times, and the next plan uses them.
    * Otherwise two passes, each keeping the node graph acyclic:

      1. *Trees* (vertical, like dask's blockwise and linear fusion): in
         reverse dependency order, a task whose only dependent is eligible
         with equal settings joins that dependent's group. Chains (the group
         so far reads one task per member) join without limit; into a fan-in
         a cheap task (at most ``job_overhead / 10`` seconds) joins while the
         group's estimated seconds stay within
         ``min(job_overhead, T / (2 * slots))``, so cheap tree reductions,
         blockwise subtrees and shuffle stages per output partition collapse
         and expensive inputs keep their parallelism. Every group is an
         in-tree whose only exit is its root, so the contracted graph has no
         cycle (a cycle through two groups would be one through their roots).
      2. *Bundles* (horizontal, Pegasus' horizontal clustering): groups at the
         same level of the contracted graph (longest path from its sources)
         with equal settings are packed, largest first onto the least loaded
         bundle, into the fewest one-core bundles ``n <= slots`` whose level
         time ``job_overhead + max(largest group, work / n)`` is within 10%
         of the best ``slots`` bundles give -- then those ``n`` one-core jobs
         become ``ceil(n / c)`` jobs of up to ``c`` threads each (one
         partitionable slot's worth of work per job). Edges between bundles
         go from a lower level to a higher one, so again no cycle.
    * The values between jobs cost too: when the tasks could be one job but
      the rule above splits them, the two-pass plan is estimated -- its
      longest chain of jobs, each ``job_overhead`` + its run time +
      ``value_seconds`` per value it reads from or writes for another job
      (``cost.VALUE_SECONDS``: a result file sealed, moved or transferred,
      loaded), at least ``job_overhead`` + its core-seconds / ``slots`` --
      and the one job, ``job_overhead + max(cp, T / t)``, is kept when it
      is not slower. (10,000 cheap tasks and their sum on 8 slots were nine
      jobs writing 9,900 values: 18 s on the local runner, against 0.2 s as
      one job; 30,000 on slots=100 on the test pool, 74 s against 14.7 s.)
    * No group's result bytes (``CostModel.task_bytes``) pass
      ``max_node_bytes`` (bundles are split for it before they get threads);
      a group writes only the values read outside it or requested (``plan``).
    * :func:`forced_levels`: how many jobs any partition puts one after the
      other (issue 12's lower bound: ``benchmarks/granularity.py``).

Example::

    >>> from dask_condordag.cost import CostModel
    >>> tasks = {"a": None, "b": None}
    >>> reads = {"a": (), "b": ("a",)}
    >>> partition(list(tasks), reads, {}, lambda k: True, CostModel(),
    ...           seconds=lambda k: 0.001, nbytes=lambda k: 1)
    Partition(groups=[['a', 'b']], threads={})
    >>> wide = {f"x{i}": () for i in range(40)}          # 40 x 2 s, then a sum
    >>> wide["sum"] = tuple(wide)
    >>> p = partition(list(wide), wide, {}, lambda k: True, CostModel(slots=4),
    ...               seconds=lambda k: 0.0 if k == "sum" else 2.0, nbytes=lambda k: 1)
    >>> [len(g) for g in p.groups], p.threads           # one job on 4 cores
    ([41], {'sum': 4})
"""

from __future__ import annotations

import heapq
import math
from typing import NamedTuple

__all__ = ["partition", "Partition", "acyclic", "forced_levels"]


class Partition(NamedTuple):
    """What :func:`partition` decides: ``groups`` (key lists, each in
    dependency order) and ``threads``: the last key of a group -> the threads
    (cores) its node runs its tasks on, for the groups that get more than one."""

    groups: list
    threads: dict


def partition(keys: list, reads: dict, settings: dict, eligible, model, *, seconds,
              nbytes, threadable=None, guessed=None) -> Partition:
    """Groups of ``keys`` (each a list in the order of ``keys``, which is a
    dependency order) and the threads of each. ``reads``: key -> keys of tasks
    it reads or waits for; ``settings``: key -> node settings (missing: the
    default); ``eligible(key)``: whether it may share a node;
    ``threadable(key)``: whether its node may run it on several threads
    (default: yes); ``seconds``/``nbytes``: the cost model's estimates per key;
    ``guessed(key)``: whether ``seconds(key)`` is only the default, nothing
    recorded or annotated (default: none is)."""
    n = len(keys)
    index = {k: i for i, k in enumerate(keys)}
    ins = [[index[r] for r in dict.fromkeys(reads.get(k, ())) if r in index] for k in keys]
    outs: list = [[] for _ in range(n)]
    for i, rs in enumerate(ins):
        for r in rs:
            outs[r].append(i)
    ok = [bool(eligible(k)) for k in keys]
    cls = [settings.get(k) for k in keys]
    cost = [seconds(k) if ok[i] else 0.0 for i, k in enumerate(keys)]
    unsure = [bool(ok[i] and guessed is not None and guessed(k)) for i, k in enumerate(keys)]
    size = [nbytes(k) if ok[i] else 0 for i, k in enumerate(keys)]
    overhead, slots, budget = model.job_overhead, max(model.slots, 1), model.max_node_bytes
    cores = max(1, min(model.cores_per_node, slots))

    def cores_of(i: int) -> int:
        return cores if threadable is None or threadable(keys[i]) else 1

    elig = [i for i in range(n) if ok[i]]
    total = sum(cost)
    one = None  # (groups, threads, estimated seconds) of the one-job plan
    if (elig and len({cls[i] for i in elig}) == 1 and sum(size) <= budget
            and _convex(ok, ins)):
        cp = _critical_path(cost, ins)
        c = cores_of(elig[0])
        t = _threads(total, cp, overhead, c, len(elig))
        if any(unsure[i] for i in elig):  # a guess: the cores in case it is wrong
            t = max(t, min(c, _width(ok, ins)))
        one = ([elig] + [[i] for i in range(n) if not ok[i]], {elig[-1]: t} if t > 1 else {},
               overhead + max(cp, total / t))
        if max(cp, total / c) - max(cp, total / slots) <= overhead:
            return _emit(keys, one[0], one[1])

    # pass 1: in-trees
    root = list(range(n))
    gcost = cost[:]
    gbytes = size[:]
    chain = [len(ins[i]) <= 1 for i in range(n)]
    cap = min(overhead, total / (2 * slots))
    cheap = overhead / 10  # a task a fan-in may pull into its job
    for i in range(n - 1, -1, -1):
        if not ok[i] or len(outs[i]) != 1:
            continue
        j = outs[i][0]
        if not ok[j] or cls[i] != cls[j]:
            continue
        r = root[j]
        if gbytes[r] + size[i] > budget:
            continue
        is_chain = chain[r] and len(ins[j]) == 1
        if not is_chain and (gcost[r] + cost[i] > cap or cost[i] > cheap):
            continue
        root[i] = r
        gcost[r] += cost[i]
        gbytes[r] += size[i]
        chain[r] = is_chain and len(ins[i]) <= 1

    # pass 2: levels of the contracted graph, bundles per (level, settings)
    level = [0] * n  # meaningful at roots
    for i in range(n):
        r = root[i]
        for p in ins[i]:
            rp = root[p]
            if rp != r and level[rp] + 1 > level[r]:
                level[r] = level[rp] + 1
    members: dict = {}
    for i in range(n):
        members.setdefault(root[i], []).append(i)
    buckets: dict = {}
    groups = []
    threads = {}
    for r, ms in members.items():
        if ok[r]:
            buckets.setdefault((level[r], cls[r]), []).append(r)
        else:
            groups.append(ms)
    for roots in buckets.values():
        for bundle, t in _bundles(roots, gcost, gbytes, overhead, slots, budget,
                                  cores_of(roots[0])):
            g = sorted(i for r in bundle for i in members[r])
            if any(unsure[i] for i in g):  # a guess: the cores in case it is wrong
                t = max(t, min(cores_of(roots[0]), len(bundle)))
            groups.append(g)
            if t > 1:
                threads[g[-1]] = t
    if one is not None and one[2] <= _estimate(groups, threads, ok, ins, outs, cost, overhead,
                                               slots, model.value_seconds):
        return _emit(keys, one[0], one[1])  # the values between the jobs cost more
    return _emit(keys, groups, threads)


def _estimate(groups: list, threads: dict, ok: list, ins: list, outs: list, cost: list,
              overhead: float, slots: int, value_seconds: float) -> float:
    """Estimated makespan of the eligible ``groups`` as jobs: the longest
    chain of jobs, each ``overhead`` + its run time (its work on its
    threads, at least its largest task) + ``value_seconds`` per value it
    reads from or writes for another job; at least ``overhead`` + their
    core-seconds / ``slots``."""
    gid = {}
    for g, members in enumerate(groups):
        for i in members:
            gid[i] = g
    weight, succ, indeg = [], [set() for _ in groups], [0] * len(groups)
    core_seconds = 0.0
    for g, members in enumerate(groups):
        if not ok[members[0]]:
            weight.append(0.0)
            continue
        work = sum(cost[i] for i in members)
        t = threads.get(members[-1], 1)
        run = max(max(cost[i] for i in members), work / t)
        values_in = {r for i in members for r in ins[i] if ok[r] and gid[r] != g}
        values_out = sum(1 for i in members if any(ok[j] and gid[j] != g for j in outs[i]))
        files = (len(values_in) + values_out) * value_seconds
        weight.append(overhead + run + files)
        core_seconds += run * t + files
        for r in values_in:
            h = gid[r]
            if g not in succ[h]:
                succ[h].add(g)
                indeg[g] += 1
    finish = [0.0] * len(groups)
    ready = [g for g in range(len(groups)) if indeg[g] == 0]
    start = [0.0] * len(groups)
    while ready:
        h = ready.pop()
        finish[h] = start[h] + weight[h]
        for g in succ[h]:
            start[g] = max(start[g], finish[h])
            indeg[g] -= 1
            if indeg[g] == 0:
                ready.append(g)
    return max(max(finish, default=0.0), overhead + core_seconds / slots)


def _threads(work: float, cp: float, overhead: float, cores: int, width: int) -> int:
    """The fewest threads (at most ``cores``) that run a node of ``work``
    seconds with critical path ``cp`` within 10% of its time on ``cores``."""
    best = overhead + max(cp, work / cores)
    for t in range(1, min(cores, width)):
        if overhead + max(cp, work / t) <= 1.1 * best:
            return t
    return max(1, min(cores, width))


def _width(ok: list, ins: list) -> int:
    """The most tasks of the set ``ok`` at one depth (longest path within
    the set): how many of them can run at once, at least (a chain: 1)."""
    depth = [0] * len(ok)
    count: dict = {}
    for i, rs in enumerate(ins):
        if ok[i]:
            depth[i] = 1 + max((depth[r] for r in rs if ok[r]), default=0)
            count[depth[i]] = count.get(depth[i], 0) + 1
    return max(count.values(), default=0)


def _critical_path(cost: list, ins: list) -> float:
    """The largest sum of ``cost`` along a path (``ins``: dependency order)."""
    finish = [0.0] * len(cost)
    for i, rs in enumerate(ins):
        finish[i] = cost[i] + max((finish[r] for r in rs), default=0.0)
    return max(finish, default=0.0)


def _bundles(roots: list, gcost: list, gbytes: list, overhead: float, slots: int,
             budget: int, cores: int = 1) -> list:
    """Pack the groups ``roots`` of one level into bundles: ``(roots, threads)``."""
    if len(roots) == 1:
        return [(roots, 1)]
    work = sum(gcost[r] for r in roots)
    largest = max(gcost[r] for r in roots)
    n_max = min(slots, len(roots))
    best = overhead + max(largest, work / n_max)
    room = 1.1 * best - overhead
    one_core = n_max if room <= 0 else min(n_max, max(1, math.ceil(work / room)))
    nbytes = sum(gbytes[r] for r in roots)
    by_bytes = min(len(roots), math.ceil(nbytes / budget) if budget > 0 else len(roots))
    # the one-core jobs the level needs, as few jobs of up to ``cores`` threads
    n = min(len(roots), max(math.ceil(one_core / cores), by_bytes))
    per = max(1, min(cores, math.ceil(one_core / n)))
    bins = [[] for _ in range(n)]
    loads = [(0.0, b) for b in range(n)]
    bsize = [0] * n
    for r in sorted(roots, key=lambda r: -gcost[r]):
        skipped = []
        while loads:
            load, b = heapq.heappop(loads)
            if bsize[b] + gbytes[r] <= budget or not bins[b]:
                break
            skipped.append((load, b))
        else:  # every bundle is full: open one more
            b, load = len(bins), 0.0
            bins.append([])
            bsize.append(0)
        for s in skipped:
            heapq.heappush(loads, s)
        bins[b].append(r)
        bsize[b] += gbytes[r]
        heapq.heappush(loads, (load + gcost[r], b))
    return [(b, min(per, len(b))) for b in bins if b]


def _convex(ok: list, ins: list) -> bool:
    """Whether no path leaves the set ``ok`` and comes back into it."""
    below = [False] * len(ok)  # outside the set, reached from it
    for i, rs in enumerate(ins):
        if ok[i]:
            if any(below[r] for r in rs):
                return False
        else:
            below[i] = any(ok[r] or below[r] for r in rs)
    return True


def _emit(keys: list, groups: list, threads: dict) -> Partition:
    """Key lists, each in dependency order, ordered by their last member;
    ``threads``: last member's index -> threads."""
    ordered = sorted((sorted(g) for g in groups if g), key=lambda g: g[-1])
    return Partition([[keys[i] for i in g] for g in ordered],
                     {keys[i]: t for i, t in threads.items()})


def acyclic(keys: list, reads: dict, groups: list) -> bool:
    """Whether contracting ``groups`` (lists of keys; keys in none are alone)
    leaves the graph ``reads`` (key -> keys it reads) without a cycle."""
    gid = {}
    for n, g in enumerate(groups):
        for k in g:
            gid[k] = n
    ids = {k: gid.get(k, ("t", k)) for k in keys}
    edges: dict = {}
    indeg: dict = {v: 0 for v in set(ids.values())}
    for k in keys:
        a = ids[k]
        for r in reads.get(k, ()):
            b = ids.get(r)
            if b is None or b == a:
                continue
            succ = edges.setdefault(b, set())
            if a not in succ:
                succ.add(a)
                indeg[a] += 1
    ready = [v for v, d in indeg.items() if d == 0]
    seen = 0
    while ready:
        v = ready.pop()
        seen += 1
        for w in edges.get(v, ()):
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    return seen == len(indeg)


def forced_levels(keys: list, reads: dict, settings: dict, eligible) -> int:
    """The number of nodes any partition puts one after the other along some
    path: along a path, a task starts a new node when it or the task before
    it may not share a node (``eligible``) or their ``settings`` differ; the
    largest count over all paths (0 without keys). Each such node is a job,
    so a schedule crosses at least this many job overheads one after the
    other -- the ``levels`` of issue 12's lower bound."""
    index = {k: i for i, k in enumerate(keys)}
    depth = [0] * len(keys)
    for i, k in enumerate(keys):
        mine = settings.get(k)
        alone = not eligible(k)
        d = 1
        for r in reads.get(k, ()):
            j = index.get(r)
            if j is None:
                continue
            same = not alone and eligible(r) and settings.get(r) == mine
            d = max(d, depth[j] + (0 if same else 1))
        depth[i] = d
    return max(depth, default=0)
