"""The node status file (``NODE_STATUS_FILE``): its codes, writing it, reading it.

Data
    The node status codes (src/condor_dagman/node.cpp ``status_t_names``;
    manual: automated-workflows/dagman-node-status-file.rst), as numbers,
    DAGMan's names (``STATUS_NAMES``) and words for people
    (``STATUS_WORDS``); DAGMan's DAG status codes (``DAG_STATUS_*``). Out: the file's text for the state of the local
    runner's ``dagman.Dagman`` (:func:`status_text`). In: the file's text,
    as a :class:`DagState` (:func:`read_status_file`).

Policy
    * One module owns the format: the local runner writes through
      :func:`status_text` (``local/files.py`` decides when), and ``condor.py``,
      ``workflow.py`` and ``follow.py`` read through :func:`read_status_file`
      the file DAGMan or our runner wrote.
    * Written as src/condor_dagman/dag.cpp ``DumpNodeStatus`` writes it: a
      ``DagStatus`` ad, one ``NodeStatus`` ad per node, a ``StatusEnd`` ad.
    * Read with a small parser of new ClassAds of literals (no HTCondor
      bindings needed); a file caught mid-rewrite reads as None.

Example::

    >>> st = dag_state(parse_classads(
    ...     '[ Type = "DagStatus"; DagStatus = 5; NodesTotal = 1; NodesDone = 1; ]'
    ...     '[ Type = "NodeStatus"; Node = "a"; NodeStatus = 5; ]'))
    >>> st.ok, st.nodes["a"].word
    (True, 'done')
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["STATUS_NOT_READY", "STATUS_READY", "STATUS_PRERUN", "STATUS_SUBMITTED",
           "STATUS_POSTRUN", "STATUS_DONE", "STATUS_ERROR", "STATUS_FUTILE", "STATUS_NAMES",
           "STATUS_WORDS", "DAG_STATUS_OK", "DAG_STATUS_ERROR", "DAG_STATUS_NODE_FAILED",
           "DAG_STATUS_ABORT", "DAG_STATUS_RM", "status_text", "parse_classads", "dag_state", "read_status_file",
           "DagState", "NodeState"]

# Node status values and names (src/condor_dagman/node.cpp status_t_names)
(STATUS_NOT_READY, STATUS_READY, STATUS_PRERUN, STATUS_SUBMITTED, STATUS_POSTRUN,
 STATUS_DONE, STATUS_ERROR, STATUS_FUTILE) = range(8)
STATUS_NAMES = ("STATUS_NOT_READY", "STATUS_READY", "STATUS_PRERUN", "STATUS_SUBMITTED",
                "STATUS_POSTRUN", "STATUS_DONE", "STATUS_ERROR", "STATUS_FUTILE")
STATUS_WORDS = ("not ready", "ready", "pre script", "queued", "post script", "done",
                "failed", "futile")
#: DAGMan's DagStatus (src/condor_dagman/dagman_main.h): ``$DAG_STATUS`` of a
#: script (manual: dagman-scripts.rst), the DAGMan job ad's ``DAG_Status``, and
#: the note on the status file's ``DagStatus`` ad
DAG_STATUS_OK, DAG_STATUS_ERROR, DAG_STATUS_NODE_FAILED, DAG_STATUS_ABORT, DAG_STATUS_RM = \
    range(5)


# -- writing ------------------------------------------------------------------------------


def _classad_str(s: str) -> str:
    """A ClassAd string literal (what ClassAdUnParser writes)."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def status_text(m, dag_name: str, *, final: bool, start: float, min_interval: int) -> str:
    """The node status file for the state of ``m`` (a ``dagman.Dagman``)."""
    nodes = m.nodes.values()
    done = len(m.done)
    fin = final and (not m.aborted or m.finished_at_abort)
    mark = False
    note = ""
    dag_job_status = STATUS_SUBMITTED
    if fin and (done == len(m.nodes) or (m.aborted and m.dag_status == DAG_STATUS_OK)):
        dag_job_status, note, mark = STATUS_DONE, "success", True
    elif fin and m.failed_count > 0:
        dag_job_status, mark = STATUS_ERROR, True
        note = "aborted" if m.dag_status == DAG_STATUS_ABORT else "failed"
    elif m.aborted:
        dag_job_status, note, mark = STATUS_ERROR, "aborted", True
    count = {s: sum(1 for x in nodes if x.status == s) for s in range(8)}
    # NodesQueued is DAGMan's count of nodes with jobs in the queue
    # (Dag::NumNodesSubmitted), whatever their status.
    pre, post = count[STATUS_PRERUN], count[STATUS_POSTRUN]
    queued = sum(1 for x in nodes if x.queued > 0)
    failed = m.failed_count
    idle = sum(len(x.idle) for x in nodes)
    if mark:
        failed += pre + queued + post
        pre = queued = post = idle = 0
    in_readyq = {e[2] for e in m.readyq}
    unready = count[STATUS_NOT_READY] + sum(
        1 for x in nodes if x.status == STATUS_READY and x.name not in in_readyq)
    out = ["[", '  Type = "DagStatus";', "  DagFiles = {",
           f"    {_classad_str(dag_name)}", "  };",
           f"  Timestamp = {int(start)}; /* {_classad_str(time.ctime(int(start)))} */",
           f"  DagStatus = {dag_job_status}; /* "
           f"{_classad_str(STATUS_NAMES[dag_job_status] + ' (' + note + ')')} */",
           f"  NodesTotal = {len(m.nodes)};", f"  NodesDone = {done};",
           f"  NodesPre = {pre};", f"  NodesQueued = {queued};", f"  NodesPost = {post};",
           f"  NodesReady = {len(m.readyq)};", f"  NodesUnready = {unready};",
           f"  NodesFutile = {m.futile_count};", f"  NodesFailed = {failed};",
           "  JobProcsHeld = 0;", f"  JobProcsIdle = {idle}; /* includes held */", "]"]
    for x in nodes:
        out += _node_ad(x, mark)
    end = time.time()
    if final:
        nxt, nxt_s = 0, "none"
    else:
        nxt = int(end) + min_interval
        nxt_s = time.ctime(nxt)
    out += ["[", '  Type = "StatusEnd";',
            f"  EndTime = {int(end)}; /* {_classad_str(time.ctime(int(end)))} */",
            f"  NextUpdate = {nxt}; /* {_classad_str(nxt_s)} */", "]"]
    return "\n".join(out) + "\n"


