"""What a workflow will cost before it runs, and where the time went after.

Data
    In: a written workflow directory (its DAG file and newest rescue DAG, its
    manifest, its payload packs and result files) and, after a run, the
    ``JOBSTATE_LOG`` the DAG names and the node job event log DAGMan keeps
    beside it (``<dag>.nodes.log``, on a pool). Out: a :class:`PlanReport`
    (:func:`plan_report`) and a :class:`RunReport` (:func:`run_report`), each
    printable as a table and as JSON; a run's timeline as an SVG Gantt chart.

Policy
    * The estimate is :func:`dask_condordag.local.simulate.simulate` -- the
      local runner's DAGMan state machine against a simulated clock -- run on
      the DAG as a run would take it now (``DONE`` marks and the newest rescue
      DAG applied: what finished is not counted), with ``job_latency =
      job_overhead`` and a duration per node. No second model of DAGMan.
    * Durations (:func:`node_durations`, the one place that chooses them): a
      node's job run time recorded by an earlier run of the same workflow
      directory (its event log, else its jobstate log); without a record,
      ``task_seconds`` per task it holds (default
      :data:`DEFAULT_TASK_SECONDS`). A ``durations`` argument (node ->
      seconds, or a function of the node's name) replaces both; nodes a dict
      leaves out take the default.
    * The lower bound is issue 12's reference figure: ``max(critical path,
      total work / slots) + job_overhead x levels``, where the critical path
      is the largest sum of durations along a chain of nodes still to run,
      total work the sum of durations of every proc, and levels the largest
      number of nodes along a chain. (It can exceed the simulated makespan
      when the longest chain by count is not the longest by time.)
    * After a run, a node's times come from the event log where it holds the
      node's job (HTCondor events ``000`` submitted, ``040`` input/output
      transfer, ``001`` executing, ``005`` terminated: manual
      codes-other-values/job-event-log-codes.rst), else from the jobstate
      log (``SUBMIT``, ``EXECUTE``, ``JOB_TERMINATED``; whole seconds, as
      src/condor_dagman/jobstate_log.cpp writes them). Only the last run
      counts: the lines after the jobstate log's last ``DAGMAN_STARTED``.
      queue = submitted -> transfer or execution starts; transfer = input plus
      output transfer; run = executing -> output transfer or termination.
    * The SVG is written by hand (no plotting library): one row per node,
      one ``rect`` of class ``run`` per node that ran, ``queue`` and
      ``transfer`` rects before and after it.

Example::

    >>> from dask_condordag import dagfile
    >>> dag = dagfile.parse_dag("JOB a a.sub\\nJOB b b.sub\\nJOB c c.sub\\nPARENT a CHILD b\\n")
    >>> critical_path(dag, {"a": 3.0, "b": 1.0, "c": 2.0}, set())
    (('a', 'b'), 4.0, 2)
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from . import names
from .cost import CostModel, read_history

__all__ = ["plan_report", "run_report", "PlanReport", "RunReport", "NodePlan", "NodeRun",
           "node_durations", "critical_path", "timeline_svg", "DEFAULT_TASK_SECONDS",
           "DEFAULT_JOB_OVERHEAD"]

#: Seconds a task is assumed to take when nothing recorded says otherwise.
DEFAULT_TASK_SECONDS = 1.0
#: Seconds a job costs before its task runs, by run mode: ``local`` measured
#: on the local runner (start of a worker process, reading its payload);
#: ``condor`` the per-node latency of the stock-profile pool
#: (../shared/htcondor; a production pool's is often a minute or more).
DEFAULT_JOB_OVERHEAD = {"local": 0.2, "condor": 6.0}


def _workflow(wf_or_path):
    from .workflow import Workflow

    return wf_or_path if isinstance(wf_or_path, Workflow) else Workflow.open(wf_or_path)


def _fmt_bytes(n) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(header: list, rows: list) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)  # noqa: E731
                               for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# ============================================================== before the run
@dataclass(frozen=True)
class NodePlan:
    """One node still to run: its tasks, procs, seconds per proc (and where
    that figure came from: "recorded", "default" or "given"), and bytes:
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
        shown = self.nodes[:self.max_rows]
        rows = [[n.name, n.tasks, n.procs, f"{n.seconds:g}", n.source,
                 _fmt_bytes(n.payload_bytes),
                 _fmt_bytes(n.input_bytes) + (f" +{n.inputs_unknown}?" if n.inputs_unknown
                                              else ""),
                 _fmt_bytes(n.output_bytes)] for n in shown]
        tasks = sum(n.tasks for n in self.nodes)
        head = [f"workflow {self.workflow} ({self.path}): {len(self.nodes)} nodes to run, "
                f"{tasks} tasks" + (f"; {self.done} nodes already done (not counted)"
                                    if self.done else "")]
        out = head + ["", _table(["node", "tasks", "procs", "s/proc", "from", "payload",
                                  "inputs", "outputs"], rows)] if rows else head
        if len(self.nodes) > len(shown):
            out.append(f"... and {len(self.nodes) - len(shown)} more nodes (to_dict() or "
                       "--json lists them all)")
        if rows:
            payload = sum(n.payload_bytes or 0 for n in self.nodes)
            inputs = sum(n.input_bytes for n in self.nodes)
            out += [f"bytes: payloads {_fmt_bytes(payload)}, inputs there now "
                    f"{_fmt_bytes(inputs)}", ""]
        ratio = (f" ({self.makespan / self.lower_bound:.2f}x the bound)"
                 if self.lower_bound > 0 else "")
        out += [f"critical path: {len(self.critical_path)} nodes, {self.critical_seconds:g} s"
                + (f" ({' -> '.join(self.critical_path)})" if len(self.critical_path) <= 6
                   else f" ({self.critical_path[0]} -> ... -> {self.critical_path[-1]})"
                   if self.critical_path else ""),
                f"total work: {self.total_work:g} s; levels: {self.levels}",
                f"with {self.slots} slots and {self.job_overhead:g} s per job:",
                f"  estimated makespan {self.makespan:g} s (simulated DAGMan){ratio}",
                f"  lower bound        {self.lower_bound:g} s = max(critical path, work / "
                f"slots) + overhead x levels"]
        return "\n".join(out)


