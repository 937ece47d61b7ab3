"""The pool side of a :class:`~dask_condordag.Workflow`: submit its DAG with
``condor_submit_dag``, follow it until DAGMan is done, remove it.

Data
    In: the workflow directory (its DAG file, the DAG's CONFIG file, the
    rescue DAGs DAGMan wrote), the node status file and jobstate log DAGMan
    writes, the queue (``condor_q``) and, once DAGMan has left it, the
    history (``condor_history``). Out: ``dagman.cluster`` (the DAGMan job's
    cluster id, ``condor.CLUSTER_FILE``); progress notices; the first failed
    task's own exception, or the errors of :mod:`dask_condordag.condor`.

Policy
    * Submitting is refused while the workflow's DAGMan job is in the queue;
      with every node done there is nothing to submit; a failed or removed
      DAG is resubmitted from DAGMan's newest rescue DAG (DAGMan's
      ``-autorescue``; manual: "The Rescue DAG"). Before anything is queued,
      ``doctor`` loads one node's payload as the execute node would
      (``preflight``).
    * Waiting looks every ``poll`` seconds at the node status file, the
      queue and the jobstate log (dask's callbacks through
      :mod:`dask_condordag.follow`). Between two looks it reads what DAGMan
      appended to the jobstate log every :data:`FINISH_PEEK` seconds (a file
      read, no HTCondor command): once DAGMan has written
      ``DAGMAN_FINISHED`` it looks after :data:`FINISH_PEEK` seconds, and
      again after twice as long each time (up to ``poll``) until the DAGMan
      job has left the queue, so
      the end of the DAG is seen within a fraction of a second whatever
      ``poll`` is. A job held for ``hold_timeout`` seconds, a ``timeout`` and
      Ctrl-C end the wait, never the DAG.
    * Every HTCondor command goes through :mod:`dask_condordag.condor`
      (``Workflow.backend``, or the tools on PATH). Notices and warnings:
      :mod:`dask_condordag.messages`.

Example::

    >>> wf = Workflow.open("mytest")          # doctest: +SKIP
    >>> wf.submit()                           # doctest: +SKIP
    [dask-condordag] mytest: submitted mytest.dag as DAGMan job 4242
    >>> wf.wait()["dagman"]                   # doctest: +SKIP
    'done'
"""

from __future__ import annotations

import logging
import time

from dask.callbacks import local_callbacks

from . import condor
from .config import options
from .doctor import doctor
from .exceptions import CondorDagError, PreflightError, RemoteError
from .follow import Follower
from .messages import notice
from .results import add_note, remote_exception

__all__ = ["OnThePool", "job_counts", "progress_line", "check_holds", "dag_config_lines"]

logger = logging.getLogger(__name__)

_OPTION = object()  # "not given": take the option's value

#: Seconds between reads of the jobstate log while waiting (looking for
#: ``DAGMAN_FINISHED``), and between looks at the queue once it is there.
FINISH_PEEK = 0.2


