"""The ``dask-condordag`` command: a thin layer over the Python API.

    dask-condordag submit DIR [--force]      submit with condor_submit_dag (resumes from
                                             the rescue DAG after a failure)
    dask-condordag wait DIR [--timeout S]    wait for the submitted DAG, with progress
    dask-condordag status DIR                nodes done / failed / pending, DAGMan state,
                                             held jobs with their hold reasons
    dask-condordag errors DIR                failed tasks with their remote tracebacks,
                                             held jobs, nodes DAGMan failed
    dask-condordag result DIR [-o F]         print the result (or pickle it to F)
    dask-condordag remove DIR                condor_rm the DAG (a rescue DAG is written)
    dask-condordag run DIR [-j N] [--force]  run the workflow here with the local runner
    dask-condordag inspect DIR NODE_OR_KEY   a node's payload, result or error report
    dask-condordag graph DIR [-o F]          the node graph as DOT (or SVG with graphviz)
    dask-condordag doctor DIR                check what a job would miss on an execute node
    dask-condordag gc [DIR] [--older-than AGE] [--dry-run]
                                             delete results no node names, old workflows,
                                             dead runners' scratch folders (gc.py)

DIR is a workflow directory, or its DAG file (``DIR/<name>.dag``).

Exit codes: 0 success; 1 the workflow failed, has failed nodes or held jobs,
or an HTCondor command failed; 2 bad usage or a path that is not a workflow
(the message names it); 3 ``wait --timeout`` ran out with the DAG still
running; 4 ``status``: a local run was interrupted (the DAG has not finished
and nothing runs it).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import names
from .exceptions import CondorDagError, ResultMissingError, RunnerError, WorkflowError

__all__ = ["main"]

#: ``repr`` of payload pieces and results is cut to this many characters.
REPR_LIMIT = 300

#: Exit code of ``status`` for a local run that was interrupted.
EXIT_INTERRUPTED = 4


def _open(path):
    from .workflow import Workflow

    return Workflow.open(path)


def workflow_dir(arg) -> Path:
    """The workflow directory named by the command-line argument ``arg``: a
    directory, or the DAG file a workflow's manifest names (``DIR/<name>.dag``);
    any other file is refused with a message that says what to pass."""
    p = Path(arg)
    if not p.exists():
        raise _Usage(f"{arg} does not exist")
    if p.is_dir():
        return p
    parent = p.absolute().parent
    if (parent / names.MANIFEST).is_file():
        from .write import read_manifest

        if read_manifest(parent).get("dag") == p.name:
            return parent
        raise _Usage(f"{arg} is a file of the workflow at {parent}, not its DAG file: pass "
                      f"the workflow directory ({parent})")
    raise _Usage(f"{arg} is a file, not a dask-condordag workflow: pass the directory "
                 f"compute() or write() wrote (the one holding {names.MANIFEST}), or the "
                 ".dag file in it")


def _jobs(text: str) -> int:
    """``-j N``: a whole number of jobs at once, 1 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of jobs") from None
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"{n} jobs at once: give 1 or more, or omit -j to use all "
            f"{os.cpu_count() or 1} cores")
    return n


def _cmd_run(args) -> int:
    from .local import run

    wf = _open(args.path)
    report = run(wf.dag_path, max_workers=args.jobs, progress=not args.quiet, force=args.force)
    if report.ok:
        return 0
    for node, reason in report.failed.items():
        print(f"node {node} failed: {reason}", file=sys.stderr)
    print(f"see: dask-condordag errors {args.path}", file=sys.stderr)
    return 1


def _cmd_submit(args) -> int:
    wf = _open(args.path)
    cluster = wf.submit(force=args.force, preflight=not args.no_preflight)
    if cluster is not None:
        print(f"submitted {wf.dag_path} as DAGMan job {cluster}")
        print(f"follow it:  dask-condordag wait {wf.path}   (or: dask-condordag status {wf.path})")
    return 0


def _cmd_wait(args) -> int:
    from .condor import WaitTimeout

    wf = _open(args.path)
    try:
        wf.wait(timeout=args.timeout, hold_timeout=args.hold_timeout, poll=args.poll)
    except WaitTimeout as e:
        print(f"dask-condordag wait: {e}", file=sys.stderr)
        return 3
    s = wf.status()
    print(f"{s['done']} of {s['total']} nodes done: the workflow at {wf.path} finished")
    return 0


def _cmd_remove(args) -> int:
    wf = _open(args.path)
    out = wf.remove()
    if out:
        print(out)
    print(f"DAGMan writes a rescue DAG; resubmit later with: dask-condordag submit {wf.path}")
    return 0


