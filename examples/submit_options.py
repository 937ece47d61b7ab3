"""Per-job submit options: resources and any other submit command.

The original library's ``@job(request_memory=100)`` and
``myjob.queue(...).var(request_memory=100)``. dask's own ``resources``
annotation becomes ``request_cpus``/``request_memory``/``request_gpus``/
``request_disk``; ``condor={"submit": {...}}`` adds any other command
(requirements, ``+ProjectName``, accounting group, container image, ...).
Nodes with equal settings share one submit description.

On the local runner, commands it cannot honour (``requirements`` here) are
accepted and ignored with a one-time notice.
"""

import sys

import dask

import dask_condordag


@dask.delayed
def simulate(seed):
    import random

    return random.Random(seed).random()


@dask.delayed
def summarize(values):
    return round(sum(values) / len(values), 6)


def main(path="submit-options-workflow"):
    with dask.annotate(resources={"memory": "2GB", "cpus": 1},
                       condor={"submit": {"requirements": 'OpSys == "LINUX"',
                                          "+ProjectName": '"demo"'}}):
        runs = [simulate(seed) for seed in range(4)]
    with dask.annotate(resources={"memory": "512MB"}):
        summary = summarize(runs)
    wf = dask_condordag.write(summary, path=path)
    for sub in sorted(wf.path.glob("*.sub")):
        print(f"--- {sub.name}")
        print("\n".join(l for l in sub.read_text().splitlines() if l.startswith(("request", "req", "My."))))
    wf.run()
    result = wf.result()
    print(result)
    assert result == summarize(runs).compute(scheduler="sync")
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
