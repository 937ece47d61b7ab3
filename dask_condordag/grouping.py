"""``group="auto"``: partition the task graph into DAG nodes by the cost model.

Data
    In: the planned tasks (dependency order), their node settings, planner
    hints (``condor={"duration": s, "group": False}``), ordering-only edges
    and a :class:`~dask_condordag.cost.CostModel`. Out: groups of task keys,
    each in dependency order (a valid order to run them in one job).

Policy
    * Only tasks that must run and may share a job are grouped ("eligible"):
      not a ``processes``/``cluster`` task, not a shell job
      (``jobs.run_shell``: its files live in its own job's scratch
      directory), not ``condor={"group": False}``, not a task whose result
      already exists in the workflow directory (``History.done``: it is
      reused as its own node). Tasks with different node settings (resources,
      category, submit commands, retries, priority, vars, scripts,
      max_runtime) never share a group.
    * One job, when it is cheap: if all eligible tasks share their settings,
      their estimated work ``T`` satisfies ``T * (1 - 1/slots) <= job_overhead``
      (parallel jobs would save less than the overhead one more level of jobs
      costs), their bytes fit ``max_node_bytes``, and the set is convex (no
      path leaves it and comes back), they are one node.
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
         bundle, into the fewest bundles ``n <= slots`` whose level time
         ``job_overhead + max(largest group, work / n)`` is within 10% of the
         best ``slots`` bundles give. Edges between bundles go from a lower
         level to a higher one, so again no cycle.
    * No group's result bytes (``CostModel.task_bytes``) pass
      ``max_node_bytes``; a group writes only the values read outside it or
      requested (``plan``).
    * A node does not request several cores to run its tasks in parallel
      (yet): every group runs its tasks one after the other in one process.

Example::

    >>> from dask_condordag.cost import CostModel
    >>> tasks = {"a": None, "b": None}
    >>> reads = {"a": (), "b": ("a",)}
    >>> partition(list(tasks), reads, {}, lambda k: True, CostModel(),
    ...           seconds=lambda k: 0.001, nbytes=lambda k: 1)
    [['a', 'b']]
"""

from __future__ import annotations

import heapq
import math

__all__ = ["partition", "acyclic"]


def partition(keys: list, reads: dict, settings: dict, eligible, model, *, seconds,
              nbytes) -> list:
    """Groups of ``keys`` (each a list in the order of ``keys``, which is a
    dependency order). ``reads``: key -> keys of tasks it reads or waits for;
    ``settings``: key -> node settings (missing: the default);
    ``eligible(key)``: whether it may share a node; ``seconds``/``nbytes``:
    the cost model's estimates per key."""
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
    size = [nbytes(k) if ok[i] else 0 for i, k in enumerate(keys)]
    overhead, slots, budget = model.job_overhead, max(model.slots, 1), model.max_node_bytes

    elig = [i for i in range(n) if ok[i]]
    total = sum(cost)
    if elig and len({cls[i] for i in elig}) == 1 \
            and total * (1 - 1 / slots) <= overhead and sum(size) <= budget \
            and _convex(ok, ins):
        return _emit(keys, [elig] + [[i] for i in range(n) if not ok[i]])

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
    for r, ms in members.items():
        if ok[r]:
            buckets.setdefault((level[r], cls[r]), []).append(r)
        else:
            groups.append(ms)
    for roots in buckets.values():
        for bundle in _bundles(roots, gcost, gbytes, overhead, slots, budget):
            groups.append(sorted(i for r in bundle for i in members[r]))
    return _emit(keys, groups)


def _bundles(roots: list, gcost: list, gbytes: list, overhead: float, slots: int,
             budget: int) -> list:
    """Pack the groups ``roots`` of one level into bundles (lists of roots)."""
    if len(roots) == 1:
        return [roots]
    work = sum(gcost[r] for r in roots)
    largest = max(gcost[r] for r in roots)
    n_max = min(slots, len(roots))
    best = overhead + max(largest, work / n_max)
    room = 1.1 * best - overhead
    n = n_max if room <= 0 else min(n_max, max(1, math.ceil(work / room)))
    nbytes = sum(gbytes[r] for r in roots)
    n = max(n, min(len(roots), math.ceil(nbytes / budget) if budget > 0 else len(roots)))
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
    return [b for b in bins if b]


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


def _emit(keys: list, groups: list) -> list:
    """Key lists, each in dependency order, ordered by their last member."""
    ordered = sorted((sorted(g) for g in groups if g), key=lambda g: g[-1])
    return [[keys[i] for i in g] for g in ordered]


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
