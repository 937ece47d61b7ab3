"""Load results and error reports from a workflow directory.

Data
    A result file is a header line (``DCDAG-OK 2 <sha256> <stem>``) + a pickle,
    or ``DCDAG-ERR 2 ...`` + a JSON error report, written by the worker shim
    (``worker_files.seal``/``unseal`` are the one implementation of the format).

Policy
    * Nothing is unpickled before its checksum and its name are verified; a
      damaged, truncated or misplaced file raises
      :class:`~dask_condordag.exceptions.CorruptResultError` naming the file.
    * Error reports are JSON; the plain fields (type, message, traceback,
      host) are read without unpickling anything.
    * A failed task is re-raised as *the exception object itself*: the worker
      sends it pickled, with its ``__cause__``/``__context__`` chain and notes
      (``worker_errors.pack_exception``), so its type (``type(e) is MyError``, also
      for a class from ``__main__`` or the user's modules: see
      ``_as_importable_class``), ``args`` and attributes (``errno``, ``filename``, your own) are
      the task's. The key, the node, the host, the job's log files and the
      remote traceback are added as a note (``add_note``; Python 3.10, which
      shows no notes, gets them in the message where that is safe) and as
      ``exc.dask_condordag`` (:class:`RemoteFailure`).
    * Only when the object does not come back (it did not pickle on the
      execute node, or does not unpickle here) is it replaced by a stand-in:
      a subclass of its type made on the fly (so ``except ZeroDivisionError``
      still works) whose message says so and carries the same text; when the
      type cannot be imported here, :class:`~dask_condordag.exceptions.RemoteError`.

Example::

    >>> from dask_condordag.worker_errors import pack_exception
    >>> report = {"exc_type": "builtins.ZeroDivisionError", "message": "division by zero",
    ...           "traceback": "Traceback ...\\nZeroDivisionError: division by zero\\n",
    ...           "host": "node7", "node": "div_0123", "task": "div_0123",
    ...           **pack_exception(ZeroDivisionError("division by zero"))}
    >>> e = remote_exception(report, key="div-1", logs=("logs/div_0123.out", "logs/div_0123.err"))
    >>> type(e) is ZeroDivisionError, str(e), e.dask_condordag.key
    (True, 'division by zero', 'div-1')
"""

from __future__ import annotations

import base64
import importlib
import json
import linecache
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import names
from .exceptions import CorruptResultError, RemoteError, WorkflowError
from .worker_files import CorruptFile, unseal, write_atomic

__all__ = ["read_result", "read_error", "keep_finished", "remote_exception", "remote_traceback",
           "is_error", "is_ok", "verify", "RemoteFailure", "add_note"]

logger = logging.getLogger(__name__)


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(max(len(names.RESULT_OK), len(names.RESULT_ERR)))


def _unseal(path, key=None):
    try:
        data = Path(path).read_bytes()
        return unseal(data, str(path))
    except CorruptFile as e:
        who = f" (the result of key {key!r})" if key is not None else ""
        raise CorruptResultError(
            f"{e}{who}. It will not be loaded; computing the workflow again reruns its node "
            "(the damaged file is set aside in logs/corrupt/)", path=str(path), key=key
        ) from None


def verify(path) -> bool:
    """Is ``path`` a whole, correctly named result holding a value?"""
    try:
        magic, _ = unseal(Path(path).read_bytes(), str(path))
    except (OSError, CorruptFile):
        return False
    return magic == names.RESULT_OK


def is_ok(path) -> bool:
    try:
        return _head(Path(path)).startswith(names.RESULT_OK)
    except OSError:
        return False


def is_error(path) -> bool:
    try:
        return _head(Path(path)).startswith(names.RESULT_ERR)
    except OSError:
        return False


def read_error(path) -> dict:
    """The JSON error report in ``path`` (which must hold one)."""
    magic, body = _unseal(path)
    if magic != names.RESULT_ERR:
        raise WorkflowError(f"{path} does not hold an error report")
    return json.loads(bytes(body).decode("utf-8"))


def keep_finished(root, report: dict) -> list:
    """Write the results an error report carries (``report["finished"]``, see
    ``worker_errors.keep_finished``: the tasks of a node of several tasks
    that finished before one failed) as their own result files under the workflow
    directory ``root``; returns the task names written. Each is verified
    (checksum, and that it names its own file) first; one already there is
    left alone (names are content hashes: it is the same result)."""
    written = []
    for task, b64 in (report.get("finished") or {}).items():
        rel = names.result_file(task)
        path = Path(root) / rel
        if verify(path):
            continue
        try:
            data = base64.b64decode(b64)
            magic, _ = unseal(data, rel)
        except (ValueError, CorruptFile) as e:
            logger.warning("the kept result of task %s in an error report is damaged (%s); "
                           "the task will run again", task, e)
            continue
        if magic != names.RESULT_OK:
            continue
        write_atomic(str(path), data, b"")
        written.append(task)
    return written


