"""dask annotations -> DAGMan node settings. Pure; every check happens here, before
anything is written, and every error names the key and the annotation.

Data
    In: one task's annotations (``{"retries": 2, "resources": {...}, "condor":
    {...}}``). Out: a frozen :class:`~dask_condordag.settings.NodeSettings`.

Policy -- what maps to what:

=====================================  =========================================
``retries=n``                          ``RETRY node n``
``priority=p``                         ``PRIORITY node p``
``resources={"cpus": 2, "memory":      ``request_cpus = 2``, ``request_memory =
"4GB", "gpus": 1, "disk": "10GB"}``    4096`` (MiB), ``request_gpus = 1``,
                                       ``request_disk = 10485760`` (KiB)
``condor={"category": "db"}``          ``CATEGORY node db`` (+ DAG-level maxjobs)
``condor={"vars": {"state": "WI"}}``   ``VARS node state="WI"`` (``$(state)``)
``condor={"submit": {...}}``           extra submit commands for the node
``condor={"retry_unless_exit": 3}``    ``RETRY node n UNLESS-EXIT 3``
``condor={"abort_dag_on": 2}`` or      ``ABORT-DAG-ON node 2 [RETURN 1]``
``(2, 1)``
``condor={"pre": cmd, "post": cmd}``   ``SCRIPT PRE|POST node cmd``
``condor={"processes": 10}``           one node, ``queue 10`` (see ``procid``)
``condor={"cluster": "sweep"}``        sibling tasks -> one node, ``queue N``
``condor={"max_runtime": 3600}``       the worker fails the job after 3600 s
                                       (an error report, exit 124: RETRY applies)
``condor={"duration": 2.5}``           the cost model's seconds for the task
                                       (``group="auto"``; see ``cost``)
``condor={"group": False}``            ``group="auto"`` keeps the task alone
=====================================  =========================================

Memory and disk accept an int of bytes or a string with a unit, read as
HTCondor's submit language reads ``request_memory = 4GB``: K, M, G, T (with or
without B; ``KiB``... too) are powers of 1024, so "4GB" is 4096 MiB (dask's
``parse_bytes`` would make it 3815); see :func:`_size`. Nested ``dask.annotate``
blocks follow dask's rule: an inner ``condor=`` replaces the outer one whole.
:func:`dask_condordag.annotate` merges instead (inner keys win; ``vars`` and
``submit`` are merged key by key).

Example::

    >>> s = node_settings({"retries": 2, "resources": {"memory": "1GiB"}}, key="x")
    >>> s.retry, s.submit
    (2, (('request_memory', '1024'),))
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager

import dask

from .exceptions import PlanError
from .names import OUR_MACROS
from .settings import DagSettings, NodeSettings

__all__ = ["node_settings", "dag_settings", "merge_condor", "annotate", "OWNED_COMMANDS",
           "planner_hints"]

CONDOR_KEYS = ("category", "vars", "submit", "retry_unless_exit", "abort_dag_on", "pre", "post",
               "processes", "cluster", "max_runtime", "duration", "group")

#: submit commands dask-condordag writes itself: a ``submit`` annotation may not set them
OWNED_COMMANDS = frozenset({
    "executable", "arguments", "args", "transfer_executable", "transfer_input_files",
    "transfer_output_files", "transfer_output_remaps", "should_transfer_files",
    "when_to_transfer_output", "preserve_relative_paths", "output", "error", "log", "input",
    "initialdir", "initial_dir", "queue", "my.daskcondordagnode",
})

#: macro names DAGMan or we define for every node: a ``vars`` annotation may not set them
# DAGMan's and the submit language's own, and the per-node macros our submit
# descriptions use (names.OUR_MACROS)
RESERVED_VARS = frozenset({"job", "retry", "dag_status", "failed_count", "process", "procid",
                           "cluster", "clusterid", "dollar"} | {m.lower() for m in OUR_MACROS})

_RESOURCES = {
    "cpus": "request_cpus", "cpu": "request_cpus",
    "memory": "request_memory", "mem": "request_memory",
    "gpus": "request_gpus", "gpu": "request_gpus",
    "disk": "request_disk",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOUBLE_MACRO = re.compile(r"\$\$(?=\(|[A-Za-z_][A-Za-z0-9_]*\()")
_CATEGORY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_COMMAND = re.compile(r"(\+|[Mm][Yy]\.)?[A-Za-z_][A-Za-z0-9_.]*")


def _fail(key, what: str, msg: str):
    if key is None:  # a DAG-level option
        raise PlanError(f"{what}: {msg}")
    raise PlanError(f"key {key!r}: annotation {what}: {msg}")


def _int(key, what, value, *, minimum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, what, f"{value!r} is not a whole number")
    if minimum is not None and value < minimum:
        _fail(key, what, f"{value!r} is below {minimum}")
    return value


def _text(key, what, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        _fail(key, what, f"{value!r} is a {type(value).__name__}; give a string or a number")
    text = str(value)
    if "\n" in text or "\r" in text:
        _fail(key, what, f"{text!r} contains a line break, which DAG and submit files "
                         "cannot carry (they are line based)")
    return text


_SIZE = re.compile(r"\s*(\d+)(?:\.(\d*))?\s*(?:([KMGT])(i?B|i)?)?\s*", re.IGNORECASE)
_UNIT = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _size(key, what, value, base: int) -> int:
    """A size annotation in units of ``base`` bytes, rounded up, as HTCondor
    reads ``request_memory`` (base 1 MiB) and ``request_disk`` (base 1 KiB).

    Strings follow HTCondor's ``parse_int64_bytes`` (src/condor_utils/
    metric_units.cpp): a number with up to three decimals that count, then
    K, M, G or T in any case, optionally followed by B -- all powers of 1024,
    so ``"2GB"`` is 2048 MiB. ``"2GiB"`` means the same (HTCondor itself
    refuses the ``iB`` spelling). A number without a unit is refused: HTCondor
    would read it in ``base`` units, dask as bytes. An int or float is bytes.

    >>> _size("k", "memory", "1.5GB", 2**20), _size("k", "disk", 2**30, 2**10)
    (1536, 1048576)
    """
    if isinstance(value, bool):
        _fail(key, what, f"{value!r} is not a size")
    if isinstance(value, (int, float)):
        if not value >= 0 or value == float("inf"):
            _fail(key, what, f"{value!r} is not a size in bytes >= 0")
        return max(1, math.ceil(value / base))
    if not isinstance(value, str):
        _fail(key, what, f"{value!r} is a {type(value).__name__}, not a size; write e.g. "
                         "'4GB' or a number of bytes")
    m = _SIZE.fullmatch(value)
    if m is None or m.group(3) is None:
        why = ("has no unit: HTCondor would read it as "
               f"{'MiB' if base == 2**20 else 'KiB'} and dask as bytes"
               if m is not None else "is not a size")
        _fail(key, what, f"{value!r} {why}; write a number with K, M, G or T (powers of "
                         "1024, as HTCondor reads them: '4GB' is 4096 MiB), or an int of bytes")
    whole, decimals, unit = int(m.group(1)), m.group(2) or "", m.group(3).upper()
    # the same arithmetic as HTCondor: three decimals, then truncate and divide
    fract = 0.0
    for i, d in enumerate(decimals[:3]):
        fract += int(d) / (10.0 ** (i + 1))
    return max(1, int((whole + fract) * _UNIT[unit] + base - 1) // base)


def _resources(key, res) -> list:
    if not isinstance(res, dict):
        _fail(key, "resources", f"{res!r} is not a dict")
    out = {}
    for name, value in res.items():
        cmd = _RESOURCES.get(str(name).lower())
        if cmd is None:
            _fail(key, f"resources[{name!r}]",
                  "unknown resource; use cpus, memory, gpus or disk")
        what = f"resources[{name!r}]"
        if cmd == "request_memory":  # MiB, HTCondor's unit for request_memory
            out[cmd] = str(_size(key, what, value, 2**20))
        elif cmd == "request_disk":  # KiB, HTCondor's unit for request_disk
            out[cmd] = str(_size(key, what, value, 2**10))
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            out[cmd] = str(_int(key, what, value, minimum=0))
    return list(out.items())


def _named_items(key, field: str, value, kind: str, pattern, rule: str) -> list:
    """``[(name, value, what)]`` of ``condor[field]``: a dict whose names are
    strings that ``pattern`` matches (else ``rule`` says what they must be)."""
    if not isinstance(value, dict):
        _fail(key, f"condor[{field!r}]", f"{value!r} is not a dict of {kind} -> value")
    out = []
    for name, v in value.items():
        what = f"condor[{field!r}][{name!r}]"
        if not isinstance(name, str) or not pattern.fullmatch(name):
            _fail(key, what, rule)
        out.append((name, v, what))
    return out


def _vars(key, value) -> tuple:
    out = []
    for name, v, what in _named_items(key, "vars", value, "name", _NAME,
                                      "a VARS name must be letters, digits and '_', not "
                                      "starting with a digit"):
        if name.lower().startswith("queue"):
            _fail(key, what, "DAGMan rejects VARS names that start with 'queue'")
        if name.lower() in RESERVED_VARS:
            _fail(key, what, "this macro name is defined by DAGMan or dask-condordag")
        text = _text(key, what, v)
        if _DOUBLE_MACRO.search(text):
            _fail(key, what, f"{text!r} contains '$$(' (or '$$NAME('), which the submit "
                             "language keeps for job-ad macros: it cannot pass through VARS "
                             "unchanged")
        out.append((name, text))
    return tuple(out)


def _submit(key, value) -> list:
    out = []
    for cmd, v, what in _named_items(key, "submit", value, "command", _COMMAND,
                                     "not a submit command name"):
        canon = cmd.lower()
        if canon.startswith("+"):
            canon = "my." + canon[1:]
        if canon in OWNED_COMMANDS:
            _fail(key, what, "dask-condordag writes this command itself (it carries the "
                             "payload, the results and the logs); it cannot be overridden")
        if canon == "universe" and str(v).lower() not in ("vanilla", "container"):
            _fail(key, what, "only the vanilla and container universes can run the worker")
        if isinstance(v, bool):
            v = "true" if v else "false"
        name = "My." + cmd[1:] if cmd.startswith("+") else cmd
        out.append((name, _text(key, what, v)))
    return out


def _abort(key, value) -> tuple:
    what = "condor['abort_dag_on']"
    if isinstance(value, dict):
        value = (value.get("code"), value.get("return"))
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            _fail(key, what, f"{value!r}: give an exit code, or (exit code, DAG return value)")
        code, ret = value
    else:
        code, ret = value, None
    code = _int(key, what, code, minimum=0)
    if ret is not None:
        ret = _int(key, what, ret, minimum=0)
        if ret > 255:
            _fail(key, what, f"return value {ret} is above 255")
    dag_exit = code if ret is None else ret
    if dag_exit > 2:
        # condor_submit_dag's DAGMan job has on_exit_remove = ExitCode 0..2: on any
        # other exit the schedd restarts DAGMan, which runs the DAG again, forever
        # (seen on HTCondor 25.14: DAGMan exited 4, restarted every 5 minutes)
        _fail(key, what, f"DAGMan would exit with {dag_exit} when it aborts, and HTCondor "
                         "removes the DAGMan job only when it exits 0, 1 or 2 (condor_submit_dag"
                         "'s on_exit_remove): the schedd would restart it and run the DAG again "
                         f"and again. Give the DAG's return value: ({code}, 1)")
    return (code, ret)


def _script(key, what, value) -> str:
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    text = _text(key, what, value)
    if not text.strip():
        _fail(key, what, "empty script command")
    return text


def node_settings(annotations: dict, key=None) -> NodeSettings:
    """Check one task's annotations and turn them into :class:`NodeSettings`."""
    if not annotations:
        return NodeSettings()
    kw: dict = {}
    submit: list = []
    if "retries" in annotations and annotations["retries"] is not None:
        kw["retry"] = _int(key, "retries", annotations["retries"], minimum=0)
    if "priority" in annotations and annotations["priority"] is not None:
        kw["priority"] = _int(key, "priority", annotations["priority"])
    if annotations.get("resources"):
        submit += _resources(key, annotations["resources"])
    condor = annotations.get("condor")
    if condor:
        if not isinstance(condor, dict):
            _fail(key, "condor", f"{condor!r} is not a dict")
        unknown = set(condor) - set(CONDOR_KEYS)
        if unknown:
            _fail(key, "condor", f"unknown setting(s) {sorted(map(str, unknown))}; the "
                                 f"settings are {list(CONDOR_KEYS)}")
        if condor.get("category") is not None:
            cat = condor["category"]
            if not isinstance(cat, str) or not _CATEGORY.fullmatch(cat):
                _fail(key, "condor['category']", f"{cat!r}: use letters, digits, '_', '-', '.'")
            kw["category"] = cat
        if condor.get("vars"):
            kw["vars"] = _vars(key, condor["vars"])
        if condor.get("submit"):
            submit += _submit(key, condor["submit"])
        if condor.get("retry_unless_exit") is not None:
            kw["retry_unless_exit"] = _int(key, "condor['retry_unless_exit']",
                                           condor["retry_unless_exit"], minimum=0)
        if condor.get("abort_dag_on") is not None:
            kw["abort_dag_on"] = _abort(key, condor["abort_dag_on"])
        for which in ("pre", "post"):
            if condor.get(which) is not None:
                kw[which] = _script(key, f"condor[{which!r}]", condor[which])
        if condor.get("processes") is not None:
            kw["processes"] = _int(key, "condor['processes']", condor["processes"], minimum=1)
        if condor.get("cluster") is not None:
            c = condor["cluster"]
            if not isinstance(c, str) or not c:
                _fail(key, "condor['cluster']", f"{c!r}: give a name")
            kw["cluster"] = c
        if condor.get("max_runtime") is not None:
            t = condor["max_runtime"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
                _fail(key, "condor['max_runtime']", f"{t!r}: give seconds > 0")
            kw["max_runtime"] = float(t)
        planner_hints(condor, key)  # checked here; used by the planner, not the node
        if kw.get("processes") and kw.get("cluster"):
            _fail(key, "condor", "'processes' and 'cluster' are two ways to make a cluster; "
                                 "use one")
    lowered = {}
    for cmd, v in submit:  # later wins: a submit annotation beats resources
        lowered[cmd.lower()] = (cmd, v)
    kw["submit"] = tuple(sorted(lowered.values(), key=lambda cv: cv[0].lower()))
    return NodeSettings(**kw)


def planner_hints(condor: dict | None, key=None) -> tuple:
    """``(duration or None, may_group)`` from a task's ``condor`` annotation:
    the cost model's seconds and whether ``group="auto"`` may put it in a node
    with other tasks. Neither is a node setting."""
    if not condor:
        return None, True
    d = condor.get("duration")
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float))
                          or not d >= 0 or d == float("inf")):
        _fail(key, "condor['duration']", f"{d!r}: give the task's seconds, a number >= 0")
    g = condor.get("group", True)
    if not isinstance(g, bool):
        _fail(key, "condor['group']", f"{g!r}: give True or False")
    return (None if d is None else float(d)), g


