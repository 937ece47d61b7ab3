"""The worker shim's files: sealed results, payload packs, values in and out.

Shipped with the worker shim (``worker.py``) as
``bin/dask_condordag_worker_files.py`` (``names.WORKER_FILES``) and imported
by that name on the execute node; the submit side imports it as
``dask_condordag.worker_files``, so there is one implementation of each
format. Standard library only at import; cloudpickle only for a value plain
pickle cannot write.

Data (``dask_condordag.names`` holds the same constants; ``tests/test_names.py``)
    pack     = b"DCDAG-PACK 1\\n" + one JSON line {node: [start, end]} + the
               payloads back to back (offsets from the byte after that line)
    payload  = b"DCDAG-PAYLOAD 2\\n" + one JSON line (node, inputs, outputs,
               versions, the SHA-256 of the rest) + a pickle of
               [(task_name, expr), ...]
    result   = b"DCDAG-OK 2 <sha256 of body> <file stem>[ <seconds>]\\n" + a pickle
               (seconds: the task's wall time, a record for the cost model)
    stderr   = one line per task the job ran, written or not (a task read
               only inside its node has no result file to carry its time):
               "[dask-condordag worker] ran task <task name> <seconds> s"
               (TASK_LINE; read back by ``cost.read_history``)
    error    = b"DCDAG-ERR 2 <sha256 of body> <file stem>\\n" + a JSON report
               (``worker_errors.error_report``)

Policy
    * Every file is checked (checksum, and the stem it names is its own)
      before anything in it is unpickled: a truncated, corrupted or renamed
      file is reported (:class:`CorruptFile`), never loaded.
    * Each file is written to a temporary name and renamed (:func:`write_atomic`).
    * A result that is a lazy iterator (a generator, map, filter, zip, an
      itertools object; also one in a returned list or tuple) is made a list
      before it is written, as ``dask.bag.core.reify`` does
      (:func:`materialize`). A result that is, or holds, a handle to the
      job's local state (an open file, a socket, a lock, a partd store...)
      fails the task with LocalStateError naming its key (:func:`dumps`).

Example::

    >>> body = b"x"
    >>> head = seal(RESULT_OK, "results/t.pkl", body, 0.5)
    >>> head.split(b" ")[3:]
    [b't', b'0.500000\\n']
    >>> unseal(head + body, "results/t.pkl")[0] == RESULT_OK
    True
"""

import hashlib
import io
import json
import os
import pickle
import sys
import types
from _thread import get_ident  # threading's, without importing threading
from collections.abc import Iterator

_DCD_SHIM = True  # marks the shim's frames, left out of a task's traceback

PAYLOAD_MAGIC = b"DCDAG-PAYLOAD 2\n"
PACK_MAGIC = b"DCDAG-PACK 1\n"
RESULT_OK = b"DCDAG-OK 2 "
RESULT_ERR = b"DCDAG-ERR 2 "


class CorruptFile(ValueError):
    """A result, data or payload file that fails its checks."""


def log(msg):
    sys.stderr.write("[dask-condordag worker] %s\n" % msg)
    sys.stderr.flush()


#: The stderr line recording a task's wall time (``cost.read_history`` parses it).
TASK_LINE = "[dask-condordag worker] ran task "


def log_task_time(task, seconds):
    """Record a task's wall time in the job's stderr log (one write per line:
    threads of one node do not interleave their lines)."""
    sys.stderr.write("%s%s %.6f s\n" % (TASK_LINE, task, seconds))
    sys.stderr.flush()


# -- sealed files ------------------------------------------------------------------


def file_stem(path):
    name = os.path.basename(path)
    return name[:-4] if name.endswith(".pkl") else name


def seal(magic, path, body, seconds=None):
    """The header line of a result/error file for ``path``, holding ``body``;
    ``seconds``: the task's wall time, recorded for the cost model."""
    digest = hashlib.sha256(body).hexdigest()
    extra = "" if seconds is None else " %.6f" % seconds
    return magic + ("%s %s%s\n" % (digest, file_stem(path), extra)).encode("ascii")


def header_seconds(head):
    """The wall time recorded in a result header line, or None."""
    parts = head.rstrip(b"\n").split(b" ")
    if len(parts) == 5:
        try:
            return float(parts[4])
        except ValueError:
            return None
    return None