def plan_report(wf_or_path, *, slots: int | None = None, job_overhead: float | None = None,
                durations=None, task_seconds: float = DEFAULT_TASK_SECONDS) -> PlanReport:
    """What running the workflow at ``wf_or_path`` (a path or a ``Workflow``)
    would cost now, with ``slots`` jobs at once (default: this machine's
    cores, the local runner's default) and ``job_overhead`` seconds per job
    (default: ``DEFAULT_JOB_OVERHEAD["local"]``). ``durations``: node ->
    seconds per proc, or a function of the node name; default (and for the
    nodes a dict leaves out): :func:`node_durations` with ``task_seconds``."""
    from .local import files, launch
    from .local.simulate import simulate

    wf = _workflow(wf_or_path)
    slots = int(slots) if slots is not None else (os.cpu_count() or 1)
    overhead = float(job_overhead if job_overhead is not None else DEFAULT_JOB_OVERHEAD["local"])
    if slots < 1 or overhead < 0:
        raise ValueError(f"slots={slots}, job_overhead={overhead}: give slots >= 1 and "
                         "job_overhead >= 0")
    dag, _ = files.load_dag(wf.dag_path)
    describe = launch.Submits(wf.dag_path.parent, dag).describe
    seconds, source = _seconds(wf, dag, durations, task_seconds)
    done = {n for n, spec in dag.nodes.items() if spec.done}
    procs = {n: describe(n, dict(spec.vars))[0] for n, spec in dag.nodes.items()}
    path, cp, levels = critical_path(dag, seconds, done)
    work = sum(seconds[n] * procs[n] for n in dag.nodes if n not in done)
    bound = max(cp, work / slots) + overhead * levels
    sim = simulate(wf.dag_path, slots=slots, job_latency=overhead,
                   durations=lambda node, proc: seconds[node])
    packs: dict = {}
    nodes = tuple(_node_plan(wf, spec, seconds[n], source[n], procs[n], packs)
                  for n, spec in dag.nodes.items() if n not in done)
    return PlanReport(wf.name, str(wf.path), slots, overhead, nodes, len(done), path, cp, levels,
                      work, bound, sim.makespan)


