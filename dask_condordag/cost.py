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
      start, transfer, the DAGMan log scan; real shared pools take longer);
      local :data:`LOCAL_OVERHEAD` = 0.1 s, the measured start of a worker
      process (a fresh Python that imports the shim and cloudpickle).
    * ``slots`` (option ``slots``; ``None``: by run mode): local
      ``max_workers`` or the number of cores; condor :data:`CONDOR_SLOTS` = 4.
    * A task's seconds, first found of: its ``dask.annotate(condor=
      {"duration": s})``; the wall time the worker recorded for the same task
      name in the workflow directory's ``results/`` (the result file's header,
      see ``worker_files.seal``); the mean recorded for tasks of the same key prefix
      (the name before its hash: ``inc_...``); :data:`DEFAULT_TASK_SECONDS`.
      Its bytes: the recorded result size by name, else by prefix, else
      :data:`DEFAULT_TASK_BYTES`.
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
from .worker_files import RESULT_ERR, RESULT_OK, header_seconds

__all__ = ["CostModel", "History", "read_history", "node_seconds", "threaded_seconds",
           "model_for",
           "CONDOR_OVERHEAD", "LOCAL_OVERHEAD", "CONDOR_SLOTS", "CONDOR_CORES_PER_NODE",
           "DEFAULT_TASK_SECONDS",
           "DEFAULT_TASK_BYTES", "DEFAULT_MAX_NODE_BYTES"]

CONDOR_OVERHEAD = 6.0
LOCAL_OVERHEAD = 0.1
CONDOR_SLOTS = 4
CONDOR_CORES_PER_NODE = 4
DEFAULT_TASK_SECONDS = 0.001
DEFAULT_TASK_BYTES = 64 * 1024
DEFAULT_MAX_NODE_BYTES = 2 * 2**30


def prefix_of(task_name: str) -> str:
    """The readable prefix of a content name (``inc_<hex>`` -> ``inc``)."""
    return task_name.rsplit("_", 1)[0]


@dataclass(frozen=True)
class History:
    """Recorded ``seconds`` and ``bytes`` per task name, and their means per
    key prefix; ``done``: the task names whose result files exist."""

    seconds: dict = field(default_factory=dict)
    bytes: dict = field(default_factory=dict)
    prefix_seconds: dict = field(default_factory=dict)
    prefix_bytes: dict = field(default_factory=dict)
    done: frozenset = frozenset()


def read_history(path) -> History:
    """The records of the workflow directory ``path`` (empty if it has none).

    Reads only the first line of each ``results/*.pkl`` (``seal``'s header).
    A file without a recorded time still counts as done (write checks it
    properly before reusing it); an unreadable one is skipped."""
    results = Path(path) / names.RESULTS_DIR
    try:
        entries = list(os.scandir(results))
    except OSError:
        return History()
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
    pse = {p: a[0] / a[1] for p, a in by_prefix.items() if a[1]}
    pby = {p: a[2] / a[3] for p, a in by_prefix.items() if a[3]}
    return History(seconds, sizes, pse, pby, frozenset(done))


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
        return self.default_seconds if got is None else got

    def task_bytes(self, name: str) -> float:
        h = self.history
        got = h.bytes.get(name)
        if got is None and h.prefix_bytes:
            got = h.prefix_bytes.get(prefix_of(name))
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
