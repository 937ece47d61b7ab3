"""The entry points: dask's ``get`` for ``scheduler="condordag"``, and ``write``.

Data flow (one module per step)::

    dask collections / Expr
      -> graph   read_graph: culled, lowered, ordered      (no I/O)
      -> plan    make_plan: DAG nodes, names, files         (no I/O)
      -> render  DAG and submit text                        (no I/O)
      -> write   the workflow directory, atomically
      -> run     local runner | condor_submit_dag + wait | nothing
      -> results Workflow.result()

``get(dsk, keys, **options)`` is what dask calls; it returns a tuple aligned
with ``keys`` and dask repacks it. ``write(*collections, path=...)`` does the
same work without running and returns a :class:`Workflow` whose ``result()``
gives what ``dask.compute(*collections)`` would.

Where the workflow went: ``compute()`` without ``path`` says which folder it
wrote (once, next to the ``run="auto"`` notice; on stderr unless
``progress=False``, always on the ``dask_condordag`` loggers: ``messages``); ``last_workflow()`` returns
the :class:`Workflow` written last in this process, and an exception raised
by ``get`` once the workflow is written carries its folder as
``workflow_path``.

Example::

    >>> import dask
    >>> dask.delayed(sum)([1, 2, 3]).compute(scheduler="condordag")  # doctest: +SKIP
    6
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import dask
from dask.base import collections_to_expr, is_dask_collection, unpack_collections
from dask.callbacks import local_callbacks
from dask.core import flatten

from . import names
from ._compat import FinalizeCompute
from .annotations import dag_settings, merge_condor
from .condor import choose_run_mode
from .config import options
from .cost import model_for, read_history
from .exceptions import CondorDagError
from .follow import Follower
from .graph import read_graph
from .messages import notice
from .plan import make_plan
from .tokens import sha
from .workflow import Workflow
from .write import write_workflow
from .delivery import from_options as delivery_from_options

__all__ = ["get", "write", "last_workflow"]

logger = logging.getLogger(__name__)

#: The workflow written last in this process (``last_workflow()``).
_last: dict = {"workflow": None}
#: The workflow the ``get`` running on this thread wrote (for ``workflow_path``).
_current = threading.local()


def last_workflow() -> Workflow | None:
    """The :class:`Workflow` that ``compute(scheduler="condordag")`` or
    ``write()`` wrote most recently in this process (None before the first);
    also after a failed run. With computes on several threads at once, the
    last one written; the exception a compute raises names its own
    (``err.workflow_path``).

    >>> total.compute(scheduler="condordag")          # doctest: +SKIP
    >>> dask_condordag.last_workflow().path           # doctest: +SKIP
    PosixPath('.../condordag-workflows/add-3f2c1b0a9e8d')
    """
    return _last["workflow"]


def _written(wf: Workflow, opts) -> None:
    _last["workflow"] = _current.workflow = wf
    if opts.path is None:  # compute() chose the folder: say which
        notice(logger, f"workflow written to {wf.path}", progress=opts.progress)


def _keeps_workflow_path(get):
    """Wrap ``get``: an exception raised once the workflow is written gets
    the attribute ``workflow_path`` (the folder), so that a caller of
    ``dask.compute`` can find the logs, the errors and the rescue DAG."""

    @functools.wraps(get)
    def wrapper(*args, **kwargs):
        _current.workflow = None
        try:
            return get(*args, **kwargs)
        except BaseException as e:
            wf = _current.workflow
            if wf is not None and getattr(e, "workflow_path", None) is None:
                try:
                    e.workflow_path = wf.path
                except AttributeError:  # an exception type without a __dict__
                    pass
            raise
        finally:
            _current.workflow = None

    return wrapper


def _compile(dsk, keys, opts, *, repack=None, run="none") -> Workflow:
    # Compiling allocates many small objects and frees few: the cyclic GC would
    # walk the whole (large) graph again and again for nothing. It is switched
    # back on, and run once, at the end.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile_nogc(dsk, keys, opts, repack=repack, run=run)
    finally:
        if enabled:
            gc.enable()


def _compile_nogc(dsk, keys, opts, *, repack=None, run="none") -> Workflow:
    dag = dag_settings(maxjobs=opts.maxjobs, dag_config=opts.dag_config, dot=opts.dot,
                       node_status_interval=opts.node_status_interval,
                       jobstate_log=opts.jobstate_log)
    defaults = dask.get_annotations()
    graph = read_graph(dsk, keys)
    if defaults:  # compute-time annotations: defaults for every task, per key wins
        merged = {}
        for k in graph.nodes:
            own = graph.annotations.get(k, {})
            ann = {**defaults, **own}
            if "condor" in defaults and "condor" in own:
                ann["condor"] = merge_condor(defaults["condor"], own["condor"])
            merged[k] = ann
        graph = dataclasses.replace(graph, annotations=merged)
    plan = make_plan(graph, name=opts.name or "workflow", inline_limit=opts.inline_limit,
                     group=opts.group, arg_limit=opts.arg_limit, cost=_cost_for(opts, run))
    path, name = _where(plan, opts)
    plan = dataclasses.replace(plan, name=name)
    manifest = write_workflow(plan, path, keys=keys, repack=repack, dag=dag,
                              permissions=opts.permissions, force=opts.force,
                              delivery=delivery_from_options(opts))
    wf = Workflow(path, manifest)
    _written(wf, opts)
    return wf


def _cost_for(opts, run: str):
    """The cost model for ``group="auto"``, as a function of the plan's
    outputs: it reads the records of the workflow directory they name
    (``cost.read_history``; nothing when ``force``)."""

    def model(outputs, stable):
        history = None
        if not opts.force:
            path, _ = _where(SimpleNamespace(outputs=outputs, stable=stable), opts)
            history = read_history(path)
        return model_for(opts, run, history)

    return model


def _where(plan, opts) -> tuple[Path, str]:
    """The workflow's directory and name.

    With ``path``: that directory, named ``name`` or after the directory.
    Without: ``<directory>/<prefix>-<hash of the requested results>``, so that
    computing the same graph again finds its earlier results -- also when a
    result always reruns (its name is new each compile; ``plan.stable`` is not).
    """
    if opts.path is not None:
        path = Path(opts.path)
        name = opts.name or names.safe_prefix(path.absolute().name, 60)
        return path, name
    stable = plan.stable
    outs = "|".join(f"{o.kind}:{stable.get(o.name, o.name)}:{o.value!r}"[:200]
                    for o in plan.outputs)
    first = plan.outputs[0].name if plan.outputs and plan.outputs[0].name else "workflow"
    prefix = first.rsplit("_", 1)[0] if "_" in first else first
    name = opts.name or f"{names.safe_prefix(prefix, 40)}-{sha(outs)[:12]}"
    return Path(opts.directory) / name, name


@_keeps_workflow_path
def get(dsk, keys, callbacks=None, **kwargs):
    """dask scheduler ``get``: compile ``dsk`` to a DAGMan workflow, run it, return
    the values of ``keys`` (a tuple aligned with ``keys``).

    Options (keyword arguments, else the ``condordag`` section of dask's
    config): ``run`` ("auto", "condor", "local" or "none"; ``hold_timeout`` and
    ``poll_interval`` for condor, and ``dagman_scan_interval``: DAGMan's log
    scan, seconds), ``path``, ``name``, ``directory``,
    ``max_workers``, ``inline_limit``, ``progress``, ``group``, and the DAG-level
    ``maxjobs`` ({category: n}), ``dag_config`` ({DAGMan knob: value}),
    ``dot``, ``node_status_interval`` (seconds, None for none) and
    ``jobstate_log``; ``permissions`` ("private" or "group"); ``force``
    (recompute everything). ``callbacks`` are dask
    callbacks (``dask.diagnostics.ProgressBar`` works).

    Without ``path`` it says which folder it wrote (on stderr unless
    ``progress=False``, and to the ``dask_condordag`` logger; see
    :mod:`dask_condordag.messages`); an exception raised once
    the workflow is written carries it as ``workflow_path``, and
    ``last_workflow()`` returns the :class:`Workflow`.
    """
    opts = options(kwargs)
    flat = list(flatten(keys)) if isinstance(keys, list) else [keys]
    run = choose_run_mode(opts.run, progress=opts.progress)
    wf = _compile(dsk, flat, opts, run=run)
    if run == "condor":
        # Submit, wait (progress lines, dask callbacks from DAGMan's records;
        # Ctrl-C leaves the DAG running and says how to reattach), then load
        # the results as the local path does.
        with local_callbacks(callbacks) as cbs:
            if wf.submit(force=opts.force, progress=opts.progress,
                         dagman_scan_interval=opts.dagman_scan_interval) is not None:
                wf.wait(hold_timeout=opts.hold_timeout, poll=opts.poll_interval,
                        progress=opts.progress, callbacks=cbs)
            else:  # all done already: the callbacks see a finished run, as locally
                Follower.for_workflow(wf, cbs).run_done()
        return _nest(keys, dict(zip(flat, wf.values())))
    if run == "none":
        raise CondorDagError(
            f"run='none': the workflow was written to {wf.path} but not run, so there "
            "are no values to return. Run it (dask-condordag run "
            f"{wf.path}, or condor_submit_dag {wf.dag_path.name} there), then load the "
            f"results with dask_condordag.Workflow.open({str(wf.path)!r}).result(); "
            "dask_condordag.write(...) does this without raising"
        )
    with local_callbacks(callbacks) as cbs:
        wf.run(max_workers=opts.max_workers, progress=opts.progress, callbacks=cbs,
               force=opts.force)
    values = dict(zip(flat, wf.values()))
    return _nest(keys, values)


def _nest(keys, values: dict):
    """Values in the shape of ``keys``: lists become tuples, as in dask.local."""
    if isinstance(keys, list):
        return tuple(_nest(k, values) for k in keys)
    return values[keys]


def write(*collections, path, name=None, traverse=True, keys=None, **kwargs) -> Workflow:
    """Write the workflow that computes ``collections`` to ``path``; do not run it.

    Returns a :class:`Workflow`; after it has run (``wf.run()``,
    ``dask-condordag run PATH`` or ``condor_submit_dag``), ``wf.result()``
    gives what ``dask.compute(*collections)`` would -- the single value when one
    collection was given. For a plain graph dict, ``write(dsk, keys=...,
    path=...)``: ``wf.result()`` then gives what ``dask.get(dsk, keys)`` would
    (one value for one key, a tuple for a list of keys, nested as the list).
    """
    opts = options({**kwargs, "path": os.fspath(path), "name": name})
    if keys is not None:
        return _write_graph(collections, keys, opts)
    colls, repack = unpack_collections(*collections, traverse=traverse)
    if not colls:
        if len(collections) == 1 and isinstance(collections[0], Mapping):
            raise CondorDagError(
                "write() was given a plain graph (a dict) and no keys: say which keys' "
                "values you want, as with dask.get(dsk, keys): "
                "dask_condordag.write(dsk, keys=[...], path=...)")
        raise CondorDagError(
            "write() was given no dask collections to compute: pass dask collections "
            "(delayed, bag, array, ...), or a graph dict with keys=[...]")
    expr = collections_to_expr(colls)
    expr = FinalizeCompute(expr).optimize()
    flat = list(flatten(expr.__dask_keys__()))
    single = len(collections) == 1
    pack = _Repack(repack, single)
    return _compile(expr, flat, opts, repack=pack)


def _write_graph(args, keys, opts) -> Workflow:
    """``write(dsk, keys=...)``: a plain graph and the keys to compute."""
    if len(args) != 1 or not isinstance(args[0], Mapping) or is_dask_collection(args[0]):
        got = ", ".join(type(a).__name__ for a in args) or "nothing"
        raise CondorDagError(
            f"write(..., keys=...) takes one plain graph dict (got {got}); for dask "
            "collections leave keys out: dask_condordag.write(collection, path=...)")
    flat = list(flatten(keys)) if isinstance(keys, list) else [keys]
    return _compile(args[0], flat, opts, repack=_NestKeys(keys, flat))


class _NestKeys:
    """Values in the shape of ``keys``, as ``get(dsk, keys)`` returns them (picklable)."""

    def __init__(self, keys, flat):
        self.keys = keys
        self.flat = flat

    def __call__(self, values):
        return _nest(self.keys, dict(zip(self.flat, values)))


class _Repack:
    """dask's repack step, unwrapped for a single collection (picklable)."""

    def __init__(self, repack, single: bool):
        self.repack = repack
        self.single = single

    def __call__(self, values):
        out = self.repack(values)
        return out[0] if self.single else out