def _seconds(wf, dag, durations, task_seconds):
    """(node -> seconds per proc, node -> "given" | "recorded" | "default")."""
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
    """node -> (seconds per proc, "recorded" | "default"): the run time of
    the node's job in the last run of this workflow directory that ran it
    successfully (:func:`run_report`), else the sum over the node's tasks of
    what the cost model knows (``cost.CostModel.task_seconds``: the time the
    worker recorded for that task, else the mean of its key prefix, else
    ``task_seconds``; "recorded" when every task has its own record). The one
    place plan_report takes durations from.
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
    model = CostModel(history=read_history(wf.path), default_seconds=task_seconds)
    out = {}
    for node, info in wf.nodes.items():
        if node in recorded:
            out[node] = (recorded[node], "recorded")
            continue
        tasks = list(info.get("tasks") or ()) or [node]
        seconds = sum(model.task_seconds(t) for t in tasks)
        known = all(t in model.history.seconds for t in tasks)
        out[node] = (seconds, "recorded" if known else "default")
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


# ============================================================== after the run
@dataclass(frozen=True)
class NodeRun:
    """One node's job in the last run: times are seconds since the epoch;
    ``queue``, ``transfer``, ``run`` are seconds (None when not known);
    ``slot``: where it ran (event log only); ``source``: "event log" or
    "jobstate log"; ``status``: "done", "failed" or "running"."""

    node: str
    tasks: int
    submit: float | None
    execute: float | None
    end: float | None
    queue: float | None
    transfer: float | None
    run: float | None
    status: str
    attempts: int
    slot: str | None = None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    source: str = "jobstate log"
    transfers: tuple = ()  # (start, end) of each transfer, seconds since the epoch


@dataclass(frozen=True)
class RunReport:
    """Where the time of the last run of a workflow went."""

    workflow: str
    path: str
    start: float | None  # the first submit
    end: float | None  # the last job's end
    nodes: tuple  # NodeRun, by submit time
    not_run: tuple  # nodes of the DAG the last run did not run (done before, or never)

    #: rows of jobs ``str()`` shows (``to_dict()`` holds them all)
    max_rows = 40

    @property
    def makespan(self) -> float:
        return (self.end - self.start) if self.start is not None and self.end is not None else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["makespan"] = self.makespan
        return d

    def totals(self) -> dict:
        """Seconds of queue wait, transfer and run summed over the nodes."""
        return {k: sum(getattr(n, k) or 0.0 for n in self.nodes)
                for k in ("queue", "transfer", "run")}

    def __str__(self) -> str:
        def s(x):
            return "-" if x is None else f"{x:g}"

        rows = [[n.node, n.tasks, n.slot or "", s(n.queue), s(n.transfer), s(n.run),
                 n.status + (f" ({n.attempts} tries)" if n.attempts > 1 else "")]
                for n in self.nodes[:self.max_rows]]
        out = [f"workflow {self.workflow} ({self.path}): last run, {len(self.nodes)} jobs, "
               f"makespan {self.makespan:g} s"]
        if rows:
            out += ["", _table(["node", "tasks", "slot", "queue s", "transfer s", "run s",
                                "status"], rows)]
            if len(self.nodes) > len(rows):
                out.append(f"... and {len(self.nodes) - len(rows)} more jobs (to_dict() or "
                           "--json lists them all; the timeline draws them all)")
            out.append("")
            t = self.totals()
            busy = t["queue"] + t["transfer"] + t["run"]
            share = f" ({100 * t['run'] / busy:.0f}% of the jobs' time)" if busy else ""
            out.append(f"total: queue {t['queue']:g} s, transfer {t['transfer']:g} s, "
                       f"run {t['run']:g} s{share}")
            runs = sorted(n.run for n in self.nodes if n.run is not None)
            waits = sorted(n.queue for n in self.nodes if n.queue is not None)
            if runs and waits and runs[len(runs) // 2] < waits[len(waits) // 2]:
                out.append("the median job waits longer than it runs: the jobs are small "
                           "for this pool (group more tasks per node)")
        if self.not_run:
            out.append(f"{len(self.not_run)} nodes did not run in the last run (done before)")
        return "\n".join(out)

    def write_svg(self, path=None) -> Path:
        """Write :func:`timeline_svg` to ``path`` (default: ``<name>.timeline.svg``
        in the workflow directory); returns the path."""
        p = Path(path) if path is not None else Path(self.path) / timeline_file(self.workflow)
        p.write_text(timeline_svg(self), encoding="utf-8")
        return p


def timeline_file(name: str) -> str:
    """The file name of a workflow's timeline picture."""
    return f"{name}.timeline.svg"


