"""Planned tasks into DAG nodes: their members, inputs, result files and parents.

Data
    In: the planned tasks (key -> :class:`~dask_condordag.plandata.PlannedTask`,
    dependency order), the node settings of the annotated ones, the value
    names each waits for without reading (``after=``), the ``group`` option.
    Out: the nodes (name -> :class:`~dask_condordag.plandata.PlannedNode`,
    parents first), task name -> node name, value name -> its result files,
    and the value names whose files form a list (``processes`` nodes).

Policy
    * ``group="none"`` without ``processes`` or ``cluster`` annotations (the
      common plan, :func:`one_node_per_task`): one pass, every task its own
      node, named as the task, writing its one result file.
    * A task annotated ``processes=N`` is one ``queue N`` node (mode
      ``"procid"``); its value is the list of its procs' results
      (``names.proc_result_file(node, i)``). Tasks annotated with one
      ``cluster`` name are one ``queue N`` node (mode ``"cluster"``; proc i
      runs task i); they must call the same function, carry the same other
      annotations and not read each other, else a
      :class:`~dask_condordag.exceptions.PlanError` names the key.
    * The other tasks are grouped by ``plangroups`` (``group="auto"`` or
      ``"chains"``) or stay alone (``"none"``). A node of several tasks is
      named by its last task's prefix and the hash of its mode and members;
      it reads the values of other nodes (``inputs``) and writes only the
      values read outside it or requested, and its last.
    * A node's parents are the nodes of what it reads or waits for; the nodes
      are ordered parents first, otherwise in task order (HTCondor's DAG
      file needs no order, but render's output is then stable). A cycle,
      only possible through a ``cluster`` of dependent tasks, is a
      PlanError naming the node.

Example::

    >>> from operator import add
    >>> from dask_condordag._compat import Task, TaskRef
    >>> from dask_condordag.graph import read_graph
    >>> from dask_condordag.plan import make_plan
    >>> g = read_graph({"a": Task("a", add, 1, 1), "b": Task("b", add, TaskRef("a"), 1),
    ...                 "c": Task("c", add, TaskRef("a"), 2)}, ["b", "c"])
    >>> tasks = {t.key: t for node in make_plan(g, name="demo", group="none").nodes.values()
    ...          for t in node.tasks}
    >>> nodes, task_node, files = one_node_per_task(tasks, {}, {})
    >>> [len(n.parents) for n in nodes.values()], files[tasks["b"].name]
    ([0, 1, 1], ('results/b_...',))
"""

from __future__ import annotations

from dataclasses import replace

from . import names
from .exceptions import PlanError
from .graph import Graph
from .plandata import UNANNOTATED, PlannedNode, func_of
from .plangroups import auto_groups, chains
from .tokens import sha

__all__ = ["one_node_per_task", "grouped_nodes"]


def one_node_per_task(tasks: dict, settings: dict, orders: dict):
    """The common plan, in one pass: every task its own node. Tasks come in
    dependency order, so each node's parents already have their nodes."""
    nodes: dict = {}
    files: dict = {}
    for key, t in tasks.items():
        name = t.name
        waits = orders.get(key)
        deps = (*t.reads, *waits) if waits else t.reads
        parents = tuple(dict.fromkeys(r for r in deps if r in files))
        out = {name: (names.result_file(name),)}
        files[name] = out[name]
        nodes[name] = PlannedNode(name=name, tasks=(t,), inputs=t.reads, outputs=out,
                                  parents=parents, settings=settings.get(key, UNANNOTATED))
    return nodes, {n: n for n in nodes}, files


