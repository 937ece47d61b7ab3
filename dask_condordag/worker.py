"""dask-condordag worker shim: what each HTCondor job runs on the execute node.

    python bin/dask_condordag_worker.py NODE PROC PACK

Run in the job's scratch directory, where HTCondor has put (with
``preserve_relative_paths``) the payload pack PACK (``nodes/pack_<hash>.pkl``,
which holds the payload of NODE and of up to 63 other nodes) and the result or data files
the node reads. It evaluates the node's tasks and writes one file per output
task under ``results/``; those are what HTCondor transfers back.

Contract (the client side relies on every point):
    * Standard library only at import; cloudpickle is imported only when a
      payload or a result needs it, so a missing package is *reported*.
    * Prints where it runs (host, Python, scratch listing) to stderr first.
    * Every output named in the payload exists when it exits, on every path
      out: a result, or a structured error report (a missing output puts the
      job ON HOLD on a pool instead of failing it). Each is written to a
      temporary name and renamed.
    * Exit status 0 when every task succeeded, 1 otherwise, so DAGMan's RETRY
      and rescue DAGs work.
    * In a node of several tasks the report names the task that failed
      (``task``, ``key``), and the outputs written before it stay; the values
      it (and the tasks after it) read from tasks that finished travel in the
      report (``keep_finished``), so that the next write of the workflow
      starts again at the failed task. A timeout (``max_runtime``) or a
      killed process keeps nothing.
    * A result that is a lazy iterator (a generator, map, filter, zip, an
      itertools object; also one in a returned list or tuple) is made a list
      before it is written, as ``dask.bag.core.reify`` does. A result that
      is, or holds, a handle to this job's local state (an open file, a
      socket, a lock, a partd store...) fails the task with LocalStateError
      naming its key: no other job and no later run could use it.

File formats (``dask_condordag.names`` holds the same constants; the client
imports ``seal``/``unseal`` from here, so there is one implementation):
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
               (exc_type, message, traceback, host, python, node, task, key,
               and exc_pickle: the exception object itself with its
               __cause__/__context__ chain, see ``pack_exception``; in a
               node of several tasks, ``finished``: the sealed results of the
               tasks that finished and that the tasks which did not run
               read, see ``keep_finished``)
Every file is checked (checksum, and the stem it names is its own) before
anything in it is unpickled: a truncated, corrupted or renamed file is
reported, never loaded.

The expression language: (0, value) literal; (1, name) the value named;
(2, func, args, kwargs) a call; (3, constructor, items); (4, pairs) a dict;
(5,) this job's process number in its ``queue N`` cluster (PROC).

Payload modes: "single" runs every task in order; "procid" runs the one task
with PROC = this proc and writes ``outputs[task]`` with ``{proc}`` filled in;
"cluster" runs only task number PROC. An input listed with several files is
the list of their values (a procid cluster's result).

Pickles are code: this runs whatever the payload says. It only ever loads
files that sit in its own scratch directory, written by the workflow.
"""

import io
import json
import os
import pickle
import platform
import sys
import time
import types
from collections.abc import Iterator

PAYLOAD_MAGIC = b"DCDAG-PAYLOAD 2\n"
PACK_MAGIC = b"DCDAG-PACK 1\n"
RESULT_OK = b"DCDAG-OK 2 "
RESULT_ERR = b"DCDAG-ERR 2 "
LIT, REF, CALL, BUILD, DICT, PROC = 0, 1, 2, 3, 4, 5  # the expression tags


class CorruptFile(ValueError):
    """A result, data or payload file that fails its checks."""


def file_stem(path):
    name = os.path.basename(path)
    return name[:-4] if name.endswith(".pkl") else name


def seal(magic, path, body, seconds=None):
    """The header line of a result/error file for ``path``, holding ``body``;
    ``seconds``: the task's wall time, recorded for the cost model."""
    import hashlib

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
    import hashlib

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


def log(msg):
    sys.stderr.write("[dask-condordag worker] %s\n" % msg)
    sys.stderr.flush()


#: The stderr line recording a task's wall time (``cost.read_history`` parses it).
TASK_LINE = "[dask-condordag worker] ran task "


def describe_host():
    log("host %s, Python %s (%s), pid %d" % (
        platform.node(), platform.python_version(), sys.executable, os.getpid()))
    log("scratch directory %s:" % os.getcwd())
    shown = 0
    for root, dirs, files in os.walk("."):
        dirs.sort()
        for f in sorted(files):
            if shown >= 200:
                log("  ... (more files not shown)")
                return
            p = os.path.join(root, f)[2:]
            try:
                size = os.path.getsize(p)
            except OSError:
                size = -1
            log("  %s (%d bytes)" % (p, size))
            shown += 1


