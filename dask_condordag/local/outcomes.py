"""DAGMan's rules for the end of a part of a node -- a job proc, the PRE or
the POST script, a submission condor_submit refused -- and the ABORT-DAG-ON
check that follows them, as methods of the state machine (``dagman.Dagman``
inherits them; they call its node steps ``_restart_node``, ``_node_failed``,
``_terminate_node``, ``_set_futile``).

Policy (src/condor_dagman/dag.cpp: ProcessTerminatedEvent, ProcessAbortEvent,
ProcessJobProcEnd, PreScriptReaper, ProcessPostTermEvent, ProcessFailedSubmit,
CheckForDagAbort)
    * A proc that fails (exit code not 0, or a signal: -signal; ``None``: the
      job was removed or its files failed, DAG_ERROR_CONDOR_JOB_ABORTED) fails
      the node: its code is the node's return value and the cluster's other
      procs are removed. The node's job ends when all its procs have left the
      queue; then the POST script runs, if any, whatever the job did.
    * A failed PRE script fails the node without a job and without the POST
      script (DAGMAN_ALWAYS_RUN_POST is false by default). With a POST script,
      its exit code decides.
    * After a failure the node is retried while ``RETRY`` allows, else it
      fails; ABORT-DAG-ON is checked after the PRE script, after the job when
      there is no POST script, and after the POST script (``_check_abort``).
    * A refused submit fails the node at once, without its retries
      (``_submit_failed``).
"""

from __future__ import annotations

from .state import (DAG_ERROR_CONDOR_JOB_ABORTED, DAG_ERROR_CONDOR_SUBMIT_FAILED,
                    DAG_STATUS_ABORT, DAG_STATUS_OK, STATUS_ERROR, STATUS_POSTRUN, STATUS_READY,
                    Abort, Node, Remove, RunScript, script_argv)

__all__ = ["Outcomes"]