def grouped_nodes(tasks: dict, settings: dict, orders: dict, graph: Graph, group: str,
                  name_for, model=None, hints=None):
    """Nodes of several tasks: the cost model's groups (``group="auto"``),
    chains (``group="chains"``), ``processes`` clusters and
    ``cluster``-annotated siblings."""
    requested = {graph.resolve(k) for k in graph.keys}
    groups = _clusters(tasks, settings)
    threads: dict = {}  # last key of a group -> threads (grouping.partition)
    if group == "auto":
        grouped, threads = auto_groups(tasks, settings, orders, groups, model, hints or {},
                                       requested)
    elif group == "chains":
        singles = {k for k, mode in groups.values() if mode == "single"}
        grouped = chains({k: t for k, t in tasks.items() if k in singles}, graph, requested)
    else:
        grouped = [[k] for k in tasks if groups[k][1] == "single"]
    members_of: dict = {}  # group id -> (member keys, mode)
    for members in grouped:
        members_of[members[-1]] = (members, "single")
    for k, (gid, mode) in groups.items():
        if mode != "single":
            members_of.setdefault(gid, ([], mode))[0].append(k)

    task_node: dict = {}
    node_names: dict = {}
    for gid, (members, mode) in members_of.items():
        ts = [tasks[k] for k in members]
        if len(ts) == 1:
            nname = ts[0].name
        else:
            nname = name_for(ts[-1].key, sha(f"{mode}:" + ",".join(t.name for t in ts)))
        node_names[gid] = nname
        for t in ts:
            task_node[t.name] = nname

    read_outside = set()  # task names read by a task of another node
    for t in tasks.values():
        here = task_node[t.name]
        for r in (*t.reads, *orders.get(t.key, ())):
            if task_node.get(r, here) != here:
                read_outside.add(r)
    files: dict = {}
    listed = set()
    nodes_unordered: dict = {}
    for gid, (members, mode) in members_of.items():
        nname = node_names[gid]
        ts = tuple(tasks[k] for k in members)
        s = settings.get(ts[-1].key, UNANNOTATED)
        n_threads = threads.get(ts[-1].key, 1) if mode == "single" else 1
        if n_threads > 1:
            s = replace(s, submit=tuple(sorted((*s.submit, ("request_cpus", str(n_threads))),
                                               key=lambda cv: cv[0].lower())))
        if mode == "cluster":
            member_names = {t.name for t in ts}
            for t in ts:
                if member_names.intersection(t.reads):
                    raise PlanError(
                        f"key {t.key!r}: annotation condor['cluster']="
                        f"{s.cluster!r}: it reads another task of its cluster; the tasks "
                        "of a cluster must be independent (they would depend on each other)")
        if len(ts) == 1:  # the common case, kept cheap: reads are unique already
            inputs = ts[0].reads
            waits = orders.get(ts[0].key, ())
        else:
            inside = {t.name for t in ts} if mode == "single" else ()
            inputs = tuple(dict.fromkeys(r for t in ts for r in t.reads if r not in inside))
            waits = [o for t in ts for o in orders.get(t.key, ())]
        parents = tuple(dict.fromkeys(
            task_node[r] for r in (*inputs, *waits) if r in task_node and task_node[r] != nname))
        if mode == "single" and len(ts) == 1:
            out = {ts[0].name: (names.result_file(ts[0].name),)}
        elif mode == "single":  # the values read outside the node or requested, and the last
            out = {t.name: (names.result_file(t.name),) for t in ts
                   if t.name in read_outside or t.key in requested or t is ts[-1]}
        elif mode == "procid":
            out = {ts[0].name: tuple(names.proc_result_file(nname, i)
                                     for i in range(s.processes))}
            listed.add(ts[0].name)
        else:
            out = {t.name: (names.proc_result_file(nname, i),) for i, t in enumerate(ts)}
        files.update(out)
        nodes_unordered[nname] = PlannedNode(name=nname, tasks=ts, inputs=inputs, outputs=out,
                                             parents=parents, settings=s, mode=mode,
                                             threads=n_threads)
    return _toposort(nodes_unordered), task_node, files, listed


def _clusters(tasks: dict, settings: dict) -> dict:
    """key -> (group id, mode): ``processes`` tasks alone, ``cluster`` names
    together (checked: same function, same other settings), others single."""
    out: dict = {}
    by_name: dict = {}
    for k in tasks:
        s = settings.get(k)
        if s is None:
            out[k] = (k, "single")
        elif s.processes:
            out[k] = (k, "procid")
        elif s.cluster:
            by_name.setdefault(s.cluster, []).append(k)
        else:
            out[k] = (k, "single")
    for cname, keys in by_name.items():
        first = keys[0]
        f0, s0 = func_of(tasks[first]), settings[first].without_cluster()
        for k in keys[1:]:
            if func_of(tasks[k]) is not f0:
                raise PlanError(
                    f"key {k!r}: annotation condor['cluster']={cname!r}: its function differs "
                    f"from that of key {first!r}; the tasks of one cluster must call the same "
                    "function")
            if settings[k].without_cluster() != s0:
                raise PlanError(
                    f"key {k!r}: annotation condor['cluster']={cname!r}: its other annotations "
                    f"differ from those of key {first!r}; one cluster is one submit, with one "
                    "set of settings")
        gid = ("cluster", cname)
        for k in keys:
            out[k] = (gid, "cluster")
    return out


def _toposort(nodes: dict) -> dict:
    """Nodes parents-first, otherwise in their given order; a cycle (only
    possible when a cluster groups tasks that depend on each other) is an error."""
    children: dict = {}
    missing = {}
    for n, node in nodes.items():
        missing[n] = len(node.parents)
        for p in node.parents:
            children.setdefault(p, []).append(n)
    ready = [n for n, c in missing.items() if c == 0]
    ready.reverse()
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for c in reversed(children.get(n, ())):
            missing[c] -= 1
            if missing[c] == 0:
                ready.append(c)
    if len(order) != len(nodes):
        stuck = next(n for n in nodes if missing[n] > 0)
        raise PlanError(
            f"node {stuck} would depend on itself: a condor['cluster'] annotation groups "
            f"tasks that depend on each other (keys {[t.key for t in nodes[stuck].tasks][:3]}"
            "...); the tasks of a cluster must be independent")
    return {n: nodes[n] for n in order}
