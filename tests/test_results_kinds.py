"""What a task may return (issue 9, items 1 and 4): lazy iterators are made lists
before they are written, as ``dask.bag.core.reify`` does; handles to the job's
local state (open files, locks, partd stores...) are refused, naming the key."""

import io
import itertools
import threading

import dask
import pytest
from dask import delayed

import dask_condordag
from dask_condordag.exceptions import LocalStateError

from .helpers import inc


def squares(n):
    for i in range(n):
        yield i * i


def nested(n):
    return [iter(range(n)), (x for x in range(n)), [n]]


def lazy_values():
    return {
        "map": delayed(map)(inc, [1, 2, 3]),
        "filter": delayed(filter)(None, [0, 1, 2]),
        "zip": delayed(zip)([1, 2], "ab"),
        "generator": delayed(squares)(4),
        "islice": delayed(itertools.islice)(itertools.count(5), 3),
        "chain": delayed(itertools.chain)([1], [2, 3]),
        "nested": delayed(nested)(2),
    }


EXPECTED = {
    "map": [2, 3, 4],
    "filter": [1, 2],
    "zip": [(1, "a"), (2, "b")],
    "generator": [0, 1, 4, 9],
    "islice": [5, 6, 7],
    "chain": [1, 2, 3],
    "nested": [[0, 1], [0, 1], [2]],
}


@pytest.mark.parametrize("group", ["none", "chains"])
def test_lazy_iterator_results_are_lists(group):
    values = lazy_values()
    got = dask.compute(*values.values(), scheduler="condordag", run="local", path="wf",
                       group=group, progress=False)
    assert dict(zip(values, got)) == EXPECTED


def test_lazy_values_inside_a_chain_stay_lazy_and_its_end_is_a_list():
    # group="chains": the generator passes to map inside the job, as with
    # dask's own schedulers; only the chain's end is written, made a list
    m = delayed(map)(inc, delayed(squares)(4))
    wf = dask_condordag.write(m, path="wf", group="chains")
    assert len(wf.nodes) == 1
    assert m.compute(scheduler="condordag", run="local", path="wf", group="chains",
                     progress=False) == [1, 2, 5, 10]


def open_file(path):
    return open(path, "rb")


def locks_inside():
    return {"ok": [1, 2], "bad": [threading.RLock()]}


def make_store(folder):
    import partd

    return partd.File(folder)


@pytest.mark.parametrize("make, what", [
    (lambda p: delayed(open_file)(str(p)), "an open file"),
    (lambda p: delayed(threading.Lock)(), "a lock"),
    (lambda p: delayed(make_store)(str(p.parent / "store")), "a partd store"),
    (lambda p: delayed(locks_inside)(), "a lock"),
], ids=["file", "lock", "partd", "lock-inside"])
def test_handles_to_local_state_are_refused_naming_the_key(tmp_path, make, what):
    data = tmp_path / "data.bin"
    data.write_bytes(b"x")
    value = make(data)
    with pytest.raises(LocalStateError) as info:
        value.compute(scheduler="condordag", run="local", path="wf", progress=False)
    msg = str(info.value)
    assert what in msg
    assert repr(value.key) in msg or str(value.key) in msg
    assert "Return the data itself" in msg
    if what == "a partd store":
        assert "shuffle='tasks'" in msg


def test_a_generator_inside_a_result_is_refused():
    value = delayed(dict)(g=delayed(squares)(3))  # the generator is made a list...
    assert value.compute(scheduler="condordag", run="local", path="ok",
                         progress=False) == {"g": [0, 1, 4]}
    deep = delayed(lambda: {"g": squares(3)})()  # ...one made inside a task is not
    with pytest.raises(LocalStateError, match="a generator deep inside the result"):
        deep.compute(scheduler="condordag", run="local", path="deep", progress=False)


def test_in_memory_files_are_data_not_handles():
    got = delayed(io.BytesIO)(b"bytes").compute(scheduler="condordag", run="local",
                                                path="wf", progress=False)
    assert got.getvalue() == b"bytes"


def test_the_workers_stand_in_comes_back_as_the_real_class():
    # on an execute node without the package the worker raises its stand-in
    # (worker_files.LocalStateError, whose bases differ); cloudpickle sends
    # that class by value, and ``except LocalStateError`` must still catch it
    import base64

    import cloudpickle

    from dask_condordag import worker_files
    from dask_condordag.results import _unpickle_exception

    sent = worker_files.LocalStateError("task 'x' returned a lock")
    sent.note = "kept"
    data = cloudpickle.dumps(([sent], [(None, None, False)]))
    import pickle
    assert type(pickle.loads(data)[0][0]) is not LocalStateError  # a copy, by value
    got, why = _unpickle_exception({"exc_pickle": base64.b64encode(data).decode()})
    assert why is None and type(got) is LocalStateError
    assert got.args == sent.args and got.note == "kept"