def run_report(wf_or_path, *, dag=None) -> RunReport:
    """Where the time of the last run of the workflow at ``wf_or_path`` went
    (see the module docstring). FileNotFoundError when the DAG names no
    jobstate log or it has not been written (the workflow never ran).
    ``dag``: the workflow's DAG file already parsed (``dagfile.DagFile``)."""
    from . import dagfile

    wf = _workflow(wf_or_path)
    if dag is None:
        dag = dagfile.parse_dag(wf.dag_path.read_text(encoding="utf-8"), str(wf.dag_path))
    if not dag.jobstate_log:
        raise FileNotFoundError(f"{wf.dag_path} names no JOBSTATE_LOG: write the workflow "
                                "with jobstate_log=True to have its runs recorded")
    log = Path(dag.jobstate_log)
    log = log if log.is_absolute() else wf.path / log
    attempts = _last_run(log.read_text(encoding="utf-8"))
    events = _event_log(wf.path / (wf.dag_path.name + ".nodes.log"))
    nodes = []
    for node, tries in attempts.items():
        info = wf.nodes.get(node, {})
        nodes.append(_node_run(node, max(1, len(info.get("tasks") or ())), tries, events))
    first = {node: i for i, node in enumerate(attempts)}  # ties: the log's order
    nodes.sort(key=lambda r: (r.submit if r.submit is not None else float("inf"), first[r.node]))
    starts = [n.submit for n in nodes if n.submit is not None]
    ends = [n.end for n in nodes if n.end is not None]
    not_run = tuple(n for n in dag.nodes if n not in attempts)
    return RunReport(wf.name, str(wf.path), min(starts) if starts else None,
                     max(ends) if ends else None, tuple(nodes), not_run)


def _last_run(text: str) -> dict:
    """node -> list of attempts (dicts event -> (time, condor id)) of the
    lines after the jobstate log's last DAGMAN_STARTED."""
    lines = text.splitlines()
    first = 0
    for i, line in enumerate(lines):
        if "*** DAGMAN_STARTED" in line:
            first = i + 1
    out: dict = {}
    for line in lines[first:]:
        parts = line.split()
        if len(parts) < 4 or not parts[0].isdigit() or parts[1] == "INTERNAL":
            continue
        t, node, event, cid = float(parts[0]), parts[1], parts[2], parts[3]
        tries = out.setdefault(node, [])
        pre_only = bool(tries) and "PRE_SCRIPT_STARTED" in tries[-1] and "SUBMIT" not in tries[-1]
        if not tries or event == "PRE_SCRIPT_STARTED" or (event == "SUBMIT" and not pre_only):
            tries.append({})  # a new try: DAGMan submits (or runs the PRE script) again
        tries[-1].setdefault(event, (t, cid))
        if event in ("JOB_TERMINATED", "JOB_SUCCESS", "JOB_FAILURE", "POST_SCRIPT_SUCCESS",
                     "POST_SCRIPT_FAILURE"):
            tries[-1][event] = (t, cid)  # the last proc's
    return out


_HEADER = re.compile(r"^(\d{3}) \((\d+)\.(\d+)\.\d+\) (\S+) (\S+) (.*)$")


def _event_time(day: str, clock: str) -> float | None:
    """Seconds since the epoch of an event log time (ISO ``2026-12-06
    10:57:21[.123]`` or the old ``12/06 10:57:21``), in this machine's zone."""
    try:
        if "-" in day:
            d = datetime.datetime.fromisoformat(f"{day} {clock}")
        else:
            month, dd = day.split("/")
            d = datetime.datetime.fromisoformat(
                f"{datetime.date.today().year}-{int(month):02d}-{int(dd):02d} {clock}")
    except ValueError:
        return None
    return time.mktime(d.timetuple()) + d.microsecond / 1e6


