"""The local runner: run a workflow directory on this machine as DAGMan would.

The package, in the order a run goes through it:

    files.py     the DAG (and rescue DAG) in; node status file, jobstate log,
                 rescue DAGs, the recovery journal and the lock out
    dagman.py    DAGMan's rules as a pure state machine: events in, actions out
    launch.py    a job proc in its scratch directory (file transfer,
                 environment, kill), PRE/POST scripts, behind an executor
    runner.py    ``run``: the loop that drives the machine with real processes
    simulate.py  ``simulate``: the same machine against a simulated clock

Example::

    >>> report = run("condordag-workflows/mywf", max_workers=4)  # doctest: +SKIP
    >>> report.ok, report.summary()                              # doctest: +SKIP
    >>> simulate("condordag-workflows/mywf", slots=4, job_latency=6.0).makespan  # doctest: +SKIP
"""

from .dagman import Dagman
from .state import (DAG_ERROR_CONDOR_JOB_ABORTED, DAG_STATUS_ABORT, DAG_STATUS_ERROR,
                    DAG_STATUS_NODE_FAILED, DAG_STATUS_OK)
from .files import load_dag, locked
from .launch import JobOutcome, run_job
from .runner import RunReport, run
from .simulate import Simulation, simulate

__all__ = ["run", "RunReport", "JobOutcome", "run_job", "simulate", "Simulation", "Dagman",
           "load_dag", "locked", "DAG_ERROR_CONDOR_JOB_ABORTED", "DAG_STATUS_OK",
           "DAG_STATUS_ERROR", "DAG_STATUS_NODE_FAILED", "DAG_STATUS_ABORT"]
