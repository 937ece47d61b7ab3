"""dask's disk shuffles are compiled as task shuffles (issue 9, item 1).

In process and without jobs: the graph the scheduler is handed is read the way
``compute`` reads it; it must hold no partd store, and dask's own synchronous
``get`` of what we kept must give what dask gives for a task shuffle. The
end-to-end runs, in fresh processes, are in test_collections.py."""

import dask
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
import pytest
from dask.base import collections_to_expr
from dask.core import flatten

from dask_condordag._compat import FinalizeCompute, disk_shuffle_expr, frame_disk_shuffle
from dask_condordag.graph import Call, materialize, read_graph
from dask_condordag.names import CALL
from dask_condordag.exceptions import GraphError
from dask_condordag import shuffle

TASKS = {"dataframe.shuffle.method": "tasks"}


def frame(n=3):
    df = pd.DataFrame({"a": [5, 3, 9, 1, 7, 2, 8, 0, 6, 4, 11, 10],
                       "k": [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 1, 1],
                       "b": range(12)})
    return dd.from_pandas(df, npartitions=n)


def bag(n=3):
    return db.from_sequence([5, 3, 9, 1, 7, 2, 8, 0, 6, 4, 11, 10], npartitions=n)


def as_scheduled(*colls):
    """The expression and keys ``dask.compute`` hands a scheduler."""
    expr = FinalizeCompute(collections_to_expr(list(colls))).optimize()
    return expr, list(flatten(expr.__dask_keys__()))


def funcs(g):
    out = set()

    def walk(expr):
        if expr[0] == CALL:
            out.add(expr[1])
            for a in expr[2]:
                walk(a)

    for node in g.nodes.values():
        if isinstance(node, Call):
            walk(node.expr)
    return out


def run_kept(*colls):
    """Compile ``colls`` as compute does, check no store is left, run the
    culled graph with dask's synchronous get."""
    expr, keys = as_scheduled(*colls)
    graph, _ = materialize(expr)  # once: a disk shuffle's keys are new every time
    g = read_graph(graph, keys)
    names = {getattr(f, "__module__", "") or "" for f in funcs(g)}
    assert not any(m.startswith("partd") for m in names)
    import dask.bag.core as bag_core

    stores = {*frame_disk_shuffle(), bag_core.partition, bag_core.collect}
    assert not stores & funcs(g)
    return dask.get({k: graph[k] for k in g.nodes}, keys)


def canon(value):
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return sorted(map(tuple, value.reset_index().itertuples(index=False)))
    return sorted((k, sorted(v)) if isinstance(v, list) else (k, v) for k, v in value)


DATAFRAMES = {
    "set_index": lambda: frame().set_index("a"),
    "set_index_2": lambda: frame(2).set_index("k"),
    "shuffle": lambda: frame().shuffle("k"),
    "shuffle_fewer": lambda: frame().shuffle("k", npartitions=2),
    "shuffle_more": lambda: frame().shuffle("k", npartitions=5),
    "merge": lambda: frame().merge(frame(2).rename(columns={"a": "x"}), on="k"),
    "groupby_split_out": lambda: frame().groupby("k").agg({"b": "sum"}, split_out=2),
}


@pytest.mark.parametrize("name", list(DATAFRAMES))
def test_dataframe_disk_shuffles_become_task_shuffles(name):
    make = DATAFRAMES[name]
    expr, _ = as_scheduled(make())
    # the default method here is dask's disk shuffle: what we must rewrite
    assert list(expr.find_operations(disk_shuffle_expr())), "no disk shuffle to test"
    (got,) = run_kept(make())
    with dask.config.set(TASKS):
        want = make().compute(scheduler="sync")
    if name == "merge":  # each output partition's index is its own 0..n-1
        got, want = got.reset_index(drop=True), want.reset_index(drop=True)
    assert canon(got) == canon(want)
    if name.startswith("set_index"):
        assert list(got.index) == list(want.index)  # sorted across partitions too


@pytest.mark.parametrize("npartitions", [None, 1, 2, 5])
def test_bag_disk_groupby_becomes_task_groupby(npartitions):
    kw = {} if npartitions is None else {"npartitions": npartitions}
    grouped = bag().groupby(lambda x: x % 4, **kw)
    assert any(k[0].startswith("partd-") for k in grouped.__dask_graph__()
               if isinstance(k, tuple))
    (got,) = run_kept(grouped)
    assert canon(got) == canon(bag().groupby(lambda x: x % 4, shuffle="tasks")
                               .compute(scheduler="sync"))


@pytest.mark.filterwarnings("ignore:Computing mixed collections")
def test_dataframes_and_bags_computed_together():
    # dask materializes the dataframe expression into a graph first: the
    # rewrite must read tasks, not expressions
    got = run_kept(frame().set_index("a"), bag().groupby(lambda x: x % 2))
    with dask.config.set(TASKS):
        want = dask.compute(frame().set_index("a"), bag().groupby(lambda x: x % 2),
                            scheduler="sync")
    assert canon(got[0]) == canon(want[0]) and canon(got[1]) == canon(want[1])


def test_an_unreadable_disk_shuffle_is_refused_naming_the_key():
    grouped = bag().groupby(len)
    graph = dict(grouped.__dask_graph__())
    part = next(k for k in graph if isinstance(k, tuple) and k[0].startswith("groupby-part"))
    graph[part] = graph[part][:2] + (("elsewhere", 0),) + graph[part][3:]
    graph[("elsewhere", 0)] = [1]
    with pytest.raises(GraphError, match="disk shuffle") as info:
        shuffle.task_shuffles(graph)
    assert "shuffle='tasks'" in str(info.value)


def test_no_store_no_rewrite():
    assert shuffle.task_shuffles(dict(bag().map(abs).__dask_graph__())) == {}