def _event_log(path: Path) -> dict:
    """cluster -> what the HTCondor event log says of it: ``node`` (its
    DAGNodeName: a cluster id of another run or runner is not taken for
    this node's), ``submit``, ``execute``, ``end`` (times), ``in``/``out``
    transfers ([start, end]), ``slot``, ``sent``/``received`` bytes. Empty
    when there is no log."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict = {}
    cur = None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            code, cluster = m.group(1), int(m.group(2))
            t = _event_time(m.group(4), m.group(5))
            rest = m.group(6)
            cur = out.setdefault(cluster, {"in": [None, None], "out": [None, None]})
            if t is None:
                cur = None
                continue
            if code == "000":
                cur["submit"] = t
                cur["node"] = None
            elif code == "001":
                cur.setdefault("execute", t)
            elif code in ("005", "009"):
                cur["end"] = t
            elif code == "040":
                for kind in ("in", "out"):
                    word = "input" if kind == "in" else "output"
                    if f"Started transferring {word}" in rest:
                        cur[kind][0] = t
                    elif f"Finished transferring {word}" in rest:
                        cur[kind][1] = t
            continue
        if cur is None:
            continue
        s = line.strip()
        if "DAGNodeName" in s and "node" in cur:
            m = re.search(r'DAGNodeName = "([^"]*)"', s)
            cur["node"] = m.group(1) if m else None
        elif s.startswith("SlotName:"):
            cur["slot"] = s.split(":", 1)[1].strip()
        elif s.endswith("Run Bytes Sent By Job"):
            cur["sent"] = int(s.split()[0])
        elif s.endswith("Run Bytes Received By Job"):
            cur["received"] = int(s.split()[0])
    return out


def _node_run(node: str, tasks: int, tries: list, events: dict) -> NodeRun:
    last = tries[-1]
    status = ("done" if "JOB_SUCCESS" in last and "POST_SCRIPT_FAILURE" not in last
              and ("POST_SCRIPT_STARTED" not in last or "POST_SCRIPT_SUCCESS" in last)
              else "failed" if {"JOB_FAILURE", "POST_SCRIPT_FAILURE", "PRE_SCRIPT_FAILURE",
                                "SUBMIT_FAILURE"} & set(last) else "running")
    cid = (last.get("SUBMIT") or last.get("EXECUTE") or (None, None))[1]
    ev = events.get(_cluster(cid)) if cid else None
    if ev is not None and "submit" in ev and ev.get("node") == node:
        submit, execute, end = ev.get("submit"), ev.get("execute"), ev.get("end")
        tin, tout = ev["in"], ev["out"]
        transfers = tuple(tuple(x) for x in (tin, tout) if None not in x)
        transfer = sum(b - a for a, b in transfers) if transfers else None
        queue_end = tin[0] if tin[0] is not None else execute
        run_end = tout[0] if tout[0] is not None else end
        return NodeRun(node, tasks, submit, execute, end, _diff(submit, queue_end),
                       transfer, _diff(execute, run_end), status, len(tries), ev.get("slot"),
                       ev.get("sent"), ev.get("received"), "event log", transfers)
    submit = last.get("SUBMIT", (None,))[0]
    execute = last.get("EXECUTE", (None,))[0]
    end = last.get("JOB_TERMINATED", (None,))[0]
    return NodeRun(node, tasks, submit, execute, end, _diff(submit, execute), None,
                   _diff(execute, end), status, len(tries))


def _cluster(cid: str):
    try:
        return int(str(cid).split(".")[0])
    except ValueError:
        return None


def _diff(a, b):
    return None if a is None or b is None else max(0.0, b - a)


# ============================================================== the picture
def timeline_svg(report: RunReport, *, width: int = 900, row: int = 16) -> str:
    """A Gantt chart of ``report`` as SVG text: one row per node (by submit
    time), grey while it waits in the queue, orange while files transfer,
    blue while it runs (red if it failed); a bar is at least 1 px wide."""
    label_w, pad, axis = 230, 10, 30
    nodes = [n for n in report.nodes if n.submit is not None]
    t0 = report.start or 0.0
    span = max(report.makespan, 1.0)
    plot_w = width - label_w - 2 * pad
    height = axis + pad + row * max(1, len(nodes)) + pad

    def x(t):
        return label_w + pad + (t - t0) / span * plot_w

    def rect(cls, a, b, y, color, title):
        w = max(1.0, x(b) - x(a))
        return (f'<rect class="{cls}" x="{x(a):.1f}" y="{y + 2}" width="{w:.1f}" '
                f'height="{row - 4}" fill="{color}"><title>{escape(title)}</title></rect>')

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(report.workflow)}: last run, {report.makespan:g} s</title>",
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    legend = (("#c8c8c8", "queued"), ("#f0a030", "transfer"), ("#3070c0", "run"),
              ("#d04040", "failed"))
    for i, (color, what) in enumerate(legend):
        lx = 4 + i * 56
        out.append(f'<rect x="{lx}" y="{axis - 19}" width="9" height="9" fill="{color}"/>'
                   f'<text x="{lx + 12}" y="{axis - 11}">{what}</text>')
    step = _tick(span)
    k = 0
    while k * step <= span + 1e-9:
        tx = x(t0 + k * step)
        out.append(f'<line x1="{tx:.1f}" y1="{axis - 6}" x2="{tx:.1f}" y2="{height - pad}" '
                   'stroke="#e0e0e0"/>')
        out.append(f'<text x="{tx:.1f}" y="{axis - 10}" text-anchor="middle">{k * step:g} s'
                   "</text>")
        k += 1
    for i, n in enumerate(nodes):
        y = axis + i * row
        label = n.node if len(n.node) <= 34 else n.node[:31] + "..."
        out.append(f'<g class="node" data-node={quoteattr(n.node)}>')
        out.append(f'<text x="{label_w}" y="{y + row - 4}" text-anchor="end">{escape(label)}'
                   "</text>")
        queue_end = (n.transfers[0][0] if n.transfers and n.execute is not None
                     and n.transfers[0][0] <= n.execute else n.execute)
        if queue_end is not None:
            out.append(rect("queue", n.submit, queue_end, y, "#c8c8c8",
                            f"{n.node}: queued {n.queue or 0:g} s"))
        for a, b in n.transfers:
            out.append(rect("transfer", a, b, y, "#f0a030", f"{n.node}: transfer {b - a:g} s"))
        if n.execute is not None:
            end = n.end if n.end is not None else report.end or n.execute
            run_end = next((a for a, _ in n.transfers if a >= n.execute), end)
            color = "#d04040" if n.status == "failed" else "#3070c0"
            where = f" on {n.slot}" if n.slot else ""
            out.append(rect("run", n.execute, run_end, y, color,
                            f"{n.node}: ran {n.run or 0:g} s{where} ({n.status})"))
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _tick(span: float) -> float:
    """A round step for about 8 ticks over ``span`` seconds."""
    raw = span / 8
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


# ============================================================== command line
def add_commands(cmd) -> None:
    """Add ``plan`` and ``report`` to the CLI; ``cmd(name, func, help)`` makes
    a subcommand taking the workflow path (cli.parser's helper)."""
    p = cmd("plan", cli_plan, "what running the workflow would cost: nodes, tasks and bytes "
            "per node, critical path, simulated makespan next to the lower bound")
    p.add_argument("--slots", type=int, default=None,
                   help="jobs at once (default: this machine's cores)")
    p.add_argument("--job-overhead", type=float, default=None,
                   help=f"seconds per job before it runs (default: "
                        f"{DEFAULT_JOB_OVERHEAD['local']:g}, the local runner's; "
                        f"{DEFAULT_JOB_OVERHEAD['condor']:g} for the stock test pool)")
    p.add_argument("--task-seconds", type=float, default=DEFAULT_TASK_SECONDS,
                   help="seconds per task without a recorded time (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    r = cmd("report", cli_report, "where the time of the last run went: queue wait, "
            "transfer and run time per node, and a timeline picture (SVG)")
    r.add_argument("--svg", default=None,
                   help="write the timeline here (default: <name>.timeline.svg in the workflow)")
    r.add_argument("--json", action="store_true", help="print JSON")


def cli_plan(args) -> int:
    rep = plan_report(args.path, slots=args.slots, job_overhead=args.job_overhead,
                      task_seconds=args.task_seconds)
    print(json.dumps(rep.to_dict(), indent=1) if args.json else rep)
    return 0


def cli_report(args) -> int:
    from .exceptions import WorkflowError

    try:
        rep = run_report(args.path)
    except FileNotFoundError as e:
        raise WorkflowError(f"no run to report on: {e}") from None
    svg = rep.write_svg(args.svg)
    if args.json:
        d = rep.to_dict()
        d["svg"] = str(svg)
        print(json.dumps(d, indent=1))
    else:
        print(rep)
        print(f"timeline: {svg}")
    return 0
