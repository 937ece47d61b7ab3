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
    dask-condordag plan DIR [--slots N] [--job-overhead S] [--json]
                                             what a run would cost (report/before.py)
    dask-condordag report DIR [--svg PATH]   where the last run's time went, and its timeline
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
import logging
import os
import pickle
import re
import sys
from pathlib import Path

from . import names
from .cli_inspect import UsageError, cmd_doctor, cmd_graph, cmd_inspect, open_workflow
from .condor import WaitTimeout
from .exceptions import CondorDagError, ResultMissingError, RunnerError, WorkflowError
from .gc import gc, human_size, parse_age
from .local import run
from .manifest import read_manifest
from .report import add_commands as add_report_commands
from .results import remote_traceback

__all__ = ["main"]

#: Exit code of ``status`` for a local run that was interrupted.
EXIT_INTERRUPTED = 4


def workflow_dir(arg) -> Path:
    """The workflow directory named by the command-line argument ``arg``: a
    directory, or the DAG file a workflow's manifest names (``DIR/<name>.dag``);
    any other file is refused with a message that says what to pass."""
    p = Path(arg)
    if not p.exists():
        raise UsageError(f"{arg} does not exist")
    if p.is_dir():
        return p
    parent = p.absolute().parent
    if (parent / names.MANIFEST).is_file():
        if read_manifest(parent).get("dag") == p.name:
            return parent
        raise UsageError(f"{arg} is a file of the workflow at {parent}, not its DAG file: pass "
                      f"the workflow directory ({parent})")
    raise UsageError(f"{arg} is a file, not a dask-condordag workflow: pass the directory "
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
    wf = open_workflow(args.path)
    report = run(wf.dag_path, max_workers=args.jobs, progress=not args.quiet, force=args.force)
    if report.ok:
        return 0
    for node, reason in report.failed.items():
        print(f"node {node} failed: {reason}", file=sys.stderr)
    print(f"see: dask-condordag errors {args.path}", file=sys.stderr)
    return 1


def _cmd_submit(args) -> int:
    wf = open_workflow(args.path)
    cluster = wf.submit(force=args.force, preflight=not args.no_preflight)
    if cluster is not None:
        print(f"submitted {wf.dag_path} as DAGMan job {cluster}")
        print(f"follow it:  dask-condordag wait {wf.path}   (or: dask-condordag status {wf.path})")
    return 0


def _cmd_wait(args) -> int:
    wf = open_workflow(args.path)
    try:
        wf.wait(timeout=args.timeout, hold_timeout=args.hold_timeout, poll=args.poll)
    except WaitTimeout as e:
        print(f"dask-condordag wait: {e}", file=sys.stderr)
        return 3
    s = wf.status()
    print(f"{s['done']} of {s['total']} nodes done: the workflow at {wf.path} finished")
    return 0


def _cmd_remove(args) -> int:
    wf = open_workflow(args.path)
    out = wf.remove()
    if out:
        print(out)
    print(f"DAGMan writes a rescue DAG; resubmit later with: dask-condordag submit {wf.path}")
    return 0


def _cmd_status(args) -> int:
    wf = open_workflow(args.path)
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
    errors = open_workflow(args.path).errors()
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
    wf = open_workflow(args.path)
    value = wf.value(args.key) if args.key is not None else wf.result()
    if args.output:
        with open(args.output, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        print(f"result pickled to {args.output}")
    else:
        print(repr(value))
    return 0


def _age(text: str) -> float:
    """``--older-than AGE``: 30d, 12h, 90m, 45s, 2w."""
    if re.fullmatch(r"\s*\d+(\.\d*)?\s*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit: write it with one, s, m (minutes), h, d or w -- "
            f"e.g. {text.strip()}d")
    try:
        return parse_age(text)
    except CondorDagError as e:
        raise argparse.ArgumentTypeError(str(e).replace("older_than=", "")) from None


def _cmd_gc(args) -> int:
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
    i = cmd("inspect", cmd_inspect,
            "show a node's payload (functions, arguments, inputs) and its result or error")
    i.add_argument("what", metavar="NODE_OR_KEY",
                   help="a node name, a task name, or a key as the manifest shows it")
    g = cmd("graph", cmd_graph, "the node graph as DOT (SVG with graphviz's dot)")
    g.add_argument("-o", "--output", help="write to this file: .svg (needs graphviz) or .dot")
    d = cmd("doctor", cmd_doctor,
            "run one node the way the execute node would and report what is missing")
    d.add_argument("--node", default=None, help="the node to try (default: the first)")
    add_report_commands(cmd)  # plan, report
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


def _warnings_to_stderr() -> None:
    """The library's warnings (its loggers: :mod:`dask_condordag.messages`)
    on stderr as ``[dask-condordag] WARNING: ...``; the command's notices are
    printed there already. Not when the program calling ``main`` has set up
    logging itself (a handler on the root or the package logger)."""
    log = logging.getLogger("dask_condordag")
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("[dask-condordag] %(levelname)s: %(message)s"))
    log.addHandler(handler)


def main(argv=None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the
    exit code (see the module docstring)."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help (0), or bad usage (2): argparse said why
        return e.code if isinstance(e.code, int) else 2
    _warnings_to_stderr()
    try:
        if args.command != "gc":
            args.path = workflow_dir(args.path)
        return args.func(args)
    except (WorkflowError, RunnerError, UsageError) as e:
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
        if getattr(e, "dask_condordag", None) is None \
                and getattr(e, "remote_traceback", None) is None:
            raise
        # the object itself carries our context (remote traceback, logs) in its notes
        notes = "".join(f"\n{n}" for n in getattr(e, "__notes__", ()))
        print(f"dask-condordag {args.command}: {type(e).__name__}: {e}{notes}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
