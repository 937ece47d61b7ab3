"""The :class:`Workflow` handle: one workflow directory, usable from any process.

    >>> wf = Workflow.open("mytest")          # doctest: +SKIP
    >>> wf.run()                              # the local runner  # doctest: +SKIP
    >>> wf.submit(); wf.wait()                # or on an HTCondor pool  # doctest: +SKIP
    >>> wf.result()                           # doctest: +SKIP
    10

State lives on disk, so any process can pick a workflow up: the result files
(done / failed tasks), the DAG's node status file (DAGMan's view, written by
DAGMan and by the local runner alike), the DAGMan job's cluster id
(``condor.CLUSTER_FILE``, written by ``submit()``) and, where HTCondor is
installed, the queue (held jobs and their hold reasons). Every HTCondor
command goes through :mod:`dask_condordag.condor`.

Data
    In: a workflow directory as ``write.write_workflow`` left it (its
    manifest: ``manifest.read_manifest``) and whatever ran it wrote since.
    Out: ``status()`` and ``errors()`` as plain dicts, the values
    (``values()``, ``result()``: each result file verified before it is
    unpickled, :mod:`dask_condordag.results`).

Policy
    * Here: the handle, its paths, the local run (``run()``), status and
      errors. Reading the results: :mod:`dask_condordag.workflow_results`
      (``WorkflowResults``); submitting, waiting and removing on a pool:
      :mod:`dask_condordag.workflow_pool` (``OnThePool``); both base classes.
    * A failed task is raised as its own exception with where it ran
      (``results.remote_exception``); a result not there yet raises
      :class:`~dask_condordag.exceptions.ResultMissingError`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import condor, dagfile, names, statusfile
from .condor import dagman_by_hand  # noqa: F401  (re-exported: it was defined here first)
from .exceptions import RunnerError
from .local import locked, run
from .manifest import read_manifest
from .results import is_error, is_ok
from .workflow_pool import OnThePool, job_counts
from .workflow_results import WorkflowResults

__all__ = ["Workflow", "local_runner", "dagman_by_hand"]


class Workflow(WorkflowResults, OnThePool):
    """A written workflow directory: run it, look at it, load its results.
    Reading its results: :class:`WorkflowResults`; submitting it to a pool,
    waiting and removing it: :class:`OnThePool`."""

    def __init__(self, path, manifest: dict | None = None):
        self.path = Path(path).absolute()
        self.manifest = manifest if manifest is not None else read_manifest(self.path)
        #: the :class:`~dask_condordag.condor.Condor` that runs HTCondor's tools
        #: (None: the command-line tools on PATH)
        self.backend = None

    @classmethod
    def open(cls, path) -> "Workflow":
        """Open the workflow written at ``path`` (raises WorkflowError if it is not one)."""
        return cls(path)

    def __repr__(self) -> str:
        return f"Workflow({str(self.path)!r}, name={self.name!r}, nodes={len(self.nodes)})"

    # -- what it is --------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def dag_path(self) -> Path:
        return self.path / self.manifest["dag"]

    @property
    def nodes(self) -> dict:
        return self.manifest["nodes"]

    def logs(self, node: str, proc: int | None = None) -> tuple[Path, Path]:
        """The job's stdout and stderr files; a ``queue N`` node has one pair
        per proc (``.out.<proc>``), named by ``proc``."""
        out, err = names.log_files(node)
        if proc is not None and not (self.path / out).exists():
            out, err = f"{out}.{proc}", f"{err}.{proc}"
        return self.path / out, self.path / err

    # -- running -----------------------------------------------------------
    def run(self, **kwargs):
        """Run the workflow here with the local runner (see ``dask_condordag.local.run``)."""
        return run(self.path, **kwargs)

    # -- on an HTCondor pool ---------------------------------------------------
    @property
    def cluster(self) -> int | None:
        """The DAGMan job's cluster id of the last ``submit()``, if any."""
        return condor.read_cluster(self.path)

    @property
    def status_path(self) -> Path | None:
        """The DAG's ``NODE_STATUS_FILE``, as the DAG file names it."""
        try:
            with open(self.dag_path, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0].upper() == "NODE_STATUS_FILE":
                        return self.path / parts[1]
        except OSError:
            pass
        return None

    @property
    def dagman_out(self) -> Path:
        """DAGMan's debug log, ``<dag>.dagman.out`` (condor_submit_dag's name)."""
        return self.path / (self.dag_path.name + ".dagman.out")

    def rescue_dags(self) -> list:
        """The rescue DAGs, oldest first (``<dag>.rescue001`` ...)."""
        return [Path(p) for p in dagfile.rescue_files(str(self.dag_path))]

    def dag_state(self):
        """The node status file as a :class:`~dask_condordag.statusfile.DagState`
        (None before DAGMan or the local runner first wrote it)."""
        p = self.status_path
        return statusfile.read_status_file(p) if p is not None else None

    def _backend(self):
        return self.backend or condor.Condor()

    def _query(self):
        """The DAGMan job and its node jobs in the queue; None when that
        cannot be known here (never submitted, or no condor_q)."""
        cluster = self.cluster
        if cluster is None or (self.backend is None and shutil.which(condor.CONDOR_Q) is None):
            return None
        try:
            return self._backend().query(cluster)
        except condor.CondorCommandError:
            return None

    def _dagman_history(self):
        """The DAGMan job's ad in the job history once it left the queue; None
        when that cannot be known here (never submitted, no condor_history)."""
        cluster = self.cluster
        if cluster is None or (self.backend is None
                               and shutil.which(condor.CONDOR_HISTORY) is None):
            return None
        try:
            return self._backend().history(cluster)
        except condor.CondorCommandError:
            return None

    def status(self) -> dict:
        """Where the workflow is.

        ``total``, ``done``, ``failed``, ``pending``: nodes, from the result
        files. ``cluster``: the DAGMan job (None if never submitted);
        ``dagman``: "not submitted", "running", "held", "done", "failed",
        "removed" (its DAGMan job was removed: the job history says so), "not
        in the queue", "interrupted" (a local run stopped before the DAG
        finished and no runner holds its lock now: ``nodes`` and ``jobs`` are
        then None, the node status file being stale) or "unknown";
        ``runner``: who runs it here ("pid N on HOST", from the local
        runner's lock; None); ``nodes``: DAGMan's per-state counts
        from the node status file (None before it exists); ``jobs``: idle,
        running and held job procs (from the queue where HTCondor is here,
        else from the status file); ``held``: the held jobs with their hold
        reasons.
        """
        out = self._result_counts()
        state, q, cluster = self.dag_state(), self._query(), self.cluster
        runner = local_runner(self.dag_path)
        if q is not None and q.dagman is not None:
            dagman = "held" if q.dagman.held else "running"
        elif runner:
            dagman = "running"
        elif (q is not None and cluster is not None and not (state is not None and state.ok)
              and condor.was_removed(self._dagman_history())):
            dagman = "removed"
        elif state is not None and state.finished:
            dagman = "done" if state.ok else "failed"
        elif cluster is None:
            # the local runner holds <dag>.lock while it runs: unfinished and
            # unlocked is a run that was stopped (Ctrl-C, SIGTERM, SIGKILL)
            dagman = ("not submitted" if state is None else
                      "unknown" if dagman_by_hand(self.dag_path) else "interrupted")
            if dagman == "interrupted":
                state = None
        else:
            dagman = "not in the queue" if q is not None else "unknown"
        out["cluster"], out["dagman"], out["runner"] = cluster, dagman, runner
        out["nodes"] = None if state is None else {
            "done": state.done, "queued": state.queued, "pre": state.pre, "post": state.post,
            "ready": state.ready, "unready": state.unready, "failed": state.failed,
            "futile": state.futile}
        out["jobs"] = job_counts(state, q)
        out["held"] = [_held(j) for j in q.held] if q is not None else []
        return out

    def _result_counts(self) -> dict:
        """Counts of nodes ``done``, ``failed`` and ``pending`` (from the result files)."""
        done = failed = 0
        reused = set(self.manifest.get("reused") or ())  # DONE, maybe without its outputs
        for node, info in self.nodes.items():
            files = [self.path / f for fs in info["outputs"].values() for f in fs]
            if node in reused or (files and all(is_ok(f) for f in files)):
                done += 1
            elif any(is_error(f) for f in files):
                failed += 1
        return {"total": len(self.nodes), "done": done, "failed": failed,
                "pending": len(self.nodes) - done - failed}

    def errors(self) -> list[dict]:
        """What went wrong: the error reports of the failed tasks in the DAG's
        order (``kind`` "error", with ``logs``, the paths of the job's
        stdout/stderr); then the held jobs (``kind`` "held": ``node``,
        ``job``, ``hold_reason``, ``since``) where the queue can be read; then
        nodes DAGMan failed without a task error report (``kind`` "node":
        ``node``, ``details``, e.g. a failed POST script or submit step)."""
        out = self._task_errors()
        q = self._query()
        if q is not None:
            for job in q.held:
                entry = _held(job)
                entry["kind"] = "held"
                if job.node:
                    entry["logs"] = [str(x) for x in self.logs(job.node)]
                out.append(entry)
        state = self.dag_state()
        if state is not None:
            reported = {e.get("node") for e in out}
            for node, details in state.failed_nodes().items():
                if node not in reported:
                    out.append({"kind": "node", "node": node, "details": details,
                                "logs": [str(x) for x in self.logs(node)]})
        return out


def local_runner(dag_path: Path) -> str | None:
    """Who runs the DAG here with the local runner ("pid N on HOST", from its
    ``<dag>.lock``); None when nobody does (or there is no DAG file)."""
    try:
        return locked(dag_path)
    except RunnerError:
        return None


def _held(job) -> dict:
    return {"node": job.node, "job": job.id, "hold_reason": job.hold_reason,
            "hold_code": job.hold_code, "since": job.since}
