"""dask-condordag: run ordinary dask graphs on HTCondor pools as DAGMan workflows.

    >>> import dask, dask_condordag                       # doctest: +SKIP
    >>> total.compute(scheduler="condordag")               # doctest: +SKIP
    >>> wf = dask_condordag.write(total, path="mytest")    # doctest: +SKIP

Importing the package registers the ``"condordag"`` scheduler name with dask;
it reads no configuration and touches no file.
"""

from __future__ import annotations

from ._version import __version__

from dask.base import named_schedulers as _named_schedulers

from .exceptions import (  # noqa: E402
    CondorCommandError,
    CondorDagError,
    DagFailedError,
    JobHeldError,
    LocalStateError,
    PreflightError,
    WaitTimeout,
    CorruptResultError,
    GraphError,
    MissingKeyError,
    PlanError,
    RemoteError,
    ResultMissingError,
    WorkflowError,
    WorkflowExistsError,
)
from .annotations import annotate  # noqa: E402
from .jobs import after, procid, shell  # noqa: E402
from .scheduler import get, last_workflow, write  # noqa: E402
from .gc import gc  # noqa: E402  (the function; the module: dask_condordag.gc.GcReport ...)
from .workflow import Workflow  # noqa: E402
from .report import plan_report, run_report  # noqa: E402

_named_schedulers["condordag"] = get

__all__ = [
    "get",
    "write",
    "last_workflow",
    "gc",
    "annotate",
    "procid",
    "shell",
    "after",
    "Workflow",
    "plan_report",
    "run_report",
    "CondorDagError",
    "CondorCommandError",
    "CorruptResultError",
    "DagFailedError",
    "JobHeldError",
    "LocalStateError",
    "PreflightError",
    "WaitTimeout",
    "GraphError",
    "MissingKeyError",
    "PlanError",
    "RemoteError",
    "ResultMissingError",
    "WorkflowError",
    "WorkflowExistsError",
    "__version__",
]
