"""The local runner: execute a workflow directory on this machine as DAGMan would.

Data
    In: a workflow directory (or a DAG file). It reads what DAGMan reads -- the
    DAG file, the newest rescue DAG, the submit descriptions -- never an
    in-memory plan. Out: result files in ``results/``, job logs in ``logs/``,
    on failure ``<dag>.rescueNNN``, the ``NODE_STATUS_FILE`` and
    ``JOBSTATE_LOG`` if the DAG names them; a :class:`RunReport`.

Policy (DAGMan 25.x's, where it applies; "src/" is HTCondor's source tree,
"manual" its docs/automated-workflows/ pages)
    * A node runs once all its parents are done; ``JOB ... DONE`` nodes and the
      ``DONE`` lines of the newest rescue DAG are skipped. ``NOOP`` nodes run
      their scripts but no job.
    * The machine is a pool of ``max_workers`` slots (default: the number of
      cores): every job *proc* needs one. DAGMan submits each ready node as one
      cluster (``queue N`` = N procs, ``$(Cluster)`` a counter of this run,
      ``$(Process)`` 0..N-1); idle procs start in the schedd's order: job
      priority, then job id.
    * Ready nodes are submitted highest ``PRIORITY`` first; ties in the order
      they became ready (src/condor_dagman/dag_priority_q.h: a max-heap on
      effective priority, then on a counter that makes appended nodes FIFO and
      re-queued (throttled) nodes go first). The effective priority is the
      node's own ``PRIORITY`` plus the DAG's (0 here): since 8.5.7 it no longer
      depends on the parents' (manual: dagman-priorities.rst).
    * ``MAXJOBS cat N`` limits the *clusters* (nodes) of a category in the
      queue, not procs (manual: dagman-throttling.rst, "a maximum number of
      submitted clusters"; src Dag::UpdateNodeCounts): a node counts from its
      submission until all its procs have left the queue; PRE and POST script
      time does not count.
    * Each job proc runs as its own process in its own scratch directory. Only
      ``transfer_input_files`` are copied in (into their relative paths when
      ``preserve_relative_paths`` is true, flat otherwise), only
      ``transfer_output_files`` (expanded per proc) are copied back, each by
      temporary name then rename. A missing input or output fails the proc
      here (return value -1002, what DAGMan reports for a removed job) -- on a
      pool the job would go ON HOLD -- and the message says so.
    * The job sees an execute node's environment: the submit description's
      ``environment`` (the caller's whole environment with ``getenv = true``)
      plus a few machine settings (PATH, HOME, LANG, the BLAS/OpenMP
      threading variables) and ``_CONDOR_SCRATCH_DIR``.
    * Macros of a node job (src/condor_dagman/dagman_submit.cpp init_vars):
      ``$(JOB)``, ``$(RETRY)``, ``$(DAG_STATUS)``, ``$(FAILED_COUNT)``,
      ``$(DAG_PARENT_NAMES)``, ``priority`` (the node's effective priority when
      not 0), then the node's VARS (which win); ``$(Cluster)``/``$(ClusterId)``,
      ``$(Process)``/``$(ProcId)``/``$(Step)``. ``DAGManJobId`` is only defined
      by a DAGMan running as a job of a schedd, so it is not defined here.
    * A proc that fails (exit code not 0, or a signal: -signal) fails the
      node: its code is the node's return value and the cluster's other procs
      are removed (killed) -- DAGMan does this unconditionally (src Dag::
      ProcessTerminatedEvent, RemoveBatchJob; manual: dagman-scripts.rst
      $RETURN).
    * ``SCRIPT PRE|POST`` run on this machine, cwd the node's directory, with
      the runner's environment, the command split on blanks, with the
      argument macros of src/condor_dagman/script.cpp (``$JOB``/``$NODE``,
      ``$RETRY``, ``$MAX_RETRIES``, ``$DAG_STATUS``, ``$FAILED_COUNT``,
      ``$FUTILE_COUNT``, ``$DONE_COUNT``, ``$QUEUED_COUNT``, ``$NODE_COUNT``;
      POST only: ``$JOBID``, ``$CLUSTERID``, ``$JOB_COUNT``, ``$SUCCESS``,
      ``$RETURN``, ``$EXIT_CODES``, ``$EXIT_CODE_COUNTS``,
      ``$PRE_SCRIPT_RETURN``, ``$JOB_ABORT_COUNT``). A failed PRE script fails
      the node without a job and without the POST script
      (DAGMAN_ALWAYS_RUN_POST is false by default). With a POST script, its
      exit code decides (manual: node-pass-or-fail.rst, "the exit value of
      whatever component of the node was run last").
    * ``RETRY n`` reruns the whole node (PRE, job, POST) after a PRE, job or
      POST failure, up to n times; ``UNLESS-EXIT c`` stops retrying when the
      node's return value (of the part that failed) is c (src Dag::
      RestartNode). ``$(RETRY)`` / ``$RETRY`` is 0 on the first try.
    * ``ABORT-DAG-ON node v [RETURN r]`` is checked against the PRE script's
      exit, the job's (only when the node has no POST script) and the POST
      script's: on a match the DAG stops at once -- running jobs and scripts
      are killed, a rescue DAG is written -- even if retries remain (src Dag::
      CheckForDagAbort). The exit code is r, or the node's return value
      without RETURN; ``RETURN 0`` leaves DAG_STATUS at 0 (OK).
    * When a node fails for good the rest of the DAG goes on "until no more
      forward progress can be made" (the DAGMan manual's words): every node
      that does not depend on a failed one still runs (``fail_fast=True``
      starts nothing new instead). Then a rescue DAG in DAGMan's format is
      written; running again resumes from it.
    * Submit commands the runner cannot honour here (``requirements``,
      ``request_gpus``, ``container_image``, ``accounting_group``, job ad
      attributes ``+X``/``My.X`` ...) are ignored with one notice per command
      name and run, on ``stream``.
    * dask's callback protocol (start, start_state, pretask, posttask,
      finish -- finish also on failure) is driven per task, so
      ``dask.diagnostics.ProgressBar`` works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import heapq
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import dagfile, names, submitdesc
from .exceptions import RunnerError

__all__ = ["run", "RunReport", "JobOutcome", "run_job"]

_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_PASS_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_")

# src/condor_dagman/dag.cpp
DAG_ERROR_CONDOR_JOB_ABORTED = -1002
DAG_ERROR_JOB_SKIPPED = -1004
# DAG_STATUS values (manual: dagman-scripts.rst, $DAG_STATUS)
DAG_STATUS_OK, DAG_STATUS_ERROR, DAG_STATUS_NODE_FAILED, DAG_STATUS_ABORT = 0, 1, 2, 3
# Node status values and names (src/condor_dagman/node.cpp status_t_names)
(STATUS_NOT_READY, STATUS_READY, STATUS_PRERUN, STATUS_SUBMITTED, STATUS_POSTRUN,
 STATUS_DONE, STATUS_ERROR, STATUS_FUTILE) = range(8)
STATUS_NAMES = ("STATUS_NOT_READY", "STATUS_READY", "STATUS_PRERUN", "STATUS_SUBMITTED",
                "STATUS_POSTRUN", "STATUS_DONE", "STATUS_ERROR", "STATUS_FUTILE")

#: Submit commands the runner acts on.
_USED_COMMANDS = {
    "executable", "arguments", "environment", "getenv", "transfer_input_files",
    "transfer_output_files", "preserve_relative_paths", "transfer_executable",
    "output", "error", "initialdir", "priority",
}
#: Accepted silently: they change nothing a local run could show (the job log,
#: mail, a best-effort resource request any machine grants or ignores alike).
_HARMLESS_COMMANDS = {
    "log", "should_transfer_files", "when_to_transfer_output", "notification",
    "notify_user", "batch_name", "request_cpus", "request_memory", "request_disk",
    "stream_output", "stream_error", "description",
}
# Our own informational job ad attributes (render.py) mean nothing to a run.
_OWN_ATTRIBUTE_PREFIX = "My.DaskCondorDag"


@dataclass(frozen=True)
class JobOutcome:
    """How one job proc ended: ``ok``, the exit code (negative: killed by that
    signal; None: never ran or its files failed) and, if not ok, why.
    ``removed``: the runner killed it (its cluster failed or the DAG aborted)."""

    node: str
    ok: bool
    exit_code: int | None
    reason: str = ""
    seconds: float = 0.0
    process: int = 0
    removed: bool = False


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


def _dag_path(path) -> Path:
    p = Path(path).absolute()
    if p.is_dir():
        dags = sorted(p.glob("*.dag"))
        if len(dags) != 1:
            raise RunnerError(
                f"{p} holds {len(dags)} .dag files; name the DAG file to run"
            )
        return dags[0]
    if not p.exists():
        raise RunnerError(f"{p} does not exist")
    return p


def load_dag(dag_path: Path):
    """The DAG as DAGMan would run it: the file plus its newest rescue DAG.

    A command the runner does not support (SUBDAG, SPLICE, FINAL, ...) raises
    :class:`RunnerError` naming the file and line."""
    try:
        dag = dagfile.parse_dag(dag_path.read_text(encoding="utf-8"), str(dag_path))
        rescue = dagfile.newest_rescue(str(dag_path))
        if rescue:
            dag = dagfile.apply_rescue(dag, Path(rescue).read_text(encoding="utf-8"), str(rescue))
    except dagfile.DagSyntaxError as e:
        raise RunnerError(f"the local runner cannot run this DAG: {e}") from e
    return dag, rescue


def _job_env(extra: dict, scratch: str, getenv: bool = False) -> dict:
    if getenv:
        env = dict(os.environ)
    else:
        env = {k: v for k, v in os.environ.items()
               if k in _PASS_ENV or k.startswith(_PASS_ENV_PREFIXES)}
    env.update(extra)
    env["_CONDOR_SCRATCH_DIR"] = scratch
    env["TMPDIR"] = scratch
    return env


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1", "t", "y")


def _node_macros(node, retry: int) -> dict:
    macros = {"JOB": node.name, "RETRY": str(retry)}
    macros.update(node.vars)
    return macros


def run_job(workdir: Path, node, submit, *, retry: int = 0, cluster: int = 1,
            process: int = 0, macros: dict | None = None,
            kill: threading.Event | None = None) -> JobOutcome:
    """Run proc ``process`` of ``node``'s job (``node`` a ``dagfile.DagNode``)
    from its submit description, as an execute node would: scratch directory,
    file transfer, exit code. ``macros``: the DAGMan-defined macros and VARS
    (default: ``JOB``, ``RETRY`` and the node's VARS). Setting ``kill``
    removes the job: the process is killed and nothing is transferred back."""
    start = time.monotonic()
    if macros is None:
        macros = _node_macros(node, retry)
    base = workdir / node.dir if node.dir else workdir

    def fail(reason, code=None, removed=False):
        return JobOutcome(node.name, False, code, reason, time.monotonic() - start,
                          process, removed)

    try:
        cmds = submitdesc.expand_for_proc(submit, macros, cluster=cluster, process=process)
    except submitdesc.SubmitSyntaxError as e:
        return fail(f"submit description {node.submit}: {e}")
    initialdir = base / cmds["initialdir"] if cmds.get("initialdir") else base
    exe = cmds.get("executable", "")
    if not exe:
        return fail(f"submit description {node.submit} has no executable")
    exe_path = exe if os.path.isabs(exe) else str(initialdir / exe)
    try:
        args = submitdesc.split_arguments(cmds.get("arguments", ""))
        job_env = submitdesc.parse_environment(cmds.get("environment", ""))
    except submitdesc.SubmitSyntaxError as e:
        return fail(f"submit description {node.submit}: {e}")
    preserve = _is_true(cmds.get("preserve_relative_paths", "false"))
    scratch = tempfile.mkdtemp(prefix=names.scratch_prefix(node.name, os.getpid()))
    try:
        for entry in submitdesc.split_file_list(cmds.get("transfer_input_files", "")):
            src = initialdir / entry
            dst = Path(scratch) / (entry if preserve and not os.path.isabs(entry) else os.path.basename(entry))
            if not src.is_file():
                return fail(f"input file {entry} (from transfer_input_files) does not exist at "
                            f"{src}; on a pool the job would go ON HOLD (transfer input files failure)")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        if _is_true(cmds.get("transfer_executable", "true")) and not os.path.isabs(exe):
            shutil.copy2(exe_path, Path(scratch) / os.path.basename(exe))
            exe_path = str(Path(scratch) / os.path.basename(exe))
        env = _job_env(job_env, scratch, _is_true(cmds.get("getenv", "false")))
        out_path = initialdir / cmds["output"] if cmds.get("output") else None
        err_path = initialdir / cmds["error"] if cmds.get("error") else None
        for p in (out_path, err_path):
            if p is not None:
                p.parent.mkdir(parents=True, exist_ok=True)
        with _open_log(out_path) as out, _open_log(err_path) as err:
            try:
                proc = subprocess.Popen([exe_path, *args], cwd=scratch, env=env,
                                        stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            except OSError as e:
                return fail(f"cannot start {exe_path}: {e}")
            while True:
                try:
                    code = proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    if kill is not None and kill.is_set():
                        _kill_group(proc)
                        proc.wait()
                        return fail("job removed", removed=True)
        for entry in submitdesc.split_file_list(cmds.get("transfer_output_files", "")):
            src = Path(scratch) / entry
            rel = entry if preserve else os.path.basename(entry)
            dst = initialdir / rel
            if not src.is_file():
                return fail(f"output file {entry} (from transfer_output_files) was not written by "
                            f"the job (exit code {code}); on a pool the job would go ON HOLD "
                            "(transfer output files failure)")
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.transfer-{os.getpid()}-{threading.get_ident()}")
            shutil.copyfile(src, tmp)
            # files come back as private as the folder they land in
            os.chmod(tmp, stat.S_IMODE(os.stat(dst.parent).st_mode) & 0o666)
            os.replace(tmp, dst)
        if code != 0:
            what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return fail(f"job proc {cluster}.{process} {what}", code)
        return JobOutcome(node.name, True, 0, "", time.monotonic() - start, process)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the job's process group (condor_rm of a running job)."""
    try:
        os.killpg(proc.pid, 9)
    except (OSError, AttributeError):
        try:
            proc.kill()
        except OSError:
            pass


class _open_log:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "ab") if self.path is not None else subprocess.DEVNULL
        return self.f

    def __exit__(self, *exc):
        if self.path is not None:
            self.f.close()


