"""Disk shuffles become task shuffles: a rewrite of the materialized graph.

Data
    In: a materialized dask graph (key -> old tuple task, ``Task``, ...), as
    ``graph.materialize`` reads it. Out: graph entries that replace every disk
    shuffle in it -- dask-expr's ``DiskShuffle`` (``ddf.shuffle``,
    ``set_index``, ``merge``, ``sort_values`` and ``groupby(split_out=n)`` when
    dask's shuffle method is "disk", its default without a distributed client)
    and ``dask.bag``'s ``groupby_disk`` (``bag.groupby`` by default) -- by a
    task-based shuffle of the same input with the same output keys.

Policy
    A disk shuffle creates a partd store in a task with no arguments and passes
    it -- a folder in the job's scratch directory, by absolute path -- to the
    tasks that write and read it: state shared between jobs that the DAG does
    not know about. On a pool the folder does not exist for the other jobs;
    locally the argument-less task has the same content hash on every run, so
    a later run read an earlier run's store (issue 9). dask picks the method
    where no scheduler can intervene (a dataframe's when ``dask.compute``
    optimizes it, before calling the scheduler; a bag's when ``groupby`` is
    called), and collections of both kinds computed together reach us already
    materialized, so the rewrite reads the graph itself:

    * a dataframe disk shuffle (tasks calling ``DiskShuffle._shuffle_group`` and
      ``dask.dataframe.shuffle.collect`` on one store) becomes dask's one-stage
      task shuffle (``SimpleShuffle._layer``): per input partition a dict of
      its pieces by output partition (:func:`frame_groups`, the disk shuffle's
      own grouping), per (output, input) a piece (:func:`frame_piece`), per
      output the concatenation of its pieces (:func:`frame_collect`, the empty
      ``meta`` when there is none, as ``collect`` does). Data flows along the
      DAG's edges; each job holds one input's or one output's data.
    * a bag disk groupby (``partition`` and ``collect`` of ``dask.bag.core`` on
      one store) becomes ``dask.bag.core.groupby_tasks`` of the same bag and
      grouper (deterministic hashing through ``tokenize``); each of the disk
      groupby's ``npartitions`` outputs is one task-groupby partition (an
      alias) or the concatenation of whole ones, so a group never splits.

    The store, barrier and writing tasks are left unreferenced and culled. A
    disk shuffle in another shape (not one whole bag as input, say) is refused
    with the key and what to do; anything that still returns a store is
    refused by the worker (``LocalStateError``).

Example::

    >>> import dask.bag as db
    >>> g = dict(db.from_sequence(range(6), npartitions=2).groupby(len).__dask_graph__())
    >>> new = task_shuffles(g)
    >>> any(k[0].startswith("shuffle-join") for k in new if isinstance(k, tuple))
    True
"""

from __future__ import annotations

from ._compat import (Alias, DataNode, Task, TaskRef, bag_core, concat_frames,
                      convert_legacy_task, frame_disk_shuffle)
from .exceptions import GraphError

__all__ = ["task_shuffles", "frame_groups", "frame_piece", "frame_collect"]


def task_shuffles(graph: dict) -> dict:
    """Entries replacing every disk shuffle in ``graph`` (empty when none)."""
    frames = frame_disk_shuffle()
    bags = bag_core()
    funcs = set()
    if frames is not None:
        funcs |= set(frames)
    if bags is not None:
        funcs |= {bags.partition, bags.collect}
    calls = _candidates(graph, funcs) if funcs else {}
    out: dict = {}
    if frames is not None and calls:
        out.update(_frame_shuffles(calls, graph, frames))
    if bags is not None and calls:
        out.update(_bag_groupbys(calls, graph, bags))
    return out


def _candidates(graph, funcs) -> dict:
    """``{key: task}`` of the tasks calling one of ``funcs``: one quick pass
    (about 1 µs a task) before anything is converted."""
    out = {}
    for key, value in graph.items():
        if type(value) is tuple:
            f = value[0] if value else None
        elif isinstance(value, Task):
            f = value.func
        else:
            continue
        try:
            if f in funcs:
                out[key] = value
        except TypeError:  # an unhashable callable: not one of ours
            pass
    return out


# -- reading the disk shuffle's tasks -------------------------------------------


def _plain(arg):
    """A key reference as ``TaskRef``, a literal as itself."""
    if isinstance(arg, Alias):
        return TaskRef(arg.target)
    if isinstance(arg, DataNode):
        return arg.value
    return arg


def _args(key, value, graph, func) -> tuple | None:
    """The arguments of ``value`` if it calls ``func`` (an old tuple task or a
    ``Task``), with key references as ``TaskRef``; else None."""
    if type(value) is tuple:
        if not value or value[0] is not func:
            return None
        value = convert_legacy_task(key, value, graph)
    if not isinstance(value, Task) or value.func is not func:
        return None
    return tuple(_plain(a) for a in value.args)