def read_result(path, key=None):
    """The value in a result or data file, verified first. Error reports raise
    WorkflowError (callers that want the remote exception use
    :func:`remote_exception`)."""
    magic, body = _unseal(path, key)
    if magic == names.RESULT_ERR:
        raise WorkflowError(f"{path} holds an error report, not a value")
    return pickle.loads(body)


def remote_traceback(report: dict) -> str:
    """The remote traceback, with source lines filled in from this machine's
    copy of the files where the execute node had none (functions sent by
    value are not files there)."""
    frames = report.get("frames")
    if not frames:
        return report.get("traceback", "").rstrip()
    out = ["Traceback (most recent call last):"]
    for filename, lineno, name, line in frames:
        out.append(f'  File "{filename}", line {lineno}, in {name}')
        line = line or linecache.getline(filename, lineno).strip()
        if line:
            out.append(f"    {line}")
    out.extend(x.rstrip("\n") for x in report.get("exception_only", []))
    return "\n".join(out)


def _import_type(qualified: str):
    mod, _, qual = qualified.rpartition(".")
    # qualnames may contain dots (nested classes): try the longest module first
    parts = qualified.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return None
        return obj
    return None


@dataclass(frozen=True)
class RemoteFailure:
    """Where a re-raised exception comes from: ``exc.dask_condordag`` on every
    exception :func:`remote_exception` returns (a namespaced attribute, so
    that none of the exception's own attributes is shadowed)."""

    key: Any
    node: str
    host: str
    logs: tuple
    remote_traceback: str
    report: dict = field(repr=False)
    rebuilt: bool  # False: a stand-in, the object itself did not come back


_HAS_NOTES = hasattr(BaseException, "add_note")  # Python >= 3.11


def add_note(exc: BaseException, text: str) -> None:
    """Add ``text`` to what is shown with ``exc``: a note (``add_note``, shown
    under the traceback since Python 3.11). Python 3.10 does not show notes: the
    text is appended to the message where that changes nothing else (the
    exception's ``__str__`` is BaseException's and ``args`` is one string)."""
    if hasattr(exc, "_condordag_message"):  # a stand-in: its message is ours
        exc._condordag_message += "\n" + text
        return
    _set(exc, "__notes__", [*getattr(exc, "__notes__", ()), text])  # what add_note does
    if not _HAS_NOTES and type(exc).__str__ is BaseException.__str__ \
            and len(exc.args) == 1 and isinstance(exc.args[0], str):
        _set(exc, "args", (exc.args[0] + "\n\n" + text,))


def _set(exc: BaseException, name: str, value) -> None:
    """``setattr``, also on an exception that refuses it (a "frozen" class
    whose ``__setattr__`` raises, as attrs and dataclasses make them)."""
    try:
        setattr(exc, name, value)
    except Exception:  # noqa: B902 - whatever its __setattr__ raises
        object.__setattr__(exc, name, value)


def _unpickle_exception(report: dict):
    """``(exception, None)`` from the report's ``exc_pickle`` with its
    ``__cause__``/``__context__`` chain restored, or ``(None, why not)``."""
    data = report.get("exc_pickle")
    if not data:
        why = report.get("exc_pickle_error")
        return None, (f"it could not be pickled on the execute node ({why})" if why
                      else "the execute node did not send it")
    try:
        got = pickle.loads(base64.b64decode(data))
        chain, links = (got, None) if isinstance(got, BaseException) else got
        if isinstance(chain, BaseException):
            chain, links = [chain], None
        if not chain or not all(isinstance(e, BaseException) for e in chain):
            raise TypeError(f"it holds {type(chain).__name__}, not exceptions")
    except Exception as e:  # noqa: B902 - any failure: fall back to the plain fields
        return None, f"it does not unpickle here ({type(e).__name__}: {e})"
    chain = [_as_importable_class(e) for e in chain]
    for e, link in zip(chain, links or ()):
        cause, context, suppress = link
        _set(e, "__cause__", chain[cause] if cause is not None else None)
        _set(e, "__context__", chain[context] if context is not None else None)
        _set(e, "__suppress_context__", suppress)
    return chain[0], None


