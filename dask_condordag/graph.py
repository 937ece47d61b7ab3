"""Read a dask graph into plain, ordered data: the first step of the compiler.

Data
    In: whatever dask hands a scheduler's ``get(dsk, keys)`` -- an expression
    object (``__dask_graph__``/``__dask_annotations__``) or a plain dict whose
    values may be ``Task``/``DataNode``/``Alias`` nodes, legacy tuple tasks or raw
    values. Out: a :class:`Graph` -- the culled tasks in a deterministic
    topological order, each *lowered* to a small tagged-tuple expression that
    the worker shim evaluates without dask, plus per-key annotations.

Policy
    * No I/O. Linear in the size of the graph: we never call dask's delayed
      ``cull`` (quadratic on wide graphs in dask 2026.8) nor its low-level
      fusion (which drops annotations); we take the layers' own graphs and cull
      once, from the requested keys.
    * The order is a depth-first post-order from the requested keys, following
      dependencies in *argument* order, so the same script gives the same order
      in every process even though dask's keys are random.

The lowered expression language (its tags are ``names.LIT`` ... ``names.PROC``;
also documented in ``worker_tasks.py``)::

    (0, value)                       a literal
    (1, key)                         the value of another graph key
    (2, func, (arg, ...), ((name, expr), ...))   a call
    (3, constructor, (item, ...))    list/tuple/set/... built from items
    (4, ((kexpr, vexpr), ...))       a dict
    (5,)                             this job's process number (``procid``; set by plan)

Example::

    >>> from dask_condordag._compat import Task, TaskRef
    >>> from operator import add
    >>> g = read_graph({"x": 1, "y": Task("y", add, TaskRef("x"), 10)}, ["y"])
    >>> list(g.nodes), g.nodes["y"].expr[2]
    (['x', 'y'], ((1, 'x'), (0, 10)))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Hashable

import dask
from dask.highlevelgraph import HighLevelGraph

from ._compat import (
    Alias,
    DataNode,
    Dict,
    GraphNode,
    HLGExpr,
    NestedContainer,
    Task,
    TaskRef,
    convert_legacy_task,
    expr_sequences,
    identity_cast,
    instantiate_named_tuple,
    is_annotations_tombstone,
)
from .exceptions import GraphError, MissingKeyError
from .names import BUILD, CALL, DICT, LIT, REF
from .shuffle import task_shuffles

__all__ = ["Call", "Const", "Link", "Graph", "read_graph", "materialize"]


@dataclass(frozen=True)
class Call:
    """A task to run: its lowered call expression and ordered dependencies."""

    key: Hashable
    expr: tuple
    deps: tuple


@dataclass(frozen=True)
class Const:
    """A constant (a ``DataNode`` or raw value): never a job."""

    key: Hashable
    value: Any
    deps: tuple = ()


@dataclass(frozen=True)
class Link:
    """An alias: its value is the value of ``target``. Never a job."""

    key: Hashable
    target: Hashable

    @property
    def deps(self) -> tuple:
        return (self.target,)


@dataclass(frozen=True)
class Graph:
    """The culled graph in dependency order, the requested keys and annotations."""

    nodes: dict  # key -> Call | Const | Link, dependencies first
    keys: tuple  # the requested keys, as given
    annotations: dict = field(default_factory=dict)  # key -> {name: value}

    def resolve(self, key):
        """Follow aliases from ``key`` to the key that holds the value."""
        node = self.nodes[key]
        seen = set()
        while isinstance(node, Link):
            if node.key in seen:  # pragma: no cover - cycles are caught earlier
                raise GraphError(f"alias cycle at key {node.key!r}")
            seen.add(node.key)
            node = self.nodes[node.target]
        return node.key


# -- materializing -----------------------------------------------------------

_NO_FUSION = {"optimization.fuse.active": False, "optimization.fuse.delayed": False}


def materialize(dsk) -> tuple[dict, dict]:
    """``(graph_dict, annotations_by_key)`` from an expression or a mapping.

    For the HighLevelGraph-backed expressions that ``delayed``, bag and array
    produce, the layers are read as they are, without dask's low-level
    optimizer: that is where fusion drops annotations and where the delayed
    cull goes quadratic. Other expressions are materialized with fusion off.
    dask's disk shuffles are rewritten into task shuffles (``shuffle.py``).
    """
    if isinstance(dsk, HighLevelGraph):
        hlgs = [dsk]
    elif isinstance(dsk, Mapping):
        graph = dict(dsk)
        graph.update(task_shuffles(graph))
        return graph, {}
    else:
        hlgs = _unoptimized_hlgs(dsk)
    graph: dict = {}
    annotations: dict = {}
    if hlgs is None:
        with dask.config.set(_NO_FUSION):
            graph = dict(dsk.__dask_graph__())
            by_name = dsk.__dask_annotations__()
        for name, values in by_name.items():
            for k, v in values.items():
                if not _is_tombstone(v):
                    annotations.setdefault(k, {})[name] = v
        graph.update(task_shuffles(graph))
        return graph, annotations
    for hlg in hlgs:
        for layer in hlg.layers.values():
            graph.update(layer)
            if layer.annotations:
                for name, value in layer.annotations.items():
                    for k in layer:
                        v = value(k) if callable(value) else value
                        if not _is_tombstone(v):
                            annotations.setdefault(k, {})[name] = v
    graph.update(task_shuffles(graph))
    return graph, annotations


def _is_tombstone(value) -> bool:
    """Is ``value`` dask's "no annotation for this key" placeholder?

    When a delayed call gets collections inside a container argument
    (``delayed(f)([a, b])``), dask finalizes them into one layer per collection
    whose annotations are callables returning ``_AnnotationsTombstone()`` for
    the keys that had none (dask/delayed.py ``_finalize_args_collections``);
    dask itself filters them out in ``_HLGExprSequence.__dask_annotations__``
    (dask/_expr.py). It is never a value the user gave.
    """
    return is_annotations_tombstone(value)


def _unoptimized_hlgs(expr):
    """The raw HighLevelGraphs behind an HLG-backed expression, or None."""
    if isinstance(expr, HLGExpr):
        return [expr.hlg]
    if isinstance(expr, expr_sequences):
        out = []
        for op in expr.operands:
            got = _unoptimized_hlgs(op)
            if got is None:
                return None
            out.extend(got)
        return out
    return None


# -- lowering ------------------------------------------------------------------


def _lower_arg(arg, deps: list):
    """Lower one argument of a task; append referenced keys to ``deps``."""
    if isinstance(arg, TaskRef):
        deps.append(arg.key)
        return (REF, arg.key)
    if isinstance(arg, GraphNode):
        if isinstance(arg, Alias):
            deps.append(arg.target)
            return (REF, arg.target)
        if isinstance(arg, DataNode):
            return (LIT, arg.value)
        if isinstance(arg, Task):
            return _lower_task(arg, deps)
        raise GraphError(f"unsupported graph node inside a task: {arg!r}")
    return (LIT, arg)


def _lower_task(task: Task, deps: list) -> tuple:
    if isinstance(task, NestedContainer):
        items = tuple(_lower_arg(a, deps) for a in task.args)
        if isinstance(task, Dict):
            return (DICT, tuple(zip(items[::2], items[1::2])))
        return (BUILD, task.klass, items)
    func = task.func
    if func is identity_cast and set(task.kwargs) == {"typ"}:
        return (BUILD, task.kwargs["typ"], tuple(_lower_arg(a, deps) for a in task.args))
    if isinstance(func, functools.partial) and func.func is instantiate_named_tuple:
        # namedtuple(*args, **kwargs): args and kwargs are themselves lowered
        typ = func.args[0] if func.args else func.keywords["typ"]
        a, kw = task.args
        a_expr = _lower_arg(a, deps)
        kw_expr = _lower_arg(kw, deps)
        return (CALL, _call_namedtuple, ((LIT, typ), a_expr, kw_expr), ())
    args = tuple(_lower_arg(a, deps) for a in task.args)
    kwargs = tuple((k, _lower_arg(v, deps)) for k, v in task.kwargs.items())
    return (CALL, func, args, kwargs)


def _call_namedtuple(typ, args, kwargs):
    return typ(*args, **kwargs)


def _unique(seq) -> tuple:
    seen = set()
    out = []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return tuple(out)


def _lower_node(key, value, all_keys):
    node = convert_legacy_task(key, value, all_keys)
    if isinstance(node, Alias):
        if node.target == key:
            raise GraphError(f"key {key!r} is an alias of itself")
        return Link(key, node.target)
    if isinstance(node, DataNode):
        return Const(key, node.value)
    if isinstance(node, Task):
        deps: list = []
        expr = _lower_task(node, deps)
        return Call(key, expr, _unique(deps))
    if isinstance(node, GraphNode):
        raise GraphError(f"key {key!r}: unsupported graph node type {type(node).__name__}")
    return Const(key, node)


# -- culling and ordering ------------------------------------------------------


def read_graph(dsk, keys, annotations: dict | None = None) -> Graph:
    """Cull ``dsk`` to what ``keys`` need, lower each node, order them.

    Raises :class:`GraphError` for an empty key list, a requested or referenced
    key that is not in the graph (naming both keys), or a cycle (naming a key on it).
    """
    graph, found = materialize(dsk)
    if annotations:
        for k, a in annotations.items():
            found.setdefault(k, {}).update(a)
    keys = tuple(keys)
    if not keys:
        raise GraphError("nothing to compute: the list of keys is empty")
    nodes: dict = {}
    info: dict = {}  # key -> lowered node, from when it is first opened
    state: dict = {}  # key -> 1 while open, 2 when finished
    all_keys = graph.keys()
    for root in keys:
        if root not in graph:
            raise MissingKeyError(f"requested key {root!r} is not in the graph")
        stack = [root]
        while stack:
            k = stack[-1]
            st = state.get(k)
            if st == 2:
                stack.pop()
                continue
            if st == 1:
                state[k] = 2
                stack.pop()
                nodes[k] = info[k]
                continue
            state[k] = 1
            info_k = _lower_node(k, graph[k], all_keys)
            info[k] = info_k
            for d in reversed(info_k.deps):
                sd = state.get(d)
                if sd == 1:
                    raise GraphError(
                        f"the graph has a cycle: key {k!r} depends on {d!r}, "
                        "which depends on it"
                    )
                if sd is None:
                    if d not in graph:
                        raise MissingKeyError(
                            f"key {k!r} depends on key {d!r}, which is not in the graph"
                        )
                    stack.append(d)
    annotations_out = {k: a for k, a in found.items() if k in nodes and a}
    return Graph(nodes=nodes, keys=keys, annotations=annotations_out)
