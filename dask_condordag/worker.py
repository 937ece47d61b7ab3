"""dask-condordag worker shim: what each HTCondor job runs on the execute node.

    python bin/dask_condordag_worker.py NODE PROC PACK

Run in the job's scratch directory, where HTCondor has put (with
``preserve_relative_paths``) the payload pack PACK (``nodes/pack_<hash>.pkl``,
which holds the payload of NODE and of up to 63 other nodes) and the result or data files
the node reads. It evaluates the node's tasks and writes one file per output
task under ``results/``; those are what HTCondor transfers back.

This entry script is the run loop; it imports three standalone modules
shipped beside it in ``bin/`` (``names.WORKER_FILES``; every submit
description transfers them with the script, and on a shared file system the
job runs them from the workflow's ``bin/``): ``worker_files.py`` (the file
formats, values in and out), ``worker_tasks.py`` (the expression language,
the order tasks run in, threads) and ``worker_errors.py`` (error reports).
On the execute node they are imported by their shipped names
(``dask_condordag_worker_files``, ...), never from the ``dask_condordag``
package: the job runs the code the workflow was written with.

Contract (the client side relies on every point):
    * Standard library only at import; cloudpickle is imported only when a
      payload or a result needs it, so a missing package is *reported*.
    * Prints where it runs (host, Python, scratch listing) to stderr first.
    * Every output named in the payload exists when it exits, on every path
      out: a result, or a structured error report (a missing output puts the
      job ON HOLD on a pool instead of failing it). Each is written to a
      temporary name and renamed.
    * Exit status 0 when every task succeeded, 1 otherwise, so DAGMan's RETRY
      and rescue DAGs work.
    * In a node of several tasks each output is written as soon as its task
      finishes, with the task's wall time. The report names the task that
      failed first (``task``, ``key``), and the outputs written before it
      stay; the values that the tasks which did not finish read, from tasks
      that did, travel in the report (``keep_finished``), so that the next
      write of the workflow starts again at the failed task. A timeout
      (``max_runtime``) or a killed process keeps nothing.
    * A payload with ``"threads": n`` runs up to n tasks at once on n threads
      (``worker_tasks.run_tasks``: each once the tasks it reads are done,
      the first ready in list order first; after a failure nothing more
      starts). Without it, one after the other in list order.

Payload modes: "single" runs every task; "procid" runs the one task
with PROC = this proc and writes ``outputs[task]`` with ``{proc}`` filled in;
"cluster" runs only task number PROC. An input listed with several files is
the list of their values (a procid cluster's result).

Pickles are code: this runs whatever the payload says. It only ever loads
files that sit in its own scratch directory, written by the workflow.
"""

import os
import pickle
import platform
import sys
import time

if __package__:  # dask_condordag.worker, on the submit side (tests, doctor)
    from .worker_errors import (error_report, keep_finished, placeholders, start_watchdog,
                                write_error)
    from .worker_files import (RESULT_OK, check_payload, dumps, log, log_task_time, materialize,
                               read_payload, read_value, seal, write_atomic)
    from .worker_tasks import PROC_KEY, evaluate, run_tasks, threads_of
else:  # the job: its siblings sit beside it (bin/), also when run with runpy
    # compiled anew in each job's fresh scratch directory, as a script is:
    # writing bin/__pycache__ there (or into a shared workflow) costs more
    sys.dont_write_bytecode = True
    _HERE = os.path.dirname(os.path.abspath(__file__))
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    from dask_condordag_worker_errors import (error_report, keep_finished, placeholders,
                                              start_watchdog, write_error)
    from dask_condordag_worker_files import (RESULT_OK, check_payload, dumps, log,
                                             log_task_time, materialize, read_payload,
                                             read_value, seal, write_atomic)
    from dask_condordag_worker_tasks import PROC_KEY, evaluate, run_tasks, threads_of

_DCD_SHIM = True  # marks the shim's frames, left out of a task's traceback


def describe_host():
    log("host %s, Python %s (%s), pid %d" % (
        platform.node(), platform.python_version(), sys.executable, os.getpid()))
    log("scratch directory %s:" % os.getcwd())
    shown = 0
    for root, dirs, files in os.walk("."):
        dirs.sort()
        for f in sorted(files):
            if shown >= 200:
                log("  ... (more files not shown)")
                return
            p = os.path.join(root, f)[2:]
            try:
                size = os.path.getsize(p)
            except OSError:
                size = -1
            log("  %s (%d bytes)" % (p, size))
            shown += 1


def check_versions(meta):
    want = meta.get("python", "")
    have = "%d.%d" % sys.version_info[:2]
    if want and want != have:
        raise RuntimeError(
            "Python version mismatch: the workflow was written with Python %s but this "
            "execute node runs Python %s (%s); pickled code does not move between "
            "versions. Use the same Python on both sides." % (want, have, sys.executable))
    want_cp = meta.get("cloudpickle")
    if want_cp and meta.get("needs_cloudpickle"):
        try:
            import cloudpickle  # only for a payload that needs it (its check)
        except ImportError:
            raise RuntimeError(
                "cloudpickle is not installed for %s on this execute node; the payload "
                "needs it (cloudpickle %s on the submit side)" % (sys.executable, want_cp))
        have_cp = getattr(cloudpickle, "__version__", "?")
        if have_cp.split(".")[0] != want_cp.split(".")[0]:
            raise RuntimeError(
                "cloudpickle version mismatch: submit side %s, execute node %s"
                % (want_cp, have_cp))


