"""The read-only commands of ``dask-condordag`` that look into a workflow:
``inspect`` (a node's payload, result or error report), ``graph`` (the node
graph as DOT or SVG) and ``doctor`` (what a job would miss on an execute
node); and what every command shares: opening the workflow, bad usage.

Data
    In: a workflow directory (``cli.workflow_dir`` has resolved the
    argument), its manifest (through :class:`~dask_condordag.Workflow`), the
    payload packs and result files it names. Out: text on stdout; ``graph
    -o`` writes the file it is given.

Policy
    * Only files the manifest names are read. Reading a payload or a result
      unpickles it: pickles are code, so ``inspect`` says so, and is meant
      for workflows you or your pool wrote.
    * ``repr`` of payload pieces and results is cut to :data:`REPR_LIMIT`
      characters; a broken ``__repr__`` is shown as such, never raised.
    * The worker's expression language (``worker_tasks.py``) is shown as calls,
      ``module.func(args)``, and references, ``<value name>``.
    * ``graph -o F.svg`` runs graphviz's ``dot`` where it is installed and
      otherwise writes the DOT text beside it and says how to make the SVG.

Example::

    $ dask-condordag inspect my-workflow 'inc-1'      # doctest: +SKIP
    node inc_3f2c1b
      task inc_3f2c1b: key 'inc-1'
      ...
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

from . import names
from .doctor import doctor
from .exceptions import CondorDagError, WorkflowError
from .results import (is_error, is_ok, keep_finished, read_error, read_result,
                      remote_traceback)
from .worker_files import CorruptFile, check_payload, read_payload
from .workflow import Workflow

__all__ = ["UsageError", "open_workflow", "cmd_inspect", "cmd_graph", "cmd_doctor",
           "dot_text", "REPR_LIMIT"]

#: ``repr`` of payload pieces and results is cut to this many characters.
REPR_LIMIT = 300


class UsageError(CondorDagError):
    """Bad command-line input (exit code 2)."""


def open_workflow(path) -> Workflow:
    """The :class:`~dask_condordag.Workflow` at ``path``; not a workflow:
    :class:`~dask_condordag.exceptions.WorkflowError` naming it (exit code 2)."""
    return Workflow.open(path)


# ------------------------------------------------------------------ inspect
def _short(value, limit: int = REPR_LIMIT) -> str:
    try:
        text = repr(value)
    except Exception as e:  # a broken __repr__ must not hide the rest
        text = f"<unrepresentable {type(value).__name__}: {e}>"
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _func_name(f) -> str:
    mod = getattr(f, "__module__", None) or ""
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or _short(f, 60)
    return f"{mod}.{name}" if mod and mod != "builtins" else name


def _show_expr(expr, depth: int = 0) -> str:
    """The worker's expression language (see worker_tasks.py) as readable text:
    calls as ``module.func(args)``, references as ``<value name>``."""
    if depth > 20:
        return "..."
    tag = expr[0]
    if tag == names.LIT:
        return _short(expr[1], 120)
    if tag == names.REF:
        return f"<{expr[1]}>"
    if tag == names.CALL:
        args = [_show_expr(a, depth + 1) for a in expr[2]]
        args += [f"{k}={_show_expr(v, depth + 1)}" for k, v in expr[3]]
        return f"{_func_name(expr[1])}({', '.join(args)})"
    if tag == names.BUILD:
        return f"{_func_name(expr[1])}([{', '.join(_show_expr(a, depth + 1) for a in expr[2])}])"
    if tag == names.DICT:
        return "{" + ", ".join(f"{_show_expr(k, depth + 1)}: {_show_expr(v, depth + 1)}"
                               for k, v in expr[1]) + "}"
    if tag == names.PROC:
        return "procid"
    return f"<unknown expression {tag!r}>"


def _find(wf, what: str) -> str:
    """The node named by ``what``: a node name, a task name, or a key's repr
    as the manifest stores it (or the plain text of a string key)."""
    if what in wf.nodes:
        return what
    hits = []
    for node, info in wf.nodes.items():
        for task, key in info["tasks"].items():
            if what in (task, key) or key == repr(what):
                hits.append(node)
    hits = list(dict.fromkeys(hits))
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise UsageError(f"{what!r} matches several nodes of {wf.path}: {', '.join(hits)}")
    raise UsageError(f"{what!r} is not a node, task or key of the workflow at {wf.path} "
                 f"(see its manifest, {wf.path / 'manifest.json'})")


def _read_payload(node, pack):
    """(meta, tasks) of ``node``'s payload in the pack file ``pack``. Unpickles
    it: only files the manifest lists are read, and pickles are code --
    inspect only workflows that you or your pool wrote."""
    try:
        meta, body = read_payload(node, str(pack))
        check_payload(meta, body)
    except (CorruptFile, RuntimeError) as e:
        raise WorkflowError(f"{pack}: {e}") from None
    return meta, pickle.loads(body)


def cmd_inspect(args) -> int:
    wf = open_workflow(args.path)
    node = _find(wf, args.what)
    info = wf.nodes[node]
    payload = wf.path / info["payload"]
    print(f"node {node}")
    for task, key in info["tasks"].items():
        print(f"  task {task}: key {key}")
    print(f"  parents: {', '.join(info.get('parents') or []) or '(none)'}")
    for why in info.get("always_reruns") or ():
        print(f"  always reruns: {why}")
    print(f"  payload: {payload}")
    print("  (reading it unpickles it: pickles are code -- inspect only workflows "
          "you or your pool wrote)")
    failed = False
    meta, tasks = _read_payload(node, payload)
    for task, expr in tasks:
        print(f"  {task} = {_show_expr(expr)}")
    inputs = meta.get("inputs") or {}
    if inputs:
        print("  reads:")
        for name, files in inputs.items():
            files = files if isinstance(files, list) else [files]
            for f in files:
                p = wf.path / f
                state = ("ok" if is_ok(p) else "error report" if is_error(p)
                         else "missing")
                print(f"    <{name}> {f} ({state})")
    print("  results:")
    for task, files in info["outputs"].items():
        for f in files:
            p = wf.path / f
            if is_ok(p):
                print(f"    {task}: {f} = {_short(read_result(p))}")
            elif is_error(p):
                failed = True
                report = read_error(p)
                print(f"    {task}: {f} holds an error report: {report.get('exc_type')}: "
                      f"{report.get('message')} (on {report.get('host')})")
                keep_finished(wf.path, report)  # the tasks that finished before it
                if report.get("task") and report["task"] != task:
                    print(f"      (failed in task {report['task']}, key {report.get('key')}, "
                          "of this node)")
                for line in remote_traceback(report).splitlines():
                    print(f"      {line}")
            else:
                print(f"    {task}: {f} (not there yet)")
    # tasks of a node of several tasks whose values stay inside it: shown when
    # written (kept when a later task failed, or by an earlier grouping)
    for task in info["tasks"]:
        f = names.result_file(task)
        if task not in info["outputs"] and is_ok(wf.path / f):
            print(f"    {task}: {f} = {_short(read_result(wf.path / f))}")
    for task in info.get("reused_tasks") or ():
        print(f"  reused (not run again): {task}")
    out, err = wf.logs(node)
    print(f"  logs: {out}, {err}")
    return 1 if failed else 0


# ------------------------------------------------------------------ graph
def dot_text(wf) -> str:
    """The node graph in graphviz's DOT language (done nodes green, failed red)."""
    def q(s):
        return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {q(wf.name)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontsize=10];']
    for node, info in wf.nodes.items():
        files = [wf.path / f for fs in info["outputs"].values() for f in fs]
        color = ("palegreen" if files and all(is_ok(f) for f in files) else
                 "salmon" if any(is_error(f) for f in files) else "white")
        keys = list(info["tasks"].values())  # the manifest holds each key's repr
        label = node + "\\n" + _cut(keys[0], 40).replace('"', "'")
        if len(keys) > 1:
            label += f"\\n(+{len(keys) - 1} tasks)"
        lines.append(f"  {q(node)} [label=\"{label}\", fillcolor={color}];")
    for node, info in wf.nodes.items():
        for parent in info.get("parents") or []:
            lines.append(f"  {q(parent)} -> {q(node)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cmd_graph(args) -> int:
    wf = open_workflow(args.path)
    text = dot_text(wf)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = args.output
    if out.endswith(".svg"):
        dot = shutil.which("dot")
        if dot:
            r = subprocess.run([dot, "-Tsvg", "-o", out], input=text, text=True,
                               capture_output=True)
            if r.returncode == 0:
                print(f"graph of {len(wf.nodes)} nodes written to {out}")
                return 0
            print(f"dask-condordag graph: dot -Tsvg failed: {r.stderr.strip()}", file=sys.stderr)
        out = out[:-4] + ".dot"
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        why = "it failed" if dot else "graphviz's dot is not installed"
        print(f"no SVG ({why}): DOT written to {out}; make the SVG with: "
              f"dot -Tsvg {out} -o {args.output}")
        return 0
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"graph of {len(wf.nodes)} nodes written to {out} (DOT)")
    return 0


def cmd_doctor(args) -> int:
    open_workflow(args.path)  # not a workflow: exit code 2, naming the path
    report = doctor(args.path, node=args.node)
    print(report.summary())
    return 0 if report.ok else 1
