"""What running a written workflow would cost now, before it runs.

Data
    In: a written workflow directory: its DAG file and newest rescue DAG,
    its submit descriptions, its manifest, its payload packs and the files
    already there; the records of earlier runs of the same directory (the
    jobstate and event logs: ``after.run_report``; each result's wall time:
    ``cost.read_history``). Out: a :class:`PlanReport` (:func:`plan_report`):
    one :class:`NodePlan` per node still to run, the critical path, the
    total work, the levels, the lower bound and the simulated makespan;
    printable as a table (``tables.plan_text``) and as JSON (``to_dict()``).

Policy
    * The estimate is :func:`dask_condordag.local.simulate.simulate` -- the
      local runner's DAGMan state machine against a simulated clock -- run on
      the DAG as a run would take it now (``DONE`` marks and the newest rescue
      DAG applied: what finished is not counted), with ``job_latency =
      job_overhead`` and a duration per node. No second model of DAGMan.
      A node whose submit description condor_submit would refuse (the
      simulated DAGMan logs ``SUBMIT_FAILURE``) is a RunnerError.
    * Durations (:func:`node_durations`, the one place that chooses them): a
      node's job run time recorded by an earlier run of the same workflow
      directory (its event log, else its jobstate log); without a record,
      per task it holds, the cost model's (``cost.CostModel.task_seconds``:
      the task's annotated duration, its record, its key prefix's), else
      ``task_seconds`` (default :data:`DEFAULT_TASK_SECONDS`, the planner's
      assumption). A
      ``durations`` argument (node -> seconds, or a function of the node's
      name) replaces both; nodes a dict leaves out take the default.
    * The lower bound is issue 12's reference figure: ``max(critical path,
      total work / slots) + job_overhead x levels``, where the critical path
      is the largest sum of durations along a chain of nodes still to run,
      total work the core-seconds of every proc (its duration times its
      ``request_cpus``, at most ``slots``; a node's procs: its submit
      description's ``queue N``), and levels the largest number of
      nodes along a chain. (It can exceed the simulated makespan when the
      longest chain by count is not the longest by time.)
    * One pass over the DAG's nodes and edges besides the simulation: each
      submit description is parsed once (``local.launch.Submits``) and only
      the simulation expands them; each pack's index is read once.
    * Bytes per node: its payload's share of its pack (the pack's index
      line), the input files it reads that are there now (the others
      counted as not written yet), its result files that are there.

Example::

    >>> from dask_condordag import dagfile
    >>> dag = dagfile.parse_dag("JOB a a.sub\\nJOB b b.sub\\nJOB c c.sub\\nPARENT a CHILD b\\n")
    >>> critical_path(dag, {"a": 3.0, "b": 1.0, "c": 2.0}, set())
    (('a', 'b'), 4.0, 2)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import cost, names, submitdesc
from ..cost import CostModel, read_history, threaded_seconds
from ..exceptions import RunnerError
from ..local import files, launch
from ..local.simulate import simulate
from .after import as_workflow, run_report
from .tables import plan_text

__all__ = ["plan_report", "PlanReport", "NodePlan", "node_durations", "critical_path",
           "DEFAULT_TASK_SECONDS", "DEFAULT_JOB_OVERHEAD"]

#: Seconds a task is assumed to take when nothing recorded or annotated says
#: otherwise: the planner's own assumption (``cost.DEFAULT_TASK_SECONDS``).
DEFAULT_TASK_SECONDS = cost.DEFAULT_TASK_SECONDS
#: Seconds a job costs before its task runs, by run mode, as the planner
#: assumes them (``cost``): ``local`` measured on the local runner (start of a
#: worker process, reading its payload); ``condor`` the per-node latency of
#: the stock-profile pool (../shared/htcondor; a production pool's is often a
#: minute or more).
DEFAULT_JOB_OVERHEAD = {"local": cost.LOCAL_OVERHEAD, "condor": cost.CONDOR_OVERHEAD}


@dataclass(frozen=True)
class NodePlan:
    """One node still to run: its tasks, procs, seconds per proc (and where
    that figure came from: "recorded", "annotated", "default" or "given"), and bytes:
    its payload, the input files it reads (``input_bytes`` counts those there
    now; ``inputs_unknown`` those not written yet), its result files there."""

    name: str
    tasks: int
    procs: int
    seconds: float
    source: str
    payload_bytes: int | None
    input_bytes: int
    inputs_unknown: int
    output_bytes: int | None


@dataclass(frozen=True)
class PlanReport:
    """The cost of running a workflow now (see the module docstring)."""

    workflow: str
    path: str
    slots: int
    job_overhead: float
    nodes: tuple  # NodePlan, in the DAG's order
    done: int  # nodes already done: not run again, not counted
    critical_path: tuple  # node names, first to last
    critical_seconds: float
    levels: int
    total_work: float
    lower_bound: float
    makespan: float  # simulated

    #: rows of nodes ``str()`` shows (``to_dict()`` holds them all)
    max_rows = 40

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return plan_text(self)


def plan_report(wf_or_path, *, slots: int | None = None, job_overhead: float | None = None,
                durations=None, task_seconds: float = DEFAULT_TASK_SECONDS) -> PlanReport:
    """What running the workflow at ``wf_or_path`` (a path or a ``Workflow``)
    would cost now, with ``slots`` jobs at once and ``job_overhead`` seconds
    per job. Their defaults: the figures the planner chose the grouping with
    (``group="auto"``: the manifest's ``cost``, by the run mode the workflow
    was written for), else this machine's cores (the local runner's default)
    and ``DEFAULT_JOB_OVERHEAD["local"]``. ``durations``: node -> seconds per
    proc, or a function of the node name; default (and for the nodes a dict
    leaves out): :func:`node_durations` with ``task_seconds``."""
    wf = as_workflow(wf_or_path)
    planned = wf.manifest.get("cost") or {}
    if slots is None:
        slots = planned.get("slots") or os.cpu_count() or 1
    if job_overhead is None:
        job_overhead = planned.get("job_overhead", DEFAULT_JOB_OVERHEAD["local"])
    slots, overhead = int(slots), float(job_overhead)
    if slots < 1 or overhead < 0:
        raise ValueError(f"slots={slots}, job_overhead={overhead}: give slots >= 1 and "
                         "job_overhead >= 0")
    dag, _ = files.load_dag(wf.dag_path)
    submits = launch.Submits(wf.dag_path.parent, dag)
    seconds, source = _seconds(wf, dag, durations, task_seconds)
    done = {n for n, spec in dag.nodes.items() if spec.done}
    # a node's procs: its submit description's queue count (each file parsed
    # once); the simulation expands each node's description as DAGMan would
    procs = {n: submits.of(spec).queue_count for n, spec in dag.nodes.items()}
    path, cp, levels = critical_path(dag, seconds, done)
    # core-seconds: a proc holds its request_cpus for its seconds (the
    # simulation holds them too), so a node on 4 threads counts 4 cores
    work = sum(seconds[n] * procs[n] * min(max(1, submitdesc.whole_number(
        submits.of(dag.nodes[n]).commands, "request_cpus", 1)), slots)
        for n in dag.nodes if n not in done)
    bound = max(cp, work / slots) + overhead * levels
    sim = simulate(dag, slots=slots, job_latency=overhead, describe=submits.describe,
                   durations=lambda node, proc: seconds[node])
    _check_submits(wf.dag_path, sim)
    packs: dict = {}
    nodes = tuple(_node_plan(wf, spec, seconds[n], source[n], procs[n], packs)
                  for n, spec in dag.nodes.items() if n not in done)
    return PlanReport(wf.name, str(wf.path), slots, overhead, nodes, len(done), path, cp, levels,
                      work, bound, sim.makespan)


def _check_submits(dag_path, sim) -> None:
    """RunnerError when the simulated DAGMan could not submit a node: its
    submit description is one condor_submit would refuse (the run would fail
    the node at once)."""
    for _, node, event, _ in sim.events:
        if event == "SUBMIT_FAILURE":
            raise RunnerError(f"{dag_path}: node {node}: {sim.failed.get(node, 'submit failed')}"
                              "; condor_submit would refuse its submit description: fix it "
                              "(or write the workflow again) before estimating a run")


def _seconds(wf, dag, durations, task_seconds):
    """(node -> seconds per proc, node -> "given" | "recorded" | "annotated" | "default")."""
    if durations is not None and not callable(durations) and not isinstance(durations, dict):
        raise TypeError(f"durations={durations!r}: give a dict node -> seconds, or a function "
                        "of the node name")
    base = {} if callable(durations) else node_durations(wf, task_seconds=task_seconds, dag=dag)
    seconds, source = {}, {}
    for n in dag.nodes:
        if callable(durations):
            seconds[n], source[n] = float(durations(n)), "given"
        elif durations is not None and n in durations:
            seconds[n], source[n] = float(durations[n]), "given"
        else:
            seconds[n], source[n] = base.get(n, (task_seconds, "default"))
        if seconds[n] < 0:
            raise ValueError(f"node {n}: duration {seconds[n]} s is negative")
    return seconds, source


def node_durations(wf, *, task_seconds: float = DEFAULT_TASK_SECONDS, dag=None) -> dict:
    """node -> (seconds per proc, "recorded" | "annotated" | "default"): the run time of
    the node's job in the last run of this workflow directory that ran it
    successfully (:func:`run_report`), else the sum over the node's tasks of
    what the cost model knows (``cost.CostModel.task_seconds``: the time the
    worker recorded for that task, else the mean of its key prefix, else
    ``task_seconds``; "recorded" when every task has its own record); for a
    node the planner gave several threads (the manifest's ``threads`` and
    in-node ``reads``), :func:`cost.threaded_seconds` of those. A task's
    annotated ``condor={"duration": s}`` (the manifest's ``durations``) wins
    over its records, as it does for the planner. The one place plan_report
    takes durations from.
    ``dag``: the workflow's DAG file already parsed."""
    recorded = {}
    try:
        for r in run_report(wf, dag=dag).nodes:
            if r.status == "done" and r.run is not None:
                recorded[r.node] = r.run
    except FileNotFoundError:
        pass
    # per task, the cost model's records (the wall time the worker wrote into
    # each result's header; the mean of its key prefix), else task_seconds
    annotated = {t: s for info in wf.nodes.values()
                 for t, s in (info.get("durations") or {}).items()}
    model = CostModel(history=read_history(wf.path), default_seconds=task_seconds,
                      durations=annotated)
    out = {}
    for node, info in wf.nodes.items():
        if node in recorded:
            out[node] = (recorded[node], "recorded")
            continue
        tasks = list(info.get("tasks") or ()) or [node]
        secs = {t: model.task_seconds(t) for t in tasks}
        if info.get("threads", 1) > 1:  # tasks on threads inside the job (grouping)
            seconds = threaded_seconds(tasks, info.get("reads") or {}, secs, info["threads"])
        else:
            seconds = sum(secs.values())
        if all(t in model.history.seconds for t in tasks):
            out[node] = (seconds, "recorded")
        elif all(t in model.history.seconds or t in annotated for t in tasks):
            out[node] = (seconds, "annotated")
        else:
            out[node] = (seconds, "default")
    return out


def critical_path(dag, seconds: dict, done) -> tuple:
    """(nodes of the longest chain by ``seconds``, its seconds, the most nodes
    along any chain) over the nodes of ``dag`` not in ``done``."""
    order = _toposort(dag)
    best: dict = {}  # node -> (seconds up to and with it, previous node)
    depth: dict = {}
    for n in order:
        if n in done:
            continue
        ps = [p for p in dag.parents.get(n, ()) if p not in done]
        prev = max(ps, key=lambda p: (best[p][0], depth[p]), default=None)
        best[n] = (seconds[n] + (best[prev][0] if prev is not None else 0.0), prev)
        depth[n] = 1 + max((depth[p] for p in ps), default=0)
    if not best:
        return (), 0.0, 0
    end = max(best, key=lambda n: (best[n][0], depth[n]))  # ties: more nodes
    chain = [end]
    while best[chain[-1]][1] is not None:
        chain.append(best[chain[-1]][1])
    return tuple(reversed(chain)), best[end][0], max(depth.values())


def _toposort(dag) -> list:
    pending = {n: len(dag.parents.get(n, ())) for n in dag.nodes}
    ready = [n for n in dag.nodes if pending[n] == 0]
    out = []
    while ready:
        n = ready.pop()
        out.append(n)
        for c in dag.children.get(n, ()):
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    return out


def _node_plan(wf, spec, seconds, source, procs, packs) -> NodePlan:
    v = dict(spec.vars)
    info = wf.nodes.get(spec.name, {})
    pack = v.get(names.PAYLOAD_MACRO)
    payload = _payload_size(wf.path, pack, spec.name, packs) if pack else None
    known = unknown = 0
    for f in _files(v.get(names.INPUTS_MACRO)):
        if f == pack:
            continue
        try:
            known += (wf.path / f).stat().st_size
        except OSError:
            unknown += 1
    outs = [wf.path / f for f in _files(v.get(names.OUTPUTS_MACRO))]
    there = [p.stat().st_size for p in outs if p.exists()]
    return NodePlan(spec.name, max(1, len(info.get("tasks") or ())), procs, seconds, source,
                    payload, known, unknown, sum(there) if there else None)


def _files(value) -> list:
    return [f.strip() for f in (value or "").split(",") if f.strip()]


def _payload_size(root: Path, pack: str, node: str, cache: dict):
    """Bytes of ``node``'s payload in the pack file (its index line says)."""
    if pack not in cache:
        try:
            with open(root / pack, "rb") as f:
                magic = f.readline()
                cache[pack] = json.loads(f.readline()) if magic == names.PACK_MAGIC else None
        except (OSError, ValueError):
            cache[pack] = None
    index = cache[pack]
    if not index or node not in index:
        return None
    start, end = index[node]
    return end - start
