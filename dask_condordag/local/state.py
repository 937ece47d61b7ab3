"""The vocabulary of the DAGMan state machine (``dagman.py``): status codes,
the actions it returns, its per-node bookkeeping and its model of the
schedd's queue.

Data
    Constants named as in HTCondor's source (src/condor_dagman/dag.cpp,
    node.cpp); actions as frozen dataclasses (a driver dispatches on their
    type); :class:`Node` (src/condor_dagman/node.h, trimmed); :class:`Schedd`.

Policy
    * Idle procs start by job priority, then job id (cluster, proc); each
      running proc holds one of the pool's slots.
    * A node job gets the macros of src/condor_dagman/dagman_submit.cpp
      init_vars (:func:`job_macros`), script arguments those of
      src/condor_dagman/script.cpp (:func:`script_argv`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ..statusfile import (  # noqa: F401 - the machine's status codes, defined with the file
    DAG_STATUS_ABORT, DAG_STATUS_ERROR, DAG_STATUS_NODE_FAILED, DAG_STATUS_OK, STATUS_DONE,
    STATUS_ERROR, STATUS_FUTILE, STATUS_NAMES, STATUS_NOT_READY, STATUS_POSTRUN,
    STATUS_PRERUN, STATUS_READY, STATUS_SUBMITTED,
)

__all__ = ["Node", "Schedd", "descendants", "job_macros", "script_argv", "Log", "Execute",
           "Remove", "RunScript", "Started", "Done", "Abort", "WriteRescue", "SubmitRefused"]

# src/condor_dagman/dag.cpp
DAG_ERROR_CONDOR_SUBMIT_FAILED = -1001
DAG_ERROR_CONDOR_JOB_ABORTED = -1002


class SubmitRefused(Exception):
    """Raised by a ``describe`` callable: condor_submit would refuse this
    node's submit description (the message says why). DAGMan then fails the
    node at once, without its retries (see ``Dagman._submit_failed``)."""


# --------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class Log:
    """A jobstate log line (src/condor_dagman/jobstate_log.cpp): ``node``,
    ``event``, the job id or return value ``cid``, the attempt's ``seq``."""

    node: str
    event: str
    cid: str = "-"
    seq: int = 0


@dataclass(frozen=True)
class Execute:
    """The schedd starts proc ``proc`` of ``node``'s cluster on a free slot,
    with the DAGMan macros and VARS ``macros``; its end is ``proc_exited``."""

    node: str
    cluster: int
    proc: int
    macros: dict
    retry: int


@dataclass(frozen=True)
class Remove:
    """condor_rm of ``node``'s cluster: kill its running procs; each comes back
    as ``proc_exited(..., code=None)``."""

    node: str
    cluster: int


@dataclass(frozen=True)
class RunScript:
    """Run ``node``'s ``kind`` ("PRE" or "POST") script ``argv``; its exit code
    comes back as ``script_exited(node, kind, token, code)``."""

    node: str
    kind: str
    argv: tuple
    token: tuple


@dataclass(frozen=True)
class Started:
    """The node's first part (PRE script or job) starts: its tasks run."""

    node: str


@dataclass(frozen=True)
class Done:
    """The node is done; ``ready``: its children whose parents are all done now."""

    node: str
    ready: tuple


@dataclass(frozen=True)
class Abort:
    """ABORT-DAG-ON matched ``node``'s ``retval``: remove every job, kill every
    script, stop; the DAG exits with ``exit_code``."""

    node: str
    retval: int
    exit_code: int


@dataclass(frozen=True)
class WriteRescue:
    """Write a rescue DAG marking ``done`` DONE (``failed``: its comment)."""

    done: tuple
    failed: tuple


# --------------------------------------------------------------------------- state
class Node:
    """DAGMan's per-node bookkeeping (src/condor_dagman/node.h), trimmed."""

    def __init__(self, spec):
        self.spec = spec  # dagfile.DagNode
        self.name = spec.name
        self.predone = spec.done
        self.status = STATUS_DONE if spec.done else STATUS_NOT_READY
        self.retries = 0
        self.retval = 0
        self.error = ""
        self.pre_done = False
        self.pre_ret = -1  # $PRE_SCRIPT_RETURN: -1 without a PRE script
        self.job_ret = -1  # $RETURN
        self.started = False  # Started was emitted
        self.seq = None  # jobstate log sequence number of this attempt
        self.reset_job()

    def reset_job(self) -> None:
        self.cluster = -1
        self.nprocs = 0
        self.cpus = 1  # cores each proc holds (request_cpus, at most the pool's)
        self.queued = 0
        self.idle: set = set()
        self.running: set = set()
        self.exit_codes: dict = {}
        self.aborted_procs = 0
        self.macros: dict = {}

    def do_abort(self) -> bool:  # Node::DoAbort
        a = self.spec.abort_dag_on
        return a is not None and self.retval == a[0]

    def do_retry(self) -> bool:  # Node::DoRetry
        return not self.do_abort() and self.retries < self.spec.retry


