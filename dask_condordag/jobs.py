"""Helpers for DAG shapes that are not plain data flow: process clusters, shell
jobs and ordering-only dependencies.

    from dask_condordag import procid, shell, after

    with dask.annotate(condor={"processes": 3}):
        sweep = dask.delayed(run_point)(procid, 5)    # one node, queue 3: a list of 3
    j1 = shell("make data.txt")
    j2 = shell("wc -l data.txt", after=[j1])           # runs after j1, no data moved

Functions here that run on the execute node (``run_shell``) are pickled *by
value*: the node does not need dask-condordag installed.
"""

from __future__ import annotations

import subprocess

import dask
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ._compat import Task, TaskRef

__all__ = ["procid", "shell", "after", "run_shell"]


class _ProcId:
    """The process number of this job in its ``queue N`` cluster (0 .. N-1).

    Pass ``dask_condordag.procid`` anywhere in the arguments of a call
    annotated with ``condor={"processes": N}``; each of the N jobs sees its own
    number there. Outside a workflow (e.g. ``scheduler="sync"``) it stays this
    sentinel.
    """

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "dask_condordag.procid"

    def __reduce__(self):
        return (_ProcId, ())

    def __dask_tokenize__(self):
        return "dask_condordag.procid"


procid = _ProcId()


def contains_procid(value, _depth: int = 0) -> bool:
    """Does a literal argument hold the ``procid`` sentinel (in containers too)?"""
    if value is procid:
        return True
    if _depth > 20:
        return False
    t = type(value)
    if t in (list, tuple, set, frozenset):
        return any(contains_procid(v, _depth + 1) for v in value)
    if t is dict:
        return any(contains_procid(k, _depth + 1) or contains_procid(v, _depth + 1)
                   for k, v in value.items())
    return False


def _ordering(*deps):
    """Marks ordering-only dependencies inside a task's arguments. The
    compiler turns it into DAG edges without data; as a plain call (other
    schedulers) it receives the values and returns None."""
    return None


def _call_after(_order, func, *args, **kwargs):
    """``func(*args, **kwargs)`` once ``_order``'s dependencies are done."""
    return func(*args, **kwargs)


def run_shell(cmd: str) -> int:
    """Run ``cmd`` with ``bash -c 'set -o pipefail; ...'``; raise on a non-zero exit.

    Its output goes to the job's stdout/stderr (``logs/<node>.out``/``.err``).
    Returns 0.
    """
    proc = subprocess.run(["/bin/bash", "-c", "set -o pipefail; " + cmd])
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return 0


def shell(cmd: str, after=()):
    """A delayed bash command (``set -o pipefail``), run as its own DAG node.

    ``after``: delayed values this job must wait for, without receiving their
    values (ordering only: their results are not transferred). A non-zero exit
    fails the node. ``cmd`` reaches bash exactly as given: quote paths
    yourself (``shlex.quote``).

    >>> j1 = shell("echo hi > a.txt")
    >>> j2 = shell("cat a.txt", after=[j1])
    """
    if not isinstance(cmd, str):
        raise TypeError(f"shell() takes a command string, got {type(cmd).__name__}")
    job = dask.delayed(run_shell, pure=False)(cmd)
    return _ordered_after(job, after) if after else job


def after(value, *deps):
    """``value``, computed only once ``deps`` are done (ordering only: the
    dependencies' results are not transferred to its node).

    ``value`` must be a dask.delayed call; the call's own node waits for
    ``deps`` (a DAG edge ``PARENT dep CHILD value``).
    """
    return _ordered_after(value, deps)


def _ordered_after(value, deps):
    """:func:`after`, under a name that ``shell()``'s ``after=`` argument
    does not shadow."""
    if not isinstance(value, Delayed):
        raise TypeError(f"after() takes a dask.delayed value, got {type(value).__name__}")
    if not deps:
        return value
    task = dict(value.dask).get(value.key)
    for v in deps:
        if not isinstance(v, Delayed):
            raise TypeError(f"after() takes dask.delayed values, got {type(v).__name__}")
    if not isinstance(task, Task):
        raise TypeError("after() needs the value of a delayed call (not a constant)")
    key = f"{value.key}-after-{tokenize([d.key for d in deps])[:8]}" \
        if isinstance(value.key, str) else (f"after-{tokenize(value.key, [d.key for d in deps])}")
    order = Task(None, _ordering, *(TaskRef(d.key) for d in deps))
    new = Task(key, _call_after, order, task.func, *task.args, **task.kwargs)
    graph = HighLevelGraph.from_collections(key, {key: new}, dependencies=[value, *deps])
    return Delayed(key, graph)