def merge_condor(outer: dict | None, inner: dict | None) -> dict:
    """Combine two ``condor`` annotation dicts: inner keys win, ``vars`` and
    ``submit`` are merged key by key.

    >>> merge_condor({"category": "a", "vars": {"x": 1}}, {"vars": {"y": 2}})
    {'category': 'a', 'vars': {'x': 1, 'y': 2}}
    """
    out = dict(outer or {})
    for k, v in (inner or {}).items():
        if k in ("vars", "submit") and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


@contextmanager
def annotate(**condor):
    """``dask.annotate(condor=...)`` that combines with enclosing blocks.

    >>> import dask
    >>> with annotate(category="db", vars={"a": "1"}):
    ...     with annotate(vars={"b": "2"}):
    ...         dask.get_annotations()["condor"]
    {'category': 'db', 'vars': {'a': '1', 'b': '2'}}
    """
    current = dask.get_annotations().get("condor")
    with dask.annotate(condor=merge_condor(current, condor)):
        yield


_KNOB = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def dag_settings(*, maxjobs=None, dag_config=None, dot=False, node_status_interval=30,
                 jobstate_log=True) -> DagSettings:
    """Check the DAG-level options; errors name the option and the value.

    >>> dag_settings(maxjobs={"db": 3}, dag_config={"DAGMAN_MAX_JOBS_IDLE": 500}).config
    (('DAGMAN_MAX_JOBS_IDLE', '500'),)
    """
    if maxjobs is not None and not isinstance(maxjobs, dict):
        raise PlanError(f"maxjobs={maxjobs!r}: give a dict of category -> number")
    mj = []
    for cat, n in (maxjobs or {}).items():
        if not isinstance(cat, str) or not _CATEGORY.fullmatch(cat):
            raise PlanError(f"maxjobs: category {cat!r} is not a usable category name")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise PlanError(f"maxjobs[{cat!r}] = {n!r}: give a whole number >= 0")
        mj.append((cat, n))
    conf = []
    if dag_config is not None and not isinstance(dag_config, dict):
        raise PlanError(f"dag_config={dag_config!r}: give a dict of DAGMan knob -> value")
    for knob, value in (dag_config or {}).items():
        if not isinstance(knob, str) or not _KNOB.fullmatch(knob):
            raise PlanError(f"dag_config: {knob!r} is not a configuration knob name")
        if isinstance(value, bool):
            value = "True" if value else "False"
        text = _text(None, f"dag_config[{knob!r}]", value)
        conf.append((knob, text))
    if node_status_interval is not None and (
            isinstance(node_status_interval, bool) or not isinstance(node_status_interval, int)
            or node_status_interval < 0):
        raise PlanError(f"node_status_interval={node_status_interval!r}: give seconds >= 0, "
                        "or None for no node status file")
    return DagSettings(maxjobs=tuple(mj), config=tuple(conf), dot=bool(dot),
                       node_status_interval=node_status_interval,
                       jobstate_log=bool(jobstate_log))
