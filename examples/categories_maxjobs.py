"""Categories with MAXJOBS: at most 3 "adder" jobs run at once.

The original library's example::

    @job(category="adder")
    def adder(a, b): ...
    dag.maxjobs["adder"] = 3

Here the category is a dask annotation and MAXJOBS a DAG-level option. The
DAG file gets ``CATEGORY <node> adder`` lines and ``MAXJOBS adder 3``; DAGMan
(and the local runner) never runs more than 3 of them at the same time.
"""

import sys

import dask

import dask_condordag


@dask.delayed
def adder(a, b):
    return a + b


def main(path="categories-workflow"):
    with dask.annotate(condor={"category": "adder"}):
        sums = [adder(i, i) for i in range(8)]
    total = dask.delayed(sum)(sums)
    wf = dask_condordag.write(total, path=path, maxjobs={"adder": 3})
    assert "MAXJOBS adder 3" in wf.dag_path.read_text()
    wf.run()
    result = wf.result()
    print(result)
    assert result == 56
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
