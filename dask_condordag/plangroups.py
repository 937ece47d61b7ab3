"""Which single-mode tasks share a DAG node: the glue between the plan and ``grouping``.

Data
    In: the planned tasks (key -> :class:`~dask_condordag.plandata.PlannedTask`,
    dependency order), their node settings, ordering-only edges, each task's
    ``(group id, mode)`` (``plannodes``: ``processes`` and ``cluster`` tasks
    are grouped there, not here), which keys are requested and, for
    ``group="auto"``, the :class:`~dask_condordag.cost.CostModel` and the
    planner hints (``condor={"duration": s, "group": False}``). Out: groups of
    single-mode task keys, each in dependency order (a valid order to run
    them in one job).

Policy
    * ``group="auto"`` (:func:`auto_groups`): ``grouping.partition`` chooses,
      given which tasks may share a job (not a shell job -- its files live in
      its own job's scratch directory --, not ``condor={"group": False}``,
      not a task that need not run), the seconds of each (its annotated
      ``duration``, else the cost model's estimate) and its result bytes.
      The tasks that need not run -- their results exist (``History.done``),
      or only such tasks read them -- become one node, written ``DONE``,
      when that keeps the node graph acyclic (``grouping.acyclic``); else
      they stay as ``partition`` left them.
    * ``group="chains"`` (:func:`chains`): linear chains, see its docstring.

Example::

    >>> from operator import add
    >>> from dask_condordag._compat import Task, TaskRef
    >>> from dask_condordag.graph import read_graph
    >>> from dask_condordag.plan import make_plan
    >>> g = read_graph({"a": Task("a", add, 1, 1), "b": Task("b", add, TaskRef("a"), 1),
    ...                 "c": Task("c", add, TaskRef("b"), 1)}, ["c"])
    >>> plan = make_plan(g, name="demo", group="none")
    >>> tasks = {t.key: t for node in plan.nodes.values() for t in node.tasks}
    >>> chains(tasks, g, {"c"})
    [['a', 'b', 'c']]
"""

from __future__ import annotations

from .cost import CostModel
from .graph import Graph
from .grouping import acyclic, partition
from .jobs import run_shell
from .plandata import func_of

__all__ = ["auto_groups", "chains"]

#: submit requests a task makes for itself alone: its node runs it on one thread
PER_TASK_REQUESTS = ("request_cpus", "request_memory", "request_gpus")


def auto_groups(tasks: dict, settings: dict, orders: dict, clusters: dict, model: CostModel,
                hints: dict, requested: set) -> tuple:
    """``group="auto"``: the single-mode tasks partitioned by ``grouping``,
    and the threads of the groups that get several (last key -> threads).

    Group only what must run: the tasks whose results exist (``History.done``)
    and those only they read (not needed) form one node, written DONE, when
    that keeps the node graph acyclic; else each is its own node."""
    by_name = {t.name: k for k, t in tasks.items()}
    reads = {}
    for k, t in tasks.items():
        rs = [by_name[r] for r in (*t.reads, *orders.get(k, ())) if r in by_name]
        if rs:
            reads[k] = rs
    done = model.history.done
    reused = set()
    if done:
        reused = _not_to_run(tasks, reads, clusters, done, requested)
    keys = [k for k in tasks if clusters[k][1] == "single"]
    durations = {k: h[0] for k, h in hints.items() if h[0] is not None}

    def eligible(k):
        t = tasks[k]
        return (k not in reused and (k not in hints or hints[k][1])
                and func_of(t) is not run_shell)

    def seconds(k):
        d = durations.get(k)
        return d if d is not None else model.task_seconds(tasks[k].name)

    def threadable(k):  # a task that asks for cpus, memory or gpus keeps its node's
        s = settings.get(k)  # one thread: its request is for itself alone
        return s is None or all(c.lower() not in PER_TASK_REQUESTS for c, _ in s.submit)

    groups, threads = partition(keys, reads, settings, eligible, model, seconds=seconds,
                                nbytes=lambda k: model.task_bytes(tasks[k].name),
                                threadable=threadable,
                                guessed=lambda k: (k not in durations
                                                   and not model.knows(tasks[k].name)))
    if len(reused) > 1:
        merged = [g for g in groups if g[0] not in reused]
        merged.append([k for k in keys if k in reused])
        if acyclic(list(tasks), reads, merged):
            order = {k: i for i, k in enumerate(tasks)}
            merged.sort(key=lambda g: order[g[-1]])
            return merged, {g[-1]: threads[g[-1]] for g in merged if g[-1] in threads}
    return groups, threads


def _not_to_run(tasks: dict, reads: dict, clusters: dict, done: frozenset,
                requested: set) -> set:
    """Single-mode tasks that are done, or read only by such tasks (so not
    needed by anything that must run)."""
    consumers: dict = {}
    for k, rs in reads.items():
        for r in rs:
            consumers.setdefault(r, []).append(k)
    needed: set = set()
    out = set()
    for k in reversed(list(tasks)):
        if tasks[k].name in done and clusters[k][1] == "single":
            out.add(k)
            continue
        cs = consumers.get(k)
        if (clusters[k][1] != "single" or k in requested or not cs
                or any(c in needed for c in cs)):
            needed.add(k)
        else:
            out.add(k)
    return out


def chains(tasks: dict, graph: Graph, requested: set) -> list:
    """Linear chains of tasks, each a list in dependency order.

    A task joins its dependent's group when it has exactly one dependent, that
    dependent reads no other task, the task is not requested, and both carry
    the same annotations. Contracting such an edge cannot make a cycle: the
    task has no other way to reach its dependent. (Fan-ins are not merged:
    their inputs would lose their parallelism.)
    """
    by_name = {t.name: k for k, t in tasks.items()}
    dependents: dict = {}
    n_task_reads: dict = {}
    for k, t in tasks.items():
        task_reads = [by_name[r] for r in t.reads if r in by_name]
        n_task_reads[k] = len(task_reads)
        for d in task_reads:
            dependents.setdefault(d, []).append(k)
    ann = graph.annotations
    joins: dict = {}  # key -> the dependent it joins
    for k in tasks:
        deps = dependents.get(k, ())
        if (len(deps) == 1 and deps[0] in tasks and n_task_reads[deps[0]] == 1
                and k not in requested and ann.get(k) == ann.get(deps[0])):
            joins[k] = deps[0]
    head_of: dict = {}
    groups: dict = {}
    for k in reversed(list(tasks)):  # dependents before dependencies
        head = head_of.get(joins[k], joins[k]) if k in joins else k
        head_of[k] = head
        groups.setdefault(head, []).append(k)
    order = {k: i for i, k in enumerate(tasks)}
    out = [sorted(g, key=order.__getitem__) for g in groups.values()]
    out.sort(key=lambda g: order[g[-1]])
    return out
