"""Follow a DAG that DAGMan runs on a pool, and drive dask's callbacks from what it records.

Data
    In: the workflow's DAG file (nodes, edges, POST scripts, the ``JOBSTATE_LOG``
    it names), its manifest (node -> dask task names, result files), the
    DAGMan job's cluster id and, at each look, the lines DAGMan appended to the
    jobstate log and the node status file (a :class:`~dask_condordag.statusfile.DagState`).
    Out: calls of dask's callback protocol -- ``start``, ``start_state``,
    ``pretask``, ``posttask``, ``finish`` (dask/callbacks.py) -- on a state
    dict shaped like dask.local's (``ready``, ``waiting``, ``running``,
    ``finished`` ...), one key per dask task, exactly as the local runner drives
    them, so ``dask.diagnostics.ProgressBar`` draws a run on the pool.

Policy (HTCondor 25.x; "src/" is HTCondor's source tree, "manual" its docs/)
    * The jobstate log is DAGMan's own machine-readable history (manual:
      automated-workflows/dagman-information-files.rst, "Machine-Readable
      Event History"): one line per event, written as DAGMan handles it,
      ``<time> <node> <EVENT> <condor id> <site> - <seq>`` and
      ``<time> INTERNAL *** DAGMAN_STARTED <cluster>.<proc> ***``
      (src/condor_dagman/jobstate_log.cpp). It is read from where the last look
      stopped; a line without its newline yet waits for the next look.
    * The file keeps every run of the workflow. Only lines after
      ``DAGMAN_STARTED <cluster>.0`` of the DAGMan job being followed count --
      DAGMan writes its own job id there, from ``$CONDOR_ID`` -- until a
      ``DAGMAN_STARTED`` of another job. ``DAGMAN_FINISHED <exit code>`` is
      DAGMan's last line, written as it exits (seen on the 25.14 pool: the
      schedd reaps the job in the same second); a waiter peeks for it between
      its looks at the queue (``Follower.dagman_finished``).
    * A node has started at its first ``PRE_SCRIPT_STARTED``, ``EXECUTE`` or
      ``POST_SCRIPT_STARTED``. It is done at ``JOB_SUCCESS`` when it has no
      POST script, else at ``POST_SCRIPT_SUCCESS`` (the POST script decides
      the node: manual node-pass-or-fail.rst). A node that fails gets no
      ``posttask`` (as in dask.local); ``finish`` is told ``errored=True``.
    * The node status file adds what the log does not say (nodes done without
      a job event: marked ``DONE``, or skipped by ``PRE_SKIP``), and is the only
      source when the DAG has no jobstate log -- then at the file's update
      interval (``node_status_interval``).
    * Nodes whose results are already there when following begins (reused, or
      finished before a reattach) start out ``finished``, without callbacks.
    * Every key gets ``pretask`` before its ``posttask``, also when its node
      started and finished between two looks.

Example::

    >>> parse_jobstate_line("1796550400 inc_4f91 EXECUTE 2.0 - - 1")
    ('inc_4f91', 'EXECUTE', '2.0')
    >>> parse_jobstate_line("1796550393 INTERNAL *** DAGMAN_STARTED 1.0 ***")
    ('INTERNAL', 'DAGMAN_STARTED', '1.0')
"""

from __future__ import annotations

import os
from pathlib import Path

from dask.callbacks import normalize_callback, unpack_callbacks

from . import dagfile
from .results import is_ok
from .statusfile import STATUS_DONE, STATUS_POSTRUN, STATUS_PRERUN, STATUS_SUBMITTED

__all__ = ["parse_jobstate_line", "JobstateReader", "NodeProgress", "Follower"]

#: Events after which a node counts as started.
STARTED_EVENTS = frozenset({"PRE_SCRIPT_STARTED", "EXECUTE", "POST_SCRIPT_STARTED"})


def parse_jobstate_line(line: str):
    """``(node, event, condor id)`` of one jobstate log line; None if it is not one."""
    parts = line.split()
    if len(parts) >= 5 and parts[1] == "INTERNAL" and parts[2] == "***":
        return "INTERNAL", parts[3], parts[4] if parts[4] != "***" else "-"
    if len(parts) >= 4 and parts[0].isdigit():
        return parts[1], parts[2], parts[3]
    return None


