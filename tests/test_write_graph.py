"""``write(dsk, keys=...)`` of a plain dict graph, and the errors that say how
(issue 9, item 10)."""

from operator import add

import dask
import pytest

import dask_condordag
from dask_condordag import CondorDagError, MissingKeyError

DSK = {"a": 1, "b": (add, "a", 1), "c": (add, "b", 10), "unused": (add, "a", "a")}


@pytest.mark.parametrize("keys", [["b", "c"], "c", [["b"], "c"], ["c", "c"]])
def test_write_plain_graph_with_keys_gives_what_dask_get_gives(keys):
    wf = dask_condordag.write(DSK, keys=keys, path="wf")
    wf.run(progress=False)
    assert dask_condordag.Workflow.open("wf").result() == dask.get(DSK, keys)


def test_write_plain_graph_runs_only_the_needed_tasks():
    wf = dask_condordag.write(DSK, keys=["b"], path="wf")
    assert len(wf.nodes) == 1  # "b" only: "a" is a constant, "c" and "unused" are culled


def test_plain_graph_without_keys_says_how():
    with pytest.raises(CondorDagError, match=r"plain graph \(a dict\) and no keys.*keys=\[\.\.\.\]"):
        dask_condordag.write(DSK, path="wf")


def test_keys_with_a_collection_says_how():
    with pytest.raises(CondorDagError, match="takes one plain graph dict.*leave keys out"):
        dask_condordag.write(dask.delayed(1), keys=["a"], path="wf")


def test_nothing_to_write_says_what_to_pass():
    with pytest.raises(CondorDagError, match="no dask collections.*graph dict with keys"):
        dask_condordag.write(path="wf")


def test_missing_key_is_named():
    with pytest.raises(MissingKeyError, match="'zz' is not in the graph"):
        dask_condordag.write(DSK, keys=["zz"], path="wf")


def test_dict_of_collections_still_means_collections():
    x = dask.delayed(add)(1, 2)
    wf = dask_condordag.write({"x": x}, path="wf")
    wf.run(progress=False)
    assert wf.result() == {"x": 3}
