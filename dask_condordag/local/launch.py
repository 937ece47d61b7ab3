"""Starting a node's job procs and scripts on this machine, as an execute node
and DAGMan's script runner would.

Data
    In: a node (``dagfile.DagNode``), its parsed submit description, the
    macros DAGMan defines for it (``dagman.Execute``). Out: a
    :class:`JobOutcome` per proc, the exit code per script. :class:`Launcher`
    runs each in a thread of an executor passed in (an executor's
    ``submit``, as dask's ``get_async`` takes one) and hands every end to a
    ``put`` function; ``remove`` and ``kill_all`` kill. :class:`Submits`
    reads each submit description once and answers ``Dagman``'s
    ``describe``.

Policy
    * Each job proc runs as its own process (its own session) in its own
      scratch directory, ``$TMPDIR/condordag-scratch-...``
      (``names.scratch_prefix``), removed when the proc ends. Only
      ``transfer_input_files`` are copied in (into their relative paths when
      ``preserve_relative_paths`` is true, flat otherwise), only
      ``transfer_output_files`` (expanded per proc) are copied back, each by
      temporary name then rename. A missing input or output fails the proc
      here (the node's return value is then -1002, what DAGMan reports for a
      removed job) -- on a pool the job would go ON HOLD -- and the message
      says so.
    * The job sees an execute node's environment: the submit description's
      ``environment`` (the caller's whole environment with ``getenv = true``)
      plus a few machine settings (PATH, HOME, LANG, the BLAS/OpenMP
      threading variables), ``_CONDOR_SCRATCH_DIR`` and ``TMPDIR``.
      ``$(Cluster)``/``$(ClusterId)``, ``$(Process)``/``$(ProcId)``/
      ``$(Step)`` are defined per proc. ``DAGManJobId`` is only defined by a
      DAGMan running as a job of a schedd, so it is not defined here.
    * Removing a job kills its process group (condor_rm); nothing is
      transferred back.
    * ``SCRIPT PRE|POST`` run on this machine, cwd the node's directory, with
      the runner's environment; a script that cannot start exits 1.
    * Submit commands the runner cannot honour here (``requirements``,
      ``request_gpus``, ``container_image``, ``accounting_group``, job ad
      attributes ``+X``/``My.X`` ...) are ignored with one notice per command
      name and run.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import names, submitdesc
from ..exceptions import RunnerError
from .state import SubmitRefused

__all__ = ["JobOutcome", "run_job", "scratch_dir", "stage_inputs", "job_env",
           "missing_outputs", "Launcher", "Submits"]

logger = logging.getLogger(__name__)

_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_PASS_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_")

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


def job_env(extra: dict, scratch: str, getenv: bool = False, base: dict | None = None) -> dict:
    """The environment of a job in ``scratch``: ``base`` (default: a few of
    this machine's settings, or all of them with ``getenv``), the submit
    description's ``extra``, then ``_CONDOR_SCRATCH_DIR`` and ``TMPDIR``."""
    if getenv:
        env = dict(os.environ)
    elif base is not None:
        env = dict(base)
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


@contextmanager
def scratch_dir(node: str):
    """A job's scratch directory, ``$TMPDIR/condordag-scratch-<pid>-<node>-...``
    (``names.scratch_prefix``, which ``gc`` knows), removed afterwards."""
    path = tempfile.mkdtemp(prefix=names.scratch_prefix(node, os.getpid()))
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stage_inputs(scratch: Path, cmds: dict, initialdir: Path) -> str | None:
    """Copy the job's ``transfer_input_files`` (``cmds``: its expanded submit
    commands) from ``initialdir`` into ``scratch``, at their relative paths
    with ``preserve_relative_paths``, flat otherwise; the reason the job
    would go on hold when one is missing, else None."""
    preserve = _is_true(cmds.get("preserve_relative_paths", "false"))
    for entry in submitdesc.split_file_list(cmds.get("transfer_input_files", "")):
        src = initialdir / entry
        dst = scratch / (entry if preserve and not os.path.isabs(entry) else os.path.basename(entry))
        if not src.is_file():
            return (f"input file {entry} (from transfer_input_files) does not exist at "
                    f"{src}; on a pool the job would go ON HOLD (transfer input files failure)")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return None


def missing_outputs(scratch: Path, cmds: dict) -> list:
    """The ``transfer_output_files`` the job did not leave in ``scratch`` (on a
    pool, each puts the job on hold)."""
    return [f for f in submitdesc.split_file_list(cmds.get("transfer_output_files", ""))
            if not (scratch / f).is_file()]


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
        extra_env = submitdesc.parse_environment(cmds.get("environment", ""))
    except submitdesc.SubmitSyntaxError as e:
        return fail(f"submit description {node.submit}: {e}")
    preserve = _is_true(cmds.get("preserve_relative_paths", "false"))
    with scratch_dir(node.name) as scratch_path:
        scratch = str(scratch_path)
        reason = stage_inputs(scratch_path, cmds, initialdir)
        if reason:
            return fail(reason)
        if _is_true(cmds.get("transfer_executable", "true")) and not os.path.isabs(exe):
            shutil.copy2(exe_path, Path(scratch) / os.path.basename(exe))
            exe_path = str(Path(scratch) / os.path.basename(exe))
        env = job_env(extra_env, scratch, _is_true(cmds.get("getenv", "false")))
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


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (condor_rm of a running job)."""
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


class Submits:
    """The workflow's submit descriptions, each read once. ``describe`` is
    what ``dagman.Dagman`` asks at each submission; commands the runner
    cannot honour are reported once each to ``notice(message)``."""

    def __init__(self, workdir: Path, dag, notice: Callable[[str], None] = lambda msg: None):
        self.workdir = workdir
        self.dag = dag
        self.notice = notice
        self.noticed: set = set()
        self.parsed: dict = {}

    def node_dir(self, spec) -> Path:
        return self.workdir / spec.dir if spec.dir else self.workdir

    def of(self, spec):
        """The parsed submit description of node ``spec``."""
        key = (spec.dir, spec.submit)
        if key not in self.parsed:
            p = self.node_dir(spec) / spec.submit
            try:
                self.parsed[key] = submitdesc.parse_submit(p.read_text(encoding="utf-8"), str(p))
            except OSError as e:
                raise RunnerError(f"node {spec.name}: cannot read submit description {p}: {e}") from e
            except submitdesc.SubmitSyntaxError as e:
                raise RunnerError(f"node {spec.name}: {e}") from e
        return self.parsed[key]

    def describe(self, node: str, macros: dict) -> tuple:
        """(queue count, the ``priority`` command, ``request_cpus``) of
        ``node``'s job under ``macros`` (a value that is not a whole number,
        an expression the local runner cannot evaluate: one core)."""
        spec = self.dag.nodes[node]
        submit = self.of(spec)
        try:  # what condor_submit would refuse fails the node (state.SubmitRefused)
            cmds = submitdesc.expand(submit, macros)
            submitdesc.parse_environment(cmds.get("environment", ""))
            submitdesc.split_arguments(cmds.get("arguments", ""))
        except submitdesc.SubmitSyntaxError as e:
            raise SubmitRefused(f"submit description {spec.submit}: {e}") from e
        for key, value in cmds.items():
            lk = key.lower()
            if key.startswith("My."):
                ignored = not key.startswith(_OWN_ATTRIBUTE_PREFIX)
            elif lk == "universe":
                ignored = value.strip().lower() not in ("vanilla", "local")
            else:
                ignored = lk not in _USED_COMMANDS and lk not in _HARMLESS_COMMANDS
            if ignored and key not in self.noticed:
                self.noticed.add(key)
                self.notice(f"submit command {key} = {value} (node "
                            f"{node}, {spec.submit}) cannot be honoured by the local runner; "
                            "ignored")
        return (submit.queue_count, submitdesc.whole_number(cmds.items(), "priority", 0),
                submitdesc.whole_number(cmds.items(), "request_cpus", 1))


class Launcher:
    """Runs job procs and scripts, each in a thread of an executor: ``jobs`` /
    ``scripts`` are ``submit(fn, *args)`` functions (a ``ThreadPoolExecutor``'s).
    Each end is handed to ``put``: ``("proc", node, cluster, JobOutcome)``, or
    ``("PRE"|"POST", node, token, exit code)``."""

    def __init__(self, submits: Submits, *, jobs: Callable, scripts: Callable,
                 put: Callable):
        self.submits = submits
        self.jobs = jobs
        self.scripts = scripts
        self.put = put
        self.lock = threading.Lock()
        self.kills: dict = {}  # (node, cluster) -> [kill event, procs not ended]
        self.script_procs: dict = {}  # (node, kind) -> Popen
        self.killed = False

    def execute(self, node: str, cluster: int, proc: int, macros: dict, retry: int) -> None:
        """Start proc ``proc`` of ``node``'s cluster ``cluster``."""
        spec = self.submits.dag.nodes[node]
        submit = self.submits.of(spec)
        with self.lock:
            entry = self.kills.setdefault((node, cluster), [threading.Event(), 0])
            entry[1] += 1
            if self.killed:
                entry[0].set()
        self.jobs(self._proc_thread, spec, submit, cluster, proc, macros, retry, entry)

    def _proc_thread(self, spec, submit, cluster, p, macros, retry, entry):
        try:
            outcome = run_job(self.submits.workdir, spec, submit, retry=retry, cluster=cluster,
                              process=p, macros=macros, kill=entry[0])
        except Exception as e:  # never lose a proc
            outcome = JobOutcome(spec.name, False, None, f"runner error: {e!r}", 0.0, p)
        with self.lock:
            entry[1] -= 1
            if entry[1] == 0:
                self.kills.pop((spec.name, cluster), None)
        self.put(("proc", spec.name, cluster, outcome))

    def remove(self, node: str, cluster: int) -> None:
        """condor_rm of ``node``'s cluster: kill its running procs."""
        with self.lock:
            entry = self.kills.get((node, cluster))
            if entry is not None:
                entry[0].set()

    def run_script(self, node: str, kind: str, argv: tuple, token) -> None:
        self.scripts(self._script_thread, node, kind, argv, token)

    def _script_thread(self, node, kind, argv, token):
        cwd = self.submits.node_dir(self.submits.dag.nodes[node])
        exe = argv[0]
        if not os.path.isabs(exe) and (cwd / exe).exists():
            exe = str(cwd / exe)
        try:
            proc = subprocess.Popen([exe, *argv[1:]], cwd=cwd, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            with self.lock:
                self.script_procs[(node, kind)] = proc
                if self.killed:
                    _kill_group(proc)
            code = proc.wait()
        except OSError as e:
            logger.warning("%s script of node %s: cannot run %s: %s", kind, node, argv[0], e)
            code = 1  # DAGMan: a script that cannot start fails
        finally:
            with self.lock:
                self.script_procs.pop((node, kind), None)
        self.put((kind, node, token, code))

    def kill_all(self) -> None:
        """Kill every running proc and script (an aborted or interrupted run)."""
        with self.lock:
            self.killed = True
            for event, _ in self.kills.values():
                event.set()
            for proc in list(self.script_procs.values()):
                _kill_group(proc)
