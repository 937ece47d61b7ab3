"""The diamond DAG from the DAGMan manual: A -> (B, C) -> D.

In the original library the edges were declared by hand
(``job_a.child(job_b, job_c); job_d.parent(job_b, job_c)``); with dask they
follow from the data: B and C read A's result, D reads B's and C's.
"""

import sys

import dask

import dask_condordag


@dask.delayed
def a():
    return 10


@dask.delayed
def b(x):
    return x + 1


@dask.delayed
def c(x):
    return x * 2


@dask.delayed
def d(left, right):
    return left + right


def main():
    top = a()
    bottom = d(b(top), c(top))
    result = bottom.compute(scheduler="condordag")  # written, run, loaded back
    print(result)
    assert result == 31
    return result


if __name__ == "__main__":
    main(*sys.argv[1:1])
