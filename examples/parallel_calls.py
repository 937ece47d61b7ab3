"""Two calls of one function in parallel with different arguments.

The dask version of the original htcondor_dag.py "basic operation" example::

    print_sum.queue(1, 2)
    print_sum.queue(3, 4)

Each call becomes its own DAG node; they have no edge between them, so DAGMan
(or the local runner) runs them at the same time.
"""

import sys

import dask

import dask_condordag


@dask.delayed
def print_sum(a, b):
    print(a + b)  # goes to the job's stdout: logs/<node>.out
    return a + b


def main(path="parallel-calls-workflow"):
    jobs = [print_sum(1, 2), print_sum(3, 4)]
    wf = dask_condordag.write(*jobs, path=path)
    wf.run()
    result = wf.result()
    print(result)
    assert result == (3, 7)
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
