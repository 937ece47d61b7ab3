"""The settings a plan carries, as frozen data: per node and per DAG.

Data
    :class:`NodeSettings`: everything about one DAG node that comes from a
    task's annotations; :class:`DagSettings`: the DAG-level options. Both
    are plain frozen dataclasses that compare by value, so nodes whose
    settings are equal share a submit description (render.py).

Policy
    Checking happens elsewhere: ``annotations.node_settings`` and
    ``annotations.dag_settings`` read the user's input and raise
    :class:`~dask_condordag.exceptions.PlanError` naming the culprit; ``plan``
    attaches the results to nodes; ``render`` turns them into DAG and submit
    lines. This module imports nothing of the package, so both sides can
    import it.

Example::

    >>> s = NodeSettings(retry=2, cluster="sweep")
    >>> s.without_cluster() == NodeSettings(retry=2), s == NodeSettings(retry=2)
    (True, False)
    >>> DagSettings().node_status_interval
    30
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["NodeSettings", "DagSettings"]


@dataclass(frozen=True)
class NodeSettings:
    """Everything about one DAG node that comes from annotations."""

    retry: int = 0
    retry_unless_exit: int | None = None
    priority: int = 0
    category: str | None = None
    vars: tuple = ()  # ((name, value), ...) in the user's order
    submit: tuple = ()  # ((command, value), ...), sorted: equal settings share a file
    abort_dag_on: tuple | None = None  # (code, return or None)
    pre: str | None = None
    post: str | None = None
    processes: int | None = None
    cluster: str | None = None
    max_runtime: float | None = None  # seconds; enforced by the worker shim

    def without_cluster(self) -> "NodeSettings":
        """Settings that must be equal for tasks to share a cluster node."""
        return replace(self, cluster=None)


@dataclass(frozen=True)
class DagSettings:
    """DAG-level settings (keyword arguments or the ``condordag`` config)."""

    maxjobs: tuple = ()  # ((category, n), ...)
    config: tuple = ()  # ((knob, value), ...) -> CONFIG file
    dot: bool = False
    node_status_interval: int | None = 30  # seconds; None: no node status file
    jobstate_log: bool = True