class _Node:
    """DAGMan's per-node bookkeeping (src/condor_dagman/node.h), trimmed."""

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.predone = spec.done
        self.status = STATUS_DONE if spec.done else STATUS_NOT_READY
        self.retries = 0
        self.retval = 0
        self.error = ""
        self.pre_done = False
        self.pre_ret = -1  # $PRE_SCRIPT_RETURN: -1 without a PRE script
        self.job_ret = -1  # $RETURN
        self.started = False  # dask keys moved to "running"
        self.seq = None  # jobstate.log sequence number of this attempt
        self.reset_job()

    def reset_job(self):
        self.cluster = -1
        self.nprocs = 0
        self.queued = 0
        self.idle: set = set()
        self.running: set = set()
        self.exit_codes: dict = {}
        self.aborted_procs = 0
        self.kill = threading.Event()
        self.macros: dict = {}


class _Runner:
    def __init__(self, dag_path, dag, *, max_workers, stream, fail_fast, progress,
                 callbacks, journal=None):
        self.journal = journal
        self.dag_path = dag_path
        self.workdir = dag_path.parent
        self.dag = dag
        self.max_workers = max_workers
        self.stream = stream
        self.fail_fast = fail_fast
        self.progress = progress
        self.nodes = {n: _Node(s) for n, s in dag.nodes.items()}
        self.report = RunReport(dag=dag_path, total=len(self.nodes))
        self.report.skipped = {n for n, s in self.nodes.items() if s.predone}
        self.report.done = set(self.report.skipped)
        self.events: queue.Queue = queue.Queue()
        self.readyq: list = []
        self.generation = 0
        self.idle: list = []  # heap of (-job priority, cluster, proc, node)
        self.running_procs = 0
        self.next_cluster = 0
        self.cat_current: dict = {}
        self.dag_status = DAG_STATUS_OK
        self.failed_count = 0
        self.futile_count = 0
        self.stopping = False
        self.aborted = False
        self.finished_at_abort = False
        self.exit_code = 0
        self.submits: dict = {}
        self.noticed: set = set()
        self.script_procs: dict = {}
        self.lock = threading.Lock()
        self.jobstate_seq = 0
        self.status_outdated = True
        self.last_status_write = 0.0
        nsf = dag.node_status_file
        self.status_file = self._path(nsf[0]) if nsf else None
        self.status_min = nsf[1] if nsf else 0
        self.jobstate = self._path(dag.jobstate_log) if dag.jobstate_log else None
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="condordag-job")
        self.script_pool = ThreadPoolExecutor(max_workers=40, thread_name_prefix="condordag-script")
        (self.start_cbs, self.start_state_cbs, self.pretask_cbs, self.posttask_cbs,
         self.finish_cbs) = _unpack(callbacks)
        self.keys_of = _keys_of(self.workdir)
        done = self.report.done
        waiting = [n for n in self.nodes if n not in done
                   and any(p not in done for p in dag.parents.get(n, ()))]
        self.state = {
            "ready": {k for n in self.nodes if n not in done and n not in waiting
                      for k in self.keys_of(n)},
            "waiting": {k: set() for n in waiting for k in self.keys_of(n)},
            "running": set(),
            "finished": {k for n in done for k in self.keys_of(n)},
            "cache": {}, "released": set(), "waiting_data": {},
            "dependents": {}, "dependencies": {},
        }

    def _path(self, name: str) -> Path:
        return Path(name) if os.path.isabs(name) else self.workdir / name

    # ------------------------------------------------------------ helpers
    def set_status(self, n: _Node, status: int) -> None:
        n.status = status
        self.status_outdated = True

    def node_dir(self, n: _Node) -> Path:
        return self.workdir / n.spec.dir if n.spec.dir else self.workdir

    def submit_for(self, n: _Node):
        key = (n.spec.dir, n.spec.submit)
        if key not in self.submits:
            p = self.node_dir(n) / n.spec.submit
            try:
                text = p.read_text(encoding="utf-8")
                self.submits[key] = submitdesc.parse_submit(text, str(p))
            except OSError as e:
                raise RunnerError(f"node {n.name}: cannot read submit description {p}: {e}") from e
            except submitdesc.SubmitSyntaxError as e:
                raise RunnerError(f"node {n.name}: {e}") from e
        return self.submits[key]

    def do_abort(self, n: _Node) -> bool:  # Node::DoAbort
        a = n.spec.abort_dag_on
        return a is not None and n.retval == a[0]

    def do_retry(self, n: _Node) -> bool:  # Node::DoRetry
        return not self.do_abort(n) and n.retries < n.spec.retry

    def start_keys(self, n: _Node) -> None:
        if n.started:
            return
        n.started = True
        for k in self.keys_of(n.name):
            _move(self.state, k, "ready", "running")
            for cb in self.pretask_cbs:
                cb(k, {}, self.state)

    def jobstate_write(self, node: str, event: str, cid: str = "-") -> None:
        if self.jobstate is None:
            return
        if node == "INTERNAL":
            line = f"{int(time.time())} INTERNAL *** {event} {cid} ***"
        else:
            n = self.nodes[node]
            if n.seq is None:  # Node::GetJobstateSequenceNum
                self.jobstate_seq += 1
                n.seq = self.jobstate_seq
            line = f"{int(time.time())} {node} {event} {cid} - - {n.seq}"
        with open(self.jobstate, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def notice(self, n: _Node, key: str, value: str) -> None:
        if key in self.noticed:
            return
        self.noticed.add(key)
        msg = (f"[dask-condordag] notice: submit command {key} = {value} (node {n.name}, "
               f"{n.spec.submit}) cannot be honoured by the local runner; ignored")
        self.report.notices.append(msg)
        print(msg, file=self.stream, flush=True)

    # ------------------------------------------------------------ DAGMan steps
    def start_node(self, n: _Node, is_retry: bool = False) -> None:  # Dag::StartNode
        if self.stopping or self.aborted:
            self.set_status(n, STATUS_READY)
            return
        if n.spec.pre and not n.pre_done:
            self.set_status(n, STATUS_PRERUN)
            self.start_keys(n)
            self.run_script(n, "PRE")
            return
        self.set_status(n, STATUS_READY)
        self.ready_append(n)

    def ready_append(self, n: _Node) -> None:
        self.generation += 1
        heapq.heappush(self.readyq, (-n.spec.priority, self.generation, n.name))

    def ready_prepend(self, n: _Node) -> None:
        self.generation += 1
        heapq.heappush(self.readyq, (-n.spec.priority, -self.generation, n.name))

    def submit_ready(self) -> None:  # Dag::SubmitReadyNodes
        if self.stopping or self.aborted:
            return
        deferred = []
        while self.readyq:
            n = self.nodes[heapq.heappop(self.readyq)[2]]
            cat = n.spec.category
            limit = self.dag.maxjobs.get(cat) if cat is not None else None
            if limit and self.cat_current.get(cat, 0) >= limit:
                deferred.append(n)
            else:
                self.submit_node(n)
        for n in deferred:
            self.ready_prepend(n)

    def submit_node(self, n: _Node) -> None:
        submit = None if n.spec.noop else self.submit_for(n)
        self.next_cluster += 1
        n.reset_job()
        n.cluster = self.next_cluster
        self.set_status(n, STATUS_SUBMITTED)
        if n.spec.category is not None:
            self.cat_current[n.spec.category] = self.cat_current.get(n.spec.category, 0) + 1
        self.start_keys(n)
        macros = {
            "JOB": n.name, "RETRY": str(n.retries), "DAG_STATUS": str(self.dag_status),
            "FAILED_COUNT": str(self.failed_count),
            "DAG_PARENT_NAMES": ",".join(self.dag.parents.get(n.name, ())),
        }
        if n.spec.priority:
            macros["priority"] = str(n.spec.priority)
        macros.update(n.spec.vars)
        n.macros = macros
        nprocs = 1 if submit is None else submit.queue_count
        n.nprocs = n.queued = nprocs
        if submit is None:  # NOOP: a fake submit that terminates at once
            for p in range(nprocs):
                self.jobstate_write(n.name, "SUBMIT", f"{n.cluster}.{p}")
                self.events.put(("proc", n.name, n.cluster,
                                 JobOutcome(n.name, True, 0, "", 0.0, p)))
            return
        try:
            cmds = submitdesc.expand(submit, macros)
        except submitdesc.SubmitSyntaxError as e:
            raise RunnerError(f"node {n.name}: {e}") from e
        for key, value in cmds.items():
            lk = key.lower()
            if key.startswith("My."):
                if not key.startswith(_OWN_ATTRIBUTE_PREFIX):
                    self.notice(n, key, value)
            elif lk == "universe":
                if value.strip().lower() not in ("vanilla", "local"):
                    self.notice(n, key, value)
            elif lk not in _USED_COMMANDS and lk not in _HARMLESS_COMMANDS:
                self.notice(n, key, value)
        prio = n.spec.priority
        if not prio:  # the submit file's own priority applies when the node's is 0
            try:
                prio = int(cmds.get("priority", "0") or 0)
            except ValueError:
                prio = 0
        for p in range(nprocs):
            n.idle.add(p)
            heapq.heappush(self.idle, (-prio, n.cluster, p, n.name))
            self.jobstate_write(n.name, "SUBMIT", f"{n.cluster}.{p}")

    def dispatch(self) -> None:
        """The schedd: start idle procs while slots are free."""
        skipped = []
        while self.idle and self.running_procs < self.max_workers and not self.aborted:
            entry = heapq.heappop(self.idle)
            _, cluster, p, name = entry
            n = self.nodes[name]
            if n.cluster != cluster or p not in n.idle:
                continue
            if self.stopping and not n.running:
                skipped.append(entry)
                continue
            n.idle.discard(p)
            n.running.add(p)
            self.running_procs += 1
            self.note_concurrency()
            self.jobstate_write(name, "EXECUTE", f"{cluster}.{p}")
            submit = self.submit_for(n)
            self.pool.submit(self._proc_thread, n, submit, cluster, p, dict(n.macros), n.kill)
        for entry in skipped:
            heapq.heappush(self.idle, entry)

    def _proc_thread(self, n, submit, cluster, p, macros, kill):
        try:
            outcome = run_job(self.workdir, n.spec, submit, retry=n.retries, cluster=cluster,
                              process=p, macros=macros, kill=kill)
        except Exception as e:  # never lose a proc
            outcome = JobOutcome(n.name, False, None, f"runner error: {e!r}", 0.0, p)
        self.events.put(("proc", n.name, cluster, outcome))

    def note_concurrency(self) -> None:
        r = self.report
        running = [n for n in self.nodes.values() if n.running]
        r.max_running = max(r.max_running, len(running))
        r.max_running_procs = max(r.max_running_procs, self.running_procs)
        by_cat: dict = {}
        for n in running:
            if n.spec.category is not None:
                by_cat[n.spec.category] = by_cat.get(n.spec.category, 0) + 1
        for cat, k in by_cat.items():
            r.max_running_by_category[cat] = max(r.max_running_by_category.get(cat, 0), k)

    def handle_proc(self, name: str, cluster: int, outcome: JobOutcome) -> None:
        n = self.nodes[name]
        if n.cluster != cluster:
            return  # a proc of an earlier attempt
        p = outcome.process
        if p in n.running:
            n.running.discard(p)
            self.running_procs -= 1
        n.queued -= 1
        self.status_outdated = True
        cid = f"{cluster}.{p}"
        if outcome.removed or outcome.exit_code is None:
            # Dag::ProcessAbortEvent (a removed job; here also a job whose
            # files failed, which a pool would hold)
            self.jobstate_write(name, "JOB_ABORTED", cid)
            n.aborted_procs += 1
            if n.status != STATUS_ERROR:
                self.set_status(n, STATUS_ERROR)
                n.error = outcome.reason or f"job proc ({cid}.0) aborted"
                n.retval = n.job_ret = DAG_ERROR_CONDOR_JOB_ABORTED
                self.remove_cluster(n)
            if not n.spec.post and not self.do_retry(n):
                self.set_futile(n)
            self.proc_end(n, True)
            return
        self.jobstate_write(name, "JOB_TERMINATED", cid)
        code = outcome.exit_code
        n.exit_codes[code] = n.exit_codes.get(code, 0) + 1
        failed = not outcome.ok
        if failed:  # Dag::ProcessTerminatedEvent
            if n.status != STATUS_ERROR:
                if code is not None and code < 0:
                    n.error = f"Job proc ({cid}.0) failed with signal {-code}"
                elif code == 0:  # exit 0 but its output transfer failed
                    n.error = outcome.reason
                else:
                    n.error = f"Job proc ({cid}.0) failed with status {code}"
                n.retval = n.job_ret = code if code else DAG_ERROR_CONDOR_JOB_ABORTED
                self.set_status(n, STATUS_ERROR)
                self.remove_cluster(n)
            if not n.spec.post and not self.do_retry(n):
                self.set_futile(n)
        elif n.status != STATUS_ERROR:
            n.retval = n.job_ret = 0
        self.proc_end(n, failed or n.status == STATUS_ERROR)
        if not n.spec.post:
            self.check_abort(n)

    def remove_cluster(self, n: _Node) -> None:
        """condor_rm of the node's cluster: idle procs leave the queue, running
        ones are killed (their events come back as removed)."""
        if n.idle:
            n.queued -= len(n.idle)
            n.aborted_procs += len(n.idle)
            n.idle.clear()
        if n.running:
            n.kill.set()

    def proc_end(self, n: _Node, failed: bool) -> None:  # Dag::ProcessJobProcEnd
        all_done = n.queued == 0
        if all_done:
            if n.spec.category is not None:
                self.cat_current[n.spec.category] -= 1
            self.jobstate_write(n.name, "JOB_SUCCESS" if n.retval == 0 else "JOB_FAILURE",
                                str(n.retval))
        if failed and not n.spec.post:
            if not all_done:
                return
            if self.do_retry(n):
                self.restart_node(n)
            else:
                if n.spec.retry > 0:
                    n.error += f" (after {n.retries} node retries)"
                self.node_failed(n, futile=False)  # futile already set
            return
        if all_done:
            if n.spec.post:
                self.run_script(n, "POST")
            elif n.status != STATUS_ERROR:
                self.terminate_node(n)

    def node_failed(self, n: _Node, futile: bool = True) -> None:
        self.set_status(n, STATUS_ERROR)
        if futile:
            self.set_futile(n)
        self.failed_count += 1
        if self.dag_status == DAG_STATUS_OK:
            self.dag_status = DAG_STATUS_NODE_FAILED
        self.report.failed[n.name] = n.error
        if self.fail_fast and not self.stopping:
            self.stop()

    def stop(self) -> None:
        """fail_fast: start nothing new; clusters not yet running leave the queue."""
        self.stopping = True
        for n in self.nodes.values():
            if n.status == STATUS_SUBMITTED and not n.running and n.queued == len(n.idle):
                n.idle.clear()
                n.queued = 0
                if n.spec.category is not None:
                    self.cat_current[n.spec.category] -= 1
                n.reset_job()
                self.set_status(n, STATUS_READY)

    def set_futile(self, n: _Node) -> None:  # Node::SetDescendantsToFutile
        stack = list(self.dag.children.get(n.name, ()))
        seen = set()
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            cn = self.nodes[c]
            if cn.status in (STATUS_NOT_READY, STATUS_READY):
                self.set_status(cn, STATUS_FUTILE)
                self.futile_count += 1
            stack.extend(self.dag.children.get(c, ()))

    def restart_node(self, n: _Node) -> None:  # Dag::RestartNode
        unless = n.spec.retry_unless_exit
        if unless is not None and n.retval == unless:
            # "Aborting further retries": the node fails now (DAGMan leaves
            # its descendants as they are).
            self.node_failed(n, futile=False)
            return
        n.retries += 1
        self.report.retries[n.name] = n.retries
        n.reset_job()
        n.pre_done = False
        n.error = ""
        n.seq = None
        self.set_status(n, STATUS_READY)
        self.start_node(n, is_retry=True)

    def terminate_node(self, n: _Node) -> None:  # Dag::TerminateNode
        self.set_status(n, STATUS_DONE)
        self.report.done.add(n.name)
        if self.journal is not None:  # after its outputs are in place: see _Journal
            self.journal.done(n.name)
        for k in self.keys_of(n.name):
            _move(self.state, k, "running", "finished")
            for cb in self.posttask_cbs:
                cb(k, None, {}, self.state, n.name)
        for c in self.dag.children.get(n.name, ()):
            cn = self.nodes[c]
            if cn.status == STATUS_NOT_READY and all(
                    p in self.report.done for p in self.dag.parents.get(c, ())):
                for k in self.keys_of(c):
                    _move(self.state, k, "waiting", "ready")
                self.start_node(cn)

    def check_abort(self, n: _Node) -> None:  # Dag::CheckForDagAbort
        if self.aborted or not self.do_abort(n):
            return
        ret = n.spec.abort_dag_on[1]
        self.finished_at_abort = not self.active()
        self.aborted = True
        self.report.aborted = True
        if ret is not None:
            self.exit_code = ret
            self.dag_status = DAG_STATUS_ABORT if ret != 0 else DAG_STATUS_OK
        else:
            self.exit_code = n.retval
            self.dag_status = DAG_STATUS_ABORT
        print(f"[dask-condordag] {self.dag_path.name}: aborting the DAG: node {n.name} "
              f"returned {n.retval} (ABORT-DAG-ON); exit code {self.exit_code}",
              file=self.stream, flush=True)
        # main_shutdown_rescue: remove every node job, kill running scripts
        self.idle.clear()
        self.kill_everything()

    def kill_everything(self) -> None:
        """Remove every node's queued and running procs and kill running scripts."""
        for x in self.nodes.values():
            x.idle.clear()
            if x.running:
                x.kill.set()
        with self.lock:
            for proc in list(self.script_procs.values()):
                _kill_group(proc)

    # ------------------------------------------------------------ scripts
    def run_script(self, n: _Node, kind: str) -> None:
        if kind == "POST":
            self.set_status(n, STATUS_POSTRUN)
            self.jobstate_write(n.name, "POST_SCRIPT_STARTED", f"{n.cluster}.0")
        else:
            self.jobstate_write(n.name, "PRE_SCRIPT_STARTED")
        argv = self.script_argv(n, kind)
        token = (n.retries, n.cluster)
        self.script_pool.submit(self._script_thread, n, kind, argv, token)

    def script_argv(self, n: _Node, kind: str) -> list:
        """Script::BackgroundRun: split on blanks, replace whole-token macros."""
        cmd = n.spec.pre if kind == "PRE" else n.spec.post
        post = kind == "POST"
        codes = sorted(n.exit_codes.items())
        values = {
            "$NODE": n.name, "$JOB": n.name, "$RETRY": str(n.retries),
            "$MAX_RETRIES": str(n.spec.retry), "$DAG_STATUS": str(self.dag_status),
            "$FAILED_COUNT": str(self.failed_count), "$FUTILE_COUNT": str(self.futile_count),
            "$DONE_COUNT": str(len(self.report.done)),
            "$QUEUED_COUNT": str(sum(1 for x in self.nodes.values()
                                     if x.status == STATUS_SUBMITTED)),
            "$NODE_COUNT": str(len(self.nodes)),
        }
        post_only = {
            "$JOBID": f"{n.cluster}.{max(n.nprocs - 1, 0)}", "$CLUSTERID": str(n.cluster),
            "$JOB_COUNT": str(n.nprocs),
            "$SUCCESS": "True" if n.status != STATUS_ERROR else "False",
            "$RETURN": str(n.job_ret), "$PRE_SCRIPT_RETURN": str(n.pre_ret),
            "$EXIT_CODES": ",".join(str(c) for c, _ in codes),
            "$EXIT_CODE_COUNTS": ",".join(f"{c}:{k}" for c, k in codes),
            "$JOB_ABORT_COUNT": str(n.aborted_procs),
        }
        argv = []
        for tok in cmd.split():
            up = tok.upper()
            if up in values:
                argv.append(values[up])
            elif up in post_only and post:
                argv.append(post_only[up])
            else:
                argv.append(tok)
        return argv

    def _script_thread(self, n, kind, argv, token):
        cwd = self.node_dir(n)
        exe = argv[0]
        if not os.path.isabs(exe) and (cwd / exe).exists():
            exe = str(cwd / exe)
        try:
            proc = subprocess.Popen([exe, *argv[1:]], cwd=cwd, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            with self.lock:
                self.script_procs[(n.name, kind)] = proc
                if self.aborted:
                    _kill_group(proc)
            code = proc.wait()
        except OSError as e:
            print(f"[dask-condordag] {kind} script of node {n.name}: cannot run {argv[0]}: {e}",
                  file=self.stream, flush=True)
            code = 1  # DAGMan: a script that cannot start fails
        finally:
            with self.lock:
                self.script_procs.pop((n.name, kind), None)
        self.events.put((kind.lower(), n.name, token, code))

    def handle_pre(self, n: _Node, code: int) -> None:  # Dag::PreScriptReaper
        if code != 0:
            n.error = (f"PRE Script died on signal {-code}" if code < 0
                       else f"PRE Script failed with status {code}")
            n.retval = code
            self.jobstate_write(n.name, "PRE_SCRIPT_FAILURE")
            # DAGMAN_ALWAYS_RUN_POST defaults to false: no POST script.
            if self.do_retry(n):
                self.set_status(n, STATUS_ERROR)
                self.restart_node(n)
            else:
                if n.spec.retry > 0:
                    n.error += f" (after {n.retries} node retries)"
                self.node_failed(n)
        else:
            n.pre_ret = 0
            n.retval = 0
            n.pre_done = True
            self.jobstate_write(n.name, "PRE_SCRIPT_SUCCESS")
            self.set_status(n, STATUS_READY)
            self.ready_append(n)
        self.check_abort(n)

    def handle_post(self, n: _Node, code: int) -> None:  # Dag::ProcessPostTermEvent
        cid = f"{n.cluster}.0"
        self.jobstate_write(n.name, "POST_SCRIPT_TERMINATED", cid)
        if code != 0:
            main = n.retval
            n.retval = code
            self.jobstate_write(n.name, "POST_SCRIPT_FAILURE", cid)
            if self.do_retry(n):
                self.set_status(n, STATUS_ERROR)
                self.restart_node(n)
            else:
                if main > 0:
                    n.error = f"Job exited with status {main} and "
                elif 0 > main >= -64:
                    n.error = f"Job died on signal {-main} and "
                else:
                    n.error = f"Job failed due to DAGMAN error {main} and "
                n.error += (f"POST Script died on signal {-code}" if code < 0
                            else f"POST Script failed with status {code}")
                if n.spec.retry > 0:
                    n.error += f" (after {n.retries} node retries)"
                self.node_failed(n)
        else:
            n.retval = 0
            self.jobstate_write(n.name, "POST_SCRIPT_SUCCESS", cid)
            self.terminate_node(n)
        self.check_abort(n)

    # ------------------------------------------------------------ status file
    def dump_status(self, final: bool = False) -> None:  # Dag::DumpNodeStatus
        if self.status_file is None:
            return
        if not self.status_outdated and not final:
            return
        now = time.time()
        too_soon = self.status_min > 0 and now - self.last_status_write < self.status_min
        if too_soon and not final and not self.aborted:
            return
        self.status_outdated = False
        self.last_status_write = now
        _write_atomic(self.status_file, self.status_text(final, now))

    def status_text(self, final: bool, start: float) -> str:
        nodes = self.nodes.values()
        done = len(self.report.done)
        fin = final and (not self.aborted or self.finished_at_abort)
        mark = False
        note = ""
        dag_job_status = STATUS_SUBMITTED
        if fin and (done == len(self.nodes) or (self.aborted and self.dag_status == DAG_STATUS_OK)):
            dag_job_status, note, mark = STATUS_DONE, "success", True
        elif fin and self.failed_count > 0:
            dag_job_status, mark = STATUS_ERROR, True
            note = "aborted" if self.dag_status == DAG_STATUS_ABORT else "failed"
        elif self.aborted:
            dag_job_status, note, mark = STATUS_ERROR, "aborted", True
        count = {s: sum(1 for x in nodes if x.status == s) for s in range(8)}
        # NodesQueued is DAGMan's count of nodes with jobs in the queue
        # (Dag::NumNodesSubmitted), whatever their status.
        pre, post = count[STATUS_PRERUN], count[STATUS_POSTRUN]
        queued = sum(1 for x in nodes if x.queued > 0)
        failed = self.failed_count
        idle = sum(len(x.idle) for x in nodes)
        if mark:
            failed += pre + queued + post
            pre = queued = post = idle = 0
        in_readyq = {e[2] for e in self.readyq}
        unready = count[STATUS_NOT_READY] + sum(
            1 for x in nodes if x.status == STATUS_READY and x.name not in in_readyq)
        out = ["[", '  Type = "DagStatus";', "  DagFiles = {",
               f"    {_classad_str(self.dag_path.name)}", "  };",
               f"  Timestamp = {int(start)}; /* {_classad_str(time.ctime(int(start)))} */",
               f"  DagStatus = {dag_job_status}; /* "
               f"{_classad_str(STATUS_NAMES[dag_job_status] + ' (' + note + ')')} */",
               f"  NodesTotal = {len(self.nodes)};", f"  NodesDone = {done};",
               f"  NodesPre = {pre};", f"  NodesQueued = {queued};", f"  NodesPost = {post};",
               f"  NodesReady = {len(self.readyq)};", f"  NodesUnready = {unready};",
               f"  NodesFutile = {self.futile_count};", f"  NodesFailed = {failed};",
               "  JobProcsHeld = 0;", f"  JobProcsIdle = {idle}; /* includes held */", "]"]
        for x in nodes:
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
            out += ["[", '  Type = "NodeStatus";', f"  Node = {_classad_str(x.name)};",
                    f"  NodeStatus = {status}; /* {_classad_str(STATUS_NAMES[status])} */",
                    f"  StatusDetails = {_classad_str(detail)};",
                    f"  RetryCount = {x.retries};", f"  JobProcsQueued = {procs};",
                    "  JobProcsHeld = 0;", "]"]
        end = time.time()
        if final:
            nxt, nxt_s = 0, "none"
        else:
            nxt = int(end) + self.status_min
            nxt_s = time.ctime(nxt)
        out += ["[", '  Type = "StatusEnd";',
                f"  EndTime = {int(end)}; /* {_classad_str(time.ctime(int(end)))} */",
                f"  NextUpdate = {nxt}; /* {_classad_str(nxt_s)} */", "]"]
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------ main loop
    def active(self) -> bool:
        if any(x.status in (STATUS_PRERUN, STATUS_SUBMITTED, STATUS_POSTRUN) or x.queued > 0
               for x in self.nodes.values()):
            return True
        return bool(self.readyq) and not self.stopping

    def handle(self, ev) -> None:
        kind, name, token, value = ev
        n = self.nodes[name]
        if kind == "proc":
            self.handle_proc(name, token, value)
        elif token != (n.retries, n.cluster):
            return
        elif kind == "pre" and n.status == STATUS_PRERUN:
            self.handle_pre(n, value)
        elif kind == "post" and n.status == STATUS_POSTRUN:
            self.handle_post(n, value)

    def run(self) -> RunReport:
        report = self.report
        for cb in self.start_cbs:
            cb({})
        for cb in self.start_state_cbs:
            cb({}, self.state)
        t0 = time.monotonic()
        last_print = t0
        errored = True
        self.jobstate_write("INTERNAL", "DAGMAN_STARTED", "0.0")
        try:
            for n in self.nodes.values():  # Dag::Bootstrap, file order
                if n.status == STATUS_NOT_READY and all(
                        p in report.done for p in self.dag.parents.get(n.name, ())):
                    self.start_node(n)
            while not self.aborted:
                self.submit_ready()
                self.dispatch()
                self.dump_status()
                if not self.active():
                    break
                try:
                    ev = self.events.get(timeout=0.5)
                except queue.Empty:
                    ev = None
                while ev is not None and not self.aborted:
                    self.handle(ev)
                    try:
                        ev = self.events.get_nowait()
                    except queue.Empty:
                        ev = None
                now = time.monotonic()
                show = self.progress if self.progress is not None else (now - t0 > 10)
                if show and (now - last_print >= 10 or self.progress is True and now - last_print >= 1):
                    last_print = now
                    print(f"[dask-condordag] {self.dag_path.name}: {len(report.done)} done, "
                          f"{self.running_procs} running, {len(report.failed)} failed "
                          f"of {report.total}", file=self.stream, flush=True)
            errored = bool(report.failed) or self.aborted
        finally:
            if self.aborted or sys.exc_info()[0] is not None:
                self.kill_everything()
            self.pool.shutdown(wait=True)
            self.script_pool.shutdown(wait=True)
            report.seconds = time.monotonic() - t0
            if not self.aborted:
                self.exit_code = 0 if len(report.done) == report.total else 1
            report.exit_code = self.exit_code
            report.dag_status = self.dag_status
            if sys.exc_info()[0] is None:
                self.dump_status(final=True)
                self.jobstate_write("INTERNAL", "DAGMAN_FINISHED", str(self.exit_code))
            if report.failed or len(report.done) < report.total:
                report.rescue = _write_rescue(self.dag_path, self.dag, report,
                                              self.failed_names())
            for cb in self.finish_cbs:
                cb({}, self.state, errored)
        return report

    def failed_names(self) -> list:
        return [n for n, x in self.nodes.items() if x.status == STATUS_ERROR]


def _classad_str(s: str) -> str:
    """A ClassAd string literal (what ClassAdUnParser writes)."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through ``path.tmp`` and a rename, as DAGMan does."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _Journal:
    """The runner's recovery log, ``<dag>.local.log``: one ``DONE node`` line,
    flushed and fsynced, as each node finishes (its outputs are already in
    place then). DAGMan recovers from its node log the same way when it is
    restarted after a crash: a runner killed part way (even with SIGKILL)
    and started again does not rerun what finished. The journal is removed
    when a run ends normally (the rescue DAG then records what is done)."""

    def __init__(self, dag_path: Path):
        self.path = dag_path.with_name(dag_path.name + ".local.log")
        self.f = None

    def recovered(self) -> set:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        # a line cut short by a crash is ignored: only whole lines count
        return {l.split()[1] for l in text.splitlines(keepends=True)
                if l.endswith("\n") and l.startswith("DONE ") and len(l.split()) == 2}

    def open(self) -> None:
        self.f = open(self.path, "a", encoding="utf-8")

    def done(self, node: str) -> None:
        self.f.write(f"DONE {node}\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self, remove: bool) -> None:
        if self.f is not None:
            self.f.close()
        if remove:
            self.path.unlink(missing_ok=True)


class _Lock:
    """``<dag>.lock`` held with ``flock`` for the whole run: a second runner on
    the same workflow refuses (naming the holder) instead of corrupting it. A
    lock file left by a killed runner holds no flock and is simply taken over.
    The holder removes the file before it lets go, so a runner that locked a
    file which is no longer at the path checks that and opens the path again.
    (DAGMan keeps a lock file of the same name while it runs.)"""

    def __init__(self, dag_path: Path):
        self.path = dag_path.with_name(dag_path.name + ".lock")
        self.fd = None

    def __enter__(self):
        import fcntl
        import socket

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise RunnerError(
                    f"{self.path.parent} is being run right now ({holder} holds {self.path.name}); "
                    "wait for that run to finish, or stop it, before running it again") from None
            # The holder before us removes the file before letting it go: if
            # ours was removed (or replaced) between open and flock, the file
            # we locked is no longer the lock. Open the current one again.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file at ``path`` now."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def locked(path) -> str | None:
    """Who is running the workflow at ``path`` now (None when nobody is)."""
    import fcntl

    p = _dag_path(path)
    lock = p.with_name(p.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
    finally:
        os.close(fd)
    return None


def run(path, *, max_workers: int | None = None, callbacks=(), progress=None,
        stream=None, fail_fast: bool = False, force: bool = False) -> RunReport:
    """Run the workflow directory (or DAG file) ``path``; see the module docstring.

    ``max_workers``: job procs running at once (default: the number of cores).
    ``fail_fast``: after the first node failure start nothing new (running
    jobs finish). The default is DAGMan's behaviour: keep running every node
    that does not depend on a failed one.

    ``progress``: print "done/running/failed of total" lines to ``stream``
    (stderr) -- True, False, or None for every 10 s once a run takes longer
    than 10 s. Notices about ignored submit commands go to ``stream`` too.

    ``force``: run every node again, ignoring ``DONE`` marks, rescue DAGs and
    the recovery log.

    Ctrl-C, and SIGTERM where it has its default action, stop the run: its
    jobs and scripts are killed and their scratch folders removed, the
    recovery log is kept (run again to resume).

    Only one runner at a time works on a workflow (``<dag>.lock``); a runner
    that was killed is recovered from ``<dag>.local.log`` (see ``_Journal``).
    """
    dag_path = _dag_path(path)
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
    with _Lock(dag_path):
        dag, _ = load_dag(dag_path)
        journal = _Journal(dag_path)
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
                         stream=stream or sys.stderr, fail_fast=fail_fast, progress=progress,
                         callbacks=callbacks, journal=journal)
        try:
            report = runner.run()
        except BaseException:
            journal.close(remove=False)  # interrupted: keep it for recovery
            raise
        journal.close(remove=True)
    if progress:
        print(f"[dask-condordag] {dag_path.name}: {report.summary()}",
              file=runner.stream, flush=True)
    return report


def _write_rescue(dag_path: Path, dag, report: RunReport, failed=None) -> Path:
    target = Path(dagfile.next_rescue_path(str(dag_path)))
    text = dagfile.render_rescue(
        dag_path.name, sorted(report.done), failed if failed is not None else sorted(report.failed),
        len(dag.nodes), datetime.datetime.now(datetime.timezone.utc), dag=dag,
    )
    _write_atomic(target, text)
    return target


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


def _unpack(callbacks):
    from dask.callbacks import unpack_callbacks

    if not callbacks:
        return [], [], [], [], []
    return unpack_callbacks(callbacks)


def _keys_of(workdir: Path):
    """node -> the dask task names it runs (for callbacks), from the manifest
    when there is one; otherwise the node name itself."""
    import json

    try:
        with open(workdir / names.MANIFEST, encoding="utf-8") as f:
            nodes = json.load(f).get("nodes", {})
    except (OSError, ValueError):
        nodes = {}

    def keys_of(name):
        info = nodes.get(name)
        return list(info["tasks"]) if info else [name]

    return keys_of