class JobstateReader:
    """The events of one DAGMan job, read from a jobstate log as it grows.

    ``finished``: our DAGMan job wrote ``DAGMAN_FINISHED`` (it has handled its
    last node event and is about to exit). :meth:`peek` reads as far as
    :meth:`read` does and keeps the events for the next ``read``, so a
    waiter can look for the end between two looks without losing events.
    """

    def __init__(self, path, cluster: int):
        self.path = Path(path)
        self.dagman_id = f"{int(cluster)}.0"
        self.offset = 0
        self.ours = False  # inside the lines of our DAGMan job
        self.finished = False
        self._kept: list = []  # events peek() read and read() has not returned

    def read(self) -> list:
        """``(node, event)`` pairs of our DAGMan job appended since the last call."""
        out, self._kept = self._kept + self._read_new(), []
        return out

    def peek(self) -> bool:
        """Read what was appended (kept for :meth:`read`); whether our DAGMan
        job has written ``DAGMAN_FINISHED``."""
        self._kept += self._read_new()
        return self.finished

    def _read_new(self) -> list:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a partial last line waits for the next look
        self.offset += end
        out = []
        for line in data[:end].decode("utf-8", "replace").splitlines():
            parsed = parse_jobstate_line(line)
            if parsed is None:
                continue
            node, event, cid = parsed
            if node == "INTERNAL":
                if event == "DAGMAN_STARTED":
                    self.ours = cid == self.dagman_id
                    self.finished = self.finished and not self.ours
                elif event == "DAGMAN_FINISHED" and self.ours:
                    self.finished = True
            elif self.ours:
                out.append((node, event))
        return out


class NodeProgress:
    """Which nodes have started and finished, from events and status files.

    >>> p = NodeProgress(post_nodes={"B"})
    >>> p.apply([("A", "EXECUTE"), ("A", "JOB_SUCCESS"), ("B", "JOB_SUCCESS")])
    (['A'], ['A'])
    >>> p.apply([("B", "POST_SCRIPT_STARTED"), ("B", "POST_SCRIPT_SUCCESS")])
    (['B'], ['B'])
    """

    def __init__(self, post_nodes=(), done=()):
        self.post_nodes = frozenset(post_nodes)
        self.started: set = set(done)
        self.done: set = set(done)

    def apply(self, events) -> tuple:
        """Apply ``(node, event)`` pairs; ``(newly started, newly done)`` nodes."""
        started, done = [], []
        for node, event in events:
            if event in STARTED_EVENTS:
                self._start(node, started)
            elif self._finishes(node, event):
                self._start(node, started)
                self._finish(node, done)
        return started, done

    def apply_status(self, state) -> tuple:
        """Apply a node status file (:class:`~dask_condordag.statusfile.DagState`)."""
        started, done = [], []
        for n in (state.nodes.values() if state is not None else ()):
            running = n.status in (STATUS_PRERUN, STATUS_POSTRUN) or (
                n.status == STATUS_SUBMITTED and n.details != "idle")
            if running or n.status == STATUS_DONE:
                self._start(n.name, started)
            if n.status == STATUS_DONE:
                self._finish(n.name, done)
        return started, done

    def _finishes(self, node: str, event: str) -> bool:
        if node in self.post_nodes:
            return event == "POST_SCRIPT_SUCCESS"
        return event == "JOB_SUCCESS"

    def _start(self, node: str, out: list) -> None:
        if node not in self.started:
            self.started.add(node)
            out.append(node)

    def _finish(self, node: str, out: list) -> None:
        if node not in self.done:
            self.done.add(node)
            out.append(node)