class OnThePool:
    """:class:`~dask_condordag.Workflow`'s methods that drive DAGMan on a
    pool. A base class of ``Workflow``, whose paths (``path``, ``dag_path``,
    ``status_path``, ``dagman_out``), ``cluster``, ``dag_state()``,
    ``rescue_dags()``, ``status()``, ``_query()``, ``_dagman_history()``,
    ``_backend()``, ``_result_counts()`` and ``_task_errors()``
    (:class:`~dask_condordag.workflow_results.WorkflowResults`) it uses."""

    def submit(self, *, force: bool = False, batch_name: str | None = None, stream=None,
               progress: bool | None = None, preflight: bool = True,
               dagman_scan_interval=_OPTION):
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

        What it did ("submitted ... as DAGMan job N", "nothing to submit") is
        logged and written to ``stream`` (stderr) unless ``progress=False``;
        a workflow under ``/tmp`` is warned about on this module's logger
        (:mod:`dask_condordag.messages`).
        """
        q = self._query()
        if q is not None and q.dagman is not None:
            raise CondorDagError(
                f"the workflow at {self.path} is already in the queue as DAGMan job "
                f"{q.dagman.id}: wait for it (dask-condordag wait {self.path}) or remove it "
                f"(dask-condordag remove {self.path}) before submitting again")
        s = self._result_counts()
        if not force and s["done"] == s["total"]:
            notice(logger, f"{self.name}: all {s['total']} nodes are already done; "
                   "nothing to submit", progress=progress, stream=stream)
            return None
        if preflight:
            rep = doctor(self.path, run_task=False)
            if not rep.ok:
                raise PreflightError(
                    rep.summary() + "\n(submit(preflight=False) or `dask-condordag submit "
                    "--no-preflight` submits anyway)", report=rep)
        if str(self.path.resolve()).startswith("/tmp/") and not any(
                "DAGMAN_AVOID_SLASH_TMP" in line for line in dag_config_lines(self.dag_path)):
            logger.warning(
                "%s is under /tmp; DAGMan refuses node logs under /tmp by default "
                "(DAGMAN_AVOID_SLASH_TMP). Write the workflow elsewhere, or pass "
                "dag_config={'DAGMAN_AVOID_SLASH_TMP': False}", self.path)
        rescue = self.rescue_dags()
        update = (self.path / (self.dag_path.name + ".condor.sub")).exists() and not rescue
        status = self.status_path
        if status is not None and status.exists():
            status.unlink()  # a snapshot of the last run; DAGMan writes a new one
        if dagman_scan_interval is _OPTION:
            dagman_scan_interval = options({}).dagman_scan_interval
        cluster, _ = self._backend().submit_dag(
            self.path, self.dag_path.name, batch_name=batch_name or self.name, force=force,
            update_submit=update, env=condor.dagman_environment(dagman_scan_interval))
        condor.write_cluster(self.path, cluster)
        how = f", resuming from {rescue[-1].name}" if rescue and not force else ""
        notice(logger, f"{self.name}: submitted {self.dag_path.name} as DAGMan job "
               f"{cluster}{how}", progress=progress, stream=stream)
        return cluster

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
        when they change, to ``stream`` (stderr) unless ``progress=False``,
        and logs them (:mod:`dask_condordag.messages`). Raises the first failed task's exception (with where
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
        if hold_timeout is None or poll is None:
            opts = options({})
            hold_timeout = opts.hold_timeout if hold_timeout is None else hold_timeout
            poll = opts.poll_interval if poll is None else poll
        with local_callbacks(callbacks) as cbs:
            follower = Follower.for_workflow(self, cbs)
            follower.start()
            ok = False
            try:
                out = self._wait(follower, timeout, hold_timeout, poll, progress, stream)
                ok = True
                return out
            finally:
                follower.finish(errored=not ok)

    def _wait(self, follower, timeout, hold_timeout, poll, progress, stream) -> dict:
        start = time.monotonic()
        last_line, last_print = None, 0.0
        seen_end = 0  # looks since the jobstate log said DAGMAN_FINISHED
        try:
            while True:
                state, q = self.dag_state(), self._query()
                if state is None and q is None and self.cluster is None:
                    raise CondorDagError(
                        f"the workflow at {self.path} has not been submitted (no "
                        f"{condor.CLUSTER_FILE}, no node status file): submit it first "
                        f"(dask-condordag submit {self.path})")
                follower.update(state)
                line = progress_line(state, q, follower.done,
                                     self._result_counts() if state is None else None)
                now = time.monotonic()
                if line != last_line or now - last_print > 300:
                    notice(logger, f"{self.name}: {line}", progress=progress, stream=stream)
                    last_line, last_print = line, now
                check_holds(q, hold_timeout, self.path)
                finished = (q.dagman is None) if q is not None else (
                    state is not None and state.finished)
                if finished:
                    break
                if timeout is not None and now - start >= timeout:
                    raise condor.WaitTimeout(
                        f"the DAG of {self.path} is still running after {timeout:g} s "
                        f"({line}); it keeps running: wait again, or remove it with "
                        f"dask-condordag remove {self.path}")
                seen_end = _pause(follower, poll, seen_end)
        except KeyboardInterrupt:
            cluster = self.cluster
            job = f" as DAGMan job {cluster}" if cluster is not None else ""
            logger.warning(
                "stopped waiting; the DAG is still running%s.\n"
                "  reattach:  dask_condordag.Workflow.open(%r).wait()"
                "   (or: dask-condordag wait %s)\n"
                "  remove it: dask-condordag remove %s", job, str(self.path), self.path, self.path)
            raise
        state = self.dag_state()
        follower.update(state)
        ok = state.ok if state is not None and state.finished else (
            self._result_counts()["done"] == len(self.nodes))
        if not ok:
            raise self._failure(state)
        return self.status()

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



def dag_config_lines(dag_path) -> list:
    """The lines of the CONFIG file the DAG at ``dag_path`` names (empty when
    it names none, or it cannot be read)."""
    for line in dag_path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].upper() == "CONFIG":
            try:
                return (dag_path.parent / parts[1]).read_text(encoding="utf-8").splitlines()
            except OSError:
                return []
    return []


def job_counts(state, q) -> dict | None:
    """``idle``, ``running`` and ``held`` job procs: from the queue ``q``
    (a ``condor.Queue``) where it could be read, else from the node status
    file's ``state`` (a ``statusfile.DagState``); None without either."""
    if q is not None:
        return {"idle": q.count(condor.JOB_IDLE), "running": q.count(condor.JOB_RUNNING),
                "held": sum(1 for j in q.jobs if j.held)}
    if state is not None:
        return {"idle": max(0, state.procs_idle - state.procs_held),
                "running": state.running_nodes(), "held": state.procs_held}
    return None


