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
    * A node is a group of tasks. By default every task is its own node;
      ``group="chains"`` puts each linear chain of tasks into one node (one
      job instead of many; only the chain's last value is written).

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

from dataclasses import dataclass, field
from typing import Any, Hashable

from dask.sizeof import sizeof
from dask.utils import key_split

from . import names
from .exceptions import PlanError
from .graph import BUILD, CALL, DICT, LIT, REF, Call, Const, Graph, Link
from .tokens import Tokenizer, sha

__all__ = ["PlannedTask", "PlannedData", "DagNode", "Output", "Plan", "make_plan"]

DEFAULT_INLINE_LIMIT = 64 * 1024
GROUPINGS = ("none", "chains")


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
class DagNode:
    """One DAG node (one HTCondor job): a group of tasks."""

    name: str
    tasks: tuple  # PlannedTask, dependencies first
    inputs: tuple  # value names read from outside the node
    outputs: tuple  # task names whose results are written
    parents: tuple  # node names
    annotations: dict = field(default_factory=dict)

    @property
    def payload(self) -> str:
        return names.payload_file(self.name)


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
    nodes: dict  # node name -> DagNode, parents first
    data: dict  # data name -> PlannedData
    outputs: tuple  # Output, aligned with the requested keys
    task_node: dict  # task name -> node name

    def file_of(self, value_name: str) -> str:
        """The workflow-relative file holding a value (task result or data)."""
        if value_name in self.data:
            return self.data[value_name].file
        return names.result_file(value_name)


def make_plan(graph: Graph, *, name: str, inline_limit: int = DEFAULT_INLINE_LIMIT,
              group: str = "none") -> Plan:
    """Plan ``graph`` (see the module docstring).

    ``group``: ``"none"`` makes every task its own node; ``"chains"`` puts each
    linear chain of tasks (a task whose only dependent is the next one, with
    equal annotations, not itself requested) into one node.
    """
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
    data: dict = {}
    taken: dict = {}  # name -> token, to catch truncation collisions
    seen_tokens: dict = {}  # token -> count, to tell identical contents apart

    def unique_token(token: str) -> str:
        n = seen_tokens.get(token, 0)
        seen_tokens[token] = n + 1
        return token if n == 0 else sha(f"{token}#{n}")

    def name_for(key, token: str, prefix: str | None = None) -> str:
        prefix = prefix or names.safe_prefix(_key_prefix(key))
        nm = f"{prefix}_{token[:16]}"
        if taken.get(nm, token) != token:  # 64-bit prefix collision: use all of it
            nm = f"{prefix}_{token}"
        taken[nm] = token
        return nm

    for key, node in graph.nodes.items():
        if isinstance(node, Link):
            continue
        if isinstance(node, Const):
            token = tok.value(node.value)
            token_of[key] = token
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
        reads: list = []
        parts: list = []
        expr = _rename(node.expr, graph, value_of, token_of, tok, reads, parts)
        token = unique_token(sha("task:" + "".join(parts)))
        token_of[key] = token
        tname = name_for(key, token)
        tasks[key] = PlannedTask(tname, key, expr, tuple(dict.fromkeys(reads)))
        value_of[key] = ("name", tname)

    requested = {graph.resolve(k) for k in graph.keys}
    groups = _groups(tasks, graph, requested) if group == "chains" else [[k] for k in tasks]
    nodes: dict = {}
    task_node: dict = {}
    for members in groups:
        ts = tuple(tasks[k] for k in members)
        inside = {t.name for t in ts}
        inputs = tuple(dict.fromkeys(r for t in ts for r in t.reads if r not in inside))
        if len(ts) == 1:
            nname = ts[0].name
        else:
            last = ts[-1]
            nname = name_for(last.key, sha("group:" + ",".join(t.name for t in ts)))
        parents = tuple(dict.fromkeys(task_node[r] for r in inputs if r in task_node))
        node = DagNode(
            name=nname,
            tasks=ts,
            inputs=inputs,
            outputs=(ts[-1].name,),  # requested tasks always end their group
            parents=parents,
            annotations=dict(graph.annotations.get(ts[-1].key, {})),
        )
        nodes[nname] = node
        for t in ts:
            task_node[t.name] = nname

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
    return Plan(name=name, nodes=nodes, data=data, outputs=tuple(outputs), task_node=task_node)


def _key_prefix(key) -> str:
    try:
        return str(key_split(key))
    except Exception:
        return str(key)


def _rename(expr, graph, value_of, token_of, tok, reads, parts):
    """Rewrite references to value names, inline small constants, and append
    the expression's token pieces to ``parts`` -- all in one walk."""
    tag = expr[0]
    if tag == LIT:
        parts.append(tok.value(expr[1]))
        return expr
    if tag == REF:
        target = graph.resolve(expr[1])
        kind, v = value_of[target]
        parts.append("@" + token_of[target])
        if kind == "lit":
            return (LIT, v)
        reads.append(v)
        return (REF, v)
    if tag == CALL:
        try:
            parts.append("call:" + tok.func(expr[1]) + "(")
        except Exception as e:  # a callable we cannot even describe
            raise PlanError(f"cannot identify the function {expr[1]!r}: {e}") from e
        args = tuple(_rename(a, graph, value_of, token_of, tok, reads, parts) for a in expr[2])
        kwargs = []
        for k, v in expr[3]:
            parts.append(f",{k}=")
            kwargs.append((k, _rename(v, graph, value_of, token_of, tok, reads, parts)))
        parts.append(")")
        return (CALL, expr[1], args, tuple(kwargs))
    if tag == BUILD:
        parts.append(f"build:{expr[1].__module__}.{expr[1].__qualname__}(")
        items = tuple(_rename(a, graph, value_of, token_of, tok, reads, parts) for a in expr[2])
        parts.append(")")
        return (BUILD, expr[1], items)
    if tag == DICT:
        parts.append("dict(")
        pairs = tuple(
            (
                _rename(k, graph, value_of, token_of, tok, reads, parts),
                _rename(v, graph, value_of, token_of, tok, reads, parts),
            )
            for k, v in expr[1]
        )
        parts.append(")")
        return (DICT, pairs)
    raise AssertionError(f"unknown expression tag {tag!r}")


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
        if (len(deps) == 1 and n_task_reads[deps[0]] == 1 and k not in requested
                and ann.get(k) == ann.get(deps[0])):
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
