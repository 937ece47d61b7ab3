"""The local runner: a workflow directory executed on this machine as DAGMan
would, by driving the state machine of ``dagman.py`` with real processes.

Data
    In: a workflow directory (or a DAG file). It reads what DAGMan reads -- the
    DAG file, the newest rescue DAG, the submit descriptions -- never an
    in-memory plan. Out: result files in ``results/``, job logs in ``logs/``,
    on failure ``<dag>.rescueNNN``, the ``NODE_STATUS_FILE`` and
    ``JOBSTATE_LOG`` if the DAG names them; a :class:`RunReport`.

Policy
    * DAGMan's rules are ``dagman.Dagman``'s; how a job and a script run here
      is ``launch.py``'s; the files beside the DAG are ``files.py``'s. The loop
      below feeds the machine the ends of procs and scripts as they come, and
      ticks it after each batch (and every 0.5 s).
    * The machine is a pool of one partitionable slot of ``max_workers``
      cores (default: the number of cores): each job proc holds its
      ``request_cpus`` of them (at most all; one by default). The worker of
      a node the planner gave threads still runs that many threads: a
      workflow planned for a pool's 4-core slots and run here with fewer
      cores oversubscribes them.
    * Only one runner at a time works on a workflow (``files.Lock``); a runner
      that was killed is recovered from its journal (``files.Journal``).
      Ctrl-C, and SIGTERM where it has its default action, unwind the run:
      jobs and scripts are killed, their scratch folders removed, the journal
      kept.
    * Submit commands the runner cannot honour are ignored with one warning
      per command name on this module's logger (also in ``RunReport.notices``);
      progress lines and the summary are notices (``messages.notice``).
    * dask's callback protocol (start, start_state, pretask, posttask,
      finish -- finish also on failure) is driven per task, so
      ``dask.diagnostics.ProgressBar`` works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import signal
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dask.callbacks import unpack_callbacks

from .. import names
from ..messages import notice
from . import files, launch
from .dagman import Dagman
from .state import DAG_STATUS_OK, Abort, Done, Execute, Log, Remove, RunScript, Started

__all__ = ["run", "RunReport"]

logger = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run did. ``ok`` when every node is done.

    ``aborted``: an ABORT-DAG-ON condition stopped the run; ``exit_code`` is
    what condor_dagman would exit with (0 success, 1 failure, the ABORT-DAG-ON
    value on abort). ``max_running``: the most nodes with a job proc executing
    at once; ``max_running_by_category`` the same per CATEGORY."""

    dag: Path
    total: int
    done: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)  # node -> reason
    skipped: set = field(default_factory=set)  # done before this run started
    rescue: Path | None = None
    max_running: int = 0
    max_running_procs: int = 0
    max_running_by_category: dict = field(default_factory=dict)
    aborted: bool = False
    exit_code: int = 0
    dag_status: int = DAG_STATUS_OK
    retries: dict = field(default_factory=dict)  # node -> retries used
    notices: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.aborted and len(self.done) == self.total

    def summary(self) -> str:
        s = (f"{len(self.done)} of {self.total} nodes done "
             f"({len(self.skipped)} already done before), {len(self.failed)} failed, "
             f"in {self.seconds:.1f} s")
        if self.aborted:
            s += f"; DAG aborted (exit code {self.exit_code})"
        if self.rescue:
            s += f"; rescue DAG: {self.rescue}"
        return s


def run(path, *, max_workers: int | None = None, callbacks=(), progress=None,
        stream=None, fail_fast: bool = False, force: bool = False) -> RunReport:
    """Run the workflow directory (or DAG file) ``path``; see the module docstring.

    ``max_workers``: the cores job procs share (default: the number of
    cores); with one-core jobs, the procs running at once.
    ``fail_fast``: after the first node failure start nothing new (running
    jobs finish). The default is DAGMan's behaviour: keep running every node
    that does not depend on a failed one.

    ``progress``: print "done/running/failed of total" lines to ``stream``
    (stderr) -- True, False, or None for every 10 s once a run takes longer
    than 10 s; True also prints the summary at the end. The lines are logged
    as well (INFO, ``dask_condordag.local.runner``); submit commands the
    runner ignores, a script that cannot start and ``ABORT-DAG-ON`` are
    logged as warnings (:mod:`dask_condordag.messages`).

    ``force``: run every node again, ignoring ``DONE`` marks, rescue DAGs and
    the recovery log.

    Ctrl-C, and SIGTERM where it has its default action, stop the run: its
    jobs and scripts are killed and their scratch folders removed, the
    recovery log is kept (run again to resume).

    Only one runner at a time works on a workflow (``<dag>.lock``); a runner
    that was killed is recovered from ``<dag>.local.log`` (see ``files.Journal``).
    """
    dag_path = files.dag_path(path)
    # Files the runner and its jobs create (logs, status, rescue DAGs) are as
    # private as the workflow folder: a 0700 folder gets umask 077 for the run.
    private = stat.S_IMODE(dag_path.parent.stat().st_mode) & 0o077 == 0
    old_umask = os.umask(0o077) if private else None
    try:
        with _sigterm_unwinds():
            return _run_locked(dag_path, max_workers=max_workers, callbacks=callbacks,
                               progress=progress, stream=stream, fail_fast=fail_fast,
                               force=force)
    finally:
        if old_umask is not None:
            os.umask(old_umask)


