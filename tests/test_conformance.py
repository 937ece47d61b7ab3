"""A conformance corpus: every graph computed through ``scheduler="condordag"``
(written, run by the local runner from the files, loaded back) must equal
``scheduler="sync"``."""

from collections import namedtuple
from operator import add, mul

import dask
import dask.array as da
import dask.bag as db
import numpy as np
import pytest
from dask import delayed
from dask.utils_test import GetFunctionTestMixin

import dask_condordag
from dask_condordag import MissingKeyError
from dask_condordag._compat import Alias, DataNode, List, Task, TaskRef

from .helpers import inc, none

Point = namedtuple("Point", "x y")


def both(*collections, **kwargs):
    """(condordag result, sync result) of dask.compute(*collections)."""
    ours = dask.compute(*collections, scheduler="condordag", **kwargs)
    ref = dask.compute(*collections, scheduler="sync")
    return ours, ref


def check(*collections, **kwargs):
    ours, ref = both(*collections, **kwargs)
    assert _same(ours, ref), (ours, ref)
    return ours


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool(np.all(a == b))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@delayed
def dadd(a, b):
    return a + b


def test_readme_example():
    total = dadd(dadd(1, 2), dadd(3, 4))
    assert total.compute(scheduler="condordag") == 10
    got = dask.compute(total, [dadd(1, 1), {"k": dadd(2, 2)}], scheduler="condordag")
    assert got == (10, [2, {"k": 4}])


def test_config_selects_scheduler():
    with dask.config.set(scheduler="condordag"):
        assert dadd(20, 22).compute() == 42


def test_diamond():
    a = delayed(inc)(1)
    b = delayed(inc)(a)
    c = delayed(mul)(a, 10)
    check(delayed(add)(b, c))


def test_kwargs():
    def f(a, b=0, *, c=1, **kw):
        return (a, b, c, sorted(kw.items()))

    x = delayed(inc)(1)
    check(delayed(f)(x, b=x, c=delayed(inc)(x), extra=[x, 3]))


def test_nested_containers():
    x = delayed(inc)(1)
    y = delayed(inc)(x)
    arg = {"a": [x, (y, {"deep": [x, y]})], "b": {1, 2}, "c": (x,)}
    check(delayed(lambda d: d)(arg))
    check(delayed(sorted)({x, y}))
    check(delayed(lambda p: p)(Point(x, y)))


def test_pure_and_impure_calls():
    import random

    pure = [delayed(inc, pure=True)(1) for _ in range(3)]
    assert len({p.key for p in pure}) == 1
    check(*pure)
    # impure: same function, same (no) arguments, different keys: each its own node.
    # (Not random.random itself: that bound method pickles the generator's state,
    # so every job would start from the same state and draw the same number.)
    def draw():
        return random.random()

    rs = [delayed(draw, pure=False)() for _ in range(3)]
    vals = dask.compute(*rs, scheduler="condordag")
    assert len(set(vals)) == 3 and all(0 <= v < 1 for v in vals)


def test_large_numpy_constant_shared_by_many_tasks():
    big = np.arange(200_000, dtype="f8")  # 1.6 MB: over the inline limit
    d = delayed(big)
    parts = [delayed(lambda a, i: float(a[i::7].sum()))(d, i) for i in range(5)]
    check(*parts)
    wf = dask_condordag.write(*parts, path="big")
    data = list((wf.path / "data").iterdir())
    assert len(data) == 1  # written once
    payloads = sorted((wf.path / "nodes").iterdir())
    assert all(p.stat().st_size < 100_000 for p in payloads)  # not embedded


def test_many_roots():
    xs = [delayed(inc)(i) for i in range(12)]
    check(*xs)


@pytest.mark.parametrize("key", [
    ("x", 0), "with space", 'quo"te', "it's", "plus+sign", "dot.ted", "com,ma",
    "dollar$(x)", "uni\u00e9code",
])
def test_unusual_keys(key):
    dsk = {key: (inc, 1), "out": (add, key, 10)}
    assert dask_condordag.get(dsk, "out") == 12
    assert dask_condordag.get(dsk, [key, "out"]) == (2, 12)


def test_none_results():
    n = delayed(none)(1)
    check(n, delayed(lambda v: v is None)(n))


def test_bag_map_filter_sum():
    b = db.from_sequence(range(20), npartitions=3)
    check(b.map(inc).filter(lambda v: v % 2).sum())
    check(b.map(inc))


def test_array_reduction():
    x = da.arange(24, chunks=6).reshape(4, 6).rechunk((2, 3))
    check(x.sum(), (x + 1).mean(axis=0))


def test_legacy_tuple_graph_and_raw_values():
    dsk = {"a": 1, "b": (inc, "a"), "c": [(inc, "b"), "a", 5], "d": "b", "e": (sum, ["a", "b"])}
    assert dask_condordag.get(dsk, ["c", "d", "e"]) == ([3, 1, 5], 2, 3)


def test_task_spec_nodes():
    dsk = {
        "x": DataNode("x", 3),
        "y": Task("y", add, TaskRef("x"), 4),
        "z": Alias("z", "y"),
        "w": Task("w", sum, List(TaskRef("x"), TaskRef("z"))),
    }
    assert dask_condordag.get(dsk, ["w", "z", "x"]) == (10, 7, 3)


def test_missing_key_names_it():
    with pytest.raises(MissingKeyError, match="'nope'"):
        dask_condordag.get({"a": 1}, "nope")
    with pytest.raises(KeyError, match="'missing'"):
        dask_condordag.get({"a": Task("a", inc, TaskRef("missing"))}, "a")


def test_cycle_is_refused():
    with pytest.raises(dask_condordag.GraphError, match="cycle"):
        dask_condordag.get({"a": (inc, "b"), "b": (inc, "a")}, "a")


def test_chain_grouping_gives_same_values_with_fewer_nodes():
    x = delayed(inc)(0)
    for _ in range(30):
        x = delayed(inc)(x)
    y = delayed(add)(x, delayed(inc)(5))
    assert y.compute(scheduler="condordag", group="chains") == 37
    wf = dask_condordag.write(y, path="grouped", group="chains")
    assert len(wf.nodes) == 3  # the chain, inc(5), and the final add


class TestGetFunction(GetFunctionTestMixin):
    """dask's own conformance suite for ``get`` functions."""

    get = staticmethod(dask_condordag.get)

    def test_get_stack_limit(self):
        # 10,000 chained tasks: as 10,000 processes this would take minutes on
        # two cores; grouped into chains it is one job.
        d = {f"x{i + 1}": (inc, f"x{i}") for i in range(10000)}
        d["x0"] = 0
        with dask.config.set({"condordag.group": "chains"}):
            assert self.get(d, "x10000") == 10000
