"""Shell jobs with explicit ordering, without data passing between them.

The original library's::

    j1 = bash.queue("foo </nfs/i1 | bar >/nfs/o1")
    j2 = bash.queue("foo </nfs/i2 | bar >/nfs/o2")
    j3 = bash.queue("baz /nfs/o1 /nfs/o2 >/nfs/out").parent(j1, j2)

``dask_condordag.shell`` runs a bash command with ``set -o pipefail`` (a
failing stage of a pipe fails the node); ``after=`` adds DAG edges without
transferring anything. The files live on a shared file system (here: a
directory given on the command line, default ./shell-jobs-data).
"""

import os
import sys

import dask_condordag


def main(path="shell-jobs-workflow", data="shell-jobs-data"):
    data = os.path.abspath(data)
    os.makedirs(data, exist_ok=True)
    for i in (1, 2):
        with open(os.path.join(data, f"i{i}"), "w") as f:
            f.write(f"input {i}\nsecond line\n")
    j1 = dask_condordag.shell(f"head -1 < {data}/i1 | tr a-z A-Z > {data}/o1")
    j2 = dask_condordag.shell(f"head -1 < {data}/i2 | tr a-z A-Z > {data}/o2")
    j3 = dask_condordag.shell(f"cat {data}/o1 {data}/o2 > {data}/out", after=[j1, j2])
    wf = dask_condordag.write(j3, path=path)
    wf.run()
    wf.result()  # raises if any of them failed
    out = open(os.path.join(data, "out")).read()
    print(out, end="")
    assert out == "INPUT 1\nINPUT 2\n"
    return out


if __name__ == "__main__":
    main(*sys.argv[1:3])
