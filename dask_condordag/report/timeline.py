"""A run's timeline as an SVG Gantt chart, written by hand.

Data
    In: a :class:`~dask_condordag.report.RunReport` (its nodes' submit,
    execute and end times and transfer intervals, seconds since the epoch).
    Out: SVG text (:func:`timeline_svg`), by default written to
    ``<name>.timeline.svg`` in the workflow directory (:func:`timeline_file`,
    ``RunReport.write_svg``).

Policy
    * No plotting library: one ``<g class="node" data-node=...>`` row per
      node that was submitted, in the report's order (by submit time); in it
      a ``rect`` of class ``queue`` (grey: submitted until input transfer or
      execution starts), one of class ``transfer`` per input or output
      transfer (orange), and one of class ``run`` (blue; red when the node
      failed) from execution to output transfer or the end. Each ``rect``
      carries a ``<title>`` tooltip with its seconds; a bar is at least 1 px.
    * The time axis starts at the first submit and spans the makespan (at
      least 1 s), with about 8 round ticks (1, 2, 5 x 10^k seconds).
    * Text is escaped (``xml.sax.saxutils``); node labels longer than 34
      characters are cut to 31 and ``...``.

Example::

    >>> from types import SimpleNamespace as NS
    >>> node = NS(node="a", submit=0.0, execute=1.0, end=3.0, transfers=(), queue=1.0,
    ...           run=2.0, status="done", slot=None)
    >>> run = NS(workflow="w", nodes=(node,), start=0.0, end=3.0, makespan=3.0)
    >>> svg = timeline_svg(run)
    >>> svg.count('class="run"'), svg.count('class="queue"'), _tick(3.0)
    (1, 1, 0.5)
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

__all__ = ["timeline_svg", "timeline_file"]


def timeline_file(name: str) -> str:
    """The file name of a workflow's timeline picture."""
    return f"{name}.timeline.svg"


def timeline_svg(report, *, width: int = 900, row: int = 16) -> str:
    """A Gantt chart of ``report`` (a ``RunReport``) as SVG text: one row per
    node (by submit time), grey while it waits in the queue, orange while
    files transfer, blue while it runs (red if it failed); a bar is at least
    1 px wide."""
    label_w, pad, axis = 230, 10, 30
    nodes = [n for n in report.nodes if n.submit is not None]
    t0 = report.start or 0.0
    span = max(report.makespan, 1.0)
    plot_w = width - label_w - 2 * pad
    height = axis + pad + row * max(1, len(nodes)) + pad

    def x(t):
        return label_w + pad + (t - t0) / span * plot_w

    def rect(cls, a, b, y, color, title):
        w = max(1.0, x(b) - x(a))
        return (f'<rect class="{cls}" x="{x(a):.1f}" y="{y + 2}" width="{w:.1f}" '
                f'height="{row - 4}" fill="{color}"><title>{escape(title)}</title></rect>')

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(report.workflow)}: last run, {report.makespan:g} s</title>",
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    legend = (("#c8c8c8", "queued"), ("#f0a030", "transfer"), ("#3070c0", "run"),
              ("#d04040", "failed"))
    for i, (color, what) in enumerate(legend):
        lx = 4 + i * 56
        out.append(f'<rect x="{lx}" y="{axis - 19}" width="9" height="9" fill="{color}"/>'
                   f'<text x="{lx + 12}" y="{axis - 11}">{what}</text>')
    step = _tick(span)
    k = 0
    while k * step <= span + 1e-9:
        tx = x(t0 + k * step)
        out.append(f'<line x1="{tx:.1f}" y1="{axis - 6}" x2="{tx:.1f}" y2="{height - pad}" '
                   'stroke="#e0e0e0"/>')
        out.append(f'<text x="{tx:.1f}" y="{axis - 10}" text-anchor="middle">{k * step:g} s'
                   "</text>")
        k += 1
    for i, n in enumerate(nodes):
        y = axis + i * row
        label = n.node if len(n.node) <= 34 else n.node[:31] + "..."
        out.append(f'<g class="node" data-node={quoteattr(n.node)}>')
        out.append(f'<text x="{label_w}" y="{y + row - 4}" text-anchor="end">{escape(label)}'
                   "</text>")
        queue_end = (n.transfers[0][0] if n.transfers and n.execute is not None
                     and n.transfers[0][0] <= n.execute else n.execute)
        if queue_end is not None:
            out.append(rect("queue", n.submit, queue_end, y, "#c8c8c8",
                            f"{n.node}: queued {n.queue or 0:g} s"))
        for a, b in n.transfers:
            out.append(rect("transfer", a, b, y, "#f0a030", f"{n.node}: transfer {b - a:g} s"))
        if n.execute is not None:
            end = n.end if n.end is not None else report.end or n.execute
            run_end = next((a for a, _ in n.transfers if a >= n.execute), end)
            color = "#d04040" if n.status == "failed" else "#3070c0"
            where = f" on {n.slot}" if n.slot else ""
            out.append(rect("run", n.execute, run_end, y, color,
                            f"{n.node}: ran {n.run or 0:g} s{where} ({n.status})"))
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _tick(span: float) -> float:
    """A round step for about 8 ticks over ``span`` seconds."""
    raw = span / 8
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag
