"""Delete what no workflow needs any more: ``dask-condordag gc`` / ``dask_condordag.gc()``.

Data
    In: a folder -- the workflows directory that ``compute()`` writes into
    (the ``directory`` option, ``condordag.directory`` in dask's config,
    default ``./condordag-workflows``), whose child folders holding a
    ``manifest.json`` are its workflows, or one workflow directory -- and the
    system temp folder (``tempfile.gettempdir()``). Out: a :class:`GcReport`,
    what was deleted (or, with ``dry_run``, would be) with the bytes, and
    the workflows left alone with the reason.

Policy
    * A workflow whose DAG runs is never touched: the local runner holds an
      ``flock`` on ``<dag>.lock`` while it runs (``local.locked``); on a pool,
      ``condor_q`` still lists the DAGMan job of ``dagman.cluster`` -- or
      cannot be asked here and the node status file does not say the DAG
      finished (``condor.pool_dag``, the check that also guards writing a
      workflow again); a DAGMan started by hand with ``condor_submit_dag``
      keeps ``<dag>.lock`` while it runs (``condor.dagman_by_hand``).
      Whatever cannot be told is kept.
    * In every other workflow, the files that no node of its manifest names
      (nor, for results, any of its tasks: a task inside a grouped node may
      have its own result, kept when a later task failed):
      ``results/`` (results of tasks of earlier versions of the graph, and
      transfers a killed run left half done), payload packs in ``nodes/``,
      constants in ``data/``, and in ``logs/`` the job logs of other nodes
      (and rescue DAGs of an earlier DAG that ``write`` set aside). The
      manifest, the DAG and its files, ``bin/`` and ``logs/corrupt/`` (damaged
      results set aside for you to look at) stay. The manifest is read again
      just before deleting: if it changed (the workflow was written again
      meanwhile) the workflow is left alone this time.
    * With ``older_than``: a workflow whose newest file is older than that
      goes whole (renamed to ``.<name>.gc-<pid>`` first, so that nobody opens
      it half deleted; such a folder whose gc is gone is deleted by the next).
      Hidden folders are never taken for workflows (``write`` stages a
      workflow in ``.<name>.tmp-...``).
    * Job scratch folders of the local runner (``names.SCRATCH_PREFIX`` +
      the runner's pid, see ``names.scratch_prefix``) in the system temp
      folder, owned by you, whose runner is no longer a process on this
      machine (killed with SIGKILL: a runner removes its own on exit, Ctrl-C
      and SIGTERM) and in which no process works any more (a job of the
      killed runner that still runs; Linux's /proc tells).
    * ``dry_run``: list, delete nothing.

Example::

    >>> report = gc("condordag-workflows", older_than="30d", dry_run=True)  # doctest: +SKIP
    >>> print(report.summary())                                            # doctest: +SKIP
    would free 12.4 MiB: 310 results, 2 payload packs, 1 workflow
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import names
from .condor import dagman_by_hand, pool_dag
from .config import options
from .exceptions import CondorDagError, RunnerError, WorkflowError
from .local import locked
from .manifest import read_manifest

__all__ = ["gc", "GcReport", "parse_age", "human_size"]

#: What each kind of deleted thing is called in the summary (singular, plural).
KINDS = {
    "result": ("result", "results"),
    "pack": ("payload pack", "payload packs"),
    "data": ("constant", "constants"),
    "log": ("log", "logs"),
    "workflow": ("workflow", "workflows"),
    "scratch": ("scratch folder", "scratch folders"),
}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([smhdw])\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One thing deleted (or to delete): a file, or a folder with all in it."""

    path: Path
    kind: str  # a key of KINDS
    bytes: int
    why: str


@dataclass
class GcReport:
    """What ``gc`` deleted (``removed``; with ``dry_run``, would delete) and the
    workflows it left alone (``kept``: ``(path, reason)``)."""

    dry_run: bool
    removed: list = field(default_factory=list)
    kept: list = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.removed)

    def counts(self) -> dict:
        """kind -> how many were deleted, in the order of ``KINDS``."""
        out = {k: 0 for k in KINDS}
        for i in self.removed:
            out[i.kind] += 1
        return {k: n for k, n in out.items() if n}

    def summary(self) -> str:
        """One line: how many things of each kind and how many bytes.

        >>> r = GcReport(False, [Item(Path("r"), "result", 2048, "")] * 3)
        >>> r.summary()
        'freed 6.0 KiB: 3 results'
        """
        verb = "would free" if self.dry_run else "freed"
        if not self.removed:
            return f"nothing to delete ({verb} 0 bytes)"
        parts = [f"{n} {KINDS[k][n != 1]}" for k, n in self.counts().items()]
        return f"{verb} {human_size(self.bytes)}: {', '.join(parts)}"