class Outcomes:
    """The end-of-part rules of ``dagman.Dagman`` (a mixin: see the module docstring)."""

    def _proc_exited(self, name, cluster, p, code, reason) -> None:
        n = self.nodes[name]
        if n.cluster != cluster:
            return  # a proc of an earlier attempt
        self.schedd.left(n, p)
        n.queued -= 1
        self.version += 1
        cid = f"{cluster}.{p}"
        if code is None:
            # Dag::ProcessAbortEvent (a removed job; here also a job whose
            # files failed, which a pool would hold)
            self._log(n, "JOB_ABORTED", cid)
            n.aborted_procs += 1
            if n.status != STATUS_ERROR:
                self._set_status(n, STATUS_ERROR)
                n.error = reason or f"job proc ({cid}.0) aborted"
                n.retval = n.job_ret = DAG_ERROR_CONDOR_JOB_ABORTED
                self._remove_cluster(n)
            if not n.spec.post and not n.do_retry():
                self._set_futile(n)
            self._proc_end(n, True)
            return
        self._log(n, "JOB_TERMINATED", cid)
        n.exit_codes[code] = n.exit_codes.get(code, 0) + 1
        failed = code != 0
        if failed:  # Dag::ProcessTerminatedEvent
            if n.status != STATUS_ERROR:
                n.error = (f"Job proc ({cid}.0) failed with signal {-code}" if code < 0
                           else f"Job proc ({cid}.0) failed with status {code}")
                n.retval = n.job_ret = code
                self._set_status(n, STATUS_ERROR)
                self._remove_cluster(n)
            if not n.spec.post and not n.do_retry():
                self._set_futile(n)
        elif n.status != STATUS_ERROR:
            n.retval = n.job_ret = 0
        self._proc_end(n, failed or n.status == STATUS_ERROR)
        if not n.spec.post:
            self._check_abort(n)

    def _submit_failed(self, n: Node, reason: str) -> None:  # Dag::ProcessFailedSubmit
        """DAGMan's handling of a refused submit (observed on HTCondor 25.14):
        SUBMIT_FAILURE in the jobstate log, the node fails without its
        retries, the others go on."""
        self._log(n, "SUBMIT_FAILURE")
        n.error = f"Job submit failed: {reason}"
        n.retval = n.job_ret = DAG_ERROR_CONDOR_SUBMIT_FAILED
        self._node_failed(n)

    def _remove_cluster(self, n: Node) -> None:
        """condor_rm of the node's cluster: idle procs leave the queue, running
        ones are killed (their events come back as removed)."""
        if n.idle:
            n.queued -= len(n.idle)
            n.aborted_procs += len(n.idle)
            n.idle.clear()
        if n.running:
            self._out.append(Remove(n.name, n.cluster))

    def _proc_end(self, n: Node, failed: bool) -> None:  # Dag::ProcessJobProcEnd
        all_done = n.queued == 0
        if all_done:
            if n.spec.category is not None:
                self.cat_current[n.spec.category] -= 1
            self._log(n, "JOB_SUCCESS" if n.retval == 0 else "JOB_FAILURE", str(n.retval))
        if failed and not n.spec.post:
            if not all_done:
                return
            if n.do_retry():
                self._restart_node(n)
            else:
                if n.spec.retry > 0:
                    n.error += f" (after {n.retries} node retries)"
                self._node_failed(n, futile=False)  # futile already set
            return
        if all_done:
            if n.spec.post:
                self._run_script(n, "POST")
            elif n.status != STATUS_ERROR:
                self._terminate_node(n)

    # ---------------------------------------------------------------- scripts
    def _run_script(self, n: Node, kind: str) -> None:
        if kind == "POST":
            self._set_status(n, STATUS_POSTRUN)
            self._log(n, "POST_SCRIPT_STARTED", f"{n.cluster}.0")
        else:
            self._log(n, "PRE_SCRIPT_STARTED")
        self._out.append(RunScript(n.name, kind, script_argv(self, n, kind),
                                   (n.retries, n.cluster)))

    def _pre_exited(self, n: Node, code: int) -> None:  # Dag::PreScriptReaper
        if code != 0:
            n.error = (f"PRE Script died on signal {-code}" if code < 0
                       else f"PRE Script failed with status {code}")
            n.retval = code
            self._log(n, "PRE_SCRIPT_FAILURE")
            # DAGMAN_ALWAYS_RUN_POST defaults to false: no POST script.
            if n.do_retry():
                self._set_status(n, STATUS_ERROR)
                self._restart_node(n)
            else:
                if n.spec.retry > 0:
                    n.error += f" (after {n.retries} node retries)"
                self._node_failed(n)
        else:
            n.pre_ret = n.retval = 0
            n.pre_done = True
            self._log(n, "PRE_SCRIPT_SUCCESS")
            self._set_status(n, STATUS_READY)
            self._ready(n, first=False)
        self._check_abort(n)

    def _post_exited(self, n: Node, code: int) -> None:  # Dag::ProcessPostTermEvent
        cid = f"{n.cluster}.0"
        self._log(n, "POST_SCRIPT_TERMINATED", cid)
        if code != 0:
            main = n.retval
            n.retval = code
            self._log(n, "POST_SCRIPT_FAILURE", cid)
            if n.do_retry():
                self._set_status(n, STATUS_ERROR)
                self._restart_node(n)
            else:
                if main > 0:
                    n.error = f"Job exited with status {main} and "
                elif 0 > main >= -64:
                    n.error = f"Job died on signal {-main} and "
                else:
                    n.error = f"Job failed due to DAGMAN error {main} and "
                n.error += (f"POST Script died on signal {-code}" if code < 0
                            else f"POST Script failed with status {code}")
                if n.spec.retry > 0:
                    n.error += f" (after {n.retries} node retries)"
                self._node_failed(n)
        else:
            n.retval = 0
            self._log(n, "POST_SCRIPT_SUCCESS", cid)
            self._terminate_node(n)
        self._check_abort(n)

    def _check_abort(self, n: Node) -> None:  # Dag::CheckForDagAbort
        if self.aborted or not n.do_abort():
            return
        ret = n.spec.abort_dag_on[1]
        self.finished_at_abort = not self.active()
        self.aborted = True
        if ret is not None:
            self.exit_code = ret
            self.dag_status = DAG_STATUS_ABORT if ret != 0 else DAG_STATUS_OK
        else:
            self.exit_code = n.retval
            self.dag_status = DAG_STATUS_ABORT
        # main_shutdown_rescue: remove every node job, kill running scripts
        self.schedd.idle.clear()
        for x in self.nodes.values():
            x.idle.clear()
        self._out.append(Abort(n.name, n.retval, self.exit_code))
