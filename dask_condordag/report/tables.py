"""The reports as text: what ``str()`` of a plan or run report prints.

Data
    In: a :class:`~dask_condordag.report.PlanReport` or
    :class:`~dask_condordag.report.RunReport`. Out: lines of text -- a head
    line, a table of at most ``max_rows`` nodes (``to_dict()`` and
    ``--json`` hold them all), then the totals.

Policy
    * One row per node: the first column (the node) left-aligned, the
      figures right-aligned; bytes in B, KiB, MiB, GiB (``?``: not known);
      seconds with ``%g`` (``-``: not known).
    * Plan: nodes, tasks, procs, seconds per proc and where that figure came
      from, payload, input (``+N?``: N files not written yet) and output
      bytes; then the critical path (its ends only when longer than six
      nodes), total work and levels, and the simulated makespan next to the
      lower bound and their ratio.
    * Run: per job its slot, queue wait, transfer and run seconds and its
      status (with its tries); the totals, the run's share of the jobs'
      time, and a hint to group more tasks per node when the median job
      waits longer than it runs.
    * Pure: no file is read here; the reports' ``__str__`` call these.

Example::

    >>> print(table(["node", "run s"], [["a", 1.5], ["bb", 12]]))
    node  run s
    ----  -----
    a       1.5
    bb       12
    >>> fmt_bytes(1234), fmt_bytes(None)
    ('1.2 KiB', '?')
"""

from __future__ import annotations

__all__ = ["fmt_bytes", "table", "plan_text", "run_text"]


def fmt_bytes(n) -> str:
    """``n`` bytes for a person: ``966 B``, ``1.2 KiB`` ... (``?``: not known)."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def table(header: list, rows: list) -> str:
    """``rows`` under ``header`` in columns: the first left-aligned, the others
    right-aligned, a line of dashes under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)  # noqa: E731
                               for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def plan_text(report) -> str:
    """What ``str(plan_report)`` prints (see the module docstring)."""
    shown = report.nodes[:report.max_rows]
    rows = [[n.name, n.tasks, n.procs, f"{n.seconds:g}", n.source,
             fmt_bytes(n.payload_bytes),
             fmt_bytes(n.input_bytes) + (f" +{n.inputs_unknown}?" if n.inputs_unknown
                                         else ""),
             fmt_bytes(n.output_bytes)] for n in shown]
    tasks = sum(n.tasks for n in report.nodes)
    head = [f"workflow {report.workflow} ({report.path}): {len(report.nodes)} nodes to run, "
            f"{tasks} tasks" + (f"; {report.done} nodes already done (not counted)"
                                if report.done else "")]
    out = head + ["", table(["node", "tasks", "procs", "s/proc", "from", "payload",
                             "inputs", "outputs"], rows)] if rows else head
    if len(report.nodes) > len(shown):
        out.append(f"... and {len(report.nodes) - len(shown)} more nodes (to_dict() or "
                   "--json lists them all)")
    if rows:
        payload = sum(n.payload_bytes or 0 for n in report.nodes)
        inputs = sum(n.input_bytes for n in report.nodes)
        out += [f"bytes: payloads {fmt_bytes(payload)}, inputs there now "
                f"{fmt_bytes(inputs)}", ""]
    ratio = (f" ({report.makespan / report.lower_bound:.2f}x the bound)"
             if report.lower_bound > 0 else "")
    out += [f"critical path: {len(report.critical_path)} nodes, {report.critical_seconds:g} s"
            + (f" ({' -> '.join(report.critical_path)})" if len(report.critical_path) <= 6
               else f" ({report.critical_path[0]} -> ... -> {report.critical_path[-1]})"
               if report.critical_path else ""),
            f"total work: {report.total_work:g} s; levels: {report.levels}",
            f"with {report.slots} slots and {report.job_overhead:g} s per job:",
            f"  estimated makespan {report.makespan:g} s (simulated DAGMan){ratio}",
            f"  lower bound        {report.lower_bound:g} s = max(critical path, work / "
            f"slots) + overhead x levels"]
    return "\n".join(out)


def run_text(report) -> str:
    """What ``str(run_report)`` prints (see the module docstring)."""

    def s(x):
        return "-" if x is None else f"{x:g}"

    rows = [[n.node, n.tasks, n.slot or "", s(n.queue), s(n.transfer), s(n.run),
             n.status + (f" ({n.attempts} tries)" if n.attempts > 1 else "")]
            for n in report.nodes[:report.max_rows]]
    out = [f"workflow {report.workflow} ({report.path}): last run, {len(report.nodes)} jobs, "
           f"makespan {report.makespan:g} s"]
    if rows:
        out += ["", table(["node", "tasks", "slot", "queue s", "transfer s", "run s",
                           "status"], rows)]
        if len(report.nodes) > len(rows):
            out.append(f"... and {len(report.nodes) - len(rows)} more jobs (to_dict() or "
                       "--json lists them all; the timeline draws them all)")
        out.append("")
        t = report.totals()
        busy = t["queue"] + t["transfer"] + t["run"]
        share = f" ({100 * t['run'] / busy:.0f}% of the jobs' time)" if busy else ""
        out.append(f"total: queue {t['queue']:g} s, transfer {t['transfer']:g} s, "
                   f"run {t['run']:g} s{share}")
        runs = sorted(n.run for n in report.nodes if n.run is not None)
        waits = sorted(n.queue for n in report.nodes if n.queue is not None)
        if runs and waits and runs[len(runs) // 2] < waits[len(waits) // 2]:
            out.append("the median job waits longer than it runs: the jobs are small "
                       "for this pool (group more tasks per node)")
    if report.not_run:
        out.append(f"{len(report.not_run)} nodes did not run in the last run (done before)")
    return "\n".join(out)