def unseal(data, path):
    """``(magic, body)`` of a sealed file's bytes; CorruptFile if it is not
    whole, not ours, or not the file it says it is."""
    end = data.find(b"\n", 0, 300)
    for magic in (RESULT_OK, RESULT_ERR):
        if data.startswith(magic) and end > 0:
            break
    else:
        raise CorruptFile("%s is not a dask-condordag result file (or was written by "
                          "another version)" % path)
    try:
        digest, stem, *rest = data[len(magic):end].decode("ascii").split(" ")
        if len(rest) > 1:
            raise ValueError(rest)
    except (UnicodeDecodeError, ValueError):
        raise CorruptFile("%s has a damaged header line" % path)
    body = memoryview(data)[end + 1:]
    if hashlib.sha256(body).hexdigest() != digest:
        raise CorruptFile("%s is damaged or truncated: its SHA-256 does not match its "
                          "header (%d bytes)" % (path, len(body)))
    if stem != file_stem(path):
        raise CorruptFile("%s holds the result of %s, not its own (moved or copied by hand?)"
                          % (path, stem))
    return magic, body


def write_atomic(path, header, body):
    """``header + body`` to ``path`` by a temporary name (unique per process
    and thread) and a rename."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), get_ident())
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- what a result may not be ----------------------------------------------------

_LOCKS = frozenset(["lock", "RLock", "Lock", "Condition", "Semaphore", "BoundedSemaphore",
                    "Event", "Barrier", "SemLock"])


def local_state(obj):
    """What kind of handle to this process's local state ``obj`` is, or None.

    Such a value means nothing to another job (another process, another
    machine) or to a later run: an open file or socket, a lock, a partd store
    (a folder in this job's scratch directory, dask's disk shuffle), a memory
    map, a database connection, a running process. Some of these would even
    pickle (a partd store pickles as its path) and be silently wrong elsewhere.
    Checked by type name, so nothing is imported for it."""
    t = type(obj)
    mod = getattr(t, "__module__", None) or ""
    name = t.__name__
    top = mod.split(".")[0]
    if top == "partd":
        return "a partd store (a folder in this job's scratch directory: dask's disk shuffle)"
    if (isinstance(obj, io.IOBase) and not isinstance(obj, (io.BytesIO, io.StringIO))) \
            or (mod == "tempfile" and "File" in name):
        return "an open file"
    if top in ("socket", "ssl") and "socket" in name.lower():
        return "a socket"
    if mod in ("_thread", "threading", "multiprocessing.synchronize") and name in _LOCKS:
        return "a lock"
    if mod == "mmap":
        return "a memory map"
    if mod == "sqlite3" and name in ("Connection", "Cursor"):
        return "a database connection"
    if mod == "subprocess" and name == "Popen":
        return "a running process"
    return None


def lazy(obj):
    """True for an iterator that is not a file (files, even in-memory ones,
    are iterators too) nor another handle."""
    return (isinstance(obj, Iterator) and not isinstance(obj, io.IOBase)
            and local_state(obj) is None)


class LocalStateError(TypeError):
    """Stand-in for ``dask_condordag.exceptions.LocalStateError`` where the
    package is not importable on the execute node; the submit side finds
    the real class by this name."""


LocalStateError.__module__ = "dask_condordag.exceptions"


def local_state_error(task, key, what, obj):
    """The exception for a result of ``task`` that holds ``what`` (``obj``)."""
    try:
        from dask_condordag.exceptions import LocalStateError as cls
    except Exception:  # the package is not on the execute node
        cls = LocalStateError
    hint = ""
    if what.startswith("a partd"):
        hint = (" This is dask's disk shuffle: pass shuffle='tasks' (bag.groupby), or "
                "dask.config.set({'dataframe.shuffle.method': 'tasks'}) when you build "
                "the collection.")
    return cls(
        "task %s returned %s (%s.%s), a handle to the job's local state: its scratch "
        "folder, its memory or its connections, which no other job and no later run can "
        "use. Return the data itself (read the file, list the items), or write to a "
        "shared location and return the path.%s"
        % (key or task, what, type(obj).__module__, type(obj).__qualname__, hint))


def materialize(value):
    """A lazy iterator (map, filter, zip, a generator, itertools...) as a list,
    and the iterators in a list or tuple too, as ``dask.bag.core.reify`` does:
    an iterator cannot be written, and could be read only once."""
    if lazy(value):
        value = list(value)
    if type(value) in (list, tuple) and any(lazy(v) for v in value):
        value = type(value)(list(v) if lazy(v) else v for v in value)
    return value


_PICKLERS = {}
_KINDS = {}  # type -> what local_state says of its instances (it reads only the type)


def _kind(obj):
    t = type(obj)
    try:
        return _KINDS[t]
    except KeyError:
        pass
    what = local_state(obj)
    if what is None and t is types.GeneratorType:
        what = ("a generator deep inside the result (only an iterator at the top "
                "or in a top-level list is made a list)")
    _KINDS[t] = what
    return what


def _checking(base):
    """A pickler class on ``base`` that refuses handles to local state."""
    if base in _PICKLERS:
        return _PICKLERS[base]
    sup = getattr(base, "reducer_override", None)

    class Checking(base):
        if sup is None:
            def reducer_override(self, obj):
                if _kind(obj) is not None:
                    raise LocalStateError(_kind(obj), obj)
                return NotImplemented
        else:
            def reducer_override(self, obj):
                if _kind(obj) is not None:
                    raise LocalStateError(_kind(obj), obj)
                return sup(self, obj)

    _PICKLERS[base] = Checking
    return Checking


def dumps(value, task=None, key=None, check=True):
    """Plain pickle first (fast, no import); cloudpickle for what it cannot do.

    With ``check`` (results) every object is checked with :func:`local_state`
    as it is pickled; one that is a handle raises ``LocalStateError`` naming
    the task. Without (an exception object for the error report) pickling
    fails with the pickler's own error, which the report then quotes."""
    wrap = _checking if check else (lambda base: base)
    buf = io.BytesIO()
    try:
        try:
            wrap(pickle.Pickler)(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        except LocalStateError:
            raise
        except Exception:
            import cloudpickle  # only for what plain pickle cannot write

            buf = io.BytesIO()
            wrap(cloudpickle.Pickler)(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except LocalStateError as e:
        what, obj = e.args if len(e.args) == 2 else (str(e), None)
        raise local_state_error(task, key, what, obj) from None
    return buf.getvalue()


# -- reading what the job was given ---------------------------------------------------


def read_value(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, body = unseal(data, path)
    if magic == RESULT_ERR:
        raise RuntimeError("input %s holds an error report, not a value" % path)
    return pickle.loads(body)


def read_payload(node, pack):
    """(meta, body) of ``node``'s payload in the pack file ``pack``."""
    with open(pack, "rb") as f:
        data = f.read()
    if not data.startswith(PACK_MAGIC):
        raise CorruptFile("%s is not a dask-condordag payload pack (or another format "
                          "version)" % pack)
    try:
        end = data.index(b"\n", len(PACK_MAGIC))
        index = json.loads(data[len(PACK_MAGIC):end].decode("utf-8"))
    except ValueError:
        raise CorruptFile("the index of payload pack %s is damaged or truncated" % pack) from None
    if node not in index:
        raise RuntimeError("payload pack %s holds no payload for node %s" % (pack, node))
    base = end + 1
    start, stop = base + index[node][0], base + index[node][1]
    if data[start:start + len(PAYLOAD_MAGIC)] != PAYLOAD_MAGIC:
        raise CorruptFile("payload pack %s is damaged or truncated at node %s" % (pack, node))
    try:
        end = data.index(b"\n", start + len(PAYLOAD_MAGIC), stop)
        meta = json.loads(data[start + len(PAYLOAD_MAGIC):end].decode("utf-8"))
    except ValueError:
        raise CorruptFile("the payload of node %s in %s has a damaged header" % (node, pack)) from None
    return meta, memoryview(data)[end + 1:stop]


def check_payload(meta, body):
    if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
        raise CorruptFile("the payload of node %s is damaged or truncated: its SHA-256 does "
                          "not match its header" % meta.get("node"))