def _cmd_status(args) -> int:
    wf = _open(args.path)
    s = wf.status()
    print(f"{s['done']} done, {s['failed']} failed, {s['pending']} pending of {s['total']} nodes")
    if s["dagman"] == "interrupted":
        print(f"DAGMan: interrupted: a local run stopped before the DAG finished and nothing "
              f"runs it now (the counts above are from the result files)\n"
              f"resume it: dask-condordag run {wf.path}")
        return 1 if s["failed"] else EXIT_INTERRUPTED
    job = (f" (DAGMan job {s['cluster']})" if s.get("cluster") is not None else
           f" (local runner: {s['runner']})" if s.get("runner") else "")
    print(f"DAGMan: {s['dagman']}{job}")
    if s.get("nodes"):
        n = s["nodes"]
        print("nodes (node status file): " + ", ".join(f"{v} {k}" for k, v in n.items() if v))
    if s.get("jobs"):
        j = s["jobs"]
        print(f"jobs: {j['idle']} idle, {j['running']} running, {j['held']} held")
    for h in s.get("held", []):
        print(f"HELD job {h['job']} (node {h['node'] or 'DAGMan itself'}): {h['hold_reason']}")
    bad = s["failed"] or s["dagman"] in ("failed", "removed") or s.get("held")
    return 1 if bad else 0


def _cmd_errors(args) -> int:
    from .results import remote_traceback

    errors = _open(args.path).errors()
    if not errors:
        print("no failed tasks, no held jobs")
        return 0
    for e in errors:
        kind = e.get("kind", "error")
        if kind == "held":
            print(f"=== node {e.get('node')}: job {e.get('job')} is ON HOLD: {e.get('hold_reason')}")
            print(f"    release it with condor_release {e.get('job')} once the cause is fixed")
        elif kind == "node":
            print(f"=== node {e.get('node')} failed (no task error report): {e.get('details')}")
        else:
            print(f"=== key {e.get('key')} (node {e.get('node')}) on {e.get('host')}: "
                  f"{e.get('exc_type')}: {e.get('message')}")
        if e.get("logs"):
            print(f"    logs: {', '.join(e.get('logs', []))}")
        if kind == "error":
            print(remote_traceback(e))
        print()
    return 1