def human_size(n: int) -> str:
    """Bytes for people (powers of 1024).

    >>> human_size(512), human_size(3 * 2**20)
    ('512 bytes', '3.0 MiB')
    """
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"


def parse_age(age) -> float:
    """Seconds from ``age``: a number of seconds, a ``timedelta``, or text
    with a unit -- s, m (minutes), h, d or w.

    >>> parse_age("30d"), parse_age("12h"), parse_age(90), parse_age("1.5m")
    (2592000.0, 43200.0, 90.0, 90.0)
    """
    if isinstance(age, datetime.timedelta):
        seconds = age.total_seconds()
    elif isinstance(age, (int, float)) and not isinstance(age, bool):
        seconds = float(age)
    elif isinstance(age, str) and _AGE.fullmatch(age):
        m = _AGE.fullmatch(age)
        seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise CondorDagError(
            f"older_than={age!r} is not an age: give a number and a unit, s, m (minutes), "
            "h, d or w -- e.g. 30d, 12h -- or a number of seconds, or a timedelta")
    if seconds < 0:
        raise CondorDagError(f"older_than={age!r} is negative")
    return seconds


# ------------------------------------------------------------------ what is there
def _tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (symbolic links are not followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def _newest(path: Path) -> float:
    """The newest modification time of ``path`` and everything under it."""
    newest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for f in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, f)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def _manifest_stamp(path: Path):
    st = os.stat(path / names.MANIFEST)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _is_workflow(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / names.MANIFEST).is_file()


def running(path: Path, manifest: dict) -> str | None:
    """Why the DAG of the workflow at ``path`` may be running now (None: it
    is not). Reuses the checks ``write`` and the local runner make."""
    dag = path / manifest.get("dag", "")
    try:
        holder = locked(dag)
    except RunnerError as e:  # no DAG file: cannot tell
        return f"cannot tell whether it runs: {e}"
    if holder:
        return f"the local runner runs it ({holder})"
    pool = pool_dag(path, manifest.get("name", ""))
    if pool is not None:
        cluster, queued = pool
        if queued:
            return f"its DAGMan job {cluster} is in condor_q"
        return (f"its DAGMan job {cluster} may still be in the queue (condor_q cannot be "
                "asked here and its node status file does not say the DAG finished)")
    if dagman_by_hand(dag):
        return (f"a DAGMan started by hand (condor_submit_dag {dag.name}) may run it: "
                f"{dag.name}.lock exists; delete that file if no DAGMan runs it")
    return None


