"""The worker shim's error reports: what a failed task, a killed process or a
timeout leaves in each output file, and the results a failure keeps.

Shipped with the worker shim (``worker.py``) as
``bin/dask_condordag_worker_errors.py`` (``names.WORKER_FILES``); the submit
side imports :func:`pack_exception` from ``dask_condordag.worker_errors``
(``results.py`` reads what it packs). Standard library only at import;
``traceback`` only when a task fails (it costs ~3 ms of every job's start).

Data
    An error report (JSON, sealed with ``RESULT_ERR``): exc_type, message,
    traceback (without the shim's own frames), frames, exception_only, host,
    python, time, node, task, key, stage, proc; ``exc_pickle``: the exception
    object itself with its ``__cause__``/``__context__`` chain
    (:func:`pack_exception`); in a node of several tasks, ``finished``: the
    sealed results of the tasks that finished and that the tasks which did
    not finish read (:func:`keep_finished`).

Policy
    * Before any user code runs, every output holds a report saying the
      process ended without finishing (:func:`placeholders`); a killed
      process leaves that, never a missing output (which would put the job
      ON HOLD on a pool).
    * ``max_runtime``: a timer writes a report into each output not written
      yet and exits 124, even when a task is stuck in C code
      (:func:`start_watchdog`). A timeout or a killed process keeps nothing.

Example::

    >>> try:
    ...     1 / 0
    ... except ZeroDivisionError as e:
    ...     report = error_report(e, {"node": "n", "keys": {"t": "'t'"}}, "t", "running")
    >>> report["exc_type"], report["key"], "exc_pickle" in report
    ('builtins.ZeroDivisionError', "'t'", True)
"""

import binascii
import json
import os
import pickle
import platform
import sys
import time

if __package__:  # dask_condordag.worker_errors, on the submit side
    from .worker_files import RESULT_ERR, RESULT_OK, dumps, lazy, log, seal, write_atomic
    from .worker_tasks import expr_reads
else:  # bin/dask_condordag_worker_errors.py, beside its siblings on the execute node
    from dask_condordag_worker_files import (RESULT_ERR, RESULT_OK, dumps, lazy, log, seal,
                                             write_atomic)
    from dask_condordag_worker_tasks import expr_reads

_DCD_SHIM = True  # marks the shim's frames, left out of a task's traceback

#: an exception (with its chain) pickled larger than this is not sent
EXC_PICKLE_LIMIT = 4 * 2**20
_CHAIN_LIMIT = 64