def _node_ad(x, mark: bool) -> list:
    status, detail, procs = x.status, "", x.queued if x.status == STATUS_SUBMITTED else 0
    if status == STATUS_SUBMITTED:
        if mark:
            status, detail, procs = STATUS_ERROR, "Was STATUS_SUBMITTED", 0
        else:
            detail = "idle" if 0 in x.idle else "not_idle"
    elif status == STATUS_ERROR:
        detail = x.error
    elif status in (STATUS_PRERUN, STATUS_POSTRUN):
        if mark:
            detail = f"Was {STATUS_NAMES[status]}"
            status = STATUS_ERROR
    elif status == STATUS_FUTILE:
        detail = "Had an ancestor node fail"
    elif status == STATUS_DONE and x.predone:
        detail = "User defined as DONE"
    return ["[", '  Type = "NodeStatus";', f"  Node = {_classad_str(x.name)};",
            f"  NodeStatus = {status}; /* {_classad_str(STATUS_NAMES[status])} */",
            f"  StatusDetails = {_classad_str(detail)};",
            f"  RetryCount = {x.retries};", f"  JobProcsQueued = {procs};",
            "  JobProcsHeld = 0;", "]"]


# -- reading ------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(/\*.*?\*/)|("(?:[^"\\]|\\.)*")|([\[\]{};=,])|([^\s\[\]{};=,"]+))',
                    re.S)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r", "/": "/"}


def _unquote(s: str) -> str:
    return re.sub(r'\\(.)', lambda m: _ESCAPES.get(m.group(1), m.group(1)), s[1:-1])


def _value(tok: str):
    if tok.startswith('"'):
        return _unquote(tok)
    low = tok.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "undefined":
        return None
    try:
        return int(tok)
    except ValueError:
        try:
            return float(tok)
        except ValueError:
            return tok