class _Terminated(BaseException):
    """SIGTERM arrived while the runner ran (raised in the main thread)."""


@contextlib.contextmanager
def _sigterm_unwinds():
    """SIGTERM unwinds the run as Ctrl-C does -- jobs and scripts killed,
    their scratch folders removed, the recovery log kept -- and then the
    process dies by SIGTERM as it would have. Only where SIGTERM has its
    default action (a caller's own handler stays in charge) and only in the
    main thread (where Python runs signal handlers)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one waits for the cleanup
        raise _Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise  # not reached: the default action ends the process
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_locked(dag_path, *, max_workers, callbacks, progress, stream, fail_fast, force):
    with files.Lock(dag_path):
        dag, _ = files.load_dag(dag_path)
        journal = files.Journal(dag_path)
        if force:
            dag = dataclasses.replace(dag, nodes={
                n: dataclasses.replace(x, done=False) for n, x in dag.nodes.items()})
            journal.close(remove=True)
        else:
            recovered = journal.recovered() & set(dag.nodes)
            if recovered:
                dag = dataclasses.replace(dag, nodes={
                    n: dataclasses.replace(x, done=True) if n in recovered else x
                    for n, x in dag.nodes.items()})
        journal.open()
        runner = _Runner(dag_path, dag, max_workers=max_workers or os.cpu_count() or 1,
                         stream=stream, fail_fast=fail_fast, progress=progress,
                         callbacks=callbacks, journal=journal)
        try:
            report = runner.run()
        except BaseException:
            journal.close(remove=False)  # interrupted: keep it for recovery
            raise
        journal.close(remove=True)
    notice(logger, f"{dag_path.name}: {report.summary()}", progress=bool(progress),
           stream=stream)
    return report


class _Runner:
    """One run: a ``Dagman`` driven by processes (``launch.Launcher``)."""

    def __init__(self, dag_path, dag, *, max_workers, stream, fail_fast, progress,
                 callbacks, journal):
        self.dag_path = dag_path
        self.dag = dag
        self.stream = stream
        self.progress = progress
        self.journal = journal
        self.notices: list = []
        workdir = dag_path.parent
        self.submits = launch.Submits(workdir, dag, notice=self.notice)
        self.machine = Dagman(dag, slots=max_workers, describe=self.submits.describe,
                              fail_fast=fail_fast)
        self.events: queue.Queue = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="condordag-job")
        self.script_pool = ThreadPoolExecutor(max_workers=40, thread_name_prefix="condordag-script")
        self.launcher = launch.Launcher(self.submits, jobs=self.pool.submit,
                                        scripts=self.script_pool.submit, put=self.events.put)
        place = lambda name: Path(name) if os.path.isabs(name) else workdir / name  # noqa: E731
        nsf = dag.node_status_file
        self.status = files.StatusFile(place(nsf[0]), nsf[1], dag_path.name) if nsf else None
        self.jobstate = files.JobstateLog(place(dag.jobstate_log)) if dag.jobstate_log else None
        self.tasks = _Tasks(callbacks, _keys_of(workdir), dag, self.machine.done)

    def notice(self, msg: str) -> None:
        self.notices.append(msg)
        logger.warning("%s", msg)

    def apply(self, actions: list) -> None:
        """Carry out the machine's actions."""
        for a in actions:
            kind = type(a)
            if kind is Log:
                if self.jobstate is not None:
                    self.jobstate.write(a)
            elif kind is Execute:
                self.launcher.execute(a.node, a.cluster, a.proc, a.macros, a.retry)
            elif kind is Remove:
                self.launcher.remove(a.node, a.cluster)
            elif kind is RunScript:
                self.launcher.run_script(a.node, a.kind, a.argv, a.token)
            elif kind is Started:
                self.tasks.started(a.node)
            elif kind is Done:
                self.journal.done(a.node)  # after its outputs are in place: see Journal
                self.tasks.done(a.node, a.ready)
            elif kind is Abort:
                logger.warning("%s: aborting the DAG: node %s returned %s (ABORT-DAG-ON); "
                               "exit code %s", self.dag_path.name, a.node, a.retval, a.exit_code)
                self.launcher.kill_all()

    def handle(self, ev) -> None:
        kind, name, token, value = ev
        if kind == "proc":
            # a removed proc, or one whose files failed, has no exit code
            code = None if value.removed or value.exit_code is None or (
                not value.ok and value.exit_code == 0) else value.exit_code
            self.apply(self.machine.proc_exited(name, token, value.process, code, value.reason))
        else:
            self.apply(self.machine.script_exited(name, kind, token, value))

    def dump_status(self, final: bool = False) -> None:
        if self.status is not None:
            self.status.dump(self.machine, final)

    def run(self) -> RunReport:
        m = self.machine
        self.tasks.start()
        t0 = last_print = time.monotonic()
        errored = True
        if self.jobstate is not None:
            # DAGMan writes its own job id, which the schedd gives it in $CONDOR_ID
            self.jobstate.internal("DAGMAN_STARTED", os.environ.get("CONDOR_ID", "0.0"))
        try:
            self.apply(m.start())
            while not m.aborted:
                self.apply(m.tick(time.time()))
                if m.aborted:
                    break
                self.dump_status()
                if not m.active():
                    break
                self.wait_for_events()
                last_print = self.print_progress(t0, last_print)
            errored = bool(m.failed) or m.aborted
        finally:
            if m.aborted or sys.exc_info()[0] is not None:
                self.launcher.kill_all()
            self.pool.shutdown(wait=True)
            self.script_pool.shutdown(wait=True)
            rescue = m.finish()
            if sys.exc_info()[0] is None:
                self.dump_status(final=True)
                if self.jobstate is not None:
                    self.jobstate.internal("DAGMAN_FINISHED", str(m.exit_code))
            report = self.report(time.monotonic() - t0)
            for a in rescue:
                report.rescue = files.write_rescue(self.dag_path, self.dag, a.done, a.failed)
            self.tasks.finish(errored)
        return report

    def wait_for_events(self) -> None:
        """Handle the ends that come within 0.5 s, and all that are waiting."""
        try:
            ev = self.events.get(timeout=0.5)
        except queue.Empty:
            return
        while ev is not None and not self.machine.aborted:
            self.handle(ev)
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                ev = None

    def print_progress(self, t0: float, last: float) -> float:
        m, now = self.machine, time.monotonic()
        show = self.progress if self.progress is not None else (now - t0 > 10)
        if show and (now - last >= 10 or self.progress is True and now - last >= 1):
            notice(logger, f"{self.dag_path.name}: {len(m.done)} done, "
                   f"{m.schedd.running} running, {len(m.failed)} failed of {len(m.nodes)}",
                   progress=self.progress, stream=self.stream)
            return now
        return last

    def report(self, seconds: float) -> RunReport:
        m = self.machine
        return RunReport(
            dag=self.dag_path, total=len(m.nodes), done=m.done, failed=m.failed,
            skipped=m.skipped, max_running=m.schedd.max_running,
            max_running_procs=m.schedd.max_running_procs,
            max_running_by_category=m.schedd.max_running_by_category, aborted=m.aborted,
            exit_code=m.exit_code, dag_status=m.dag_status, retries=m.retries,
            notices=self.notices, seconds=seconds)


