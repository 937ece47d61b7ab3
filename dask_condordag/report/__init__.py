"""What a workflow will cost before it runs, and where the time went after.

Data
    In: a written workflow directory (its DAG file and newest rescue DAG, its
    manifest, its payload packs and result files) and, after a run, the
    ``JOBSTATE_LOG`` the DAG names and the node job event log DAGMan keeps
    beside it (``<dag>.nodes.log``, on a pool). Out: a :class:`PlanReport`
    (:func:`plan_report`) and a :class:`RunReport` (:func:`run_report`), each
    printable as a table and as JSON; a run's timeline as an SVG Gantt chart.

Policy -- one module per step, in the order the data goes:
    * ``before.py``: :func:`plan_report` -- the cost of running the workflow
      now: durations per node (:func:`node_durations`, the one place that
      chooses them), the critical path, the lower bound, and the makespan
      simulated by the local runner's own DAGMan state machine
      (``local/simulate.py``: no second model of DAGMan).
    * ``after.py``: :func:`run_report` -- the last run's queue wait,
      transfer and run time per node, read from the event log (HTCondor
      events 000, 040, 001, 005), else the jobstate log.
    * ``timeline.py``: the run as a hand-written SVG Gantt chart
      (:func:`timeline_svg`; no plotting library).
    * ``tables.py``: both reports as text tables (what ``str()`` prints).
    * ``commands.py``: the ``plan`` and ``report`` subcommands of the CLI.
    Imports run one way: commands -> before -> after -> timeline, tables.

Example::

    >>> from dask_condordag import dagfile
    >>> dag = dagfile.parse_dag("JOB a a.sub\\nJOB b b.sub\\nJOB c c.sub\\nPARENT a CHILD b\\n")
    >>> critical_path(dag, {"a": 3.0, "b": 1.0, "c": 2.0}, set())
    (('a', 'b'), 4.0, 2)
"""

from __future__ import annotations

from .after import NodeRun, RunReport, run_report
from .before import (DEFAULT_JOB_OVERHEAD, DEFAULT_TASK_SECONDS, NodePlan, PlanReport,
                     critical_path, node_durations, plan_report)
from .commands import add_commands, cli_plan, cli_report
from .timeline import timeline_file, timeline_svg

__all__ = ["plan_report", "run_report", "PlanReport", "RunReport", "NodePlan", "NodeRun",
           "node_durations", "critical_path", "timeline_svg", "timeline_file",
           "DEFAULT_TASK_SECONDS", "DEFAULT_JOB_OVERHEAD", "add_commands", "cli_plan",
           "cli_report"]
