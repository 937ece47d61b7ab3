"""The cost model the planner groups tasks by: what a job costs, what a task
costs, how many jobs run at once, how many bytes a node may hold.

Data
    :class:`CostModel`: ``job_overhead`` seconds per job, ``slots`` jobs at
    once (one-core jobs: cores), ``cores_per_node``, ``max_node_bytes``, and
    per-task seconds and bytes
    (:meth:`CostModel.task_seconds`, :meth:`CostModel.task_bytes`);
    :func:`node_seconds` of a planned node (:func:`threaded_seconds` when it
    runs its tasks on several threads). :class:`History`: the records of
    an earlier write of the same workflow directory, read by
    :func:`read_history`.

Policy
    * ``job_overhead`` (option ``job_overhead``; ``None``: by run mode):
      condor :data:`CONDOR_OVERHEAD` = 6 s, the scheduling latency of a job
      measured on this project's stock-profile 25.14 pool (submit, match,
      start, transfer, the DAGMan log scan; real shared pools take longer;
      measured again for issue 12: a DAG's first level waits 1-16 s from
      SUBMIT to EXECUTE (median 10), later levels 2-4 s on the claims
      DAGMan keeps, ``DAGMAN_HOLD_CLAIM_TIME``; the plans of the reference
      graphs (a) and (e) are the same for any value from 3 to 20 s);
      local :data:`LOCAL_OVERHEAD` = 0.1 s, the measured start of a worker
      process (a fresh Python that imports the shim and cloudpickle).
    * ``slots`` (option ``slots``; ``None``: by run mode): local
      ``max_workers`` or the number of cores; condor :data:`CONDOR_SLOTS` = 4.
    * A task's seconds, first found of: its ``dask.annotate(condor=
      {"duration": s})``; the wall time the worker recorded for the same task
      name in the workflow directory's ``results/`` (the result file's header,
      see ``worker_files.seal``) or, for a task whose value was not written (read
      only inside its grouped node), in its job's stderr log
      (``logs/<node>.err``, ``worker_files.TASK_LINE``); the mean recorded for
      tasks of the same key prefix (the name before its hash: ``inc_...``);
      the mean recorded for that prefix in the other workflows of the same
      parent directory (the
      ``directory`` option's ``condordag-workflows/`` when compute() picks
      the path: "the same function in an earlier workflow"; the
      :data:`SIBLING_WORKFLOWS` newest by their ``results/``, at most
      :data:`SIBLING_SAMPLES` result headers per prefix, read the first time
      the prefix is asked for); :data:`DEFAULT_TASK_SECONDS`.
      Its bytes: the recorded result size by name, else by prefix (here,
      then in those other workflows), else :data:`DEFAULT_TASK_BYTES`.
    * ``cores_per_node`` (option ``cores_per_node``; ``None``: by run mode):
      the most cores (threads) one node may request to run its independent
      tasks at once (``grouping`` says when it does). condor
      :data:`CONDOR_CORES_PER_NODE` = 4, one partitionable slot of this
      project's stock pool (a job asking for more waits for a bigger slot);
      local: ``slots`` (the worker processes' cores). A model built by hand
      (``CostModel()``) takes condor's defaults, like the other fields.
    * ``max_node_bytes`` (default 2 GiB): the planner never puts tasks whose
      results add up past it into one node (their values stay in the job's
      memory and the read/written ones are transferred).
    * ``value_seconds`` (:data:`VALUE_SECONDS` = 0.003 s): what one value
      costs that one node writes and another reads -- its result file
      sealed and written, moved or transferred, loaded. Measured with 10,000
      and 30,000 one-millisecond tasks and a sum, split over nodes: on the
      local runner a node wrote its 1,238 values in 3-4 s (two jobs on this
      2-core machine) and the sum read 9,900 in 4 s; on the test pool a
      node wrote and transferred out 3,000 in 6-7 s and the sum's job
      started 8 s after submission with 29,852 input files (a negotiation
      cycle included). ``grouping`` weighs a split plan with it.

Example::

    >>> m = CostModel(job_overhead=6.0, slots=4)
    >>> m.task_seconds("inc_0123456789abcdef"), m.task_bytes("inc_0123456789abcdef")
    (0.001, 65536)
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import names
from .worker_files import RESULT_ERR, RESULT_OK, TASK_LINE, header_seconds

__all__ = ["CostModel", "History", "Elsewhere", "read_history", "node_seconds",
           "threaded_seconds", "model_for",
           "CONDOR_OVERHEAD", "LOCAL_OVERHEAD", "CONDOR_SLOTS", "CONDOR_CORES_PER_NODE",
           "DEFAULT_TASK_SECONDS", "DEFAULT_TASK_BYTES", "DEFAULT_MAX_NODE_BYTES",
           "VALUE_SECONDS",
           "SIBLING_WORKFLOWS", "SIBLING_SAMPLES"]

CONDOR_OVERHEAD = 6.0
LOCAL_OVERHEAD = 0.1
CONDOR_SLOTS = 4
CONDOR_CORES_PER_NODE = 4
DEFAULT_TASK_SECONDS = 0.001
DEFAULT_TASK_BYTES = 64 * 1024
DEFAULT_MAX_NODE_BYTES = 2 * 2**30
VALUE_SECONDS = 0.003
SIBLING_WORKFLOWS = 16
SIBLING_SAMPLES = 64
SIBLING_LOGS = 256


def prefix_of(task_name: str) -> str:
    """The readable prefix of a content name (``inc_<hex>`` -> ``inc``)."""
    return task_name.rsplit("_", 1)[0]


class Elsewhere:
    """The records of the other workflows of one directory, per key prefix.

    ``parent``: the directory; ``exclude``: the workflow's own folder name.
    A workflow there is a folder with a manifest and a ``results/`` folder;
    the :data:`SIBLING_WORKFLOWS` whose ``results/`` changed last are read,
    each listed once, on the first :meth:`means` call; then per prefix at
    most :data:`SIBLING_SAMPLES` result headers (newest workflow first), and,
    when none of them has a time, the task lines of at most
    :data:`SIBLING_LOGS` job logs per workflow (read once).

    >>> Elsewhere("/nonexistent", "wf").means("inc")
    (None, None)
    """

    def __init__(self, parent, exclude: str = ""):
        self.parent = Path(parent)
        self.exclude = exclude
        self._listed = None  # [(results dir, [file names])], newest first
        self._means: dict = {}
        self._logged = None  # task name -> seconds, from the job logs

    def means(self, prefix: str) -> tuple:
        """``(mean seconds or None, mean bytes or None)`` recorded for tasks
        of key prefix ``prefix`` in the other workflows."""
        got = self._means.get(prefix)
        if got is None:
            got = self._means[prefix] = self._read(prefix)
        return got

    def _list(self) -> list:
        if self._listed is None:
            found = []
            try:
                entries = list(os.scandir(self.parent))
            except OSError:
                entries = []
            for e in entries:
                if e.name == self.exclude or not e.is_dir():
                    continue
                results = os.path.join(e.path, names.RESULTS_DIR)
                try:
                    if not os.path.isfile(os.path.join(e.path, names.MANIFEST)):
                        continue
                    found.append((os.stat(results).st_mtime, results))
                except OSError:
                    continue
            found.sort(reverse=True)
            listed = []
            for _, results in found[:SIBLING_WORKFLOWS]:
                try:
                    listed.append((results, os.listdir(results)))
                except OSError:
                    continue
            self._listed = listed
        return self._listed

    def _read(self, prefix: str) -> tuple:
        secs, sizes = [], []
        for results, files in self._list():
            for f in files:
                if len(sizes) >= SIBLING_SAMPLES:
                    break
                if not f.endswith(".pkl") or prefix_of(f[:-4]) != prefix:
                    continue
                got = _read_one(os.path.join(results, f))
                if got is None:
                    continue
                seconds, size = got
                sizes.append(size)
                if seconds is not None:
                    secs.append(seconds)
        if not secs:
            secs = [v for k, v in self._logs().items() if prefix_of(k) == prefix]
        return (sum(secs) / len(secs) if secs else None,
                sum(sizes) / len(sizes) if sizes else None)

    def _logs(self) -> dict:
        if self._logged is None:
            self._logged = {}
            for results, _ in self._list():
                logs = os.path.join(os.path.dirname(results), names.LOGS_DIR)
                self._logged.update(_task_lines(logs, SIBLING_LOGS))
        return self._logged


def _task_lines(logs, limit=None) -> dict:
    """task name -> seconds, from the ``worker_files.TASK_LINE`` lines of the job
    stderr logs (``*.err``) in the folder ``logs`` (at most ``limit`` files)."""
    out: dict = {}
    try:
        files = [f for f in os.listdir(logs) if f.endswith(".err")]
    except OSError:
        return out
    for f in files[:limit]:
        try:
            with open(os.path.join(logs, f), "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.startswith(TASK_LINE):
                continue
            parts = line[len(TASK_LINE):].split()
            if len(parts) >= 2:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    continue
    return out


def _read_one(path: str):
    """``(seconds or None, result bytes)`` of a successful result file, else None."""
    try:
        with open(path, "rb") as f:
            head = f.readline(300)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    rec = _record(head)
    if rec is None or not rec[0]:
        return None
    return rec[1], max(size - len(head), 0)


@dataclass(frozen=True)
class History:
    """Recorded ``seconds`` and ``bytes`` per task name, and their means per
    key prefix; ``done``: the task names whose result files exist;
    ``elsewhere``: the other workflows of the same directory
    (:class:`Elsewhere`, asked per prefix when this one has no record)."""

    seconds: dict = field(default_factory=dict)
    bytes: dict = field(default_factory=dict)
    prefix_seconds: dict = field(default_factory=dict)
    prefix_bytes: dict = field(default_factory=dict)
    done: frozenset = frozenset()
    elsewhere: Elsewhere | None = None


def read_history(path) -> History:
    """The records of the workflow directory ``path`` (empty if it has none),
    with the other workflows of its parent directory as ``elsewhere``.

    Reads only the first line of each ``results/*.pkl`` (``seal``'s header).
    A file without a recorded time still counts as done (write checks it
    properly before reusing it); an unreadable one is skipped."""
    path = Path(path)
    elsewhere = Elsewhere(path.parent, path.name)
    results = path / names.RESULTS_DIR
    try:
        entries = list(os.scandir(results))
    except OSError:
        return History(elsewhere=elsewhere)
    seconds: dict = {}
    sizes: dict = {}
    done = set()
    by_prefix: dict = {}
    for e in entries:
        if not e.name.endswith(".pkl") or not e.is_file():
            continue
        stem = e.name[:-4]
        try:
            with open(e.path, "rb") as f:
                head = f.readline(300)
        except OSError:
            continue
        rec = _record(head)
        if rec is None:
            continue
        ok, secs = rec
        if not ok:
            continue
        done.add(stem)
        size = max(e.stat().st_size - len(head), 0)
        sizes[stem] = size
        acc = by_prefix.setdefault(prefix_of(stem), [0.0, 0, 0, 0])
        acc[2] += size
        acc[3] += 1
        if secs is not None:
            seconds[stem] = secs
            acc[0] += secs
            acc[1] += 1
    for stem, secs in _task_lines(path / names.LOGS_DIR).items():
        if stem not in seconds:  # a value read only inside its node
            seconds[stem] = secs
            acc = by_prefix.setdefault(prefix_of(stem), [0.0, 0, 0, 0])
            acc[0] += secs
            acc[1] += 1
    pse = {p: a[0] / a[1] for p, a in by_prefix.items() if a[1]}
    pby = {p: a[2] / a[3] for p, a in by_prefix.items() if a[3]}
    return History(seconds, sizes, pse, pby, frozenset(done), elsewhere)


def _record(head: bytes):
    """``(is_result, seconds or None)`` from a result header, None if not ours."""
    if head.startswith(RESULT_OK):
        return True, header_seconds(head)
    if head.startswith(RESULT_ERR):
        return False, None
    return None


@dataclass(frozen=True)
class CostModel:
    """See the module docstring. ``durations``: task name -> seconds the
    user annotated (``condor={"duration": s}``)."""

    job_overhead: float = CONDOR_OVERHEAD
    slots: int = CONDOR_SLOTS
    cores_per_node: int = CONDOR_CORES_PER_NODE
    max_node_bytes: int = DEFAULT_MAX_NODE_BYTES
    value_seconds: float = VALUE_SECONDS
    history: History = History()
    durations: dict = field(default_factory=dict)
    default_seconds: float = DEFAULT_TASK_SECONDS
    default_bytes: int = DEFAULT_TASK_BYTES

    def task_seconds(self, name: str) -> float:
        got = self.durations.get(name)
        if got is not None:
            return got
        h = self.history
        got = h.seconds.get(name)
        if got is None and h.prefix_seconds:
            got = h.prefix_seconds.get(prefix_of(name))
        if got is None and h.elsewhere is not None:
            got = h.elsewhere.means(prefix_of(name))[0]
        return self.default_seconds if got is None else got

    def knows(self, name: str) -> bool:
        """Whether :meth:`task_seconds` of ``name`` is more than the default:
        annotated, or recorded for it, its key prefix, or that prefix in the
        other workflows of the directory."""
        if name in self.durations or name in self.history.seconds:
            return True
        h = self.history
        if h.prefix_seconds and prefix_of(name) in h.prefix_seconds:
            return True
        return h.elsewhere is not None and h.elsewhere.means(prefix_of(name))[0] is not None

    def task_bytes(self, name: str) -> float:
        h = self.history
        got = h.bytes.get(name)
        if got is None and h.prefix_bytes:
            got = h.prefix_bytes.get(prefix_of(name))
        if got is None and h.elsewhere is not None:
            got = h.elsewhere.means(prefix_of(name))[1]
        return self.default_bytes if got is None else got


def task_seconds(model: CostModel, name: str) -> float:
    """Estimated seconds of the task named ``name``."""
    return model.task_seconds(name)


def node_seconds(model: CostModel, node) -> float:
    """Estimated run time of a planned node (its tasks in one job, without
    the job overhead): the sum of its tasks' seconds, or for a node of
    several ``threads`` :func:`threaded_seconds`; a ``cluster`` node's procs
    run at once (its longest task); a ``procid`` node runs its task in every
    proc at once."""
    secs = {t.name: model.task_seconds(t.name) for t in node.tasks}
    if node.mode == "cluster":
        return max(secs.values(), default=0.0)
    if getattr(node, "threads", 1) > 1:
        return threaded_seconds([t.name for t in node.tasks],
                                {t.name: t.reads for t in node.tasks}, secs, node.threads)
    return sum(secs.values())


def threaded_seconds(order: list, reads: dict, seconds: dict, threads: int) -> float:
    """Seconds to run the tasks ``order`` (a dependency order) of one node on
    ``threads`` threads: each task, in that order, starts on the thread free
    first, once the tasks it reads (``reads``: name -> names; names not in
    ``order`` are inputs, there already) have finished.

    >>> threaded_seconds(["a", "b", "c"], {"c": ("a", "b")}, {"a": 2, "b": 2, "c": 1}, 2)
    3.0
    """
    free = [0.0] * max(int(threads), 1)
    finish: dict = {}
    for t in order:
        ready = max((finish[r] for r in reads.get(t, ()) if r in finish), default=0.0)
        start = max(heapq.heappop(free), ready)
        finish[t] = start + float(seconds[t])
        heapq.heappush(free, finish[t])
    return max(finish.values(), default=0.0)


def model_for(opts, run: str, history: History | None = None,
              durations: dict | None = None) -> CostModel:
    """The cost model of resolved options ``opts`` for run mode ``run``
    (``"condor"``, ``"local"`` or ``"none"``; ``none`` plans for condor)."""
    overhead = opts.job_overhead
    if overhead is None:
        overhead = LOCAL_OVERHEAD if run == "local" else CONDOR_OVERHEAD
    slots = opts.slots
    if slots is None:
        slots = (opts.max_workers or os.cpu_count() or 1) if run == "local" else CONDOR_SLOTS
    cores = opts.cores_per_node
    if cores is None:
        cores = slots if run == "local" else CONDOR_CORES_PER_NODE
    return CostModel(job_overhead=float(overhead), slots=int(slots), cores_per_node=int(cores),
                     max_node_bytes=int(opts.max_node_bytes), history=history or History(),
                     durations=durations or {})
