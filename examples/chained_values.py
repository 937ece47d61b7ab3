"""Values returned by one call feeding later calls.

The original library's "returning python values" example::

    j1 = adder.queue(1, 2)
    j2 = adder.queue(3, 4)
    j3 = print_sum.queue(j1, j2)

Each return value is pickled into ``results/`` on the execute node, HTCondor
transfers it back, and it is transferred in to the jobs that read it. ``None``
is a value like any other.
"""

import sys

import dask

import dask_condordag


@dask.delayed
def adder(a, b):
    return a + b


@dask.delayed
def report(x, y):
    print(f"{x} + {y} = {x + y}")
    return None


def main(path="chained-values-workflow"):
    j1 = adder(1, 2)
    j2 = adder(3, 4)
    j3 = adder(j1, j2)
    done = report(j1, j3)
    wf = dask_condordag.write(j3, done, path=path)
    wf.run()
    total, nothing = wf.result()
    print(total, nothing)
    assert (total, nothing) == (10, None)
    return total


if __name__ == "__main__":
    main(*sys.argv[1:2])