class Follower:
    """Drives dask callbacks for one DAGMan run of a workflow.

    ``callbacks``: ``dask.callbacks.Callback`` objects or their 5-tuples.
    ``start()`` once, ``update(dag_state)`` at each look, ``finish(errored)``
    at the end (always: put it in a ``finally``).
    """

    def __init__(self, workdir, manifest: dict, dag: dagfile.DagFile, cluster, callbacks=()):
        self.workdir = Path(workdir)
        self.dag = dag
        self.tasks = {n: list(info["tasks"]) for n, info in manifest["nodes"].items()}
        done = {n for n, info in manifest["nodes"].items() if _results_there(workdir, info)}
        done |= {n for n, spec in dag.nodes.items() if spec.done}
        self.progress = NodeProgress({n for n, s in dag.nodes.items() if s.post}, done)
        log = dag.jobstate_log
        self.reader = None if (log is None or cluster is None) else JobstateReader(
            log if os.path.isabs(log) else self.workdir / log, cluster)
        (self.start_cbs, self.start_state_cbs, self.pretask_cbs, self.posttask_cbs,
         self.finish_cbs) = unpack_callbacks([normalize_callback(c) for c in callbacks or ()])
        self.state = self._initial_state()

    @classmethod
    def for_workflow(cls, wf, callbacks=()) -> "Follower":
        """The follower of ``wf``'s last submission (a :class:`Workflow`)."""
        text = wf.dag_path.read_text(encoding="utf-8")
        return cls(wf.path, wf.manifest, dagfile.parse_dag(text, str(wf.dag_path)), wf.cluster,
                   callbacks)

    def keys_of(self, node: str) -> list:
        """The dask task names node ``node`` runs (the node's own name outside the manifest)."""
        return self.tasks.get(node, [node])

    @property
    def done(self) -> int:
        """How many nodes are known to be done."""
        return len(self.progress.done)

    def _initial_state(self) -> dict:
        done, parents = self.progress.done, self.dag.parents
        ready, waiting = set(), {}
        for n in self.dag.nodes:
            if n in done:
                continue
            if all(p in done for p in parents.get(n, ())):
                ready.update(self.keys_of(n))
            else:
                waiting.update({k: set() for k in self.keys_of(n)})
        return {"ready": ready, "waiting": waiting, "running": set(),
                "finished": {k for n in self.dag.nodes if n in done for k in self.keys_of(n)},
                "cache": {}, "released": set(), "waiting_data": {},
                "dependents": {}, "dependencies": {}}

    def start(self) -> None:
        for cb in self.start_cbs:
            cb({})
        for cb in self.start_state_cbs:
            cb({}, self.state)

    def update(self, dag_state=None) -> None:
        """Read what DAGMan recorded since the last look; call the callbacks."""
        events = self.reader.read() if self.reader is not None else []
        for started, done in (self.progress.apply(events),
                              self.progress.apply_status(dag_state)):
            for n in started:
                self._pretask(n)
            for n in done:
                self._posttask(n)

    def dagman_finished(self) -> bool:
        """Whether DAGMan's jobstate log says our DAGMan job has finished
        (``DAGMAN_FINISHED``; False without a jobstate log). A cheap read of
        what was appended since the last look; the events are kept for the
        next :meth:`update`."""
        return self.reader.peek() if self.reader is not None else False

    def run_done(self) -> None:
        """``start`` and ``finish`` of a run with nothing left to do."""
        self.start()
        self.finish(errored=False)

    def finish(self, errored: bool) -> None:
        for cb in self.finish_cbs:
            cb({}, self.state, errored)

    def _pretask(self, node: str) -> None:
        for k in self.keys_of(node):
            _move(self.state, k, ("ready", "waiting"), "running")
            for cb in self.pretask_cbs:
                cb(k, {}, self.state)

    def _posttask(self, node: str) -> None:
        for k in self.keys_of(node):
            _move(self.state, k, ("running",), "finished")
            for cb in self.posttask_cbs:
                cb(k, None, {}, self.state, node)
        done = self.progress.done
        for c in self.dag.children.get(node, ()):
            if c not in self.progress.started and all(
                    p in done for p in self.dag.parents.get(c, ())):
                for k in self.keys_of(c):
                    _move(self.state, k, ("waiting",), "ready")


def _results_there(workdir, info: dict) -> bool:
    files = [f for fs in info["outputs"].values() for f in fs]
    return bool(files) and all(is_ok(Path(workdir, f)) for f in files)


def _move(state: dict, key, sources: tuple, dst: str) -> None:
    for src in sources:
        s = state[src]
        if key in s:
            s.pop(key) if isinstance(s, dict) else s.discard(key)
            break
    state[dst].add(key)