def write_atomic(path, header, body):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    import threading

    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
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


def _lazy(obj):
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
    if _lazy(value):
        value = list(value)
    if type(value) in (list, tuple) and any(_lazy(v) for v in value):
        value = type(value)(list(v) if _lazy(v) else v for v in value)
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
            import cloudpickle

            buf = io.BytesIO()
            wrap(cloudpickle.Pickler)(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except LocalStateError as e:
        what, obj = e.args if len(e.args) == 2 else (str(e), None)
        raise local_state_error(task, key, what, obj) from None
    return buf.getvalue()


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
    import hashlib

    if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
        raise CorruptFile("the payload of node %s is damaged or truncated: its SHA-256 does "
                          "not match its header" % meta.get("node"))


PROC_KEY = ("dask_condordag", "procid")


def evaluate(expr, env):
    tag = expr[0]
    if tag == LIT:
        return expr[1]
    if tag == REF:
        return env[expr[1]]
    if tag == CALL:
        args = [evaluate(a, env) for a in expr[2]]
        if expr[3]:
            return expr[1](*args, **{k: evaluate(v, env) for k, v in expr[3]})
        return expr[1](*args)
    if tag == BUILD:
        return expr[1]([evaluate(a, env) for a in expr[2]])
    if tag == DICT:
        return {evaluate(k, env): evaluate(v, env) for k, v in expr[1]}
    if tag == PROC:
        return env[PROC_KEY]
    raise ValueError("unknown expression tag %r" % (tag,))


def _user_traceback(exc):
    """The traceback without the shim's own frames (when user code is below)."""
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while tb is not None and tb.tb_next is not None and \
            os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    return tb


def error_report(exc, meta, task, stage):
    import traceback  # only on failure: it costs ~3 ms of every job's start

    tb = _user_traceback(exc)
    report = {
        "node": meta.get("node"),
        "task": task,
        "key": meta.get("keys", {}).get(task) if task else None,
        "stage": stage,
        "proc": meta.get("proc", 0),
        "exc_type": "%s.%s" % (type(exc).__module__, type(exc).__qualname__),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
        # structured too: the client fills in source lines it has and we lack
        "frames": [[f.filename, f.lineno, f.name, f.line or ""]
                   for f in traceback.extract_tb(tb)],
        "exception_only": traceback.format_exception_only(type(exc), exc),
        "host": platform.node(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report.update(pack_exception(exc))
    return report


#: an exception (with its chain) pickled larger than this is not sent
EXC_PICKLE_LIMIT = 4 * 2**20
_CHAIN_LIMIT = 64


def exception_chain(exc):
    """``(chain, links)``: ``exc`` and every exception reachable through
    ``__cause__``/``__context__`` (each once, ``exc`` first), and for each
    ``(cause index, context index, __suppress_context__)``. Pickle does not
    keep these three attributes (``BaseException.__reduce__`` gives only the
    type, ``args`` and ``__dict__``, where ``__notes__`` lives)."""
    chain, index, todo = [], {}, [exc]
    while todo and len(chain) < _CHAIN_LIMIT:
        e = todo.pop(0)
        if id(e) in index:
            continue
        index[id(e)] = len(chain)
        chain.append(e)
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
    links = [(index.get(id(e.__cause__)), index.get(id(e.__context__)),
              bool(e.__suppress_context__)) for e in chain]
    return chain, links


def pack_exception(exc):
    """The report fields that carry the exception object itself.

    ``exc_pickle``: base64 of a pickle (cloudpickle where plain pickle cannot:
    a class from ``__main__`` travels by value) of ``exception_chain(exc)``,
    which must load back here. When the chain does not pickle, ``exc`` alone is
    sent and ``exc_chain_error`` says why; when ``exc`` itself does not (or is
    larger than EXC_PICKLE_LIMIT), there is no ``exc_pickle`` and
    ``exc_pickle_error`` says why: the client then rebuilds the exception from
    the plain fields.
    """
    import binascii  # what base64 uses, without its 1 ms import on every job

    chain, links = exception_chain(exc)
    out = {}
    attempts = [(chain, links)]
    if len(chain) > 1:
        attempts.append(([exc], [(None, None, bool(exc.__suppress_context__))]))
    for i, what in enumerate(attempts):
        try:
            data = dumps(what, check=False)
            if len(data) > EXC_PICKLE_LIMIT:
                raise ValueError("its pickle is %d bytes, above the limit of %d"
                                 % (len(data), EXC_PICKLE_LIMIT))
            pickle.loads(data)
        except Exception as e:  # noqa: B902 - any failure means: do not send it
            why = "%s: %s" % (type(e).__name__, e)
            out["exc_chain_error" if i == 0 and len(attempts) > 1 else "exc_pickle_error"] = why
            continue
        out["exc_pickle"] = binascii.b2a_base64(data, newline=False).decode("ascii")
        break
    return out


def write_error(path, report):
    body = json.dumps(report, indent=1, sort_keys=True).encode("utf-8")
    write_atomic(path, seal(RESULT_ERR, path, body), body)


def check_versions(meta):
    want = meta.get("python", "")
    have = "%d.%d" % sys.version_info[:2]
    if want and want != have:
        raise RuntimeError(
            "Python version mismatch: the workflow was written with Python %s but this "
            "execute node runs Python %s (%s); pickled code does not move between "
            "versions. Use the same Python on both sides." % (want, have, sys.executable))
    want_cp = meta.get("cloudpickle")
    if want_cp and meta.get("needs_cloudpickle"):
        try:
            import cloudpickle
        except ImportError:
            raise RuntimeError(
                "cloudpickle is not installed for %s on this execute node; the payload "
                "needs it (cloudpickle %s on the submit side)" % (sys.executable, want_cp))
        have_cp = getattr(cloudpickle, "__version__", "?")
        if have_cp.split(".")[0] != want_cp.split(".")[0]:
            raise RuntimeError(
                "cloudpickle version mismatch: submit side %s, execute node %s"
                % (want_cp, have_cp))


def placeholders(meta, outputs):
    """Before any user code runs, every output gets an error report saying the
    process ended without finishing. A real result or report replaces it
    (by rename); if the process dies first -- os._exit, SIGKILL, SIGABRT, out
    of memory -- the placeholder is what HTCondor transfers back, so the node
    fails with an explanation instead of the job going on hold."""
    exc = RuntimeError(
        "the job's process ended before this task finished, without reporting an error: "
        "it called os._exit() or was killed by a signal (SIGKILL, SIGABRT from os.abort() "
        "or a crash in C code, the out-of-memory killer...). See the job's stderr log and "
        "the exit code DAGMan recorded.")
    report = error_report(exc, meta, None, "running (did not finish)")
    report["traceback"] = ""
    report["frames"] = []
    for path in outputs.values():
        write_error(path, report)


def start_watchdog(seconds, meta, outputs, state):
    """Fail the job after ``seconds``: write an error report for every output
    not written yet and exit 124, even if the task is stuck in C code."""
    import threading

    def fire():
        exc = TimeoutError("node %s ran longer than its max_runtime of %g s (task %s was %s)"
                           % (meta.get("node"), seconds, state.get("task"), state.get("stage")))
        report = error_report(exc, meta, state.get("task"), "running")
        log("TIMEOUT: %s" % exc)
        for name, path in outputs.items():
            if name not in state.get("finished", ()):
                try:
                    write_error(path, report)
                except Exception:
                    pass
        sys.stderr.flush()
        os._exit(124)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def mode_of(meta):
    return meta.get("mode", "single")


def expr_reads(expr, out):
    """Add the value names ``expr`` references (tag 1) to the set ``out``."""
    tag = expr[0]
    if tag == 1:
        out.add(expr[1])
    elif tag == 2:
        for a in expr[2]:
            expr_reads(a, out)
        for _, v in expr[3]:
            expr_reads(v, out)
    elif tag == 3:
        for a in expr[2]:
            expr_reads(a, out)
    elif tag == 4:
        for k, v in expr[1]:
            expr_reads(k, out)
            expr_reads(v, out)
    return out


def keep_finished(tasks, env, finished, failed, meta):
    """The results to keep when task ``failed`` of a node of several tasks
    fails: ``{task: base64 of its sealed result file results/<task>.pkl}``
    for each task that finished, is not an output of the node (outputs are
    already written) and is read by a task that did not run (``failed`` or a
    later one). Exactly what a later run needs to start again at ``failed``:
    the client writes them as the tasks' own result files, and the next write
    of the workflow reads them instead of computing them again. They travel
    inside the error report, which is an output the job transfers back anyway
    (an extra file would have to be listed in ``transfer_output_files`` and
    exist on every path out). A value that cannot be pickled, or a lazy
    iterator (a later task may have consumed part of it), is not kept: its
    task reruns."""
    import binascii

    names_ = [t for t, _ in tasks]
    if failed not in names_:
        return {}
    at = names_.index(failed)
    wanted = set()
    for _, expr in tasks[at:]:
        expr_reads(expr, wanted)
    keys = meta.get("keys", {})
    out = {}
    for t in names_[:at]:
        if t in wanted and t not in finished and t in env:
            v = env[t]
            if _lazy(v) or (type(v) in (list, tuple) and any(_lazy(x) for x in v)):
                log("result of finished task %s not kept: a lazy iterator that a later "
                    "task may have consumed" % t)
                continue
            path = "results/%s.pkl" % t
            try:
                body = dumps(env[t], t, keys.get(t))
            except Exception as e:  # noqa: B902 - not kept: it reruns
                log("result of finished task %s not kept (%s: %s)" % (t, type(e).__name__, e))
                continue
            out[t] = binascii.b2a_base64(seal(RESULT_OK, path, body) + body,
                                         newline=False).decode("ascii")
    return out


def run(node, proc, pack):
    meta = {"node": node}
    outputs = {}
    stage = "reading the payload"
    task = None
    finished = set()
    watch = {"finished": finished}
    tasks_run, env = [], {}
    try:
        meta, body = read_payload(node, pack)
        meta["proc"] = proc
        mode = meta.get("mode", "single")
        outputs = meta["outputs"]
        if mode == "procid":
            outputs = {t: p.replace("{proc}", str(proc)) for t, p in outputs.items()}
        elif mode == "cluster":
            mine = meta["order"][proc]
            outputs = {mine: outputs[mine]}
        placeholders(meta, outputs)
        if meta.get("max_runtime"):
            start_watchdog(meta["max_runtime"], meta, outputs, watch)
        stage = "checking the payload"
        check_payload(meta, body)
        stage = "checking versions"
        check_versions(meta)
        stage = "loading the payload"
        try:
            tasks = pickle.loads(body)
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(
                "%s on the execute node (%s, Python %s): the payload refers to it by name. "
                "Install it there, ship it with delivery='transfer', or, if it is your own "
                "code, send it by value (the by_value option, or "
                "cloudpickle.register_pickle_by_value(module) before compute)"
                % (e, sys.executable, platform.python_version()), name=e.name) from None
        if mode == "cluster":
            tasks = [tasks[proc]]
        tasks_run = tasks
        env = {PROC_KEY: proc}
        for name, path in meta["inputs"].items():
            stage = "loading input %s" % (path,)
            if isinstance(path, list):
                env[name] = [read_value(p) for p in path]
            else:
                env[name] = read_value(path)
        for task, expr in tasks:
            stage = "running"
            watch.update(task=task, stage=stage)
            started = time.perf_counter()
            value = evaluate(expr, env)
            # every value, not only those written: a consumer in this job sees
            # what a consumer in another job would read (a group changes
            # nothing), and an iterator read by two consumers is not used up
            stage = "materializing the result"
            value = materialize(value)
            env[task] = value
            took = time.perf_counter() - started
            if task in outputs:
                stage = "saving the result"
                body = dumps(value, task, meta.get("keys", {}).get(task))
                took = time.perf_counter() - started
                write_atomic(outputs[task], seal(RESULT_OK, outputs[task], body, took), body)
                finished.add(task)
            sys.stderr.write("%s%s %.6f s\n" % (TASK_LINE, task, took))
        task = None
        return 0
    except BaseException as exc:  # noqa: B902 - every failure must leave its report
        report = error_report(exc, meta, task, stage)
        log("FAILED while %s%s: %s: %s" % (
            stage, " task %s" % task if task else "", report["exc_type"], report["message"]))
        sys.stderr.write(report["traceback"])
        if mode_of(meta) == "single" and task is not None:
            try:
                kept = keep_finished(tasks_run, env, finished, task, meta)
            except BaseException as e:  # noqa: B902 - the reports must still be written
                log("finished results not kept (%s: %s)" % (type(e).__name__, e))
                kept = None
            if kept:
                report["finished"] = kept
        for name, path in outputs.items():
            if name not in finished:
                write_error(path, report)
        if not outputs:
            # the payload could not tell the outputs: the usual one (a node of
            # one task is named after it) gets the report, so the node fails
            # with it instead of going on hold; otherwise it is in this log
            guess = "results/%s.pkl" % node
            try:
                write_error(guess, report)
                log("outputs unknown; error report written to %s" % guess)
            except Exception:
                log("outputs unknown; error report only in this log")
        return 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or not argv[1].isdigit():
        log("usage: dask_condordag_worker.py NODE PROC PACK")
        return 2
    start = time.time()
    describe_host()
    status = run(argv[0], int(argv[1]), argv[2])
    log("node %s %s in %.3f s" % (argv[0], "done" if status == 0 else "FAILED",
                                   time.time() - start))
    return status


if __name__ == "__main__":
    sys.exit(main())