def unnamed_files(path: Path, manifest: dict) -> list:
    """The files of the workflow at ``path`` that no node of ``manifest``
    names: ``Item``s of kind result, pack, data and log."""
    nodes = manifest.get("nodes", {})
    named = {f for info in nodes.values() for fs in info.get("outputs", {}).values() for f in fs}
    # a task inside a node of several tasks may have its own result too: kept
    # when a later task of its node failed, or written by another grouping
    named |= {names.result_file(t) for info in nodes.values() for t in info.get("tasks", {})}
    named |= {info.get("payload") for info in nodes.values()}
    named |= set((manifest.get("data") or {}).values())
    logs = {os.path.basename(f) for n in nodes for f in names.log_files(n)}
    log_of_proc = re.compile(r"(.+\.(?:out|err))\.\d+")
    out = []
    for folder, kind in ((names.RESULTS_DIR, "result"), (names.NODES_DIR, "pack"),
                         (names.DATA_DIR, "data"), (names.LOGS_DIR, "log")):
        try:
            entries = sorted(os.scandir(path / folder), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for e in entries:
            if not e.is_file(follow_symlinks=False) and not e.is_symlink():
                continue  # folders (logs/corrupt/) stay
            if kind == "log":
                m = log_of_proc.fullmatch(e.name)
                if e.name in logs or (m and m.group(1) in logs):
                    continue
                why = "the log of no node of the workflow"
            elif f"{folder}/{e.name}" in named:
                continue
            else:
                why = f"no node of the workflow names it ({manifest.get('name')})"
            out.append(Item(Path(e.path), kind, e.stat(follow_symlinks=False).st_size, why))
    return out


def stale_scratch(root: Path | None = None) -> list:
    """The local runner's job scratch folders in ``root`` (default: the
    system temp folder) that are yours and whose runner process is gone."""
    root = Path(root or tempfile.gettempdir())
    out = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return out
    uid = os.getuid() if hasattr(os, "getuid") else None
    cwds = None
    for e in sorted(entries, key=lambda e: e.name):
        if not e.name.startswith(names.SCRATCH_PREFIX) or not e.is_dir(follow_symlinks=False):
            continue
        pid = e.name[len(names.SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or (uid is not None and e.stat(follow_symlinks=False).st_uid != uid):
            continue
        if _alive(int(pid)):
            continue
        if cwds is None:
            cwds = _working_dirs()
        if any(c == e.path or c.startswith(e.path + os.sep) for c in cwds):
            continue  # a job of the killed runner still runs in it
        out.append(Item(Path(e.path), "scratch", _tree_bytes(Path(e.path)),
                        f"scratch folder of local runner pid {pid}, which is gone"))
    return out


def _working_dirs() -> set:
    """The working directories of the processes we may look at (Linux's
    /proc; elsewhere none are known)."""
    out = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for p in pids:
        try:
            out.add(os.readlink(f"/proc/{p}/cwd"))
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one we may not signal
    counts as alive)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# ------------------------------------------------------------------ deleting
def _hidden(path: Path) -> Path:
    """Where a workflow goes while it is deleted (``.<name>.gc-<pid>``)."""
    return path.with_name(f".{path.name}.gc-{os.getpid()}")


_HIDDEN = re.compile(r"\..+\.gc-(\d+)")


def _remove(item: Item) -> None:
    p = item.path
    if item.kind == "workflow" and not _HIDDEN.fullmatch(p.name):
        # out of sight first: nobody opens a workflow half deleted
        hidden = _hidden(p)
        os.rename(p, hidden)
        shutil.rmtree(hidden)
    elif item.kind in ("workflow", "scratch"):
        shutil.rmtree(p)
    else:
        p.unlink()


def _half_deleted(root: Path) -> list:
    """Workflows that a gc, since gone, renamed and did not finish deleting."""
    out = []
    for child in sorted(root.iterdir()):
        m = _HIDDEN.fullmatch(child.name)
        if m and child.is_dir() and not child.is_symlink() and not _alive(int(m.group(1))):
            out.append(Item(child, "workflow", _tree_bytes(child),
                            f"half deleted by gc pid {m.group(1)}, which is gone"))
    return out


def _gc_workflow(path: Path, report: GcReport, cutoff: float | None) -> None:
    try:
        stamp = _manifest_stamp(path)
        manifest = read_manifest(path)
    except (OSError, WorkflowError) as e:
        report.kept.append((path, f"cannot read its manifest: {e}"))
        return
    why = running(path, manifest)
    if why:
        report.kept.append((path, why))
        return
    if cutoff is not None and _newest(path) < cutoff:
        items = [Item(path, "workflow", _tree_bytes(path),
                      f"no file in it changed since {_when(cutoff)}")]
    else:
        items = unnamed_files(path, manifest)
    if not items:
        return
    if not report.dry_run:
        # the last look before deleting: written again, or started, meanwhile?
        try:
            changed = _manifest_stamp(path) != stamp
        except OSError:
            changed = True
        why = "it was written again while gc ran" if changed else running(path, manifest)
        if why:
            report.kept.append((path, why))
            return
    _delete(items, report)


def _delete(items: list, report: GcReport) -> None:
    """Delete ``items`` (not with ``dry_run``) and record them in ``report``;
    one that cannot be deleted is recorded in ``kept`` with the reason."""
    for item in items:
        if not report.dry_run:
            try:
                _remove(item)
            except FileNotFoundError:  # gone already (another gc was quicker)
                continue
            except OSError as e:
                report.kept.append((item.path, f"cannot delete it: {e}"))
                continue
        report.removed.append(item)


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="minutes")


def gc(path=None, *, older_than=None, dry_run: bool = False, scratch: bool = True) -> GcReport:
    """Delete what no workflow needs any more (see the module docstring).

    ``path``: a workflows directory (default: the ``directory`` option,
    ``./condordag-workflows``) or one workflow directory. ``older_than``:
    also delete whole workflows in which nothing changed for that long (an
    age such as ``"30d"`` or ``"12h"``, seconds, or a ``timedelta``).
    ``dry_run``: delete nothing, report what would go. ``scratch``: also
    delete the scratch folders of local runners that were killed.

    Returns a :class:`GcReport`; ``report.summary()`` says what was freed.
    """
    cutoff = None
    if older_than is not None:
        cutoff = time.time() - parse_age(older_than)
    if path is None:
        path = Path(options({}).directory).absolute()  # not there yet: nothing in it
    else:
        path = Path(path).absolute()
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a folder"
            raise WorkflowError(f"{path} {what}: give a workflows directory (the one "
                                "compute() writes into) or one workflow directory")
    report = GcReport(dry_run=dry_run)
    if _is_workflow(path):
        _gc_workflow(path, report, cutoff)
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            # hidden: a workflow being written (write.py stages it in
            # .<name>.tmp-...) or deleted; compute() names none so
            if _is_workflow(child) and not child.name.startswith("."):
                _gc_workflow(child, report, cutoff)
        _delete(_half_deleted(path), report)
    if scratch:
        _delete(stale_scratch(), report)
    return report
