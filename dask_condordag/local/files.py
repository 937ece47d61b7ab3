"""The files the local runner reads and writes beside the DAG, as DAGMan does.

Data
    ``<dag>`` (and its newest rescue DAG) in; out: the ``NODE_STATUS_FILE``
    and ``JOBSTATE_LOG`` the DAG names, rescue DAGs, and two files of the
    local runner itself: the recovery journal ``<dag>.local.log`` and the lock
    ``<dag>.lock`` (names.py lists them all).

Policy
    * The node status file (its format: ``statusfile.py``, as
      src/condor_dagman/dag.cpp DumpNodeStatus writes it) is written through
      ``<file>.tmp`` and a rename, at most every ``NODE_STATUS_FILE`` seconds
      (always at the end and on abort), and only when something changed.
    * The jobstate log gets one line per event, as
      src/condor_dagman/jobstate_log.cpp writes it: ``time node event id - -
      seq`` (``seq`` numbers a node's attempts), and ``INTERNAL *** ... ***``
      lines for the DAG's start and end.
    * Rescue DAGs are DAGMan's format (``dagfile.render_rescue``), numbered
      after the newest one.
    * The journal and the lock: see :class:`Journal` and :class:`Lock`.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import time
from pathlib import Path

from .. import dagfile
from ..exceptions import RunnerError
from ..statusfile import status_text

__all__ = ["dag_path", "load_dag", "StatusFile", "JobstateLog", "Journal",
           "Lock", "locked", "write_rescue"]


def dag_path(path) -> Path:
    """The DAG file of a workflow directory (its only ``.dag``), or ``path``."""
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


def load_dag(path: Path):
    """The DAG as DAGMan would run it: the file plus its newest rescue DAG.

    A command the runner does not support (SUBDAG, SPLICE, FINAL, ...) raises
    :class:`RunnerError` naming the file and line."""
    try:
        dag = dagfile.parse_dag(path.read_text(encoding="utf-8"), str(path))
        rescue = dagfile.newest_rescue(str(path))
        if rescue:
            dag = dagfile.apply_rescue(dag, Path(rescue).read_text(encoding="utf-8"), str(rescue))
    except dagfile.DagSyntaxError as e:
        raise RunnerError(f"the local runner cannot run this DAG: {e}") from e
    return dag, rescue


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through ``path.tmp`` and a rename, as DAGMan does."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_rescue(path: Path, dag, done, failed) -> Path:
    """Write the next rescue DAG of the DAG file ``path``; returns its path."""
    target = Path(dagfile.next_rescue_path(str(path)))
    text = dagfile.render_rescue(path.name, list(done), list(failed), len(dag.nodes),
                                 datetime.datetime.now(datetime.timezone.utc), dag=dag)
    write_atomic(target, text)
    return target


class StatusFile:
    """The ``NODE_STATUS_FILE path min_interval`` of a DAG (Dag::DumpNodeStatus)."""

    def __init__(self, path: Path, min_interval: int, dag_name: str):
        self.path = path
        self.min_interval = min_interval
        self.dag_name = dag_name
        self.version = -1  # of the machine state last written
        self.last_write = 0.0

    def dump(self, m, final: bool = False) -> None:
        """Write the state of ``m`` (a ``dagman.Dagman``) if due."""
        if m.version == self.version and not final:
            return
        now = time.time()
        too_soon = self.min_interval > 0 and now - self.last_write < self.min_interval
        if too_soon and not final and not m.aborted:
            return
        self.version = m.version
        self.last_write = now
        write_atomic(self.path, status_text(m, self.dag_name, final=final, start=now,
                                            min_interval=self.min_interval))


class JobstateLog:
    """The ``JOBSTATE_LOG`` of a DAG: one line per ``dagman.Log`` action."""

    def __init__(self, path: Path):
        self.path = path

    def _line(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def internal(self, event: str, value: str) -> None:
        self._line(f"{int(time.time())} INTERNAL *** {event} {value} ***")

    def write(self, log) -> None:
        self._line(f"{int(time.time())} {log.node} {log.event} {log.cid} - - {log.seq}")


class Journal:
    """The runner's recovery log, ``<dag>.local.log``: one ``DONE node`` line,
    flushed and fsynced, as each node finishes (its outputs are already in
    place then). DAGMan recovers from its node log the same way when it is
    restarted after a crash: a runner killed part way (even with SIGKILL)
    and started again does not rerun what finished. The journal is removed
    when a run ends normally (the rescue DAG then records what is done)."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".local.log")
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


class Lock:
    """``<dag>.lock`` held with ``flock`` for the whole run: a second runner on
    the same workflow refuses (naming the holder) instead of corrupting it. A
    lock file left by a killed runner holds no flock and is simply taken over.
    The holder removes the file before it lets go, so a runner that locked a
    file which is no longer at the path checks that and opens the path again.
    (DAGMan keeps a lock file of the same name while it runs.)"""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self.fd = None

    def __enter__(self):
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
    p = dag_path(path)
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
