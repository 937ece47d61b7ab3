"""VARS: defaults for a group of calls, overridden per call.

The original library set VARS as defaults on a function
(``@job(state="Wisconsin", country="US")``) and per job
(``a.queue(...).var(state="Ohio")``). Here both are ``condor={"vars": ...}``
annotations; ``dask_condordag.annotate`` merges nested blocks (the inner value
wins). Each VARS macro can be used in submit commands as ``$(name)``: here it
becomes an environment variable the task reads.
"""

import os
import sys

import dask

import dask_condordag


@dask.delayed
def where():
    return f"{os.environ['STATE']}, {os.environ['COUNTRY']}"


def main(path="vars-workflow"):
    env = {"environment": '"STATE=$(state) COUNTRY=$(country)"'}
    with dask_condordag.annotate(vars={"state": "Wisconsin", "country": "US"}, submit=env):
        default = where()
        with dask_condordag.annotate(vars={"state": "Ohio"}):
            override = where()
    wf = dask_condordag.write(default, override, path=path)
    wf.run()
    result = wf.result()
    print(result)
    assert result == ("Wisconsin, US", "Ohio, US")
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
