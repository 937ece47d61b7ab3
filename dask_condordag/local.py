"""The local runner: execute a workflow directory on this machine as DAGMan would.

Data
    In: a workflow directory (or a DAG file). It reads what DAGMan reads -- the
    DAG file, the newest rescue DAG, the submit descriptions -- never an
    in-memory plan. Out: result files in ``results/``, job logs in ``logs/``,
    and on failure ``<dag>.rescueNNN``; a :class:`RunReport`.

Policy (DAGMan's, where it applies)
    * A node runs once all its parents are done; ``JOB ... DONE`` nodes and the
      ``DONE`` lines of the newest rescue DAG are skipped.
    * Each job runs as its own process in its own scratch directory. Only the
      files in ``transfer_input_files`` are copied in (into their relative
      paths when ``preserve_relative_paths`` is true, flat otherwise), only
      ``transfer_output_files`` are copied back, each by temporary name then
      rename. A missing input or output fails the node here -- on a pool the
      job would go ON HOLD -- and the message says so.
    * The job sees an execute node's environment: the submit description's
      ``environment`` plus a few machine settings (PATH, HOME, LANG, and the
      BLAS/OpenMP threading variables of this machine) and
      ``_CONDOR_SCRATCH_DIR``; not the caller's whole environment.
    * At most ``max_workers`` jobs at once (default: the number of cores).
      ``RETRY n`` reruns a failed node up to n times. When a node fails for
      good, the rest of the DAG goes on "until no more forward progress can
      be made" (the DAGMan manual's words): every node that does not depend on
      a failed one still runs (``fail_fast=True`` starts nothing new instead).
      Then a rescue DAG in DAGMan's format is written; running again resumes
      from it.
    * dask's callback protocol (start, start_state, pretask, posttask,
      finish -- finish also on failure) is driven per task, so
      ``dask.diagnostics.ProgressBar`` works.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from . import dagfile, names, submitdesc
from .exceptions import RunnerError

__all__ = ["run", "RunReport", "JobOutcome", "run_job"]

_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_PASS_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_")


@dataclass(frozen=True)
class JobOutcome:
    """How one job attempt ended: ``ok``, the exit code and, if not ok, why."""

    node: str
    ok: bool
    exit_code: int | None
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunReport:
    """What a run did. ``ok`` when every node is done."""

    dag: Path
    total: int
    done: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)  # node -> reason
    skipped: set = field(default_factory=set)  # done before this run started
    rescue: Path | None = None
    max_running: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and len(self.done) == self.total

    def summary(self) -> str:
        s = (f"{len(self.done)} of {self.total} nodes done "
             f"({len(self.skipped)} already done before), {len(self.failed)} failed, "
             f"in {self.seconds:.1f} s")
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
    """The DAG as DAGMan would run it: the file plus its newest rescue DAG."""
    dag = dagfile.parse_dag(dag_path.read_text(encoding="utf-8"), str(dag_path))
    rescue = dagfile.newest_rescue(str(dag_path))
    if rescue:
        dag = dagfile.apply_rescue(dag, Path(rescue).read_text(encoding="utf-8"), str(rescue))
    return dag, rescue


def _job_env(extra: dict, scratch: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k in _PASS_ENV or k.startswith(_PASS_ENV_PREFIXES)}
    env.update(extra)
    env["_CONDOR_SCRATCH_DIR"] = scratch
    env["TMPDIR"] = scratch
    return env


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1", "t", "y")


def run_job(workdir: Path, node, submit, *, retry: int = 0, cluster: int = 1,
            process: int = 0) -> JobOutcome:
    """Run one job of ``node`` (a ``dagfile.DagNode``) from its submit
    description, as an execute node would: scratch directory, file transfer,
    exit code."""
    start = time.monotonic()
    macros = dict(node.vars)
    macros.update({"JOB": node.name, "RETRY": str(retry)})
    cmds = submitdesc.expand_for_proc(submit, macros, cluster=cluster, process=process)
    base = workdir / node.dir if node.dir else workdir
    initialdir = base / cmds["initialdir"] if cmds.get("initialdir") else base
    exe = cmds.get("executable", "")
    if not exe:
        return JobOutcome(node.name, False, None, f"submit description {node.submit} has no executable")
    exe_path = exe if os.path.isabs(exe) else str(initialdir / exe)
    args = submitdesc.split_arguments(cmds.get("arguments", ""))
    preserve = _is_true(cmds.get("preserve_relative_paths", "false"))
    scratch = tempfile.mkdtemp(prefix=f"condordag-{node.name[:40]}-")

    def fail(reason, code=None):
        return JobOutcome(node.name, False, code, reason, time.monotonic() - start)

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
        env = _job_env(submitdesc.parse_environment(cmds.get("environment", "")), scratch)
        out_path = initialdir / cmds["output"] if cmds.get("output") else None
        err_path = initialdir / cmds["error"] if cmds.get("error") else None
        for p in (out_path, err_path):
            if p is not None:
                p.parent.mkdir(parents=True, exist_ok=True)
        with _open_log(out_path) as out, _open_log(err_path) as err:
            try:
                proc = subprocess.run([exe_path, *args], cwd=scratch, env=env,
                                      stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            except OSError as e:
                return fail(f"cannot start {exe_path}: {e}")
        code = proc.returncode
        for entry in submitdesc.split_file_list(cmds.get("transfer_output_files", "")):
            src = Path(scratch) / entry
            rel = entry if preserve else os.path.basename(entry)
            dst = initialdir / rel
            if not src.is_file():
                return fail(f"output file {entry} (from transfer_output_files) was not written by "
                            f"the job (exit code {code}); on a pool the job would go ON HOLD "
                            "(transfer output files failure)", code)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.transfer-{os.getpid()}-{threading.get_ident()}")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        if code != 0:
            what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return fail(f"job {what}", code)
        return JobOutcome(node.name, True, 0, "", time.monotonic() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _open_log:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "ab") if self.path is not None else subprocess.DEVNULL
        return self.f

    def __exit__(self, *exc):
        if self.path is not None:
            self.f.close()


def run(path, *, max_workers: int | None = None, callbacks=(), progress=None,
        stream=None, fail_fast: bool = False) -> RunReport:
    """Run the workflow directory (or DAG file) ``path``; see the module docstring.

    ``fail_fast``: after the first failure start no new job (running ones
    finish). The default is DAGMan's behaviour: keep running every node that
    does not depend on a failed one.

    ``progress``: print "done/running/failed of total" lines to ``stream``
    (stderr) -- True, False, or None for every 10 s once a run takes longer
    than 10 s.
    """
    dag_path = _dag_path(path)
    workdir = dag_path.parent
    dag, _ = load_dag(dag_path)
    max_workers = max_workers or os.cpu_count() or 1
    stream = stream or sys.stderr
    submits: dict = {}

    def submit_for(node):
        if node.submit not in submits:
            p = (workdir / node.dir if node.dir else workdir) / node.submit
            try:
                text = p.read_text(encoding="utf-8")
            except OSError as e:
                raise RunnerError(f"node {node.name}: cannot read submit description {p}: {e}") from e
            submits[node.submit] = submitdesc.parse_submit(text, str(p))
        return submits[node.submit]

    total = len(dag.nodes)
    report = RunReport(dag=dag_path, total=total)
    report.skipped = {n for n, node in dag.nodes.items() if node.done}
    report.done = set(report.skipped)
    waiting = {}
    ready = []
    for name, node in dag.nodes.items():
        if node.done:
            continue
        n = sum(1 for p in dag.parents.get(name, ()) if p not in report.done)
        if n:
            waiting[name] = n
        else:
            ready.append(name)
    ready.reverse()  # pop() takes them in file order
    tries: dict = {}
    start_cbs, start_state_cbs, pretask_cbs, posttask_cbs, finish_cbs = _unpack(callbacks)
    keys_of = _keys_of(workdir)
    state = {
        "ready": {k for n in ready for k in keys_of(n)},
        "waiting": {k: set() for n in waiting for k in keys_of(n)},
        "running": set(),
        "finished": {k for n in report.done for k in keys_of(n)},
        "cache": {},
        "released": set(),
        "waiting_data": {},
        "dependents": {},
        "dependencies": {},
    }
    for cb in start_cbs:
        cb({})
    for cb in start_state_cbs:
        cb({}, state)
    t0 = time.monotonic()
    last_print = t0
    running: dict = {}
    errored = True
    try:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="condordag-job") as pool:
            while ready or running:
                while ready and len(running) < max_workers and not (fail_fast and report.failed):
                    name = ready.pop()
                    node = dag.nodes[name]
                    for k in keys_of(name):
                        _move(state, k, "ready", "running")
                        for cb in pretask_cbs:
                            cb(k, {}, state)
                    fut = pool.submit(run_job, workdir, node, submit_for(node),
                                      retry=tries.get(name, 0))
                    running[fut] = name
                    report.max_running = max(report.max_running, len(running))
                if not running:
                    break
                finished, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = running.pop(fut)
                    outcome = fut.result()
                    node = dag.nodes[name]
                    if outcome.ok:
                        report.done.add(name)
                        for k in keys_of(name):
                            _move(state, k, "running", "finished")
                            for cb in posttask_cbs:
                                cb(k, None, {}, state, name)
                        for child in dag.children.get(name, ()):
                            if child in waiting:
                                waiting[child] -= 1
                                if waiting[child] == 0:
                                    del waiting[child]
                                    ready.append(child)
                                    for k in keys_of(child):
                                        _move(state, k, "waiting", "ready")
                    elif tries.get(name, 0) < node.retry:
                        tries[name] = tries.get(name, 0) + 1
                        ready.append(name)
                        for k in keys_of(name):
                            _move(state, k, "running", "ready")
                    else:
                        report.failed[name] = outcome.reason
                now = time.monotonic()
                show = progress if progress is not None else (now - t0 > 10)
                if show and (now - last_print >= 10 or progress is True and now - last_print >= 1):
                    last_print = now
                    print(f"[dask-condordag] {dag_path.name}: {len(report.done)} done, "
                          f"{len(running)} running, {len(report.failed)} failed of {total}",
                          file=stream, flush=True)
        errored = bool(report.failed)
    finally:
        report.seconds = time.monotonic() - t0
        if report.failed or len(report.done) < total:
            report.rescue = _write_rescue(dag_path, dag, report)
        for cb in finish_cbs:
            cb({}, state, errored)
    if progress:
        print(f"[dask-condordag] {dag_path.name}: {report.summary()}", file=stream, flush=True)
    return report


def _write_rescue(dag_path: Path, dag, report: RunReport) -> Path:
    target = Path(dagfile.next_rescue_path(str(dag_path)))
    text = dagfile.render_rescue(
        dag_path.name, sorted(report.done), sorted(report.failed), len(dag.nodes),
        datetime.datetime.now(datetime.timezone.utc), dag=dag,
    )
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
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
