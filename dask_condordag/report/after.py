"""Where the time of a workflow's last run went, from DAGMan's records.

Data
    In: a workflow directory that has run: the ``JOBSTATE_LOG`` its DAG
    names and, on a pool, the node job event log DAGMan keeps beside the DAG
    (``<dag>.nodes.log``). Out: a :class:`RunReport` (:func:`run_report`):
    one :class:`NodeRun` per node of the last run -- when it was submitted,
    started and ended, its queue wait, transfer and run seconds, its slot,
    its status and tries -- printable as a table (``tables.run_text``), as
    JSON (``to_dict()``) and as an SVG timeline (``write_svg()``).

Policy
    * A node's times come from the event log where it holds the node's job
      (HTCondor events ``000`` submitted, ``040`` input/output transfer,
      ``001`` executing, ``005`` terminated: manual
      codes-other-values/job-event-log-codes.rst; a cluster counts for a
      node only when its ``DAGNodeName`` says so), else from the jobstate
      log (``SUBMIT``, ``EXECUTE``, ``JOB_TERMINATED``; whole seconds, as
      src/condor_dagman/jobstate_log.cpp writes them).
    * Only the last run counts: the lines after the jobstate log's last
      ``DAGMAN_STARTED``. A node's last try counts; a new try starts at
      each ``SUBMIT`` (or ``PRE_SCRIPT_STARTED``) of the node.
    * queue = submitted -> transfer or execution starts; transfer = input
      plus output transfer; run = executing -> output transfer or
      termination. Status: "done" (``JOB_SUCCESS`` and no failed POST
      script), "failed" (a ``*_FAILURE`` event), else "running".
    * No log, no report: a DAG without ``JOBSTATE_LOG``, or one that never
      ran, raises FileNotFoundError (the CLI says "no run to report on").

Example::

    >>> attempts = _last_run(
    ...     "100 INTERNAL *** DAGMAN_STARTED 1.0 ***\\n"
    ...     "101 a SUBMIT 2.0 - - 1\\n102 a EXECUTE 2.0 - - 1\\n"
    ...     "105 a JOB_TERMINATED 2.0 - - 1\\n105 a JOB_SUCCESS 0 - - 1\\n")
    >>> r = _node_run("a", 1, attempts["a"], {})
    >>> r.status, r.queue, r.run, r.source
    ('done', 1.0, 3.0, 'jobstate log')
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import dagfile
from ..workflow import Workflow
from .tables import run_text
from .timeline import timeline_file, timeline_svg

__all__ = ["run_report", "RunReport", "NodeRun", "as_workflow"]


def as_workflow(wf_or_path) -> Workflow:
    """``wf_or_path`` if it is a :class:`~dask_condordag.Workflow`, else the
    workflow in that directory."""
    return wf_or_path if isinstance(wf_or_path, Workflow) else Workflow.open(wf_or_path)


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
        return run_text(self)

    def write_svg(self, path=None) -> Path:
        """Write :func:`timeline_svg` to ``path`` (default: ``<name>.timeline.svg``
        in the workflow directory); returns the path."""
        p = Path(path) if path is not None else Path(self.path) / timeline_file(self.workflow)
        p.write_text(timeline_svg(self), encoding="utf-8")
        return p


def run_report(wf_or_path, *, dag=None) -> RunReport:
    """Where the time of the last run of the workflow at ``wf_or_path`` went
    (see the module docstring). FileNotFoundError when the DAG names no
    jobstate log or it has not been written (the workflow never ran).
    ``dag``: the workflow's DAG file already parsed (``dagfile.DagFile``)."""
    wf = as_workflow(wf_or_path)
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