def _calls(calls, graph, writer, reader, store_at: tuple) -> tuple[dict, dict]:
    """``({store: [(key, args)]}, {store: [(key, args)]})``: the tasks of
    ``calls`` calling ``writer`` and ``reader``, by the store key found at
    ``store_at`` (the argument positions in the writer's and the reader's calls)."""
    writes: dict = {}
    reads: dict = {}
    for key, value in calls.items():
        for func, at, into in ((writer, store_at[0], writes), (reader, store_at[1], reads)):
            args = _args(key, value, graph, func)
            if args is not None and len(args) > at and isinstance(args[at], TaskRef):
                into.setdefault(args[at].key, []).append((key, args))
                break
    return writes, reads


def _inputs(store, writes) -> list:
    """The input keys of the writing tasks, in partition order."""
    writes = sorted(writes, key=lambda w: w[0][1])
    refs = [args[0] if isinstance(args[0], TaskRef) else None for _, args in writes]
    if None in refs or [w[0][1] for w in writes] != list(range(len(writes))):
        _refuse(writes[0][0], store)
    return [r.key for r in refs]


def _refuse(key, store):
    raise GraphError(
        f"key {key!r}: a disk shuffle (partd store {store!r}) in a shape "
        "dask-condordag cannot compile into a task shuffle; use a task shuffle: "
        "dask.config.set({'dataframe.shuffle.method': 'tasks'}) when you build "
        "the collection, or bag.groupby(..., shuffle='tasks')")


# -- dataframes -----------------------------------------------------------------


def _frame_shuffles(calls, graph, frames) -> dict:
    # DiskShuffle._shuffle_group(df, col, _filter, p); collect(p, part, meta, barrier)
    shuffle_group, collect = frames
    writes, reads = _calls(calls, graph, shuffle_group, collect, (3, 0))
    out: dict = {}
    for store, found in writes.items():
        inputs = _inputs(store, [(k, (args[0],) + args[1:]) for k, args in found])
        _, (_, col, wanted, _) = found[0]
        name = store[0] if isinstance(store, tuple) else str(store)
        group = f"task-shuffle-group-{name}"
        split = f"task-shuffle-split-{name}"
        for i, inp in enumerate(inputs):
            out[(group, i)] = Task((group, i), frame_groups, TaskRef(inp), col, list(wanted))
        for key, (_, part, meta, _) in reads.get(store, ()):
            pieces = []
            for i in range(len(inputs)):
                out[(split, part, i)] = Task((split, part, i), frame_piece,
                                             TaskRef((group, i)), part)
                pieces.append(TaskRef((split, part, i)))
            out[key] = Task(key, frame_collect, DataNode(None, meta), *pieces)
    return out


def frame_groups(df, col, partitions) -> dict:
    """``{output partition: rows of df}``: ``DiskShuffle._shuffle_group``'s
    grouping, returned instead of appended to a store."""
    g = df.groupby(col)
    return {i: g.get_group(i) for i in g.groups if i in partitions}


def frame_piece(groups: dict, part):
    """The rows of one input partition for output partition ``part``, or None."""
    return groups.get(part)


def frame_collect(meta, *pieces):
    """The rows of one output partition, as ``dask.dataframe.shuffle.collect``
    returns them from the store: ``meta`` when there are none."""
    pieces = [p for p in pieces if p is not None]
    if not pieces:
        return meta
    res = concat_frames(pieces)
    return res if len(res) > 0 else meta


# -- bags -----------------------------------------------------------------------


def _bag_groupbys(calls, graph, core) -> dict:
    # partition(grouper, sequence, npartitions, p, ...); collect(grouper, group, p, barrier)
    writes, reads = _calls(calls, graph, core.partition, core.collect, (3, 2))
    out: dict = {}
    for store, found in writes.items():
        inputs = _inputs(store, [(k, (args[1], args[0], args[2])) for k, args in found])
        name = inputs[0][0] if isinstance(inputs[0], tuple) else None
        if inputs != [(name, i) for i in range(len(inputs))]:  # not one whole bag
            _refuse(found[0][0], store)
        _, (grouper, _, npartitions, *_) = found[0]
        stub = core.Bag(core.HighLevelGraph({name: {}}, {name: set()}), name, len(inputs))
        shuffled = core.groupby_tasks(stub, grouper)
        out.update(shuffled.__dask_graph__())
        m = shuffled.npartitions
        for key, (_, group, *_) in reads.get(store, ()):
            sources = [(shuffled.name, i) for i in range(m) if i % npartitions == group]
            if len(sources) == 1:
                out[key] = Alias(key, sources[0])
            else:
                out[key] = Task(key, concat_lists, *[TaskRef(s) for s in sources])
    return out


def concat_lists(*parts) -> list:
    """One bag partition from several."""
    return [x for part in parts for x in part]
