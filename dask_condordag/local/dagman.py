"""DAGMan's rules as a pure state machine: events in, actions out.

Data
    :class:`Dagman` holds one ``state.Node`` per DAG node (src/condor_dagman/
    node.h, trimmed), the ready queue and a model of the schedd's queue
    (``state.Schedd``); the rules for the end of a job proc, a script or a
    refused submit, and the ABORT-DAG-ON check, are in ``outcomes.py``. A
    node's parents not done are counted down (``waiting``, DAGMan's waiting
    edges: src/condor_dagman/node.h ParentComplete, NotifyChildren), so a run
    costs time in proportion to the DAG's nodes and edges, whatever its
    shape. Drivers feed it events and carry out the actions it returns; it
    starts no process, reads no file and never looks at a clock::

        m = Dagman(dagfile.parse_dag(text), slots=2)
        m.start()        # Dag::Bootstrap          -> [Started, RunScript, ...]
        m.tick(now)      # one pass of the loop    -> [Log("a", "SUBMIT", "1.0"), Execute("a", 1, 0, ...)]
        m.proc_exited("a", 1, 0, 0)                # -> [Log(... "JOB_TERMINATED" ...), Done("a", ("b",)), ...]
        m.script_exited("b", "PRE", token, 1)      # -> [Log(... "PRE_SCRIPT_FAILURE"), ...]
        m.finish()       # the exit code; [WriteRescue(done, failed)] when not all done

    The local runner (``runner.py``) drives it with real processes,
    ``simulate.py`` with a simulated clock. Actions (``state.py``): ``Log`` (a jobstate
    log line), :class:`Execute` (the schedd starts a proc on a free slot),
    :class:`Remove` (condor_rm the running procs of a cluster),
    :class:`RunScript`, :class:`Started` / :class:`Done` (a node's tasks start /
    finish: dask callbacks, the recovery journal), :class:`Abort`,
    :class:`WriteRescue`.

Policy (DAGMan 25.x's; "src/" is HTCondor's source tree, "manual" its
docs/automated-workflows/ pages)
    * A node runs once all its parents are done; ``JOB ... DONE`` nodes (and
      the ``DONE`` lines of a rescue DAG, applied by the caller) are skipped.
      ``NOOP`` nodes run their scripts but no job: their one proc exits 0 at
      the next tick, without a slot.
    * The pool is one partitionable slot of ``slots`` cores: every job *proc*
      holds its ``request_cpus`` cores (at most ``slots``, so that it can run
      at all; default one). DAGMan submits each ready node as one cluster
      (``queue N`` = N procs, ``$(Cluster)`` a counter of this run); idle
      procs start in the schedd's order: job priority, then job id -- a proc
      whose cores are not free lets the next one that fits start, as the
      negotiator matches what fits.
    * Ready nodes are submitted highest ``PRIORITY`` first; ties in the order
      they became ready (src/condor_dagman/dag_priority_q.h: a max-heap on
      effective priority, then on a counter that makes appended nodes FIFO and
      re-queued (throttled) nodes go first -- Dag::SubmitReadyNodes prepends
      them one by one in the order it popped them, so the last goes first).
      The effective priority is the node's own ``PRIORITY`` plus the DAG's (0
      here): since 8.5.7 it no longer depends on the parents' (manual:
      dagman-priorities.rst). The job priority is that, or the submit
      description's ``priority`` when it is 0.
    * ``MAXJOBS cat N`` limits the *clusters* (nodes) of a category in the
      queue, not procs (manual: dagman-throttling.rst, "a maximum number of
      submitted clusters"; src Dag::UpdateNodeCounts): a node counts from its
      submission until all its procs have left the queue; PRE and POST script
      time does not count.
    * Macros of a node job (``state.job_macros``; src/condor_dagman/
      dagman_submit.cpp init_vars): ``$(JOB)``, ``$(RETRY)``, ``$(DAG_STATUS)``,
      ``$(FAILED_COUNT)``, ``$(DAG_PARENT_NAMES)``, ``priority`` (the node's
      effective priority when not 0), then the node's VARS (which win).
    * A proc that fails (exit code not 0, or a signal: -signal; ``None``: the
      job was removed or its files failed, DAG_ERROR_CONDOR_JOB_ABORTED) fails
      the node: its code is the node's return value and the cluster's other
      procs are removed -- DAGMan does this unconditionally (src Dag::
      ProcessTerminatedEvent, RemoveBatchJob; manual: dagman-scripts.rst
      $RETURN).
    * ``SCRIPT PRE|POST`` arguments get the macros of src/condor_dagman/
      script.cpp (see :func:`script_argv`). A failed PRE script fails the node
      without a job and without the POST script (DAGMAN_ALWAYS_RUN_POST is
      false by default). With a POST script, its exit code decides (manual:
      node-pass-or-fail.rst, "the exit value of whatever component of the node
      was run last").
    * ``RETRY n`` reruns the whole node (PRE, job, POST) after a PRE, job or
      POST failure, up to n times; ``UNLESS-EXIT c`` stops retrying when the
      node's return value (of the part that failed) is c (src Dag::
      RestartNode). ``$(RETRY)`` / ``$RETRY`` is 0 on the first try.
    * ``ABORT-DAG-ON node v [RETURN r]`` is checked against the PRE script's
      exit, the job's (only when the node has no POST script) and the POST
      script's: on a match the DAG stops at once -- every job and script is
      removed, a rescue DAG is written -- even if retries remain (src Dag::
      CheckForDagAbort). The exit code is r, or the node's return value
      without RETURN; ``RETURN 0`` leaves DAG_STATUS at 0 (OK).
    * When a node fails for good the rest of the DAG goes on "until no more
      forward progress can be made" (the DAGMan manual's words): every node
      that does not depend on a failed one still runs (``fail_fast=True``
      starts nothing new instead). Then the rescue DAG lists the done nodes.
    * A submit description condor_submit refuses for a node (a malformed
      ``environment`` or ``arguments``, a macro it cannot expand: ``describe``
      raises :class:`SubmitRefused`) fails that node at once, without RETRY,
      and the rest goes on: seen on HTCondor 25.14, DAGMan logs "Node submit
      failed after 1 try", "Shortcutting node retries because of submit
      failure(s)", the jobstate log ``SUBMIT_FAILURE`` and the node status file
      ``StatusDetails = "Job submit failed"``.
"""

