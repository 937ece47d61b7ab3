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
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from . import condor, dagfile, names
from .exceptions import (CondorDagError, PreflightError, RemoteError, ResultMissingError,
                         WorkflowError)
from .manifest import read_manifest
from .results import (add_note, is_error, is_ok, keep_finished, read_error, read_result,
                      remote_exception)

__all__ = ["Workflow"]

_OPTION = object()  # "not given": take the option's value


class Workflow:
    """A written workflow directory: run it, look at it, load its results."""

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
        """The node status file as a :class:`~dask_condordag.condor.DagState`
        (None before DAGMan or the local runner first wrote it)."""
        p = self.status_path
        return condor.read_status_file(p) if p is not None else None

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

    def submit(self, *, force: bool = False, batch_name: str | None = None, stream=None,
               preflight: bool = True, dagman_scan_interval=_OPTION):
        """Submit the DAG with ``condor_submit_dag``; returns the DAGMan job's
        cluster id, or None when every node is already done.

        ``dagman_scan_interval``: seconds between DAGMan's looks at its jobs'
        event log, given to the DAGMan job in its environment (``-include_env
        _CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL``); None leaves it to the pool's
        configuration. Default: the ``dagman_scan_interval`` option.

        ``preflight``: first run ``doctor.doctor(run_task=False)`` -- one
        node's payload and inputs loaded here the way the chosen delivery would
        load them on an execute node (the task itself is not run) -- and
        refuse to submit (raising :class:`PreflightError` with what would be
        missing) before anything is queued.

        A workflow that failed or was removed is resubmitted from DAGMan's
        newest rescue DAG: nothing that finished runs again. ``force=True``
        passes ``-force`` (DAGMan renames the rescue DAGs and runs the DAG file
        as written, which marks ``DONE`` what had results when it was written).
        Refused while this workflow's DAGMan job is still in the queue.
        """
        stream = stream or sys.stderr
        q = self._query()
        if q is not None and q.dagman is not None:
            raise CondorDagError(
                f"the workflow at {self.path} is already in the queue as DAGMan job "
                f"{q.dagman.id}: wait for it (dask-condordag wait {self.path}) or remove it "
                f"(dask-condordag remove {self.path}) before submitting again")
        s = self._result_counts()
        if not force and s["done"] == s["total"]:
            print(f"[dask-condordag] {self.name}: all {s['total']} nodes are already done; "
                  "nothing to submit", file=stream, flush=True)
            return None
        if preflight:
            from .doctor import doctor

            rep = doctor(self.path, run_task=False)
            if not rep.ok:
                raise PreflightError(
                    rep.summary() + "\n(submit(preflight=False) or `dask-condordag submit "
                    "--no-preflight` submits anyway)", report=rep)
        if str(self.path.resolve()).startswith("/tmp/") and not any(
                "DAGMAN_AVOID_SLASH_TMP" in line for line in self._dag_config_lines()):
            print(f"[dask-condordag] warning: {self.path} is under /tmp; DAGMan refuses node "
                  "logs under /tmp by default (DAGMAN_AVOID_SLASH_TMP). Write the workflow "
                  "elsewhere, or pass dag_config={'DAGMAN_AVOID_SLASH_TMP': False}",
                  file=stream, flush=True)
        rescue = self.rescue_dags()
        update = (self.path / (self.dag_path.name + ".condor.sub")).exists() and not rescue
        status = self.status_path
        if status is not None and status.exists():
            status.unlink()  # a snapshot of the last run; DAGMan writes a new one
        if dagman_scan_interval is _OPTION:
            from .config import options

            dagman_scan_interval = options({}).dagman_scan_interval
        cluster, _ = self._backend().submit_dag(
            self.path, self.dag_path.name, batch_name=batch_name or self.name, force=force,
            update_submit=update, env=condor.dagman_environment(dagman_scan_interval))
        condor.write_cluster(self.path, cluster)
        how = f", resuming from {rescue[-1].name}" if rescue and not force else ""
        print(f"[dask-condordag] {self.name}: submitted {self.dag_path.name} as DAGMan job "
              f"{cluster}{how}", file=stream, flush=True)
        return cluster

    def _dag_config_lines(self) -> list:
        """The lines of the DAG's CONFIG file (empty when it has none)."""
        for line in self.dag_path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].upper() == "CONFIG":
                try:
                    return (self.path / parts[1]).read_text(encoding="utf-8").splitlines()
                except OSError:
                    return []
        return []

    def remove(self) -> str:
        """``condor_rm`` the DAGMan job: DAGMan removes the node jobs and writes
        a rescue DAG (``submit()`` resumes from it). Returns condor_rm's output."""
        cluster = self.cluster
        if cluster is None:
            raise CondorDagError(
                f"{self.path} has no DAGMan job to remove: it was never submitted with "
                f"dask-condordag ({condor.CLUSTER_FILE} is missing)")
        return self._backend().remove(cluster)

    def wait(self, timeout: float | None = None, *, hold_timeout: float | None = None,
             poll: float | None = None, progress: bool | None = None, stream=None,
             callbacks=None) -> dict:
        """Wait until the submitted DAG has finished; returns ``status()``.

        Prints progress lines (done, idle, running, held, failed of total)
        when they change. Raises the first failed task's exception (with where
        the rescue DAG and DAGMan's log are) if the DAG failed,
        :class:`~dask_condordag.condor.JobHeldError` when a job has been on
        hold for ``hold_timeout`` seconds (0: at once), and
        :class:`~dask_condordag.condor.WaitTimeout` after ``timeout`` seconds.
        The DAG keeps running in the last two cases, and on Ctrl-C.
        ``hold_timeout`` and ``poll`` (seconds between looks) default to the
        ``hold_timeout`` and ``poll_interval`` options.

        ``callbacks``: dask callbacks (``dask.diagnostics.ProgressBar``, any
        ``dask.callbacks.Callback``), driven per task from DAGMan's jobstate
        log and node status file at each look (:mod:`dask_condordag.follow`);
        None: those active in a ``with`` block, as ``dask.compute`` does.
        ``finish`` runs however the wait ends (``errored=True`` unless the DAG
        succeeded).
        """
        from dask.callbacks import local_callbacks

        from .config import options
        from .follow import Follower

        if hold_timeout is None or poll is None:
            opts = options({})
            hold_timeout = opts.hold_timeout if hold_timeout is None else hold_timeout
            poll = opts.poll_interval if poll is None else poll
        with local_callbacks(callbacks) as cbs:
            follower = Follower.for_workflow(self, cbs)
            follower.start()
            ok = False
            try:
                out = self._wait(follower, timeout, hold_timeout, poll, progress,
                                 stream or sys.stderr)
                ok = True
                return out
            finally:
                follower.finish(errored=not ok)

    def _wait(self, follower, timeout, hold_timeout, poll, progress, stream) -> dict:
        start = time.monotonic()
        last_line, last_print = None, 0.0
        try:
            while True:
                state, q = self.dag_state(), self._query()
                if state is None and q is None and self.cluster is None:
                    raise CondorDagError(
                        f"the workflow at {self.path} has not been submitted (no "
                        f"{condor.CLUSTER_FILE}, no node status file): submit it first "
                        f"(dask-condordag submit {self.path})")
                follower.update(state)
                line = self._progress_line(state, q, follower.done)
                now = time.monotonic()
                if progress is not False and (line != last_line or now - last_print > 300):
                    print(f"[dask-condordag] {self.name}: {line}", file=stream, flush=True)
                    last_line, last_print = line, now
                self._check_holds(q, hold_timeout)
                finished = (q.dagman is None) if q is not None else (
                    state is not None and state.finished)
                if finished:
                    break
                if timeout is not None and now - start >= timeout:
                    raise condor.WaitTimeout(
                        f"the DAG of {self.path} is still running after {timeout:g} s "
                        f"({line}); it keeps running: wait again, or remove it with "
                        f"dask-condordag remove {self.path}")
                time.sleep(poll)
        except KeyboardInterrupt:
            cluster = self.cluster
            job = f" as DAGMan job {cluster}" if cluster is not None else ""
            print(f"\n[dask-condordag] stopped waiting; the DAG is still running{job}.\n"
                  f"  reattach:  dask_condordag.Workflow.open({str(self.path)!r}).wait()"
                  f"   (or: dask-condordag wait {self.path})\n"
                  f"  remove it: dask-condordag remove {self.path}", file=stream, flush=True)
            raise
        state = self.dag_state()
        follower.update(state)
        ok = state.ok if state is not None and state.finished else (
            self._result_counts()["done"] == len(self.nodes))
        if not ok:
            raise self._failure(state)
        return self.status()

    def _progress_line(self, state, q, done_seen: int = 0) -> str:
        """``done_seen``: nodes the jobstate log already says are done (the
        node status file is rewritten only every ``node_status_interval``)."""
        if state is None:
            s = self._result_counts()
            done, failed, total = s["done"], s["failed"], s["total"]
        else:
            done, failed, total = state.done, state.failed, state.total
        done = max(done, min(done_seen, total))
        if q is not None:
            idle, running = q.count(condor.JOB_IDLE), q.count(condor.JOB_RUNNING)
            held = sum(1 for j in q.jobs if j.held)
        elif state is not None:
            held = state.procs_held
            idle, running = max(0, state.procs_idle - held), state.running_nodes()
        else:
            idle = running = held = 0
        line = (f"{done} done, {idle} idle, {running} running, {held} held, {failed} failed "
                f"of {total} nodes")
        if state is None and q is not None and q.dagman is not None:
            line += " (DAGMan is starting)"
        return line

    def _check_holds(self, q, hold_timeout: float) -> None:
        if q is None:
            return
        for job in q.held:
            since = job.since if job.since is not None else time.time()
            held_for = max(0.0, time.time() - since)
            if held_for < hold_timeout:
                continue
            node = f"node {job.node}" if job.node else "the DAGMan job itself"
            raise condor.JobHeldError(
                f"job {job.id} ({node}) of the DAG at {self.path} has been on hold for "
                f"{held_for:.0f} s: {job.hold_reason or '(no HoldReason)'}\n"
                f"A held job does not run again by itself. Fix the cause, then release it "
                f"(condor_release {job.id}) and the DAG goes on; or remove the DAG "
                f"(dask-condordag remove {self.path}) and resubmit later "
                f"(dask-condordag submit {self.path}) -- the rescue DAG keeps what is done. "
                "The DAG is still in the queue.",
                node=job.node or "", job=job.id, reason=job.hold_reason)

    def _failure(self, state) -> Exception:
        """The exception for a failed DAG: the first failed task's own, else
        a DagFailedError naming DAGMan's reasons."""
        rescue = self.rescue_dags()
        where = [f"Rescue DAG: {rescue[-1]}" if rescue else "No rescue DAG was written.",
                 f"DAGMan's log: {self.dagman_out}",
                 f"Fix the cause and resubmit (dask-condordag submit {self.path}): the "
                 "rescue DAG reruns only what did not finish."]
        reports = self._task_errors()
        if reports:
            first = reports[0]
            exc = remote_exception(first, key=first.get("key"), logs=first["logs"])
            _add_context(exc, "\n".join(where))
            return exc
        failed = state.failed_nodes() if state is not None else {}
        ad = self._dagman_history()
        if condor.was_removed(ad):
            why = ad.get("RemoveReason") or "condor_rm"
            lines = [f"the DAG at {self.dag_path} was removed ({why}); DAGMan stopped "
                     "these nodes"]
        else:
            lines = [f"the DAG at {self.dag_path} failed"]
        lines += [f"  node {n}: {why or 'failed'}" for n, why in failed.items()]
        if not failed:
            lines.append("  (DAGMan left the queue without finishing the DAG; it was "
                         "removed, or it failed: see its log)")
            tail = condor.dagman_out_tail(self.dagman_out, 3)
            lines += [f"  | {x}" for x in tail]
        return condor.DagFailedError("\n".join(lines + where), nodes=failed,
                                     rescue=rescue[-1] if rescue else None)

    # -- state ---------------------------------------------------------------
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


def _add_context(exc: BaseException, text: str) -> None:
    """Append ``text`` to what is shown with a re-raised remote exception."""
    if isinstance(exc, RemoteError):
        exc.args = (exc.args[0] + "\n" + text,) + tuple(exc.args[1:])
    else:
        add_note(exc, text)