def _as_importable_class(exc: BaseException) -> BaseException:
    """``exc`` with the class of the same module and name that can be
    imported here, when it came back with a copy sent by value.

    Classes from ``__main__`` and from your own modules travel by value
    (cloudpickle). In the process that wrote the workflow cloudpickle maps the
    copy back to the original class; in any other process (``Workflow.open(p)
    .result()`` later) the copy is a new class that ``except MyError`` would
    not catch. Pickle by reference would have used the importable class: so do
    we, when there is one of that name (the object's state is in its
    ``__dict__`` and ``args``, which stay). The same holds for the worker's
    stand-ins (``worker_files.LocalStateError``, used where the package is
    not installed on the execute node): their bases differ from the real
    class's, so ``__class__`` cannot be assigned; then a new object of the
    importable class is made with the same ``args`` and ``__dict__``
    (without calling its ``__init__``)."""
    cls = type(exc)
    twin = _import_type(f"{cls.__module__}.{cls.__qualname__}")
    if twin is cls or not isinstance(twin, type) or not issubclass(twin, BaseException) \
            or twin.__name__ != cls.__name__:
        return exc
    try:
        _set(exc, "__class__", twin)
        return exc
    except TypeError:  # another memory layout: a new object of the twin class
        pass
    try:
        new = twin.__new__(twin, *exc.args)
        new.args = exc.args
        new.__dict__.update(getattr(exc, "__dict__", {}))
    except Exception:  # noqa: B902 - a class that cannot be made so: keep the copy
        return exc
    return new


def _where(report: dict, key, logs) -> str:
    where = f" on {report['host']}" if report.get("host") else ""
    lines = [f"Task {key!s} (DAG node {report.get('node')}) failed{where} "
             f"while {report.get('stage', 'running')}."]
    if logs:
        lines.append(f"Job logs: {', '.join(str(x) for x in logs)}")
    if report.get("exc_chain_error"):
        lines.append("Its __cause__/__context__ chain could not be sent "
                     f"({report['exc_chain_error']}); the remote traceback shows it.")
    lines += ["Remote traceback:", remote_traceback(report)]
    return "\n".join(lines)


def remote_exception(report: dict, *, key=None, logs=()) -> BaseException:
    """The exception to raise for a failed task (see the module docstring):
    the original object when it comes back, else a stand-in of its type, else
    :class:`RemoteError`. Each carries ``exc.dask_condordag``
    (:class:`RemoteFailure`)."""
    where = _where(report, key, logs)
    info = dict(key=key, node=report.get("node") or "", host=report.get("host") or "",
                logs=tuple(str(x) for x in logs), remote_traceback=remote_traceback(report),
                report=report)
    original, why = _unpickle_exception(report)
    if original is not None:
        _set(original, "dask_condordag", RemoteFailure(**info, rebuilt=True))
        add_note(original, where)
        return original
    msg = (f"{report.get('message', '')}\n\n{where}\n(dask-condordag: this is a stand-in "
           f"of the task's exception type, without its attributes: the exception object "
           f"itself did not come back, {why}.)")
    logger.info("key %r: the exception object did not come back (%s); raising a stand-in",
                key, why)
    exc_type = _import_type(report.get("exc_type", ""))
    if isinstance(exc_type, type) and issubclass(exc_type, BaseException):
        try:
            sub = type(exc_type.__name__, (exc_type,), {
                "__str__": lambda self: self._condordag_message,
                "__module__": exc_type.__module__,
                "__qualname__": exc_type.__qualname__,
            })
            exc = sub.__new__(sub)
            exc.args = (report.get("message", ""),)
            exc._condordag_message = msg
            exc.key = key
            exc.node = report.get("node")
            exc.remote_traceback = info["remote_traceback"]
            exc.error_report = report
            exc.dask_condordag = RemoteFailure(**info, rebuilt=False)
            return exc
        except Exception as e:  # noqa: B902 - odd types (slots, C constructors): RemoteError
            logger.info("key %r: no stand-in of %s (%s: %s); raising RemoteError", key,
                        report.get("exc_type"), type(e).__name__, e)
    else:
        logger.info("key %r: %s %s here; raising RemoteError", key, report.get("exc_type"),
                    "cannot be imported" if exc_type is None else "is not an exception type")
    exc = RemoteError(
        f"{report.get('exc_type')}: {msg}",
        exc_type=report.get("exc_type", ""),
        key=key,
        node=report.get("node", ""),
        remote_traceback=info["remote_traceback"],
    )
    exc.dask_condordag = RemoteFailure(**info, rebuilt=False)
    return exc