from __future__ import annotations

import heapq
from typing import Callable

from .outcomes import Outcomes
from .state import (DAG_STATUS_NODE_FAILED, DAG_STATUS_OK, STATUS_DONE, STATUS_ERROR,
                    STATUS_FUTILE, STATUS_NOT_READY, STATUS_POSTRUN, STATUS_PRERUN,
                    STATUS_READY, STATUS_SUBMITTED, Done, Execute, Log, Node, Schedd, Started,
                    SubmitRefused, WriteRescue, descendants, job_macros)

__all__ = ["Dagman"]


_BUSY = (STATUS_PRERUN, STATUS_SUBMITTED, STATUS_POSTRUN)


def _one_proc(name: str, macros: dict) -> tuple:
    return 1, 0, 1


class Dagman(Outcomes):
    """DAGMan running ``dag`` (a ``dagfile.DagFile``) on a pool of ``slots``.

    ``describe(node, macros) -> (procs, priority[, cpus])``: the queue count,
    the ``priority`` command and the ``request_cpus`` of the node's submit
    description under ``macros`` (default: one proc, priority 0, one core);
    called once per submission. It raises
    :class:`SubmitRefused` for a description condor_submit would refuse (the
    node fails, as DAGMan fails it), anything else to stop the run (an
    unreadable submit description)."""

    def __init__(self, dag, *, slots: int, describe: Callable = _one_proc,
                 fail_fast: bool = False):
        self.dag = dag
        self.describe = describe
        self.fail_fast = fail_fast
        self.nodes = {n: Node(s) for n, s in dag.nodes.items()}
        self.skipped = {n for n, x in self.nodes.items() if x.predone}
        self.done = set(self.skipped)
        # node -> its parents not done yet (Node::ParentComplete counts them down)
        self.waiting = {n: sum(p not in self.done for p in dag.parents.get(n, ()))
                        for n in self.nodes}
        self.failed: dict = {}  # node -> reason, failed for good
        self.retries: dict = {}  # node -> retries used
        self.schedd = Schedd(slots)
        self.readyq: list = []  # heap of (-priority, +-generation, node)
        self.generation = self.next_cluster = self.jobstate_seq = 0
        self.cat_current: dict = {}
        self.dag_status = DAG_STATUS_OK
        self.failed_count = self.futile_count = self.submitted_count = 0
        self._busy: set = set()  # nodes that were PRERUN, SUBMITTED or POSTRUN (see active)
        self.stopping = self.aborted = self.finished_at_abort = False
        self.exit_code = 0
        self.now = 0.0  # of the last tick
        self.version = 0  # counts changes a node status file would show
        self._noops: list = []  # (node, cluster, proc) that exit at the next tick
        self._out: list = []

    # ---------------------------------------------------------------- events
    def start(self) -> list:
        """Dag::Bootstrap: start every node whose parents are done, in file order."""
        for n in self.nodes.values():
            if n.status == STATUS_NOT_READY and self.waiting[n.name] == 0:
                self._start_node(n)
        return self._take()

    def tick(self, now: float = 0.0) -> list:
        """One pass of DAGMan's loop at time ``now``: NOOP jobs submitted at
        the last pass terminate, ready nodes are submitted, the schedd starts
        idle procs on free slots. (``now`` is recorded as ``self.now``; the
        rules themselves do not depend on time.)"""
        self.now = now
        noops, self._noops = self._noops, []
        for name, cluster, p in noops:
            if not self.aborted:
                self._proc_exited(name, cluster, p, 0, "")
        if not self.aborted:
            self._submit_ready()
            self._dispatch()
        return self._take()

    def proc_exited(self, node: str, cluster: int, proc: int, code, reason: str = "") -> list:
        """Proc ``proc`` of cluster ``cluster`` of ``node`` left the queue:
        ``code`` its exit code (negative: the signal), ``None`` when it was
        removed or its files failed (``reason`` says why)."""
        self._proc_exited(node, cluster, proc, code, reason)
        return self._take()

    def script_exited(self, node: str, kind: str, token: tuple, code: int) -> list:
        """``node``'s ``kind`` script (started by RunScript with ``token``)
        exited with ``code``; a script of an earlier attempt is ignored."""
        n = self.nodes[node]
        if token == (n.retries, n.cluster):
            if kind == "PRE" and n.status == STATUS_PRERUN:
                self._pre_exited(n, code)
            elif kind == "POST" and n.status == STATUS_POSTRUN:
                self._post_exited(n, code)
        return self._take()

    def finish(self) -> list:
        """The run ends: settle the exit code; a rescue DAG when not all done."""
        if not self.aborted:
            self.exit_code = 0 if len(self.done) == len(self.nodes) else 1
        if self.failed or len(self.done) < len(self.nodes):
            failed = tuple(n for n, x in self.nodes.items() if x.status == STATUS_ERROR)
            return [WriteRescue(tuple(sorted(self.done)), failed)]
        return []

    def active(self) -> bool:
        """Whether anything runs or can still be submitted."""
        # Only a node that was PRERUN, SUBMITTED or POSTRUN can be busy (its
        # procs are queued from its submission on): each one found idle is
        # dropped, so the calls of a run cost O(nodes), not O(nodes x ticks).
        idle = []
        for name in self._busy:
            x = self.nodes[name]
            if x.status in _BUSY or x.queued > 0:
                break
            idle.append(name)
        else:
            name = None
        self._busy.difference_update(idle)
        return name is not None or (bool(self.readyq) and not self.stopping)

    # ---------------------------------------------------------------- helpers
    def _take(self) -> list:
        out, self._out = self._out, []
        return out

    def _set_status(self, n: Node, status: int) -> None:
        self.submitted_count += (status == STATUS_SUBMITTED) - (n.status == STATUS_SUBMITTED)
        n.status = status
        self.version += 1
        if status in _BUSY:
            self._busy.add(n.name)

    def _log(self, n: Node, event: str, cid: str = "-") -> None:
        if n.seq is None:  # Node::GetJobstateSequenceNum
            self.jobstate_seq += 1
            n.seq = self.jobstate_seq
        self._out.append(Log(n.name, event, cid, n.seq))

    def _start_keys(self, n: Node) -> None:
        if not n.started:
            n.started = True
            self._out.append(Started(n.name))

    # ---------------------------------------------------------------- DAGMan steps
    def _start_node(self, n: Node) -> None:  # Dag::StartNode
        if self.stopping or self.aborted:
            self._set_status(n, STATUS_READY)
            return
        if n.spec.pre and not n.pre_done:
            self._set_status(n, STATUS_PRERUN)
            self._start_keys(n)
            self._run_script(n, "PRE")
            return
        self._set_status(n, STATUS_READY)
        self._ready(n, first=False)

    def _ready(self, n: Node, first: bool) -> None:
        self.generation += 1
        heapq.heappush(self.readyq, (-n.spec.priority, -self.generation if first
                                     else self.generation, n.name))

    def _submit_ready(self) -> None:  # Dag::SubmitReadyNodes
        if self.stopping:
            return
        deferred = []
        while self.readyq:
            n = self.nodes[heapq.heappop(self.readyq)[2]]
            cat = n.spec.category
            limit = self.dag.maxjobs.get(cat) if cat is not None else None
            if limit and self.cat_current.get(cat, 0) >= limit:
                deferred.append(n)
            else:
                self._submit(n)
        for n in deferred:
            self._ready(n, first=True)

    def _submit(self, n: Node) -> None:
        macros = job_macros(self, n)
        try:
            nprocs, prio, *cpus = (1, 0, 1) if n.spec.noop else self.describe(n.name, macros)
        except SubmitRefused as e:
            self._submit_failed(n, str(e))
            return
        self.next_cluster += 1
        n.reset_job()
        n.cluster = self.next_cluster
        n.macros = macros
        n.nprocs = n.queued = nprocs
        n.cpus = max(1, min(int(cpus[0]) if cpus else 1, self.schedd.slots))
        self._set_status(n, STATUS_SUBMITTED)
        if n.spec.category is not None:
            self.cat_current[n.spec.category] = self.cat_current.get(n.spec.category, 0) + 1
        self._start_keys(n)
        for p in range(nprocs):
            self._log(n, "SUBMIT", f"{n.cluster}.{p}")
        if n.spec.noop:  # a fake submit that terminates at once
            self._noops += [(n.name, n.cluster, p) for p in range(nprocs)]
        else:
            self.schedd.queue(n, n.spec.priority or prio)

    def _dispatch(self) -> None:
        for n, p in self.schedd.start_idle(self.nodes, self.stopping):
            self._log(n, "EXECUTE", f"{n.cluster}.{p}")
            self._out.append(Execute(n.name, n.cluster, p, dict(n.macros), n.retries))

    def _node_failed(self, n: Node, futile: bool = True) -> None:
        self._set_status(n, STATUS_ERROR)
        if futile:
            self._set_futile(n)
        self.failed_count += 1
        if self.dag_status == DAG_STATUS_OK:
            self.dag_status = DAG_STATUS_NODE_FAILED
        self.failed[n.name] = n.error
        if self.fail_fast and not self.stopping:
            self._stop()

    def _stop(self) -> None:
        """fail_fast: start nothing new; clusters not yet running leave the queue."""
        self.stopping = True
        for n in self.nodes.values():
            if n.status == STATUS_SUBMITTED and not n.running and n.queued == len(n.idle):
                n.idle.clear()
                n.queued = 0
                if n.spec.category is not None:
                    self.cat_current[n.spec.category] -= 1
                n.reset_job()
                self._set_status(n, STATUS_READY)

    def _set_futile(self, n: Node) -> None:  # Node::SetDescendantsToFutile
        for c in descendants(self.dag, n.name):
            cn = self.nodes[c]
            if cn.status in (STATUS_NOT_READY, STATUS_READY):
                self._set_status(cn, STATUS_FUTILE)
                self.futile_count += 1

    def _restart_node(self, n: Node) -> None:  # Dag::RestartNode
        unless = n.spec.retry_unless_exit
        if unless is not None and n.retval == unless:
            # "Aborting further retries": the node fails now (DAGMan leaves
            # its descendants as they are).
            self._node_failed(n, futile=False)
            return
        n.retries += 1
        self.retries[n.name] = n.retries
        n.reset_job()
        n.pre_done = False
        n.error = ""
        n.seq = None
        self._set_status(n, STATUS_READY)
        self._start_node(n)

    def _terminate_node(self, n: Node) -> None:  # Dag::TerminateNode
        self._set_status(n, STATUS_DONE)
        self.done.add(n.name)
        ready = []
        for c in self.dag.children.get(n.name, ()):  # a DAG's edges are unique (dagfile)
            self.waiting[c] -= 1
            if self.waiting[c] == 0 and self.nodes[c].status == STATUS_NOT_READY:
                ready.append(c)
        ready = tuple(ready)
        self._out.append(Done(n.name, ready))
        for c in ready:
            self._start_node(self.nodes[c])

