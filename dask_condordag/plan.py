"""Turn a read graph into a plan: DAG nodes, their files, edges. Pure, no I/O.

Data
    In: a :class:`~dask_condordag.graph.Graph`. Out: a :class:`Plan` -- DAG
    nodes (each a group of one or more tasks, with the value names it reads
    from outside and the result files it writes), large constants to write
    once, and what each requested key resolves to.

Policy
    * Names are content-addressed. A task's token hashes its function (see
      ``tokens``), its literal arguments and the tokens of what it reads; its
      name is ``<readable prefix from the key>_<16 hex digits>``. The same
      script run in two processes gives the same names even though dask's keys
      are random; two keys with identical content (an impure call repeated)
      are told apart by their position in the graph's deterministic order.
      Names are valid DAGMan node names: ``[A-Za-z0-9_-]`` only.
    * ``DataNode``\\ s and aliases never become jobs. A constant whose
      ``dask.sizeof`` is at most ``inline_limit`` bytes (default 64 KiB)
      travels inside the payload of each node that uses it; a larger one is
      written once to ``data/`` and transferred to the nodes that need it.
      Aliases resolve to their target's value.
    * A node is a group of tasks. By default (``group="auto"``) the
      ``grouping`` pass chooses the groups by the cost model (``cost``);
      ``group="none"`` makes every task its own node; ``group="chains"`` puts
      each linear chain of tasks into one node. A node of several tasks runs
      them in dependency order in one job and writes only the values read
      outside it or requested.
    * A task whose function reads a global that cannot be hashed (see
      ``tokens``) gets a token unique to this compile, so it *always reruns*;
      so does every task that reads its value. ``Plan.reruns`` says why, per
      task name (the manifest and ``dask-condordag inspect`` show it);
      ``Plan.stable`` holds the token such a task (or large constant) would
      have without the compile's nonce, for naming the default workflow folder.

Example::

    >>> from dask._task_spec import Task, TaskRef
    >>> from operator import add
    >>> from dask_condordag.graph import read_graph
    >>> g = read_graph({"x": 1, "y": Task("y", add, TaskRef("x"), 10)}, ["y"])
    >>> p = make_plan(g, name="demo")
    >>> [node] = p.nodes.values()
    >>> node.name[:2], len(node.name)          # readable prefix, 16 hex digits
    ('y_', 18)
    >>> node.tasks[0].expr[2]                  # the small constant x is inlined
    ((0, 1), (0, 10))
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Hashable

from dask.sizeof import sizeof
from dask.utils import key_split

from . import names
from .exceptions import PlanError
from .annotations import node_settings, planner_hints
from .config import option
from .cost import CostModel
from .graph import Call, Const, Graph, Link
from .grouping import acyclic, partition
from .names import BUILD, CALL, DICT, LIT, PROC, REF
from .jobs import _call_after, _ordering, contains_procid, procid, run_shell
from .settings import NodeSettings
from .tokens import SCALARS, Tokenizer, sha

__all__ = ["PlannedTask", "PlannedData", "PlannedNode", "Output", "Plan", "make_plan"]

GROUPINGS = ("auto", "none", "chains")


@dataclass(frozen=True)
class PlannedTask:
    """One dask task inside a DAG node."""

    name: str  # content name, also the stem of its result file
    key: Hashable
    expr: tuple  # lowered; references are value names (task or data names)
    reads: tuple  # value names it references, in order


@dataclass(frozen=True)
class PlannedData:
    """A large constant, written once to ``data/`` and shared by the nodes."""

    name: str
    key: Hashable
    value: Any

    @property
    def file(self) -> str:
        return names.data_file(self.name)


@dataclass(frozen=True)
class PlannedNode:
    """One DAG node: a group of tasks run by one HTCondor job, or by one
    cluster of ``procs`` jobs (``queue N``).

    ``mode``: ``"single"`` (the tasks run in order in one job), ``"procid"``
    (one task run by every proc with its own ``procid``; its value is the list
    of the procs' results), ``"cluster"`` (proc i runs task i). Its payload
    goes into a pack that write chooses (the manifest's ``payload``).
    ``threads``: how many of its tasks the worker may run at once (a
    ``single`` node the planner gave several cores: ``grouping``; its
    settings then request that many cpus).
    """

    name: str
    tasks: tuple  # PlannedTask, dependencies first
    inputs: tuple  # value names read from outside the node
    outputs: dict  # task name -> tuple of result files (one per proc for clusters)
    parents: tuple  # node names (data and ordering-only)
    settings: NodeSettings = NodeSettings()
    mode: str = "single"
    threads: int = 1

    @property
    def procs(self) -> int:
        if self.mode == "procid":
            return self.settings.processes
        return len(self.tasks) if self.mode == "cluster" else 1


@dataclass(frozen=True)
class Output:
    """What a requested key resolves to: a task's result, a data file, or an
    inline constant (``value``)."""

    key: Hashable
    kind: str  # "task" | "data" | "inline"
    name: str = ""
    value: Any = None


@dataclass(frozen=True)
class Plan:
    name: str
    nodes: dict  # node name -> PlannedNode, parents first
    data: dict  # data name -> PlannedData
    outputs: tuple  # Output, aligned with the requested keys
    task_node: dict  # task name -> node name
    files: dict = field(default_factory=dict)  # value name -> tuple of files
    listed: frozenset = frozenset()  # value names whose files form a list (procid)
    reruns: dict = field(default_factory=dict)  # task name -> why it always reruns
    stable: dict = field(default_factory=dict)  # value name -> its token without the nonce
    durations: dict = field(default_factory=dict)  # task name -> annotated seconds (cost)

    def files_of(self, value_name: str) -> tuple:
        """The workflow-relative file(s) holding a value (task result or data)."""
        if value_name in self.data:
            return (self.data[value_name].file,)
        return self.files[value_name]


def make_plan(graph: Graph, *, name: str, inline_limit: int | None = None,
              group: str | None = None, arg_limit: int | None = None,
              cost=None) -> Plan:
    """Plan ``graph`` (see the module docstring).

    ``group``: ``"auto"`` groups by the cost model (``grouping``); ``cost`` is
    a :class:`~dask_condordag.cost.CostModel`, or a function of the plan's
    ``(outputs, stable)`` returning one (so a caller can read the records of
    the workflow directory those name); ``None``: the defaults.
    ``"none"`` makes every task its own node; ``"chains"`` puts each
    linear chain of tasks (a task whose only dependent is the next one, with
    equal annotations, not itself requested) into one node. Tasks annotated
    with a ``cluster`` name become one ``queue N`` node per name; a task with
    ``processes=N`` is one ``queue N`` node. A constant passed directly as
    an argument and larger than ``arg_limit`` bytes is refused: it would be
    copied into every payload that uses it. Left out (None), the three are
    the configured options (``config.option``).
    """
    inline_limit = option("inline_limit") if inline_limit is None else inline_limit
    group = option("group") if group is None else group
    arg_limit = option("arg_limit") if arg_limit is None else arg_limit
    if group not in GROUPINGS:
        raise PlanError(f"group={group!r} is not one of {GROUPINGS}")
    if not names.valid_workflow_name(name):
        raise PlanError(
            f"workflow name {name!r} is not usable: use letters, digits, '_' and '-' "
            "(it names the DAG file and is passed to DAGMan)"
        )
    tok = Tokenizer()
    value_of: dict = {}  # key -> ("lit", value) | ("name", value_name)
    token_of: dict = {}  # key -> token (for Const and Call)
    tasks: dict = {}  # key -> PlannedTask
    orders: dict = {}  # key -> value names it must wait for without reading
    settings: dict = {}  # key -> NodeSettings (only tasks with annotations)
    data: dict = {}
    taken: dict = {}  # name -> token, to catch truncation collisions
    seen_tokens: dict = {}  # token -> count, to tell identical contents apart
    reruns: dict = {}  # key -> why it always reruns (Const or Call)
    stable: _Stable = _Stable(token_of)  # tokens without the nonce, for keys in reruns
    hints: dict = {}  # key -> (duration or None, may group), only tasks that say so

    def unique_token(token: str) -> str:
        n = seen_tokens.get(token, 0)
        seen_tokens[token] = n + 1
        return token if n == 0 else sha(f"{token}#{n}")

    prefixes: dict = {}  # key_split result -> its DAGMan-safe form

    def name_for(key, token: str, prefix: str | None = None) -> str:
        if prefix is None:
            kp = _key_prefix(key)
            prefix = prefixes.get(kp)
            if prefix is None:
                prefix = prefixes[kp] = names.safe_prefix(kp)
        nm = f"{prefix}_{token[:16]}"
        if taken.get(nm, token) != token:  # 64-bit prefix collision: use all of it
            nm = f"{prefix}_{token}"
        taken[nm] = token
        return nm

    annotations = graph.annotations
    for key, node in graph.nodes.items():
        if isinstance(node, Link):
            continue
        if isinstance(node, Const):
            token = tok.value(node.value)
            token_of[key] = token
            why = tok.take_reasons()
            if why:
                reruns[key] = why
                stable.of[key] = stable.tok.value(node.value)
                stable.tok.take_reasons()
            try:
                size = sizeof(node.value)
            except Exception:  # sizeof is best effort
                size = 0
            if size <= inline_limit:
                value_of[key] = ("lit", node.value)
            else:
                dname = name_for(key, sha("data:" + token), prefix="data")
                if dname not in data:
                    data[dname] = PlannedData(dname, key, node.value)
                value_of[key] = ("name", dname)
            continue
        assert isinstance(node, Call)
        w = _Walk(graph, value_of, token_of, tok, reruns)
        expr = w.rename(node.expr)
        why = tok.take_reasons()
        if w.big and w.big[0] > arg_limit:
            size, typ = w.big
            raise PlanError(
                f"key {key!r}: an argument of {size / 2**20:.1f} MiB ({typ}) is embedded in "
                f"the task itself (the limit is {arg_limit / 2**20:.0f} MiB, option "
                "arg_limit). Wrap it once with dask.delayed(obj) and pass that: it is then "
                "written once and transferred to the nodes that need it -- or create it "
                "inside a task")
        ann = annotations.get(key)
        s = node_settings(ann, key) if ann else _DEFAULT
        if ann and ann.get("condor") and ("duration" in ann["condor"] or "group" in ann["condor"]):
            hints[key] = planner_hints(ann["condor"], key)
        if w.procid and not s.processes:
            raise PlanError(
                f"key {key!r}: dask_condordag.procid is used in its arguments but the task "
                "has no processes annotation; wrap the call in "
                "dask.annotate(condor={'processes': N})"
            )
        token = unique_token(sha("task:" + "".join(w.parts) + _settings_token(s)))
        token_of[key] = token
        tname = name_for(key, token)
        if why or w.upstream:
            reruns[key] = why + _upstream_reasons(w.upstream, value_of)
            stable.of[key] = stable.task(graph, value_of, node.expr, _settings_token(s))
        tasks[key] = PlannedTask(tname, key, expr, tuple(dict.fromkeys(w.reads)))
        if w.orders:
            orders[key] = tuple(dict.fromkeys(w.orders))
        if s is not _DEFAULT and s != _DEFAULT:  # a duration-only annotation: default
            settings[key] = s
        value_of[key] = ("name", tname)

    outputs = []
    for key in graph.keys:
        target = graph.resolve(key)
        kind, v = value_of[target]
        if kind == "lit":
            outputs.append(Output(key, "inline", value=v))
        elif v in data:
            outputs.append(Output(key, "data", name=v))
        else:
            outputs.append(Output(key, "task", name=v))
    outputs = tuple(outputs)
    stable_names = {value_of[k][1]: stable.of[k] for k in reruns if value_of[k][0] == "name"}

    if group == "none" and not any(x.processes or x.cluster for x in settings.values()):
        nodes, task_node, files = _one_node_per_task(tasks, settings, orders)
        listed: set = set()
    else:
        model = None
        if group == "auto":
            model = cost(outputs, stable_names) if callable(cost) else (cost or CostModel())
        nodes, task_node, files, listed = _grouped_nodes(tasks, settings, orders, graph, group,
                                                         name_for, model, hints)
    return Plan(name=name, nodes=nodes, data=data, outputs=outputs, task_node=task_node,
                files=files, listed=frozenset(listed),
                reruns={tasks[k].name: why for k, why in reruns.items() if k in tasks},
                stable=stable_names,
                durations={tasks[k].name: h[0] for k, h in hints.items() if h[0] is not None})


class _Stable:
    """Tokens of the tasks that always rerun as they would be without the
    compile's nonce (the same in every process), computed on demand with a
    second tokenizer: ``of`` maps keys to them, ``[key]`` falls back to the
    real token for every other key."""

    def __init__(self, token_of: dict):
        self.token_of = token_of
        self.of: dict = {}
        self._tok = None

    @property
    def tok(self) -> Tokenizer:
        if self._tok is None:
            self._tok = Tokenizer(nonce="")
        return self._tok

    def __getitem__(self, key) -> str:
        got = self.of.get(key)
        return self.token_of[key] if got is None else got

    def task(self, graph, value_of, expr, settings: str) -> str:
        w = _Walk(graph, value_of, self, self.tok, {})
        w.rename(expr)
        self.tok.take_reasons()
        return sha("task:" + "".join(w.parts) + settings)


def _upstream_reasons(upstream: list, value_of: dict) -> tuple:
    """``input NAME always reruns`` for the first few such inputs."""
    names_ = list(dict.fromkeys(
        value_of[k][1] if value_of[k][0] == "name" else f"constant {k!r}" for k in upstream))
    out = tuple(f"input {n} always reruns" for n in names_[:3])
    if len(names_) > 3:
        out += (f"... and {len(names_) - 3} more inputs that always rerun",)
    return out


def _one_node_per_task(tasks: dict, settings: dict, orders: dict):
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
                                  parents=parents, settings=settings.get(key, _DEFAULT))
    return nodes, {n: n for n in nodes}, files


def _grouped_nodes(tasks: dict, settings: dict, orders: dict, graph: Graph, group: str,
                   name_for, model=None, hints=None):
    """Nodes of several tasks: the cost model's groups (``group="auto"``),
    chains (``group="chains"``), ``processes`` clusters and
    ``cluster``-annotated siblings."""
    requested = {graph.resolve(k) for k in graph.keys}
    groups = _clusters(tasks, settings)
    threads: dict = {}  # last key of a group -> threads (grouping.partition)
    if group == "auto":
        grouped, threads = _auto_groups(tasks, settings, orders, groups, model, hints or {},
                                        requested)
    elif group == "chains":
        singles = {k for k, mode in groups.values() if mode == "single"}
        grouped = _groups({k: t for k, t in tasks.items() if k in singles}, graph, requested)
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
        s = settings.get(ts[-1].key, _DEFAULT)
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


_DEFAULT = NodeSettings()


def _auto_groups(tasks: dict, settings: dict, orders: dict, clusters: dict, model: CostModel,
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
                and _func_of(t) is not run_shell)

    def seconds(k):
        d = durations.get(k)
        return d if d is not None else model.task_seconds(tasks[k].name)

    def threadable(k):  # a task that asks for cpus itself keeps its node's one thread
        s = settings.get(k)
        return s is None or all(c.lower() != "request_cpus" for c, _ in s.submit)

    groups, threads = partition(keys, reads, settings, eligible, model, seconds=seconds,
                                nbytes=lambda k: model.task_bytes(tasks[k].name),
                                threadable=threadable)
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


def _settings_token(s: NodeSettings) -> str:
    """Settings that change what a task computes (so its name): the cluster
    shape. Scheduling settings (retries, priority, resources) do not."""
    if s.processes:
        return f"|processes={s.processes}"
    return ""


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
        f0, s0 = _func_of(tasks[first]), settings[first].without_cluster()
        for k in keys[1:]:
            if _func_of(tasks[k]) is not f0:
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


def _func_of(task: PlannedTask):
    e = task.expr
    return e[1] if e[0] == CALL else None


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


def _key_prefix(key) -> str:
    try:
        return str(key_split(key))
    except Exception:
        return str(key)


class _Walk:
    """One walk over a lowered expression: references become value names,
    small constants are inlined, ``procid`` becomes the PROC tag, ordering-only
    markers become edges, and the token pieces are collected."""

    def __init__(self, graph, value_of, token_of, tok, reruns):
        self.graph, self.value_of, self.token_of, self.tok = graph, value_of, token_of, tok
        self.reruns = reruns  # key -> why it always reruns
        self.upstream: list = []  # keys read that always rerun
        self.reads: list = []
        self.orders: list = []
        self.parts: list = []
        self.procid = False
        self.big = None  # (bytes, type name) of the largest non-scalar literal

    def rename(self, expr):
        tag = expr[0]
        if tag == LIT:
            v = expr[1]
            if contains_procid(v):
                self.procid = True
                return self.rename(_lift_procid(v))
            if type(v) not in SCALARS:
                try:
                    n = sizeof(v)
                except Exception:  # sizeof is best effort
                    n = 0
                if self.big is None or n > self.big[0]:
                    self.big = (n, type(v).__name__)
            self.parts.append(self.tok.value(v))
            return expr
        if tag == PROC:
            self.parts.append("procid")
            return expr
        if tag == REF:
            target = self.graph.resolve(expr[1])
            kind, v = self.value_of[target]
            self.parts.append("@" + self.token_of[target])
            if target in self.reruns:
                self.upstream.append(target)
            if kind == "lit":
                return (LIT, v)
            self.reads.append(v)
            return (REF, v)
        if tag == CALL:
            func = expr[1]
            if func is _ordering:
                return self._ordering(expr)
            if func is _call_after and expr[2] and expr[2][0][0] == CALL \
                    and expr[2][0][1] is _ordering and len(expr[2]) >= 2:
                self._ordering(expr[2][0])
                inner = expr[2][1]
                if inner[0] == LIT and callable(inner[1]):  # after(): the call itself
                    return self.rename((CALL, inner[1], expr[2][2:], expr[3]))
                return self.rename(inner)  # shell(after=...): the wrapped value
            try:
                self.parts.append("call:" + self.tok.func(func) + "(")
            except Exception as e:  # a callable we cannot even describe
                raise PlanError(f"cannot identify the function {func!r}: {e}") from e
            args = tuple(self.rename(a) for a in expr[2])
            kwargs = []
            for k, v in expr[3]:
                self.parts.append(f",{k}=")
                kwargs.append((k, self.rename(v)))
            self.parts.append(")")
            return (CALL, func, args, tuple(kwargs))
        if tag == BUILD:
            self.parts.append(f"build:{expr[1].__module__}.{expr[1].__qualname__}(")
            items = tuple(self.rename(a) for a in expr[2])
            self.parts.append(")")
            return (BUILD, expr[1], items)
        if tag == DICT:
            self.parts.append("dict(")
            pairs = tuple((self.rename(k), self.rename(v)) for k, v in expr[1])
            self.parts.append(")")
            return (DICT, pairs)
        raise AssertionError(f"unknown expression tag {tag!r}")

    def _ordering(self, expr):
        """``_ordering(*deps)``: edges without data; evaluates to None."""
        self.parts.append("after(")
        for a in expr[2]:
            if a[0] == REF:
                target = self.graph.resolve(a[1])
                kind, v = self.value_of[target]
                self.parts.append("@" + self.token_of[target])
                if target in self.reruns:
                    self.upstream.append(target)
                if kind == "name":
                    self.orders.append(v)
        self.parts.append(")")
        return (LIT, None)


def _lift_procid(v):
    """A literal holding ``procid`` as an expression that builds it per proc."""
    if v is procid:
        return (PROC,)
    t = type(v)
    if t is dict:
        return (DICT, tuple((_lift_procid(k), _lift_procid(x)) for k, x in v.items()))
    if t in (list, tuple, set, frozenset) and contains_procid(v):
        return (BUILD, t, tuple(_lift_procid(x) for x in v))
    return (LIT, v)


def _groups(tasks: dict, graph: Graph, requested: set) -> list:
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