def _cmd_result(args) -> int:
    wf = _open(args.path)
    value = wf.value(args.key) if args.key is not None else wf.result()
    if args.output:
        with open(args.output, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        print(f"result pickled to {args.output}")
    else:
        print(repr(value))
    return 0


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
    """The worker's expression language (see worker.py) as readable text:
    calls as ``module.func(args)``, references as ``<value name>``."""
    if depth > 20:
        return "..."
    tag = expr[0]
    if tag == 0:
        return _short(expr[1], 120)
    if tag == 1:
        return f"<{expr[1]}>"
    if tag == 2:
        args = [_show_expr(a, depth + 1) for a in expr[2]]
        args += [f"{k}={_show_expr(v, depth + 1)}" for k, v in expr[3]]
        return f"{_func_name(expr[1])}({', '.join(args)})"
    if tag == 3:
        return f"{_func_name(expr[1])}([{', '.join(_show_expr(a, depth + 1) for a in expr[2])}])"
    if tag == 4:
        return "{" + ", ".join(f"{_show_expr(k, depth + 1)}: {_show_expr(v, depth + 1)}"
                               for k, v in expr[1]) + "}"
    if tag == 5:
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
        raise _Usage(f"{what!r} matches several nodes of {wf.path}: {', '.join(hits)}")
    raise _Usage(f"{what!r} is not a node, task or key of the workflow at {wf.path} "
                 f"(see its manifest, {wf.path / 'manifest.json'})")


class _Usage(CondorDagError):
    """Bad command-line input (exit code 2)."""


def _read_payload(node, pack):
    """(meta, tasks) of ``node``'s payload in the pack file ``pack``. Unpickles
    it: only files the manifest lists are read, and pickles are code --
    inspect only workflows that you or your pool wrote."""
    from .worker import CorruptFile, check_payload, read_payload

    try:
        meta, body = read_payload(node, str(pack))
        check_payload(meta, body)
    except (CorruptFile, RuntimeError) as e:
        raise WorkflowError(f"{pack}: {e}") from None
    return meta, pickle.loads(body)


def _cmd_inspect(args) -> int:
    from .results import (is_error, is_ok, keep_finished, read_error, read_result,
                          remote_traceback)

    wf = _open(args.path)
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
    from .results import is_error, is_ok

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


def _cmd_graph(args) -> int:
    wf = _open(args.path)
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


def _cmd_doctor(args) -> int:
    from .doctor import doctor

    _open(args.path)  # not a workflow: exit code 2, naming the path
    report = doctor(args.path, node=args.node)
    print(report.summary())
    return 0 if report.ok else 1


def _age(text: str) -> float:
    """``--older-than AGE``: 30d, 12h, 90m, 45s, 2w."""
    from .gc import parse_age

    if re.fullmatch(r"\s*\d+(\.\d*)?\s*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit: write it with one, s, m (minutes), h, d or w -- "
            f"e.g. {text.strip()}d")
    try:
        return parse_age(text)
    except CondorDagError as e:
        raise argparse.ArgumentTypeError(str(e).replace("older_than=", "")) from None


def _cmd_gc(args) -> int:
    from .gc import gc, human_size

    report = gc(args.path, older_than=args.older_than, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    if not args.quiet:
        for item in report.removed:
            print(f"{verb} {item.path} ({human_size(item.bytes)}): {item.why}")
        for path, why in report.kept:
            print(f"kept {path}: {why}")
    print(report.summary() + (" (dry run: nothing was deleted)" if args.dry_run else ""))
    return 0


# ------------------------------------------------------------------ parser
def parser() -> argparse.ArgumentParser:
    # the commands are listed once, by argparse; the epilog adds what it cannot say
    title, _commands, epilog = __doc__.split("\n\n", 2)
    p = argparse.ArgumentParser(prog="dask-condordag", description=title.strip(),
                                epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           title="commands")

    def cmd(name, func, text):
        c = sub.add_parser(name, help=text, description=text)
        c.add_argument("path", help="workflow directory (or its .dag file)")
        c.set_defaults(func=func)
        return c

    r = cmd("run", _cmd_run, "run a workflow directory with the local runner")
    r.add_argument("-j", "--jobs", type=_jobs, default=None,
                   help="job procs at once, 1 or more (default: all cores)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.add_argument("--force", action="store_true",
                   help="run every node again, ignoring DONE marks, rescue DAGs and results")
    s = cmd("submit", _cmd_submit, "submit the workflow's DAG with condor_submit_dag")
    s.add_argument("--force", action="store_true",
                   help="condor_submit_dag -force: ignore the rescue DAGs, run the DAG file "
                        "as written")
    s.add_argument("--no-preflight", action="store_true",
                   help="skip the doctor check of one node before submitting")
    w = cmd("wait", _cmd_wait, "wait for the submitted DAG to finish, showing progress")
    w.add_argument("--timeout", type=float, default=None,
                   help="give up waiting after this many seconds (exit code 3)")
    w.add_argument("--hold-timeout", type=float, default=None,
                   help="fail when a job has been held this many seconds (default: the "
                        "hold_timeout option, 600)")
    w.add_argument("--poll", type=float, default=None, help="seconds between looks")
    cmd("status", _cmd_status, "nodes done / failed / pending, DAGMan's state, held jobs")
    cmd("errors", _cmd_errors, "failed tasks with their remote tracebacks, held jobs")
    res = cmd("result", _cmd_result, "print the result, or pickle it with -o")
    res.add_argument("-o", "--output", help="pickle the result to this file")
    res.add_argument("-k", "--key", metavar="KEY_OR_TASK",
                     help="the value of one task instead (its key as the manifest shows "
                          "it, or its task name), also inside a node of several tasks")
    cmd("remove", _cmd_remove, "condor_rm the workflow's DAGMan job (and its node jobs)")
    i = cmd("inspect", _cmd_inspect,
            "show a node's payload (functions, arguments, inputs) and its result or error")
    i.add_argument("what", metavar="NODE_OR_KEY",
                   help="a node name, a task name, or a key as the manifest shows it")
    g = cmd("graph", _cmd_graph, "the node graph as DOT (SVG with graphviz's dot)")
    g.add_argument("-o", "--output", help="write to this file: .svg (needs graphviz) or .dot")
    d = cmd("doctor", _cmd_doctor,
            "run one node the way the execute node would and report what is missing")
    d.add_argument("--node", default=None, help="the node to try (default: the first)")
    text = ("delete results, payload packs and logs no node names, old workflows "
            "(--older-than) and killed local runners' scratch folders; never a workflow "
            "whose DAG runs")
    c = sub.add_parser("gc", help=text, description=text)
    c.add_argument("path", metavar="DIR", nargs="?", default=None,
                   help="a workflows directory, or one workflow (default: the directory "
                        "option, ./condordag-workflows)")
    c.add_argument("--older-than", metavar="AGE", type=_age, default=None,
                   help="also delete whole workflows in which nothing changed for AGE "
                        "(30d, 12h, 90m, 2w)")
    c.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    c.add_argument("-q", "--quiet", action="store_true", help="print the summary line only")
    c.set_defaults(func=_cmd_gc)
    return p


def main(argv=None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the
    exit code (see the module docstring)."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help (0), or bad usage (2): argparse said why
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command != "gc":
            args.path = workflow_dir(args.path)
        return args.func(args)
    except (WorkflowError, RunnerError, _Usage) as e:
        print(f"dask-condordag {args.command}: {e}", file=sys.stderr)
        return 2
    except ResultMissingError as e:
        print(f"dask-condordag {args.command}: {e}", file=sys.stderr)
        return 1
    except CondorDagError as e:
        print(f"dask-condordag {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a task's own exception, re-raised by result() or wait()
        if getattr(e, "remote_traceback", None) is not None:
            print(f"dask-condordag {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
