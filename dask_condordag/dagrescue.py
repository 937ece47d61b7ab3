"""Rescue DAGs: where DAGMan keeps them, and their text as DAGMan 25.x writes it.

Data
    In: the path of a DAG file (``<dag>``); for the writer the nodes done
    and failed, and optionally the :class:`~dask_condordag.dagfile.DagFile`.
    Out: the ``<dag>.rescueNNN`` files beside it, oldest number first; the
    path of the next one; the text of a *partial* rescue DAG (header
    comments, ``DONE`` and ``RETRY`` lines). Reading one back, with the DAG
    file it belongs to: ``dagfile.apply_rescue``.

Policy
    As HTCondor's ``src/condor_dagman/dag.cpp`` (``Dag::Rescue``,
    ``Dag::WriteRescue``, ``Dag::WriteNodeToRescue``): numbers are three
    digits, the next is the last + 1, capped at ``DAGMAN_MAX_RESCUE_NUM``
    (default 100, where the last is overwritten); the file is partial and
    retries are reset (``DAGMAN_RESET_RETRIES_UPON_RESCUE``, default true).

Example::

    >>> from datetime import datetime, timezone
    >>> print(render_rescue("w.dag", ["a"], ["b"], 2,
    ...                     datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)), end="")
    # Rescue DAG file, created after running
    #   the w.dag DAG file
    # Created 1/2/2025 03:04:05 UTC
    # Rescue DAG version: 2.0.1 (partial)
    #
    # Total number of Nodes: 2
    # Nodes premarked DONE: 1
    # Nodes that failed: 1
    #   b,<ENDLIST>
    <BLANKLINE>
    DONE a
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from typing import Iterable

__all__ = ["rescue_files", "newest_rescue", "next_rescue_path", "render_rescue",
           "RESCUE_DAG_VERSION"]

#: src/condor_dagman/dag.cpp: ``static const char *RESCUE_DAG_VERSION = "2.0.1";``
RESCUE_DAG_VERSION = "2.0.1"


def _rescue_re(dag_path: str) -> re.Pattern:
    return re.compile(re.escape(os.path.basename(dag_path)) + r"\.rescue(\d{3})\Z")


def rescue_files(dag_path: str) -> list[str]:
    """Existing ``<dag>.rescueNNN`` files next to ``dag_path``, oldest number first."""
    d = os.path.dirname(dag_path) or "."
    pat = _rescue_re(dag_path)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    found = sorted((int(m.group(1)), n) for n in names if (m := pat.match(n)))
    return [os.path.join(os.path.dirname(dag_path), n) for _, n in found]


def newest_rescue(dag_path: str) -> str | None:
    """The rescue file DAGMan would use on resubmission (highest number), or None."""
    files = rescue_files(dag_path)
    return files[-1] if files else None


def next_rescue_path(dag_path: str, max_rescue: int = 100) -> str:
    """Where DAGMan writes the next rescue file (dag.cpp Dag::Rescue).

    ``<dag>.rescue%03d`` with the last number + 1, capped at ``max_rescue``
    (DAGMAN_MAX_RESCUE_NUM, default 100), at which point the last is overwritten.
    """
    files = rescue_files(dag_path)
    last = int(files[-1][-3:]) if files else 0
    return f"{dag_path}.rescue{min(last + 1, max_rescue):03d}"


# --------------------------------------------------------------------------- rescue writer


def render_rescue(
    dag_filename: str,
    done: Iterable[str],
    failed: Iterable[str],
    total: int,
    now: datetime,
    *,
    dag=None,  # a dagfile.DagFile (not imported: dagfile imports this module)
) -> str:
    """Text of a partial rescue DAG as DAGMan 25.x writes it.

    Format from HTCondor src/condor_dagman/dag.cpp (Dag::Rescue,
    Dag::WriteRescue, Dag::WriteNodeToRescue), ``isPartial`` = true,
    DAGMAN_RESET_RETRIES_UPON_RESCUE = true (the default).

    ``now`` is printed in UTC (a naive datetime is taken to be UTC).  Without
    ``dag`` the ``DONE`` lines follow the order of ``done``; with ``dag`` they
    follow the file order and, like DAGMan, each node with retries also gets
    a ``RETRY name N [UNLESS-EXIT c]`` line (the full count, retries reset).
    """
    done = list(done)
    failed = list(failed)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
    lines = [
        "# Rescue DAG file, created after running",
        f"#   the {dag_filename} DAG file",
        f"# Created {now.month}/{now.day}/{now.year} "
        f"{now.hour:02d}:{now.minute:02d}:{now.second:02d} UTC",
        f"# Rescue DAG version: {RESCUE_DAG_VERSION} (partial)",
        "#",
        f"# Total number of Nodes: {total}",
        f"# Nodes premarked DONE: {len(done)}",
        f"# Nodes that failed: {len(failed)}",
    ]
    if dag is not None:
        failed_set = set(failed)
        failed = [n for n in dag.nodes if n in failed_set] + [
            n for n in failed if n not in dag.nodes
        ]
    lines.append("#   " + "".join(f"{n}," for n in failed) + "<ENDLIST>")
    lines.append("")
    if dag is None:
        lines.extend(f"DONE {n}" for n in done)
    else:
        done_set = set(done)
        for name, node in dag.nodes.items():
            if name in done_set:
                lines.append(f"DONE {name}")
            if node.retry > 0:
                r = f"RETRY {name} {node.retry}"
                if node.retry_unless_exit is not None:
                    r += f" UNLESS-EXIT {node.retry_unless_exit}"
                lines.append(r)
        lines.extend(f"DONE {n}" for n in done if n not in dag.nodes)
    return "\n".join(lines) + "\n"
