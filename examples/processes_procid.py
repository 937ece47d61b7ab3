"""A process cluster: one DAG node, ``queue 10``, each proc sees its own number.

The original library's::

    print_sum.queue(procid, 5).var(processes=10)   # outputs 5 to 14 inclusive

Here ``processes`` is an annotation and ``dask_condordag.procid`` stands where
the process number goes; the value of the call is the list of the 10 results
in order. DAGMan's semantics apply: if one proc fails the node fails (the
others are removed), and a RETRY or a rescue run reruns all 10. If you want to
rerun failed pieces alone, make them separate calls instead (or use a
``cluster`` annotation on separate calls, which still submits one cluster).
"""

import sys

import dask

import dask_condordag
from dask_condordag import procid


@dask.delayed
def print_sum(a, b):
    print(a + b)
    return a + b


def main(path="procid-workflow"):
    with dask.annotate(condor={"processes": 10}):
        sweep = print_sum(procid, 5)
    wf = dask_condordag.write(sweep, path=path)
    assert len(wf.nodes) == 1
    wf.run()
    result = wf.result()
    print(result)
    assert result == list(range(5, 15))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