def mode_of(meta):
    return meta.get("mode", "single")


class Job:
    """One run of the shim: the payload's meta, the outputs to write, the
    tasks and their values (``env``), what is done and written so far."""

    def __init__(self, node, proc):
        self.node, self.proc = node, proc
        self.meta, self.outputs, self.tasks, self.env = {"node": node}, {}, [], {}
        self.done, self.finished = [], set()  # tasks that succeeded; outputs written
        self.watch = {"finished": self.finished}  # what the watchdog reports

    def execute(self, task, expr):
        """Run one task, write its output if it has one; None, or
        ``(exception, stage)`` when it failed."""
        stage = "running"
        try:
            self.watch.update(task=task, stage=stage)
            started = time.perf_counter()
            value = evaluate(expr, self.env)
            # every value, not only those written: a consumer in this job sees
            # what a consumer in another job would read (a group changes
            # nothing), and an iterator read by two consumers is not used up
            stage = "materializing the result"
            value = materialize(value)
            self.env[task] = value
            took = time.perf_counter() - started
            if task in self.outputs:
                stage = "saving the result"
                path = self.outputs[task]
                body = dumps(value, task, self.meta.get("keys", {}).get(task))
                took = time.perf_counter() - started
                write_atomic(path, seal(RESULT_OK, path, body, took), body)
                self.finished.add(task)
            log_task_time(task, took)
            return None
        except BaseException as exc:  # noqa: B902 - reported by its task
            return exc, stage

    def also_failed(self, task, exc, stage):
        """A task running in parallel that failed after the first failure."""
        log("task %s also FAILED while %s: %s: %s" % (task, stage, type(exc).__name__, exc))


def prepare(job, pack):
    """Read and check the payload, write the placeholders, start the
    watchdog, load the inputs; yields each stage as it starts."""
    meta, body = read_payload(job.node, pack)
    meta["proc"] = job.proc
    job.meta = meta
    mode = mode_of(meta)
    outputs = meta["outputs"]
    if mode == "procid":
        outputs = {t: p.replace("{proc}", str(job.proc)) for t, p in outputs.items()}
    elif mode == "cluster":
        mine = meta["order"][job.proc]
        outputs = {mine: outputs[mine]}
    job.outputs = outputs
    placeholders(meta, outputs)
    if meta.get("max_runtime"):
        start_watchdog(meta["max_runtime"], meta, outputs, job.watch)
    yield "checking the payload"
    check_payload(meta, body)
    threads_of(meta)
    yield "checking versions"
    check_versions(meta)
    yield "loading the payload"
    try:
        tasks = pickle.loads(body)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "%s on the execute node (%s, Python %s): the payload refers to it by name. "
            "Install it there, ship it with delivery='transfer', or, if it is your own "
            "code, send it by value (the by_value option, or "
            "cloudpickle.register_pickle_by_value(module) before compute)"
            % (e, sys.executable, platform.python_version()), name=e.name) from None
    job.tasks = [tasks[job.proc]] if mode == "cluster" else tasks
    job.env = {PROC_KEY: job.proc}
    for name, path in meta["inputs"].items():
        yield "loading input %s" % (path,)
        if isinstance(path, list):
            job.env[name] = [read_value(p) for p in path]
        else:
            job.env[name] = read_value(path)


def run(node, proc, pack):
    job = Job(node, proc)
    stage, task = "reading the payload", None
    try:
        for stage in prepare(job, pack):
            pass
        stage = "running"
        threads = threads_of(job.meta) if mode_of(job.meta) == "single" else 1
        job.done, failure = run_tasks(job.tasks, job.execute, threads, job.also_failed)
        if failure is None:
            return 0
        task, exc, stage = failure
    except BaseException as e:  # noqa: B902 - every failure must leave its report
        exc = e
    report_failure(job, exc, task, stage)
    return 1


def report_failure(job, exc, task, stage):
    """Log the failure, write its report into every output not written
    (with the results to keep, in a node of several tasks)."""
    report = error_report(exc, job.meta, task, stage)
    log("FAILED while %s%s: %s: %s" % (
        stage, " task %s" % task if task else "", report["exc_type"], report["message"]))
    sys.stderr.write(report["traceback"])
    if mode_of(job.meta) == "single" and task is not None:
        try:
            kept = keep_finished(job.tasks, job.env, job.finished, task, job.meta,
                                 done=job.done)
        except BaseException as e:  # noqa: B902 - the reports must still be written
            log("finished results not kept (%s: %s)" % (type(e).__name__, e))
            kept = None
        if kept:
            report["finished"] = kept
    for name, path in job.outputs.items():
        if name not in job.finished:
            write_error(path, report)
    if not job.outputs:
        # the payload could not tell the outputs: the usual one (a node of
        # one task is named after it) gets the report, so the node fails
        # with it instead of going on hold; otherwise it is in this log
        guess = "results/%s.pkl" % job.node
        try:
            write_error(guess, report)
            log("outputs unknown; error report written to %s" % guess)
        except Exception:
            log("outputs unknown; error report only in this log")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or not argv[1].isdigit():
        log("usage: dask_condordag_worker.py NODE PROC PACK")
        return 2
    start = time.time()
    describe_host()
    status = run(argv[0], int(argv[1]), argv[2])
    log("node %s %s in %.3f s" % (argv[0], "done" if status == 0 else "FAILED",
                                   time.time() - start))
    return status


if __name__ == "__main__":
    sys.exit(main())
