"""Every exception dask-condordag raises, under one base class.

Each class's docstring says when it is raised. Messages name the culprit
(the key, the node, the file, the value) and say what to do.
"""

from __future__ import annotations

__all__ = [
    "CondorDagError",
    "GraphError",
    "MissingKeyError",
    "PlanError",
    "WorkflowExistsError",
    "WorkflowError",
    "CorruptResultError",
    "ResultMissingError",
    "RemoteError",
    "RunnerError",
    "CondorCommandError",
    "JobHeldError",
    "DagFailedError",
    "WaitTimeout",
    "PreflightError",
    "LocalStateError",
]


class CondorDagError(Exception):
    """Base class of every error raised by dask-condordag.

    ``workflow_path``: the workflow folder, when ``compute()`` raised the
    error after writing it (None otherwise). ``compute()`` sets the same
    attribute on any other exception it raises after writing the workflow
    (a task's own exception, re-raised)."""

    workflow_path = None


class GraphError(CondorDagError, ValueError):
    """Raised while reading the dask graph: a missing key, a cycle, an empty graph."""


class MissingKeyError(GraphError, KeyError):
    """Raised when a requested or referenced key is not in the graph."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


class PlanError(CondorDagError, ValueError):
    """Raised while planning, before anything is written: something in the graph
    cannot become a DAG node (an unpicklable argument, a bad option value)."""


class WorkflowExistsError(CondorDagError, FileExistsError):
    """Raised when the target directory exists and holds something other than
    this workflow (another workflow, or files that are not a workflow)."""


class WorkflowError(CondorDagError):
    """Raised when a workflow directory is unreadable: a missing or malformed
    manifest, a manifest from a newer format version."""


class CorruptResultError(WorkflowError):
    """Raised when a result, data or bookkeeping file of a workflow fails its
    checksum or names another file: truncated, damaged, or edited by hand. It
    is never unpickled. ``path`` and ``key`` name the file and its key."""

    def __init__(self, message: str, *, path: str = "", key=None):
        super().__init__(message)
        self.path = path
        self.key = key


class ResultMissingError(CondorDagError, LookupError):
    """Raised by ``Workflow.result()`` when a requested result file is not there
    and no failed node explains why (the workflow has not run, or is still running)."""


class RunnerError(CondorDagError):
    """Raised by the local runner for a DAG or submit file it cannot execute."""


class RemoteError(CondorDagError):
    """Raised for a failed node when the task's exception object did not come
    back (it did not pickle on the execute node, or does not unpickle here) and
    its type cannot be imported here either: the message says why, and carries
    the remote traceback text, the key, the node and where its logs are."""

    def __init__(self, message: str, *, exc_type: str = "", key=None, node: str = "",
                 remote_traceback: str = ""):
        super().__init__(message)
        self.exc_type = exc_type
        self.key = key
        self.node = node
        self.remote_traceback = remote_traceback


class CondorCommandError(CondorDagError):
    """Raised when an HTCondor command is missing or fails (non-zero exit, or
    output we cannot read). ``command`` and ``output`` say which and what."""

    def __init__(self, message: str, *, command=(), output: str = ""):
        super().__init__(message)
        self.command = list(command)
        self.output = output


class JobHeldError(CondorDagError):
    """Raised by ``Workflow.wait()`` when a node's job has been on hold longer
    than ``hold_timeout`` seconds: a held job never finishes by itself.
    ``node``, ``job`` ("cluster.proc") and ``reason`` (HoldReason)."""

    def __init__(self, message: str, *, node: str = "", job: str = "", reason: str = ""):
        super().__init__(message)
        self.node = node
        self.job = job
        self.reason = reason


class DagFailedError(CondorDagError):
    """Raised when a DAG failed and no failed task left an error report to
    re-raise (a PRE/POST script or the submit step failed, a held job was
    removed, DAGMan was removed). ``nodes`` maps failed nodes to DAGMan's
    reason; ``rescue`` is the rescue DAG."""

    def __init__(self, message: str, *, nodes=None, rescue=None):
        super().__init__(message)
        self.nodes = dict(nodes or {})
        self.rescue = rescue


class WaitTimeout(CondorDagError, TimeoutError):
    """Raised by ``Workflow.wait(timeout=...)`` when the DAG is still running
    at the timeout. The DAG keeps running."""


class PreflightError(CondorDagError):
    """Raised by ``Workflow.submit()`` (and ``run="condor"``) when the preflight
    check finds that a job would miss something on the execute node (a module,
    an input file, the Python version); nothing was submitted. ``report`` is
    the :class:`~dask_condordag.doctor.DoctorReport`."""

    def __init__(self, message: str, *, report=None):
        super().__init__(message)
        self.report = report


class LocalStateError(CondorDagError, TypeError):
    """Raised (by the worker on the execute node, and re-raised here) when a
    task's result is a handle to its job's local state -- an open file, a
    socket, a lock, a partd store (dask's disk shuffle), a memory map, a
    database connection, a running process, a generator deep inside the
    result -- which no other job and no later run could use. The message
    names the task's key and says what to return instead."""