def parse_classads(text: str) -> list:
    """Parse a sequence of new-format ClassAds of literals (strings, numbers,
    booleans, lists of literals) -- what DAGMan writes in a node status file.

    >>> parse_classads('[ Type = "DagStatus"; DagFiles = { "a.dag" }; NodesDone = 3; /* c */ ]')
    [{'Type': 'DagStatus', 'DagFiles': ['a.dag'], 'NodesDone': 3}]
    """
    toks = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read a ClassAd at character {pos}: {text[pos:pos + 30]!r}")
        pos = m.end()
        if m.group(1):
            continue
        toks.append(m.group(2) or m.group(3) or m.group(4))
    ads, i = [], 0
    while i < len(toks):
        if toks[i] != "[":
            raise ValueError(f"expected '[' starting a ClassAd, got {toks[i]!r}")
        i += 1
        ad = {}
        while toks[i] != "]":
            name, eq = toks[i], toks[i + 1]
            if eq != "=":
                raise ValueError(f"expected '=' after {name!r}, got {eq!r}")
            i += 2
            if toks[i] == "{":
                items = []
                i += 1
                while toks[i] != "}":
                    if toks[i] != ",":
                        items.append(_value(toks[i]))
                    i += 1
                value = items
            else:
                value = _value(toks[i])
            ad[name] = value
            i += 1
            if toks[i] == ";":
                i += 1
        ads.append(ad)
        i += 1
    return ads


@dataclass(frozen=True)
class NodeState:
    """One ``NodeStatus`` ad of the node status file."""

    name: str
    status: int
    details: str = ""
    retries: int = 0
    procs_queued: int = 0
    procs_held: int = 0

    @property
    def word(self) -> str:
        return STATUS_WORDS[self.status] if 0 <= self.status < len(STATUS_WORDS) else "?"


@dataclass(frozen=True)
class DagState:
    """The node status file: the ``DagStatus`` ad's counts and every node's state."""

    status: int
    total: int
    done: int
    pre: int = 0
    queued: int = 0
    post: int = 0
    ready: int = 0
    unready: int = 0
    futile: int = 0
    failed: int = 0
    procs_held: int = 0
    procs_idle: int = 0  # includes held (DAGMan's comment in the file)
    timestamp: int = 0
    next_update: int | None = None
    nodes: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """DAGMan wrote its last update: the DAG succeeded or failed."""
        return self.status in (STATUS_DONE, STATUS_ERROR)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_DONE

    def failed_nodes(self) -> dict:
        """node -> DAGMan's reason, in the file's order."""
        return {n.name: n.details for n in self.nodes.values() if n.status == STATUS_ERROR}

    def running_nodes(self) -> int:
        """Nodes with a job in the queue that is not idle (DAGMan writes
        StatusDetails "idle" when all its procs are idle)."""
        return sum(1 for n in self.nodes.values()
                   if n.status == STATUS_SUBMITTED and n.details != "idle")


def dag_state(ads: list) -> DagState:
    head = next((a for a in ads if a.get("Type") == "DagStatus"), None)
    if head is None:
        raise ValueError("no DagStatus ClassAd")
    end = next((a for a in ads if a.get("Type") == "StatusEnd"), {})
    nodes = {}
    for a in ads:
        if a.get("Type") == "NodeStatus":
            nodes[a["Node"]] = NodeState(a["Node"], int(a.get("NodeStatus", 0)),
                                         a.get("StatusDetails") or "",
                                         int(a.get("RetryCount", 0)),
                                         int(a.get("JobProcsQueued", 0)),
                                         int(a.get("JobProcsHeld", 0)))
    g = head.get
    return DagState(status=int(g("DagStatus", 0)), total=int(g("NodesTotal", 0)),
                    done=int(g("NodesDone", 0)), pre=int(g("NodesPre", 0)),
                    queued=int(g("NodesQueued", 0)), post=int(g("NodesPost", 0)),
                    ready=int(g("NodesReady", 0)), unready=int(g("NodesUnready", 0)),
                    futile=int(g("NodesFutile", 0)), failed=int(g("NodesFailed", 0)),
                    procs_held=int(g("JobProcsHeld", 0)), procs_idle=int(g("JobProcsIdle", 0)),
                    timestamp=int(g("Timestamp", 0)), next_update=end.get("NextUpdate"),
                    nodes=nodes)


def read_status_file(path) -> DagState | None:
    """The node status file at ``path``; None if it is not there (yet) or is
    being rewritten (DAGMan writes a temporary file and renames it, but a
    reader on a network file system may still see a partial file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        return dag_state(parse_classads(text))
    except (OSError, ValueError, KeyError, IndexError):
        return None
