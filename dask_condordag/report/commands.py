"""The ``plan`` and ``report`` subcommands of the ``dask-condordag`` CLI.

Data
    In: the parsed command line (``args.path``: a workflow directory, and
    the options below). Out: the report printed (a table, or JSON with
    ``--json``), exit code 0; ``report`` also writes the timeline SVG and
    prints its path.

Policy
    * ``plan DIR [--slots N] [--job-overhead S] [--task-seconds S] [--json]``:
      :func:`~dask_condordag.report.plan_report` with those arguments (the
      defaults: the slots and job overhead the planner grouped the workflow
      with, else this machine's cores and ``DEFAULT_JOB_OVERHEAD["local"]``;
      ``DEFAULT_TASK_SECONDS``).
    * ``report DIR [--svg PATH] [--json]``: :func:`~dask_condordag.report.
      run_report`; the timeline always written (default
      ``<name>.timeline.svg`` in the workflow; in the JSON as ``svg``). A
      workflow that never ran, or whose DAG names no jobstate log, is a
      :class:`~dask_condordag.exceptions.WorkflowError` ("no run to report
      on"), which ``cli.main`` prints as an error.
    * ``cli.py`` builds the parser: ``add_commands(cmd)`` adds these two
      through its ``cmd(name, func, help)`` helper.

Example::

    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> def cmd(name, func, help):
    ...     p = sub.add_parser(name, help=help)
    ...     p.add_argument("path")
    ...     p.set_defaults(func=func)
    ...     return p
    >>> add_commands(cmd)
    >>> sorted(sub.choices)
    ['plan', 'report']
"""

from __future__ import annotations

import json

from ..exceptions import WorkflowError
from .after import run_report
from .before import DEFAULT_JOB_OVERHEAD, DEFAULT_TASK_SECONDS, plan_report

__all__ = ["add_commands", "cli_plan", "cli_report"]


def add_commands(cmd) -> None:
    """Add ``plan`` and ``report`` to the CLI; ``cmd(name, func, help)`` makes
    a subcommand taking the workflow path (cli.parser's helper)."""
    p = cmd("plan", cli_plan, "what running the workflow would cost: nodes, tasks and bytes "
            "per node, critical path, simulated makespan next to the lower bound")
    p.add_argument("--slots", type=int, default=None,
                   help="jobs at once (default: the planner's, else this machine's cores)")
    p.add_argument("--job-overhead", type=float, default=None,
                   help=f"seconds per job before it runs (default: the planner's, else "
                        f"{DEFAULT_JOB_OVERHEAD['local']:g}, the local runner's; "
                        f"{DEFAULT_JOB_OVERHEAD['condor']:g} for the stock test pool)")
    p.add_argument("--task-seconds", type=float, default=DEFAULT_TASK_SECONDS,
                   help="seconds per task without a recorded time (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    r = cmd("report", cli_report, "where the time of the last run went: queue wait, "
            "transfer and run time per node, and a timeline picture (SVG)")
    r.add_argument("--svg", default=None,
                   help="write the timeline here (default: <name>.timeline.svg in the workflow)")
    r.add_argument("--json", action="store_true", help="print JSON")


def cli_plan(args) -> int:
    """``dask-condordag plan DIR``: :func:`plan_report` printed."""
    rep = plan_report(args.path, slots=args.slots, job_overhead=args.job_overhead,
                      task_seconds=args.task_seconds)
    print(json.dumps(rep.to_dict(), indent=1) if args.json else rep)
    return 0


def cli_report(args) -> int:
    """``dask-condordag report DIR``: :func:`run_report`, the timeline written."""
    try:
        rep = run_report(args.path)
    except FileNotFoundError as e:
        raise WorkflowError(f"no run to report on: {e}") from None
    svg = rep.write_svg(args.svg)
    if args.json:
        d = rep.to_dict()
        d["svg"] = str(svg)
        print(json.dumps(d, indent=1))
    else:
        print(rep)
        print(f"timeline: {svg}")
    return 0