def progress_line(state, q, done_seen: int = 0, counts: dict | None = None) -> str:
    """The line ``wait`` shows: nodes done, jobs idle, running, held, nodes
    failed of the total. ``done_seen``: nodes the jobstate log already says
    are done (the node status file is rewritten only every
    ``node_status_interval``); ``counts``: the result files' counts
    (``Workflow._result_counts``), used before the node status file exists."""
    if state is None:
        done, failed, total = counts["done"], counts["failed"], counts["total"]
    else:
        done, failed, total = state.done, state.failed, state.total
    done = max(done, min(done_seen, total))
    jobs = job_counts(state, q) or {"idle": 0, "running": 0, "held": 0}
    line = (f"{done} done, {jobs['idle']} idle, {jobs['running']} running, {jobs['held']} "
            f"held, {failed} failed of {total} nodes")
    if state is None and q is not None and q.dagman is not None:
        line += " (DAGMan is starting)"
    return line


def check_holds(q, hold_timeout: float, path) -> None:
    """Raise :class:`~dask_condordag.condor.JobHeldError` for the first job
    of the queue ``q`` (None: not known) held for ``hold_timeout`` seconds
    or more; ``path``: the workflow directory, for the message."""
    if q is None:
        return
    for job in q.held:
        since = job.since if job.since is not None else time.time()
        held_for = max(0.0, time.time() - since)
        if held_for < hold_timeout:
            continue
        node = f"node {job.node}" if job.node else "the DAGMan job itself"
        raise condor.JobHeldError(
            f"job {job.id} ({node}) of the DAG at {path} has been on hold for "
            f"{held_for:.0f} s: {job.hold_reason or '(no HoldReason)'}\n"
            f"A held job does not run again by itself. Fix the cause, then release it "
            f"(condor_release {job.id}) and the DAG goes on; or remove the DAG "
            f"(dask-condordag remove {path}) and resubmit later "
            f"(dask-condordag submit {path}) -- the rescue DAG keeps what is done. "
            "The DAG is still in the queue.",
            node=job.node or "", job=job.id, reason=job.hold_reason)


def _pause(follower, poll: float, seen_end: int) -> int:
    """Sleep until the next look: ``poll`` seconds, cut short once DAGMan's
    jobstate log says it has finished. Then the looks come after
    :data:`FINISH_PEEK` seconds, doubling (``seen_end``: looks since) up to
    ``poll``, so a DAGMan job slow to leave the queue is not asked about
    five times a second. Returns the new ``seen_end``."""
    step = min(poll, FINISH_PEEK)
    end = time.monotonic() + poll
    while True:
        if follower.dagman_finished():
            time.sleep(min(poll, FINISH_PEEK * 2 ** min(seen_end, 16)))
            return seen_end + 1
        left = end - time.monotonic()
        if left <= 0:
            return seen_end
        time.sleep(min(step, left))


def _add_context(exc: BaseException, text: str) -> None:
    """Append ``text`` to what is shown with a re-raised remote exception."""
    if isinstance(exc, RemoteError):
        exc.args = (exc.args[0] + "\n" + text,) + tuple(exc.args[1:])
    else:
        add_note(exc, text)
