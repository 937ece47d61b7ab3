"""The HTCondor backend: the only module that runs HTCondor commands.

Data
    In: a workflow directory (its DAG file name), a DAGMan cluster id. Out:
    the cluster id of a submitted DAG (kept in ``CLUSTER_FILE`` in the
    workflow directory), the node status file as a :class:`DagState`, the
    queue as a :class:`Queue` of :class:`Job` (held jobs with their
    ``HoldReason``), and the text ``condor_rm`` printed.

Policy (HTCondor 25.x; "src/" is HTCondor's source tree, "manual" its docs/)
    * Command-line tools through ``subprocess``, never a shell. Each command
      is built by a pure function (``submit_dag_command``, ``queue_command``,
      ``remove_command``) and its output parsed by another, so tests check
      both against outputs recorded from the manual and source. ``Condor``
      takes the function that runs a command, so tests can hand it recorded
      outputs. (The ``htcondor2`` bindings could query a schedd directly, but
      nothing here can test that path without a pool; the tools work
      wherever HTCondor is installed.)
    * ``condor_submit_dag`` runs in the workflow directory with the DAG's file
      name: DAGMan resolves the DAG's relative paths against the directory it
      was submitted from (manual: automated-workflows/dagman-interaction.rst,
      "File Paths in DAGs"). Options go before the DAG file -- it refuses
      options after it (src/condor_dagman/condor_submit_dag.cpp
      parseCommandLine: "no arguments allowed after DAG file name(s)").
      ``-batch-name`` is the workflow's name; ``-import_env`` is never given
      (jobs see the submit description's environment only); ``-include_env``
      gives the DAGMan job ``_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL`` from the
      ``dagman_scan_interval`` option (the job's environment overrides the
      pool's configuration: ``_CONDOR_<KNOB>``, manual: admin-manual
      introduction-to-configuration.rst; the DAG's own ``CONFIG`` file, read
      later, overrides both -- observed on HTCondor 25.14: ``dag_config``
      3 and ``-include_env`` 2 gave "DAGMAN_USER_LOG_SCAN_INTERVAL setting:
      3" in the ``.dagman.out``); ``-force`` only
      when asked, because it makes DAGMan "run the original DAG and rename the
      rescue files" (manual: man-pages/condor_submit_dag.rst).
    * Resubmitting: ``condor_submit_dag`` picks up the newest rescue DAG by
      itself (``-autorescue`` defaults to 1; it prints "Running rescue DAG
      N"), so nothing already done runs again. Without a rescue DAG it refuses
      to overwrite the ``<dag>.condor.sub`` of an earlier submission ("ERROR:
      ... already exists", src/condor_utils/dagman_utils.cpp
      ensureOutputFilesExist); then ``-update_submit`` is given, which
      rewrites that file and keeps its -Max* settings.
    * The cluster id comes from ``condor_submit``'s line "1 job(s) submitted
      to cluster N." that ``condor_submit_dag`` passes through (it runs
      ``condor_submit <dag>.condor.sub``: condor_submit_dag.cpp submitDag).
    * Node jobs carry ``DAGManJobId`` = the DAGMan job's cluster (manual:
      dagman-interaction.rst), so one ``condor_q -json -constraint
      'ClusterId == N || DAGManJobId == N'`` shows the DAGMan job and all its
      node jobs. ``-json`` prints nothing when no job matches and otherwise
      "[\\n" ad (",\\n" ad)* "\\n]\\n" (src/condor_utils/compat_classad.cpp
      CondorClassAdListWriter); ``-attributes`` limits what is printed
      (man-pages/condor_q.rst).
    * ``condor_rm N`` of the DAGMan job removes the DAGMan job and all node
      jobs (its submit file sets ``OtherJobRemoveRequirements = "DAGManJobId
      =?= $(cluster)"``, dagman_utils.cpp writeSubmitFile; manual:
      dagman-interaction.rst "Removing a DAG"); DAGMan is sent SIGUSR1
      (``remove_kill_sig``) and writes a rescue DAG. Observed on HTCondor
      25.14: condor_rm prints "All jobs in cluster N have been marked for
      removal", the queue is empty within a second or two, DAGMan exits 2,
      and the DAGMan job's history ad (``condor_history -json -limit 1 N``)
      has ``JobStatus`` 3 and ``DAG_Status`` 4 -- how a removed DAG is told
      from a failed one (the node status file says ``DagStatus = 6`` for
      both; only its comment says "removed").
    * The node status file (``NODE_STATUS_FILE``, manual:
      automated-workflows/dagman-node-status-file.rst) is a list of new
      ClassAds: one ``DagStatus``, one ``NodeStatus`` per node, one
      ``StatusEnd``. ``statusfile.py`` reads it (no bindings needed).
    * Whether a workflow's DAG may still run on the pool (``pool_dag``, asked
      before ``write`` writes a workflow again and before ``gc`` deletes in
      one): ``condor_q`` lists the DAGMan job of its cluster file; where
      ``condor_q`` cannot be asked, its node status file does not say that
      the DAG finished.
    * A DAG submitted by hand (``condor_submit_dag`` without us: no
      ``CLUSTER_FILE``) may be running while ``<dag>.condor.sub`` and
      ``<dag>.lock`` are there (DAGMan's ``-lockfile``, kept until it exits):
      ``dagman_by_hand``, which ``status()`` and ``gc`` ask.

Example::

    >>> submit_dag_command("mytest.dag", batch_name="mytest")
    ['condor_submit_dag', '-batch-name', 'mytest', 'mytest.dag']
    >>> parse_submit_output("Submitting job(s).\\n1 job(s) submitted to cluster 4242.\\n")
    4242
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .exceptions import (  # noqa: F401  (re-exported: they were defined here first)
    CondorCommandError, DagFailedError, JobHeldError, WaitTimeout,
)
from .messages import notice
from .statusfile import (  # noqa: F401  (re-exported: they were defined here first)
    DAG_STATUS_ABORT, DAG_STATUS_ERROR, DAG_STATUS_NODE_FAILED, DAG_STATUS_OK, DAG_STATUS_RM,
    STATUS_DONE, STATUS_ERROR, STATUS_FUTILE, STATUS_NOT_READY, STATUS_POSTRUN,
    STATUS_PRERUN, STATUS_READY, STATUS_SUBMITTED, STATUS_WORDS, DagState, NodeState,
    dag_state, parse_classads, read_status_file,
)

__all__ = [
    "CLUSTER_FILE", "CondorCommandError", "JobHeldError", "DagFailedError", "WaitTimeout",
    "available", "choose_run_mode", "submit_dag_command", "dagman_environment",
    "parse_submit_output",
    "queue_command", "parse_queue_json", "remove_command", "history_command",
    "parse_history_json", "was_removed", "dagman_by_hand", "parse_classads",
    "read_status_file", "DagState", "NodeState", "Job", "Queue", "Condor", "pool_dag",
]

logger = logging.getLogger(__name__)

#: File in the workflow directory holding the DAGMan job's cluster id (one line).
CLUSTER_FILE = "dagman.cluster"

SUBMIT_DAG, CONDOR_Q, CONDOR_RM = "condor_submit_dag", "condor_q", "condor_rm"
CONDOR_HISTORY = "condor_history"

#: DAGMan's log scan interval, as an override in the DAGMan job's environment.
SCAN_INTERVAL_ENV = "_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL"

# JobStatus values (manual: classad-attributes/job-classad-attributes.rst)
JOB_IDLE, JOB_RUNNING, JOB_REMOVED, JOB_COMPLETED, JOB_HELD, JOB_TRANSFERRING, \
    JOB_SUSPENDED = range(1, 8)


#: What ``condor_history`` is asked for about a DAGMan job that left the queue.
HISTORY_ATTRIBUTES = ("ClusterId", "JobStatus", "DAG_Status", "ExitCode", "RemoveReason")

#: What ``condor_q`` is asked for.
QUEUE_ATTRIBUTES = ("ClusterId", "ProcId", "JobStatus", "DAGManJobId", "DAGNodeName",
                    "HoldReason", "HoldReasonCode", "HoldReasonSubCode",
                    "EnteredCurrentStatus", "NumJobStarts")


# ------------------------------------------------------------------ choosing
def available() -> bool:
    """True when ``condor_submit_dag`` is on PATH (a submit node)."""
    return shutil.which(SUBMIT_DAG) is not None


_announced: set = set()


def choose_run_mode(run: str, *, progress: bool | None = None, stream=None) -> str:
    """``run="auto"`` becomes ``"condor"`` where ``condor_submit_dag`` is on
    PATH and ``"local"`` elsewhere; the choice is said once per process
    (``messages.notice``: logged, and printed unless ``progress=False``)."""
    if run != "auto":
        return run
    exe = shutil.which(SUBMIT_DAG)
    mode = "condor" if exe else "local"
    if mode not in _announced:
        _announced.add(mode)
        why = (f"{SUBMIT_DAG} is on PATH ({exe}): submitting to HTCondor" if exe else
               f"{SUBMIT_DAG} is not on PATH: running with the local runner")
        notice(logger, f"run='auto': {why} (set run='local' or run='condor' to choose)",
               progress=progress, stream=stream)
    return mode


# ------------------------------------------------------------------ commands
def submit_dag_command(dag_file: str, *, batch_name: str | None = None, force: bool = False,
                       update_submit: bool = False, include_env=()) -> list:
    """The ``condor_submit_dag`` command line (options before the DAG file).
    ``include_env``: names of variables of the submitter's environment the
    DAGMan job gets (``-include_env``).

    >>> submit_dag_command("w.dag", force=True)
    ['condor_submit_dag', '-force', 'w.dag']
    >>> submit_dag_command("w.dag", include_env=[SCAN_INTERVAL_ENV])
    ['condor_submit_dag', '-include_env', '_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL', 'w.dag']
    """
    cmd = [SUBMIT_DAG]
    if batch_name:
        cmd += ["-batch-name", batch_name]
    if force:
        cmd.append("-force")
    elif update_submit:
        cmd.append("-update_submit")
    if include_env:
        cmd += ["-include_env", ",".join(include_env)]
    return cmd + [dag_file]


def dagman_environment(scan_interval: int | None) -> dict:
    """The variables the DAGMan job gets through ``-include_env``: the log scan
    interval as a configuration override (``_CONDOR_<KNOB>``); none for None.

    >>> dagman_environment(1)
    {'_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL': '1'}
    """
    return {} if scan_interval is None else {SCAN_INTERVAL_ENV: str(int(scan_interval))}


_SUBMITTED = re.compile(r"(\d+) job\(s\) submitted to cluster (\d+)\.")


def parse_submit_output(text: str) -> int:
    """The DAGMan job's cluster id from ``condor_submit_dag``'s stdout."""
    m = _SUBMITTED.search(text)
    if not m:
        raise CondorCommandError(
            f"cannot find 'N job(s) submitted to cluster C.' in the output of {SUBMIT_DAG}",
            output=text)
    return int(m.group(2))


def queue_command(cluster: int) -> list:
    """``condor_q`` for the DAGMan job ``cluster`` and all its node jobs, as JSON.

    >>> queue_command(7)[:4]
    ['condor_q', '-json', '-constraint', 'ClusterId == 7 || DAGManJobId == 7']
    """
    c = int(cluster)
    return [CONDOR_Q, "-json", "-constraint", f"ClusterId == {c} || DAGManJobId == {c}",
            "-attributes", ",".join(QUEUE_ATTRIBUTES)]


def parse_queue_json(text: str) -> list:
    """The job ads ``condor_q -json`` printed (an empty output: no jobs)."""
    text = text.strip()
    if not text:
        return []
    try:
        ads = json.loads(text)
    except ValueError as e:
        raise CondorCommandError(f"cannot read the JSON {CONDOR_Q} printed: {e}",
                                 output=text) from e
    if not isinstance(ads, list) or not all(isinstance(a, dict) for a in ads):
        raise CondorCommandError(f"{CONDOR_Q} -json did not print a list of job ads",
                                 output=text)
    return ads


def remove_command(cluster: int) -> list:
    """``condor_rm`` of the DAGMan job (DAGMan removes its node jobs).

    >>> remove_command(7)
    ['condor_rm', '7']
    """
    return [CONDOR_RM, str(int(cluster))]


def history_command(cluster: int) -> list:
    """``condor_history`` of the DAGMan job ``cluster`` once it left the queue.

    >>> history_command(7)[:4]
    ['condor_history', '-json', '-limit', '1']
    """
    return [CONDOR_HISTORY, "-json", "-limit", "1", str(int(cluster)),
            "-attributes", ",".join(HISTORY_ATTRIBUTES)]


def parse_history_json(text: str) -> dict | None:
    """The one job ad ``condor_history -json -limit 1`` printed (None: not found)."""
    ads = parse_queue_json(text)
    return ads[0] if ads else None


def was_removed(ad: dict | None) -> bool:
    """The DAGMan job's history ad says it was removed (``condor_rm``):
    ``JobStatus`` 3, ``DAG_Status`` 4 (DAG_STATUS_RM). Observed on HTCondor
    25.14: DAGMan then exits 2 and writes ``DagStatus = 6; /* "STATUS_ERROR
    (removed)" */`` into the node status file, each queued node
    ``StatusDetails = "Was STATUS_SUBMITTED"``.

    >>> was_removed({"JobStatus": 3, "DAG_Status": 4})
    True
    """
    return ad is not None and (ad.get("JobStatus") == JOB_REMOVED
                               or ad.get("DAG_Status") == DAG_STATUS_RM)


# ------------------------------------------------------------------ queue
@dataclass(frozen=True)
class Job:
    """One job (proc) in the queue."""

    cluster: int
    proc: int
    status: int
    node: str | None = None  # DAGNodeName; None for the DAGMan job itself
    hold_reason: str = ""
    hold_code: int | None = None
    since: float | None = None  # EnteredCurrentStatus

    @property
    def id(self) -> str:
        return f"{self.cluster}.{self.proc}"

    @property
    def held(self) -> bool:
        return self.status == JOB_HELD


@dataclass(frozen=True)
class Queue:
    """The DAGMan job (None once it has left the queue) and its node jobs."""

    dagman: Job | None
    jobs: tuple = ()

    def count(self, status: int) -> int:
        return sum(1 for j in self.jobs if j.status == status)

    @property
    def held(self) -> list:
        """Held jobs, the DAGMan job first if it is held."""
        out = [self.dagman] if self.dagman is not None and self.dagman.held else []
        return out + [j for j in self.jobs if j.held]


def queue_from_ads(ads: list, cluster: int) -> Queue:
    dagman, jobs = None, []
    for ad in ads:
        job = Job(cluster=int(ad.get("ClusterId", -1)), proc=int(ad.get("ProcId", 0)),
                  status=int(ad.get("JobStatus", 0)), node=ad.get("DAGNodeName"),
                  hold_reason=ad.get("HoldReason") or "", hold_code=ad.get("HoldReasonCode"),
                  since=ad.get("EnteredCurrentStatus"))
        if job.cluster == int(cluster) and ad.get("DAGManJobId") != int(cluster):
            dagman = job
        else:
            jobs.append(job)
    return Queue(dagman, tuple(sorted(jobs, key=lambda j: (j.cluster, j.proc))))


# ------------------------------------------------------------------ runner
def _run(cmd, cwd=None, timeout=None, env=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


class Condor:
    """Runs HTCondor's command-line tools. ``run(cmd, cwd=..., timeout=...)``
    returns an object with ``returncode``, ``stdout``, ``stderr`` (default:
    ``subprocess.run``); tests pass one that replays recorded outputs. A
    submission that sets environment variables also passes ``env=`` (the whole
    environment of the command)."""

    def __init__(self, run=None, timeout: float = 120):
        self._run = run or _run
        self.timeout = timeout

    def _call(self, cmd, cwd=None, env=None):
        """Run ``cmd``; CondorCommandError when it is missing, hangs or fails."""
        extra = {"env": env} if env is not None else {}
        try:
            r = self._run(cmd, cwd=cwd, timeout=self.timeout, **extra)
        except FileNotFoundError:
            raise CondorCommandError(
                f"{cmd[0]} is not on PATH: this machine is not an HTCondor access point "
                "(run the workflow here with `dask-condordag run DIR`, or on a submit node)",
                command=cmd) from None
        except subprocess.TimeoutExpired as e:
            raise CondorCommandError(f"{' '.join(cmd)} did not answer within "
                                     f"{self.timeout:.0f} s", command=cmd) from e
        if r.returncode != 0:
            where = f" (in {cwd})" if cwd else ""
            raise CondorCommandError(
                f"{' '.join(cmd)}{where} failed with exit code {r.returncode}:\n"
                f"{(r.stderr or '').strip() or (r.stdout or '').strip()}",
                command=cmd, output=(r.stdout or "") + (r.stderr or ""))
        return r

    def submit_dag(self, workdir, dag_file: str, *, env: dict | None = None,
                   **options) -> tuple:
        """Run ``condor_submit_dag`` in ``workdir``; ``(cluster, stdout)``.
        ``env``: variables given to the DAGMan job (set for the command and
        named with ``-include_env``)."""
        cmd = submit_dag_command(dag_file, include_env=sorted(env or ()), **options)
        full = {**os.environ, **env} if env else None
        r = self._call(cmd, cwd=workdir, env=full)
        return parse_submit_output(r.stdout or ""), r.stdout or ""

    def query(self, cluster: int) -> Queue:
        """The DAGMan job ``cluster`` and its node jobs now in the queue."""
        cmd = queue_command(cluster)
        r = self._call(cmd)
        return queue_from_ads(parse_queue_json(r.stdout or ""), cluster)

    def remove(self, cluster: int) -> str:
        """``condor_rm`` the DAGMan job; what it printed ("All jobs in cluster
        N have been marked for removal", HTCondor 25.14)."""
        cmd = remove_command(cluster)
        r = self._call(cmd)
        return (r.stdout or "").strip()

    def history(self, cluster: int) -> dict | None:
        """The DAGMan job's ad from the job history (None: not there)."""
        r = self._call(history_command(cluster))
        return parse_history_json(r.stdout or "")


# ------------------------------------------------------------------ cluster file
def read_cluster(workdir) -> int | None:
    try:
        return int(Path(workdir, CLUSTER_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_cluster(workdir, cluster: int) -> None:
    p = Path(workdir, CLUSTER_FILE)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(f"{int(cluster)}\n")
    os.replace(tmp, p)


def pool_dag(path: Path, name: str):
    """None when no DAG from ``path`` was submitted to a pool, or it is gone
    (``condor_q`` no longer lists it; where condor_q cannot be asked, its node
    status file says it finished); else (DAGMan job id, True: ``condor_q``
    lists it, None: cannot tell here)."""
    cluster = read_cluster(path)
    if cluster is None:
        return None
    if available():
        try:
            return (cluster, True) if Condor().query(cluster).dagman is not None else None
        except CondorCommandError:
            pass
    state = read_status_file(path / f"{name}.status")
    if state is not None and state.finished:
        return None
    return cluster, None


def dagman_out_tail(path, lines: int = 5) -> list:
    """The last lines of ``<dag>.dagman.out`` (DAGMan's debug log)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def dagman_by_hand(dag_path: Path) -> bool:
    """Whether a DAGMan that ``condor_submit_dag`` started by hand (no
    ``CLUSTER_FILE``) may be running the DAG: it wrote ``<dag>.condor.sub``
    and keeps ``<dag>.lock`` until it exits (DAGMan's ``-lockfile``)."""
    lock = dag_path.with_name(dag_path.name + ".lock")
    return dag_path.with_name(dag_path.name + ".condor.sub").exists() and lock.exists()