class _Tasks:
    """dask's scheduler state shape and callbacks, per task of each node."""

    def __init__(self, callbacks, keys_of, dag, done):
        (self.start_cbs, self.start_state_cbs, self.pretask_cbs, self.posttask_cbs,
         self.finish_cbs) = _unpack(callbacks)
        self.keys_of = keys_of
        waiting = [n for n in dag.nodes if n not in done
                   and any(p not in done for p in dag.parents.get(n, ()))]
        self.state = {
            "ready": {k for n in dag.nodes if n not in done and n not in waiting
                      for k in keys_of(n)},
            "waiting": {k: set() for n in waiting for k in keys_of(n)},
            "running": set(),
            "finished": {k for n in done for k in keys_of(n)},
            "cache": {}, "released": set(), "waiting_data": {},
            "dependents": {}, "dependencies": {},
        }

    def start(self) -> None:
        for cb in self.start_cbs:
            cb({})
        for cb in self.start_state_cbs:
            cb({}, self.state)

    def started(self, node: str) -> None:
        for k in self.keys_of(node):
            _move(self.state, k, "ready", "running")
            for cb in self.pretask_cbs:
                cb(k, {}, self.state)

    def done(self, node: str, ready: tuple) -> None:
        for k in self.keys_of(node):
            _move(self.state, k, "running", "finished")
            for cb in self.posttask_cbs:
                cb(k, None, {}, self.state, node)
        for c in ready:
            for k in self.keys_of(c):
                _move(self.state, k, "waiting", "ready")

    def finish(self, errored: bool) -> None:
        for cb in self.finish_cbs:
            cb({}, self.state, errored)


def _unpack(callbacks):
    if not callbacks:
        return [], [], [], [], []
    return unpack_callbacks(callbacks)


def _move(state, key, src, dst):
    """Move a key between the sets/dicts of dask's scheduler state shape."""
    s = state[src]
    if isinstance(s, dict):
        s.pop(key, None)
    else:
        s.discard(key)
    d = state[dst]
    if isinstance(d, dict):
        d[key] = set()
    else:
        d.add(key)


def _keys_of(workdir: Path):
    """node -> the dask task names it runs (for callbacks), from the manifest
    when there is one; otherwise the node name itself."""
    try:
        with open(workdir / names.MANIFEST, encoding="utf-8") as f:
            nodes = json.load(f).get("nodes", {})
    except (OSError, ValueError):
        nodes = {}

    def keys_of(name):
        info = nodes.get(name)
        return list(info["tasks"]) if info else [name]

    return keys_of