def _user_traceback(exc):
    """The traceback without the shim's own frames (when user code is below)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_globals.get("_DCD_SHIM"):
        tb = tb.tb_next
    return tb


def error_report(exc, meta, task, stage, traceback=True):
    """The report of ``exc``, raised by ``task`` (None: by the shim) while
    ``stage``; ``traceback=False``: without one (and without importing
    ``traceback``), for the placeholders every job writes."""
    report = {
        "node": meta.get("node"),
        "task": task,
        "key": meta.get("keys", {}).get(task) if task else None,
        "stage": stage,
        "proc": meta.get("proc", 0),
        "exc_type": "%s.%s" % (type(exc).__module__, type(exc).__qualname__),
        "message": str(exc),
        "traceback": "",
        "frames": [],
        "exception_only": ["%s: %s\n" % (type(exc).__qualname__, exc)],
        "host": platform.node(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if traceback:
        import traceback as tb_module  # only on failure: ~3 ms of every job's start

        tb = _user_traceback(exc)
        report["traceback"] = "".join(tb_module.format_exception(type(exc), exc, tb))
        # structured too: the client fills in source lines it has and we lack
        report["frames"] = [[f.filename, f.lineno, f.name, f.line or ""]
                            for f in tb_module.extract_tb(tb)]
        report["exception_only"] = tb_module.format_exception_only(type(exc), exc)
    report.update(pack_exception(exc))
    return report


def exception_chain(exc):
    """``(chain, links)``: ``exc`` and every exception reachable through
    ``__cause__``/``__context__`` (each once, ``exc`` first), and for each
    ``(cause index, context index, __suppress_context__)``. Pickle does not
    keep these three attributes (``BaseException.__reduce__`` gives only the
    type, ``args`` and ``__dict__``, where ``__notes__`` lives)."""
    chain, index, todo = [], {}, [exc]
    while todo and len(chain) < _CHAIN_LIMIT:
        e = todo.pop(0)
        if id(e) in index:
            continue
        index[id(e)] = len(chain)
        chain.append(e)
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
    links = [(index.get(id(e.__cause__)), index.get(id(e.__context__)),
              bool(e.__suppress_context__)) for e in chain]
    return chain, links


def pack_exception(exc):
    """The report fields that carry the exception object itself.

    ``exc_pickle``: base64 of a pickle (cloudpickle where plain pickle cannot:
    a class from ``__main__`` travels by value) of ``exception_chain(exc)``,
    which must load back here. When the chain does not pickle, ``exc`` alone is
    sent and ``exc_chain_error`` says why; when ``exc`` itself does not (or is
    larger than EXC_PICKLE_LIMIT), there is no ``exc_pickle`` and
    ``exc_pickle_error`` says why: the client then rebuilds the exception from
    the plain fields.
    """
    chain, links = exception_chain(exc)
    out = {}
    attempts = [(chain, links)]
    if len(chain) > 1:
        attempts.append(([exc], [(None, None, bool(exc.__suppress_context__))]))
    for i, what in enumerate(attempts):
        try:
            data = dumps(what, check=False)
            if len(data) > EXC_PICKLE_LIMIT:
                raise ValueError("its pickle is %d bytes, above the limit of %d"
                                 % (len(data), EXC_PICKLE_LIMIT))
            pickle.loads(data)
        except Exception as e:  # noqa: B902 - any failure means: do not send it
            why = "%s: %s" % (type(e).__name__, e)
            out["exc_chain_error" if i == 0 and len(attempts) > 1 else "exc_pickle_error"] = why
            continue
        # binascii, not base64: the same, without base64's 1 ms import on every job
        out["exc_pickle"] = binascii.b2a_base64(data, newline=False).decode("ascii")
        break
    return out


def write_error(path, report):
    body = json.dumps(report, indent=1, sort_keys=True).encode("utf-8")
    write_atomic(path, seal(RESULT_ERR, path, body), body)


def placeholders(meta, outputs):
    """Before any user code runs, every output gets an error report saying the
    process ended without finishing. A real result or report replaces it
    (by rename); if the process dies first -- os._exit, SIGKILL, SIGABRT, out
    of memory -- the placeholder is what HTCondor transfers back, so the node
    fails with an explanation instead of the job going on hold."""
    exc = RuntimeError(
        "the job's process ended before this task finished, without reporting an error: "
        "it called os._exit() or was killed by a signal (SIGKILL, SIGABRT from os.abort() "
        "or a crash in C code, the out-of-memory killer...). See the job's stderr log and "
        "the exit code DAGMan recorded.")
    report = error_report(exc, meta, None, "running (did not finish)", traceback=False)
    for path in outputs.values():
        write_error(path, report)


def start_watchdog(seconds, meta, outputs, state):
    """Fail the job after ``seconds``: write an error report for every output
    not written yet and exit 124, even if the task is stuck in C code.
    ``state``: ``task`` (the task started last) and ``stage``, ``finished``
    (the outputs written)."""
    import threading  # only for a node with max_runtime

    def fire():
        exc = TimeoutError("node %s ran longer than its max_runtime of %g s (task %s was %s)"
                           % (meta.get("node"), seconds, state.get("task"), state.get("stage")))
        report = error_report(exc, meta, state.get("task"), "running")
        log("TIMEOUT: %s" % exc)
        for name, path in outputs.items():
            if name not in state.get("finished", ()):
                try:
                    write_error(path, report)
                except Exception:
                    pass
        sys.stderr.flush()
        os._exit(124)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def keep_finished(tasks, env, finished, failed, meta, done=None):
    """The results to keep when task ``failed`` of a node of several tasks
    fails: ``{task: base64 of its sealed result file results/<task>.pkl}``
    for each task that is ``done`` (default: the tasks listed before
    ``failed``, as when they run one after the other), is not an output of
    the node (``finished``: the outputs already written) and is read by a
    task that is not done (``failed``, a later one, or one running in
    parallel that did not succeed). Exactly what a later run needs to start
    again at the tasks that did not finish: the client writes them as the
    tasks' own result files, and the next write of the workflow reads them
    instead of computing them again. They travel inside the error report,
    which is an output the job transfers back anyway (an extra file would
    have to be listed in ``transfer_output_files`` and exist on every path
    out). A value that cannot be pickled, or a lazy iterator (a later task
    may have consumed part of it), is not kept: its task reruns."""
    names_ = [t for t, _ in tasks]
    if failed not in names_:
        return {}
    if done is None:
        done = set(names_[:names_.index(failed)])
    done = set(done) - {failed}
    wanted = set()
    for t, expr in tasks:
        if t not in done:
            expr_reads(expr, wanted)
    keys = meta.get("keys", {})
    out = {}
    for t in names_:
        if t in done and t in wanted and t not in finished and t in env:
            v = env[t]
            if lazy(v) or (type(v) in (list, tuple) and any(lazy(x) for x in v)):
                log("result of finished task %s not kept: a lazy iterator that a later "
                    "task may have consumed" % t)
                continue
            path = "results/%s.pkl" % t
            try:
                body = dumps(v, t, keys.get(t))
            except Exception as e:  # noqa: B902 - not kept: it reruns
                log("result of finished task %s not kept (%s: %s)" % (t, type(e).__name__, e))
                continue
            out[t] = binascii.b2a_base64(seal(RESULT_OK, path, body) + body,
                                         newline=False).decode("ascii")
    return out
