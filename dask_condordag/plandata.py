"""The plan's data: frozen dataclasses that ``plan`` builds and the later steps read.

Data
    :class:`Plan`: the DAG nodes (:class:`PlannedNode`, each a group of
    :class:`PlannedTask`\\ s run by one job or one ``queue N`` cluster), the
    large constants written once (:class:`PlannedData`), what each requested
    key resolves to (:class:`Output`), and the maps between task names,
    nodes and files. Plus :data:`UNANNOTATED` (a task without
    annotations) and :func:`func_of` (the function a task calls).

Policy
    * Everything is frozen and compares by value; ``render`` turns a plan into
      text and ``write`` into files, neither changes it (``write`` cuts a
      plan down to the tasks that must run with ``dataclasses.replace``).
    * Names are the plan's content names (``plan``); a task's expression is
      lowered (``graph``) with references renamed to value names
      (``planwalk``).
    * This module imports only ``names`` and ``settings`` of the package, so
      every module of the planner (``plan``, ``planwalk``, ``plannodes``,
      ``plangroups``) can import it; ``plan`` re-exports the classes.

Example::

    >>> t = PlannedTask("len_0123456789abcdef", "x", (CALL, len, (), ()), ())
    >>> n = PlannedNode(t.name, (t,), (), {t.name: ("results/x.pkl",)}, ())
    >>> n.procs, n.settings == UNANNOTATED, func_of(t) is len
    (1, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable

from . import names
from .names import CALL
from .settings import NodeSettings

__all__ = ["PlannedTask", "PlannedData", "PlannedNode", "Output", "Plan", "UNANNOTATED",
           "func_of"]


@dataclass(frozen=True)
class PlannedTask:
    """One dask task inside a DAG node."""

    name: str  # content name, also the stem of its result file
    key: Hashable
    expr: tuple  # lowered; references are value names (task or data names)
    reads: tuple  # value names it references, in order


@dataclass(frozen=True)
class PlannedData:
    """A large constant, written once to ``data/`` and shared by the nodes."""

    name: str
    key: Hashable
    value: Any

    @property
    def file(self) -> str:
        return names.data_file(self.name)


@dataclass(frozen=True)
class PlannedNode:
    """One DAG node: a group of tasks run by one HTCondor job, or by one
    cluster of ``procs`` jobs (``queue N``).

    ``mode``: ``"single"`` (the tasks run in order in one job), ``"procid"``
    (one task run by every proc with its own ``procid``; its value is the list
    of the procs' results), ``"cluster"`` (proc i runs task i). Its payload
    goes into a pack that write chooses (the manifest's ``payload``).
    ``threads``: how many of its tasks the worker may run at once (a
    ``single`` node the planner gave several cores: ``grouping``; its
    settings then request that many cpus).
    """

    name: str
    tasks: tuple  # PlannedTask, dependencies first
    inputs: tuple  # value names read from outside the node
    outputs: dict  # task name -> tuple of result files (one per proc for clusters)
    parents: tuple  # node names (data and ordering-only)
    settings: NodeSettings = NodeSettings()
    mode: str = "single"
    threads: int = 1

    @property
    def procs(self) -> int:
        if self.mode == "procid":
            return self.settings.processes
        return len(self.tasks) if self.mode == "cluster" else 1


@dataclass(frozen=True)
class Output:
    """What a requested key resolves to: a task's result, a data file, or an
    inline constant (``value``)."""

    key: Hashable
    kind: str  # "task" | "data" | "inline"
    name: str = ""
    value: Any = None


@dataclass(frozen=True)
class Plan:
    name: str
    nodes: dict  # node name -> PlannedNode, parents first
    data: dict  # data name -> PlannedData
    outputs: tuple  # Output, aligned with the requested keys
    task_node: dict  # task name -> node name
    files: dict = field(default_factory=dict)  # value name -> tuple of files
    listed: frozenset = frozenset()  # value names whose files form a list (procid)
    reruns: dict = field(default_factory=dict)  # task name -> why it always reruns
    stable: dict = field(default_factory=dict)  # value name -> its token without the nonce
    durations: dict = field(default_factory=dict)  # task name -> annotated seconds (cost)
    # group="auto": the cost model's figures the plan was made with (job_overhead,
    # slots, cores_per_node, max_node_bytes); the manifest keeps them for plan_report
    cost: dict | None = None

    def files_of(self, value_name: str) -> tuple:
        """The workflow-relative file(s) holding a value (task result or data)."""
        if value_name in self.data:
            return (self.data[value_name].file,)
        return self.files[value_name]


#: the settings of a task without annotations (``plan`` records only the other ones)
UNANNOTATED = NodeSettings()


def func_of(task: PlannedTask):
    """The function ``task`` calls (None: its expression is not a call)."""
    e = task.expr
    return e[1] if e[0] == CALL else None
