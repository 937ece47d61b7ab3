"""DAGMan's state machine against a simulated clock and simulated jobs: the
order of events and the makespan of a run, without running anything.

Data
    In: a workflow directory or DAG file (read as the runner reads it, the
    newest rescue DAG applied), a ``plan.Plan`` (its DAG rendered as
    ``write`` would render it), or a parsed ``dagfile.DagFile``; the pool's
    ``slots``, the per-job ``job_latency``, the jobs' ``durations``. Out: a
    :class:`Simulation`: the makespan and the events in order, as the
    jobstate log would record them::

        >>> from dask_condordag import dagfile
        >>> dag = dagfile.parse_dag("JOB a a.sub\\nJOB b b.sub\\nPARENT a CHILD b\\n")
        >>> s = simulate(dag, slots=1, job_latency=2.0, durations={"a": 3.0, "b": 1.0})
        >>> s.makespan, [e[1:3] for e in s.events if e[2] == "EXECUTE"]
        (8.0, [('a', 'EXECUTE'), ('b', 'EXECUTE')])

Policy
    * The rules are ``dagman.Dagman``'s, the same object the local runner
      drives; only the clock and the jobs are simulated.
    * A proc holds a slot for ``job_latency`` (the time a pool takes to
      match, start and transfer a job) plus its duration, then exits with its
      code from ``exit_codes`` (default 0). A removed proc ends at once.
      PRE and POST scripts take ``script_seconds`` and exit 0.
    * Events at the same simulated time reach the machine as one batch, then
      it ticks: the runner does the same with the events that arrive
      together. A directory's queue counts and submit ``priority`` come from
      its submit descriptions, a plan's from its nodes; a bare ``DagFile``'s
      jobs have one proc each.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import dagfile, render, submitdesc
from . import files, launch
from .dagman import Dagman
from .state import Abort, Execute, Log, Remove, RunScript

__all__ = ["simulate", "Simulation"]


@dataclass(frozen=True)
class Simulation:
    """A simulated run: ``makespan`` seconds; ``events``: ``(time, node,
    event, id)`` in the order the jobstate log would hold them; the done and
    failed nodes, the exit code, whether ABORT-DAG-ON stopped it."""

    makespan: float
    events: tuple
    done: frozenset
    failed: dict
    exit_code: int
    aborted: bool


def simulate(source, *, slots: int = 1, job_latency: float = 0.0, durations=0.0,
             exit_codes: dict | None = None, script_seconds: float = 0.0,
             fail_fast: bool = False, dag_settings=None, describe=None) -> Simulation:
    """Simulate running ``source`` (see the module docstring) on ``slots`` slots.

    ``durations``: seconds per proc -- one number, a dict node -> seconds
    (missing: 0), or a function ``(node, proc) -> seconds``. ``exit_codes``:
    node -> exit code, or a list of codes by try (the last one repeats).
    ``dag_settings``: the ``DagSettings`` (MAXJOBS ...) a plan is written with.
    ``describe``: with a parsed ``DagFile`` as ``source``, its nodes' submit
    descriptions (``local.launch.Submits(...).describe``: procs, priority, cpus)
    -- what a caller that already parsed the DAG and its submit files passes,
    so that nothing is read twice; default: one proc each, priority 0.
    """
    dag, loaded = _load(source, dag_settings)
    if describe is None:
        describe = loaded
    elif not isinstance(source, dagfile.DagFile):
        raise TypeError("describe= goes with a parsed DagFile as the source; a path "
                        "or a Plan brings its own submit descriptions")
    m = Dagman(dag, slots=slots, describe=describe, fail_fast=fail_fast)
    clock = _Clock(m, job_latency, _duration_of(durations), exit_codes or {}, script_seconds)
    clock.apply(m.start())
    while True:
        before = m.version
        clock.apply(m.tick(clock.now))
        if m.aborted or not m.active():
            break
        if not clock.pending:
            if m.version == before:
                raise RuntimeError("simulation stuck: the DAG is active but nothing can happen")
            continue  # NOOP jobs end at the next tick
        clock.next_batch()
        if m.aborted:
            break
    m.finish()
    return Simulation(clock.now, tuple(clock.events), frozenset(m.done), dict(m.failed),
                      m.exit_code, m.aborted)


class _Clock:
    """The simulated pool: pending ends of procs and scripts, by time."""

    def __init__(self, m, latency, duration, codes, script_seconds):
        self.m = m
        self.latency = latency
        self.duration = duration
        self.codes = codes
        self.script_seconds = script_seconds
        self.now = 0.0
        self.pending: list = []  # heap of (time, seq, event)
        self.seq = itertools.count()
        self.running: dict = {}  # (node, cluster) -> {seq: proc} of procs not ended
        self.events: list = []

    def push(self, t: float, event: tuple) -> int:
        s = next(self.seq)
        heapq.heappush(self.pending, (t, s, event))
        return s

    def apply(self, actions: list) -> None:
        for a in actions:
            kind = type(a)
            if kind is Log:
                self.events.append((self.now, a.node, a.event, a.cid))
            elif kind is Execute:
                t = self.now + self.latency + self.duration(a.node, a.proc)
                s = self.push(t, ("proc", a.node, a.cluster, a.proc, self.code(a.node, a.retry)))
                self.running.setdefault((a.node, a.cluster), {})[s] = a.proc
            elif kind is Remove:
                for s, p in self.running.pop((a.node, a.cluster), {}).items():
                    self.pending = [e for e in self.pending if e[1] != s]
                    heapq.heapify(self.pending)
                    self.push(self.now, ("proc", a.node, a.cluster, p, None))
            elif kind is RunScript:
                self.push(self.now + self.script_seconds, ("script", a.node, a.kind, a.token, 0))
            elif kind is Abort:
                self.pending.clear()

    def code(self, node: str, retry: int) -> int:
        c = self.codes.get(node, 0)
        if isinstance(c, (list, tuple)):
            return c[min(retry, len(c) - 1)]
        return c

    def next_batch(self) -> None:
        """Advance to the next event time; hand the machine every event then."""
        self.now = self.pending[0][0]
        while self.pending and self.pending[0][0] == self.now and not self.m.aborted:
            _, s, ev = heapq.heappop(self.pending)
            if ev[0] == "proc":
                _, node, cluster, p, code = ev
                self.running.get((node, cluster), {}).pop(s, None)
                reason = "job removed" if code is None else ""
                self.apply(self.m.proc_exited(node, cluster, p, code, reason))
            else:
                _, node, kind, token, code = ev
                self.apply(self.m.script_exited(node, kind, token, code))


def _duration_of(durations) -> Callable:
    if callable(durations):
        return durations
    if isinstance(durations, dict):
        return lambda node, proc: float(durations.get(node, 0.0))
    return lambda node, proc: float(durations)


def _load(source, dag_settings):
    """(DagFile, describe) for a directory or DAG file, a Plan, or a DagFile."""
    if isinstance(source, dagfile.DagFile):
        return source, lambda node, macros: (1, 0)
    if isinstance(source, (str, Path)):
        path = files.dag_path(source)
        dag, _ = files.load_dag(path)
        return dag, launch.Submits(path.parent, dag).describe
    return _from_plan(source, dag_settings)


def _from_plan(plan, dag_settings):
    text = render.render_dag(plan, packs={n: f"{n}.pack" for n in plan.nodes}, dag=dag_settings)
    dag = dagfile.parse_dag(text, f"<plan {plan.name}>")

    def describe(node, macros):
        n = plan.nodes[node]
        return (n.procs, submitdesc.whole_number(n.settings.submit, "priority", 0),
                submitdesc.whole_number(n.settings.submit, "request_cpus", 1))

    return dag, describe
