"""Quickstart: an ordinary dask.delayed graph, compiled to a DAGMan workflow and
run on the local runner.

    python examples/quickstart.py [WORKFLOW_DIR]

It writes the workflow to WORKFLOW_DIR (default: ./quickstart-workflow), runs
it here, and prints the result next to dask's own synchronous scheduler's. On a
machine with HTCondor you could instead run ``condor_submit_dag
quickstart-workflow/quickstart.dag`` and load the same result afterwards with
``dask_condordag.Workflow.open("quickstart-workflow").result()``.

Run it twice: the second time every node is already done and nothing reruns.
"""

import sys

import dask

import dask_condordag


@dask.delayed
def load(i):
    """Pretend to read one input file: a list of numbers."""
    return list(range(i * 10, i * 10 + 10))


@dask.delayed
def clean(values):
    return [v for v in values if v % 3]


@dask.delayed
def summarize(parts):
    flat = [v for part in parts for v in part]
    return {"count": len(flat), "total": sum(flat), "max": max(flat)}


def build():
    parts = [clean(load(i)) for i in range(8)]
    return summarize(parts)


def main(path="quickstart-workflow"):
    summary = build()
    wf = dask_condordag.write(summary, path=path, name="quickstart")
    print(f"wrote {len(wf.nodes)} DAG nodes to {wf.path}")
    print(f"  on a pool:  cd {wf.path} && condor_submit_dag {wf.dag_path.name}")
    report = wf.run()
    print(f"local runner: {report.summary()}")
    result = wf.result()
    expected = build().compute(scheduler="sync")
    print(f"result:       {result}")
    print(f"dask sync:    {expected}")
    assert result == expected, "the workflow disagrees with dask's own scheduler"
    # The one-liner does all of the above in a folder of ./condordag-workflows:
    #   summary.compute(scheduler="condordag")
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
