"""The ``dask-condordag`` command: a thin layer over the Python API.

    dask-condordag run DIR [-j N]     run a workflow directory with the local runner
    dask-condordag status DIR         nodes done / failed / pending
    dask-condordag errors DIR         failed tasks with their remote tracebacks
    dask-condordag result DIR [-o F]  print the result (or pickle it to F)

Exit codes: 0 success; 1 the workflow failed (or has failed nodes); 2 bad
usage or a path that is not a workflow.
"""

from __future__ import annotations

import argparse
import pickle
import sys

from .exceptions import CondorDagError, ResultMissingError, RunnerError, WorkflowError

__all__ = ["main"]


def _cmd_run(args) -> int:
    from .local import run

    report = run(args.path, max_workers=args.jobs, progress=not args.quiet)
    if report.ok:
        return 0
    for node, reason in report.failed.items():
        print(f"node {node} failed: {reason}", file=sys.stderr)
    print(f"see: dask-condordag errors {args.path}", file=sys.stderr)
    return 1


def _cmd_status(args) -> int:
    from .workflow import Workflow

    s = Workflow.open(args.path).status()
    print(f"{s['done']} done, {s['failed']} failed, {s['pending']} pending of {s['total']} nodes")
    return 1 if s["failed"] else 0


def _cmd_errors(args) -> int:
    from .results import remote_traceback
    from .workflow import Workflow

    errors = Workflow.open(args.path).errors()
    if not errors:
        print("no failed tasks")
        return 0
    for e in errors:
        print(f"=== key {e.get('key')} (node {e.get('node')}) on {e.get('host')}: "
              f"{e.get('exc_type')}: {e.get('message')}")
        print(f"    logs: {', '.join(e.get('logs', []))}")
        print(remote_traceback(e))
        print()
    return 1


def _cmd_result(args) -> int:
    from .workflow import Workflow

    value = Workflow.open(args.path).result()
    if args.output:
        with open(args.output, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        print(f"result pickled to {args.output}")
    else:
        print(repr(value))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dask-condordag", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a workflow directory with the local runner")
    r.add_argument("path", help="workflow directory (or its .dag file)")
    r.add_argument("-j", "--jobs", type=int, default=None, help="nodes at once (default: cores)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=_cmd_run)
    for name, func, text in (
        ("status", _cmd_status, "nodes done / failed / pending"),
        ("errors", _cmd_errors, "failed tasks with their remote tracebacks"),
        ("result", _cmd_result, "print the result, or pickle it with -o"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument("path", help="workflow directory")
        if name == "result":
            c.add_argument("-o", "--output", help="pickle the result to this file")
        c.set_defaults(func=func)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (WorkflowError, RunnerError) as e:
        print(f"dask-condordag {args.command}: {e}", file=sys.stderr)
        return 2
    except ResultMissingError as e:
        print(f"dask-condordag {args.command}: {e}", file=sys.stderr)
        return 1
    except CondorDagError as e:
        print(f"dask-condordag {args.command}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a task's own exception, re-raised by result()
        if getattr(e, "remote_traceback", None) is not None:
            print(f"dask-condordag {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