class Schedd:
    """The schedd's queue of idle procs and the pool's ``slots`` cores (one
    partitionable slot): idle procs start by job priority, then job id
    (cluster, proc); a proc holds its node's ``cpus`` cores, and one that
    does not fit in the cores free now lets the next that fits start (the
    negotiator matches what fits)."""

    def __init__(self, slots: int):
        self.slots = slots
        self.idle: list = []  # heap of (-job priority, cluster, proc, node)
        self.cores = 0  # cores held by running procs
        self.running = 0  # procs holding cores
        self.nodes_running: set = set()  # nodes with a proc holding a slot
        self.running_by_category: dict = {}  # category -> nodes in nodes_running
        self.max_running = self.max_running_procs = 0  # the most at once
        self.max_running_by_category: dict = {}

    def queue(self, n: Node, priority: int) -> None:
        for p in range(n.nprocs):
            n.idle.add(p)
            heapq.heappush(self.idle, (-priority, n.cluster, p, n.name))

    def start_idle(self, nodes: dict, stopping: bool):
        """Yield (node, proc) for each idle proc whose cores are free now."""
        skipped = []
        while self.idle and self.cores < self.slots:
            entry = heapq.heappop(self.idle)
            _, cluster, p, name = entry
            n = nodes[name]
            if n.cluster != cluster or p not in n.idle:
                continue  # removed meanwhile
            if (stopping and not n.running) or self.cores + n.cpus > self.slots:
                skipped.append(entry)
                continue
            n.idle.discard(p)
            if name not in self.nodes_running:
                self._node_starts(n)
            n.running.add(p)
            self.running += 1
            self.cores += n.cpus
            self.max_running_procs = max(self.max_running_procs, self.running)
            yield n, p
        for entry in skipped:
            heapq.heappush(self.idle, entry)

    def _node_starts(self, n: Node) -> None:
        """``n``'s first proc takes a slot: count it in the most at once."""
        self.nodes_running.add(n.name)
        self.max_running = max(self.max_running, len(self.nodes_running))
        cat = n.spec.category
        if cat is not None:
            k = self.running_by_category[cat] = self.running_by_category.get(cat, 0) + 1
            self.max_running_by_category[cat] = max(self.max_running_by_category.get(cat, 0), k)

    def left(self, n: Node, p: int) -> None:
        """Proc ``p`` of ``n`` left its slot."""
        if p in n.running:
            n.running.discard(p)
            self.running -= 1
            self.cores -= n.cpus
            if not n.running and n.name in self.nodes_running:
                self.nodes_running.discard(n.name)
                if n.spec.category is not None:
                    self.running_by_category[n.spec.category] -= 1


def descendants(dag, name: str):
    """Each node below ``name`` in ``dag`` (a ``dagfile.DagFile``), once."""
    stack = list(dag.children.get(name, ()))
    seen = set()
    while stack:
        c = stack.pop()
        if c not in seen:
            seen.add(c)
            yield c
            stack.extend(dag.children.get(c, ()))


def job_macros(m, n: Node) -> dict:
    """The macros DAGMan gives ``n``'s job at its submission (src/condor_dagman/
    dagman_submit.cpp init_vars), the node's VARS last (they win); ``m``: the
    ``dagman.Dagman``."""
    macros = {
        "JOB": n.name, "RETRY": str(n.retries), "DAG_STATUS": str(m.dag_status),
        "FAILED_COUNT": str(m.failed_count),
        "DAG_PARENT_NAMES": ",".join(m.dag.parents.get(n.name, ())),
    }
    if n.spec.priority:
        macros["priority"] = str(n.spec.priority)
    macros.update(n.spec.vars)
    return macros


def script_argv(m, n: Node, kind: str) -> tuple:
    """Script::BackgroundRun: the command split on blanks, whole-token macros
    replaced (src/condor_dagman/script.cpp; POST only: ``$JOBID`` ...)."""
    cmd = n.spec.pre if kind == "PRE" else n.spec.post
    codes = sorted(n.exit_codes.items())
    values = {
        "$NODE": n.name, "$JOB": n.name, "$RETRY": str(n.retries),
        "$MAX_RETRIES": str(n.spec.retry), "$DAG_STATUS": str(m.dag_status),
        "$FAILED_COUNT": str(m.failed_count), "$FUTILE_COUNT": str(m.futile_count),
        "$DONE_COUNT": str(len(m.done)),
        "$QUEUED_COUNT": str(m.submitted_count),
        "$NODE_COUNT": str(len(m.nodes)),
    }
    if kind == "POST":
        values.update({
            "$JOBID": f"{n.cluster}.{max(n.nprocs - 1, 0)}", "$CLUSTERID": str(n.cluster),
            "$JOB_COUNT": str(n.nprocs),
            "$SUCCESS": "True" if n.status != STATUS_ERROR else "False",
            "$RETURN": str(n.job_ret), "$PRE_SCRIPT_RETURN": str(n.pre_ret),
            "$EXIT_CODES": ",".join(str(c) for c, _ in codes),
            "$EXIT_CODE_COUNTS": ",".join(f"{c}:{k}" for c, k in codes),
            "$JOB_ABORT_COUNT": str(n.aborted_procs),
        })
    return tuple(values.get(tok.upper(), tok) for tok in cmd.split())
