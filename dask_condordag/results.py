"""Load results and error reports from a workflow directory.

Data
    A result file is a header line (``DCDAG-OK 2 <sha256> <stem>``) + a pickle,
    or ``DCDAG-ERR 2 ...`` + a JSON error report, written by the worker shim
    (``worker.seal``/``unseal`` are the one implementation of the format).

Policy
    * Nothing is unpickled before its checksum and its name are verified; a
      damaged, truncated or misplaced file raises
      :class:`~dask_condordag.exceptions.CorruptResultError` naming the file.
    * Error reports are JSON, read without unpickling anything.
    * A failed task is re-raised as its *original exception type* (a subclass
      made on the fly, so ``except ZeroDivisionError`` still works) whose
      message carries the key, the node, where its logs are, and the remote
      traceback. When the type cannot be rebuilt here (not importable, odd
      constructor) it becomes :class:`~dask_condordag.exceptions.RemoteError`.

Example::

    >>> report = {"exc_type": "builtins.ZeroDivisionError", "message": "division by zero",
    ...           "traceback": "Traceback ...\\nZeroDivisionError: division by zero\\n",
    ...           "host": "node7", "node": "div_0123", "task": "div_0123"}
    >>> e = remote_exception(report, key="div-1", logs=("logs/div_0123.out", "logs/div_0123.err"))
    >>> isinstance(e, ZeroDivisionError), e.key
    (True, 'div-1')
"""

from __future__ import annotations

import importlib
import json
import logging
import pickle
from pathlib import Path

from . import names
from .exceptions import CorruptResultError, RemoteError, WorkflowError
from .worker import CorruptFile, unseal

__all__ = ["read_result", "read_error", "remote_exception", "remote_traceback", "is_error",
           "is_ok", "verify"]

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
    import linecache

    out = ["Traceback (most recent call last):"]
    for filename, lineno, name, line in frames:
        out.append(f'  File "{filename}", line {lineno}, in {name}')
        line = line or linecache.getline(filename, lineno).strip()
        if line:
            out.append(f"    {line}")
    out.extend(x.rstrip("\n") for x in report.get("exception_only", []))
    return "\n".join(out)


def _message(report: dict, key, logs) -> str:
    where = f" on {report['host']}" if report.get("host") else ""
    lines = [
        f"{report.get('message', '')}",
        "",
        f"Task {key!s} (DAG node {report.get('node')}) failed{where} "
        f"while {report.get('stage', 'running')}.",
    ]
    if logs:
        lines.append(f"Job logs: {', '.join(str(x) for x in logs)}")
    lines += ["Remote traceback:", remote_traceback(report)]
    return "\n".join(lines)


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


def remote_exception(report: dict, *, key=None, logs=()) -> BaseException:
    """An exception to raise for a failed task (see the module docstring)."""
    msg = _message(report, key, logs)
    exc_type = _import_type(report.get("exc_type", ""))
    original = None
    if report.get("exc_pickle"):
        import base64

        try:
            original = pickle.loads(base64.b64decode(report["exc_pickle"]))
        except Exception as e:
            logger.debug("key %r: cannot unpickle the original exception (%s: %s); using its "
                         "type and message", key, type(e).__name__, e)
            original = None
    if isinstance(exc_type, type) and issubclass(exc_type, BaseException):
        try:
            sub = type(exc_type.__name__, (exc_type,), {
                "__str__": lambda self: self._condordag_message,
                "__module__": exc_type.__module__,
                "__qualname__": exc_type.__qualname__,
            })
            exc = sub.__new__(sub)
            if original is not None and type(original) is exc_type:
                exc.__dict__.update(getattr(original, "__dict__", {}))
                exc.args = original.args
            else:
                exc.args = (report.get("message", ""),)
            exc._condordag_message = msg
            exc.key = key
            exc.node = report.get("node")
            exc.remote_traceback = remote_traceback(report)
            exc.error_report = report
            return exc
        except Exception as e:
            why = f"cannot make a subclass of it ({type(e).__name__}: {e})"
    else:
        why = ("it cannot be imported here" if exc_type is None
               else "it is not an exception type here")
    logger.info("key %r: the remote exception %s becomes a RemoteError: %s", key,
                report.get("exc_type"), why)
    return RemoteError(
        f"{report.get('exc_type')}: {msg}",
        exc_type=report.get("exc_type", ""),
        key=key,
        node=report.get("node", ""),
        remote_traceback=remote_traceback(report),
    )
