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
    * Here: the handle, its paths, the local run (``run()``), status, errors
      and results. Submitting, waiting and removing on a pool:
      :mod:`dask_condordag.workflow_pool` (``OnThePool``, a base class).
    * A failed task is raised as its own exception with where it ran
      (``results.remote_exception``); a result not there yet raises
      :class:`~dask_condordag.exceptions.ResultMissingError`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import condor, dagfile, names, statusfile
from .exceptions import ResultMissingError, WorkflowError
from .manifest import read_manifest
from .workflow_pool import OnThePool
from .results import (is_error, is_ok, keep_finished, read_error, read_result,
                      remote_exception)

__all__ = ["Workflow", "local_runner", "dagman_by_hand"]

class Workflow(OnThePool):
    """A written workflow directory: run it, look at it, load its results.
    Submitting it to a pool, waiting and removing it: :class:`OnThePool`."""

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
        from .local import run

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
        if q is not None:
            out["jobs"] = {"idle": q.count(condor.JOB_IDLE),
                           "running": q.count(condor.JOB_RUNNING),
                           "held": sum(1 for j in q.jobs if j.held)}
        elif state is not None:
            out["jobs"] = {"idle": max(0, state.procs_idle - state.procs_held),
                           "running": state.running_nodes(), "held": state.procs_held}
        else:
            out["jobs"] = None
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

    def _task_errors(self) -> list[dict]:
        """Error reports of the failed tasks, in the DAG's order, each with
        ``logs`` (paths of the job's stdout/stderr) added."""
        out = []
        seen = set()
        for node, info in self.nodes.items():
            for task, files in info["outputs"].items():
                key = info["tasks"].get(task)
                p = next((self.path / f for f in files if is_error(self.path / f)), None)
                if p is not None:
                    report = read_error(p)
                    # one failure in a node of several outputs is in each of them
                    once = (node, report.get("proc"), report.get("task"), report.get("time"),
                            report.get("message"))
                    if once in seen:
                        continue
                    seen.add(once)
                    if len(info["tasks"]) > 1:
                        keep_finished(self.path, report)  # what finished before the failure
                    if report.get("key") is None:  # the process died: the output's key
                        report["key"] = key
                    report["logs"] = [str(x) for x in self.logs(node, report.get("proc"))]
                    report["file"] = str(p)
                    report.setdefault("kind", "error")
                    out.append(report)
        return out

    # -- results -------------------------------------------------------------
    def _outputs(self) -> dict:
        p = self.path / names.OUTPUTS
        try:
            return read_result(p)  # sealed like a result: verified before unpickling
        except OSError as e:
            raise WorkflowError(f"cannot read {p}: {e}") from e

    def values(self) -> tuple:
        """The raw values of the requested keys, in order (no repacking)."""
        return self._values(self._outputs())

    def _values(self, stored: dict) -> tuple:
        values = []
        for key, kind, files, value, as_list in stored["outputs"]:
            if kind == "inline":
                values.append(value)
                continue
            got = []
            for f in files:
                file = self.path / f
                if is_error(file) or not file.exists():
                    self._raise_for(key, file)
                got.append(read_result(file, key=key))  # verified; damaged: CorruptResultError
            values.append(got if as_list else got[0])
        return tuple(values)

    def result(self):
        """What ``dask.compute`` would have returned for what was written.

        Raises the failed task's exception (original type, remote traceback in
        the message) if the workflow failed, or ResultMissingError if it has
        not finished.
        """
        stored = self._outputs()
        values = self._values(stored)
        repack = stored.get("repack")
        return repack(values) if repack is not None else values

    def value(self, what):
        """The value of one task, given by its key (as the manifest shows it,
        ``repr(key)``, or a string key itself) or its task name: also a task
        inside a node of several tasks, when its result was written (it is
        read outside its node or requested, or it was kept when a later task
        of its node failed). Raises the task's exception if it failed, and
        ResultMissingError when it has no result."""
        task = self._task_named(what)
        file = self.path / names.result_file(task)
        if is_ok(file):
            return read_result(file, key=what)
        node = next(n for n, info in self.nodes.items() if task in info["tasks"])
        for report in self._task_errors():
            if report.get("task") == task:
                raise remote_exception(report, key=report.get("key"), logs=report["logs"])
        raise ResultMissingError(
            f"task {task} (key {self.nodes[node]['tasks'][task]}) has no result in "
            f"{self.path}: its node {node} has not run, or the task ran inside it and "
            "only the values read outside the node, requested, or kept when a later "
            "task failed are written")

    def _task_named(self, what) -> str:
        wanted = {what, repr(what)} if isinstance(what, str) else {repr(what)}
        hits = {t for info in self.nodes.values() for t, k in info["tasks"].items()
                if t in wanted or k in wanted}
        if len(hits) != 1:
            raise WorkflowError(
                f"{what!r} {'matches several tasks' if hits else 'is not a task or key'} "
                f"of the workflow at {self.path} (see {self.path / names.MANIFEST})")
        return hits.pop()

    def _raise_for(self, key, file: Path):
        if is_error(file):
            report = read_error(file)
            node = report.get("node") or ""
            keep_finished(self.path, report)  # what finished before the failure
            if report.get("task") and names.result_file(report["task"]) not in str(file):
                key = report.get("key")  # another task of its node failed: that one's key
            raise remote_exception(report, key=key, logs=self.logs(node, report.get("proc")))
        errors = self._task_errors()
        if errors:
            first = errors[0]
            raise remote_exception(first, key=first.get("key"), logs=first["logs"])
        raise ResultMissingError(
            f"the result of key {key!r} ({file}) is not there yet: the workflow at "
            f"{self.path} has not finished. Run it (dask-condordag run {self.path}, "
            f"or condor_submit_dag {self.dag_path.name} in that directory) and try again"
        )


def local_runner(dag_path: Path) -> str | None:
    """Who runs the DAG here with the local runner ("pid N on HOST", from its
    ``<dag>.lock``); None when nobody does (or there is no DAG file)."""
    from .exceptions import RunnerError
    from .local import locked

    try:
        return locked(dag_path)
    except RunnerError:
        return None


def dagman_by_hand(dag_path: Path) -> bool:
    """Whether a DAGMan that ``condor_submit_dag`` started by hand (no
    ``dagman.cluster``) may be running the DAG: it wrote ``<dag>.condor.sub``
    and keeps ``<dag>.lock`` until it exits (DAGMan's ``-lockfile``)."""
    lock = dag_path.with_name(dag_path.name + ".lock")
    return dag_path.with_name(dag_path.name + ".condor.sub").exists() and lock.exists()


def _held(job) -> dict:
    return {"node": job.node, "job": job.id, "hold_reason": job.hold_reason,
            "hold_code": job.hold_code, "since": job.since}
