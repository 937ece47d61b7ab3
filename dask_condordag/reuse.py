"""Which tasks of a workflow written before need not run again: reuse per task.

Data
    In: the :class:`~dask_condordag.plandata.Plan` about to be written, the
    workflow directory and its manifest (the same workflow, written before).
    Out: the plan cut down to the tasks that must run, the nodes to write
    ``DONE``, and the task names whose results are reused.

Policy
    * A result is reused only when it is whole and its own
      (``results.verify``: sealed, checksum, its own path). A damaged one is
      moved to ``logs/corrupt/`` (kept for inspection, never loaded), so its
      task runs again. Result names are content hashes: a result that exists
      belongs to the same task, whatever grouping wrote it.
    * A task of a ``single`` node must run when its result is missing and it
      is requested, or read by a task that must run, or an output of a node
      another running node waits for without reading it (``after=``). A node
      with nothing to run is written ``DONE`` (``JOB ... DONE``: DAGMan
      takes it as finished and does not submit it); a node
      where only some tasks must run keeps just those and reads the reused
      results it needs as inputs. ``processes``/``cluster`` nodes are reused
      whole or not at all.
    * First, the results that failed nodes of several tasks kept in their
      error reports (``results.keep_finished``) become result files, so the
      tasks that finished before the failure are not computed again.

Example::

    >>> from operator import add
    >>> from dask_condordag.graph import read_graph
    >>> from dask_condordag.plan import make_plan
    >>> plan = make_plan(read_graph({"a": (add, 1, 1)}, ["a"]), name="demo")
    >>> cut, done, have = reusable_nodes(plan, Path("/nonexistent"))  # no results: all run
    >>> cut is plan, done, have
    (True, set(), set())
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from . import names
from .exceptions import WorkflowError
from .results import is_error, keep_finished, read_error, verify

__all__ = ["reusable_nodes"]


def _reusable(path: Path, quarantine: Path) -> bool:
    """Is the result at ``path`` whole and its own? A damaged one is moved to
    ``quarantine`` (kept for inspection, never loaded) so that its node reruns."""
    if verify(path):
        return True
    if path.exists() and not is_error(path):
        quarantine.mkdir(parents=True, exist_ok=True)
        os.replace(path, quarantine / f"{path.name}.{int(time.time())}")
    return False


def reusable_nodes(plan, path: Path, existing: dict | None = None) -> tuple:
    """``(the plan to run, the nodes written DONE, the tasks whose results
    are reused)``: reuse per task.

    A task of a ``single`` node whose result file at ``path`` is whole is
    not computed again, whatever grouping wrote it; damaged results are set
    aside in ``logs/corrupt``. A task must run when its result is missing
    and it is requested or read by a task that must run (or is an output of
    a node another running node waits for without reading it: ``after=``).
    A node with nothing to run is written ``DONE``; a node where only some
    tasks must run keeps just those, and reads the reused results it needs as
    inputs. ``processes``/``cluster`` nodes are reused whole, as before.
    First the results the failed nodes of the ``existing`` workflow kept in
    their error reports (``worker_errors.keep_finished``) become result files."""
    if existing:
        _keep_finished(existing, path)
    quarantine = path / names.LOGS_DIR / "corrupt"
    try:  # one listing instead of a stat per task
        present = set(os.listdir(path / names.RESULTS_DIR))
    except FileNotFoundError:
        present = set()
    have = set()
    for node in plan.nodes.values():
        if node.mode == "single":
            for t in node.tasks:
                rel = names.result_file(t.name)
                if rel.rpartition("/")[2] in present and _reusable(path / rel, quarantine):
                    have.add(t.name)
    task_node = plan.task_node
    needed = {o.name for o in plan.outputs if o.kind == "task"}
    run: dict = {}  # node name -> tasks to run (all of them for clusters)
    for node in reversed(plan.nodes.values()):
        if node.mode != "single":
            if node.outputs and all(_reusable(path / f, quarantine)
                                    for files in node.outputs.values() for f in files):
                continue
            todo = list(node.tasks)
        else:
            todo = []
            for t in reversed(node.tasks):
                if t.name in needed and t.name not in have:
                    todo.append(t)
                    needed.update(t.reads)
            todo.reverse()
        if not todo:
            continue
        run[node.name] = todo
        for t in todo:
            needed.update(t.reads)
        read_nodes = {task_node.get(r) for t in node.tasks for r in t.reads}
        for p in node.parents:
            if p not in read_nodes:  # waited for without reading (after=): as before
                needed.update(plan.nodes[p].outputs)
    done = {n for n in plan.nodes if n not in run}
    return _pruned(plan, run, have), done, have


def _pruned(plan, run: dict, have: set):
    """``plan`` with each ``single`` node cut down to the tasks in ``run``
    (the reused results they read become inputs); other nodes as they are."""
    nodes, files = {}, dict(plan.files)
    changed = False
    for name, node in plan.nodes.items():
        todo = run.get(name)
        if todo is None or node.mode != "single" or len(todo) == len(node.tasks):
            nodes[name] = node
            continue
        changed = True
        inside = {t.name for t in todo}
        inputs = tuple(dict.fromkeys(r for t in todo for r in t.reads if r not in inside))
        for r in inputs:
            if r in have and r not in files:
                files[r] = (names.result_file(r),)
        nodes[name] = dataclasses.replace(
            node, tasks=tuple(todo), inputs=inputs,
            outputs={t: f for t, f in node.outputs.items() if t in inside})
    return dataclasses.replace(plan, nodes=nodes, files=files) if changed else plan


def _keep_finished(existing: dict, path: Path) -> None:
    """The results kept in the error reports of the failed nodes of several
    tasks of the workflow at ``path`` (its manifest ``existing``), written as
    their own result files (``results.keep_finished``)."""
    for info in (existing.get("nodes") or {}).values():
        if len(info.get("tasks") or ()) < 2:
            continue
        for files in (info.get("outputs") or {}).values():
            for f in files:
                if is_error(path / f):
                    try:
                        keep_finished(path, read_error(path / f))
                    except WorkflowError:  # a damaged report: those tasks rerun
                        pass
