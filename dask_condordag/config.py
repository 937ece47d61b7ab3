"""Options: keyword arguments first, then dask's config, whose defaults we ship.

Data
    ``condordag.yaml`` (shipped with the package) holds every option's
    default, once. Out: an :class:`Options` for one call (:func:`options`),
    or one option's configured value (:func:`option`).

Policy
    * The YAML is read once, on first use (nothing is read at import), and
      merged into dask's defaults with ``dask.config.update_defaults``, as
      dask-jobqueue (``dask_jobqueue/config.py``) does: dask's own config
      files and ``DASK_CONDORDAG__*`` environment variables win over it,
      ``dask.config.refresh()`` keeps it, and ``dask.config.get`` shows it.
      Code reads an option only with ``dask.config.get`` (:func:`option`),
      the YAML's value as its ``default``: a ``dask.config.set`` block open
      at the first use removes the merged section when it closes.
    * Keyword arguments win over dask's config. An unknown keyword is an
      error naming it; each option is checked in one place (:data:`_CHECKS`,
      the delivery options by ``delivery.from_options``) with a message
      saying what to give.

Example::

    >>> options({"run": "none"}).run
    'none'
    >>> option("inline_limit")
    65536
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields

import dask
import yaml

from .delivery import from_options as delivery_from_options
from .exceptions import CondorDagError

__all__ = ["Options", "options", "option", "defaults", "RUN_MODES"]

#: auto: condor where condor_submit_dag is on PATH, else local (condor.choose_run_mode)
RUN_MODES = ("auto", "local", "condor", "none")
GROUPS = ("auto", "none", "chains")


@functools.lru_cache(maxsize=None)
def defaults() -> dict:
    """The shipped defaults (``condordag.yaml``, by dashed name), read once,
    on first use, and merged into dask's defaults."""
    with open(os.path.join(os.path.dirname(__file__), "condordag.yaml"), encoding="utf-8") as f:
        shipped = yaml.safe_load(f)
    dask.config.update_defaults(shipped)
    return shipped["condordag"]


@dataclass(frozen=True)
class Options:
    """Every option of one call (their defaults: ``condordag.yaml``), plus
    ``path`` and ``name`` of the workflow, which have none."""

    run: str
    directory: str
    max_workers: int | None
    inline_limit: int
    arg_limit: int
    progress: bool | None
    group: str
    # the cost model group="auto" uses (cost.py); None: by run mode
    job_overhead: float | None
    slots: int | None
    cores_per_node: int | None
    max_node_bytes: int
    maxjobs: dict | None
    dag_config: dict | None
    dot: bool
    node_status_interval: int | None
    jobstate_log: bool
    hold_timeout: float
    poll_interval: float
    dagman_scan_interval: int | None
    permissions: str
    force: bool
    # how code reaches the execute node (delivery.py)
    delivery: str
    worker_python: str | None
    container_image: str | None
    assume_installed: tuple | None
    packages: tuple | None
    by_value: tuple | None
    shared_filesystem: bool
    path: str | None = None
    name: str | None = None


#: the fields of Options that are not options (no default, not in dask's config)
_PER_CALL = ("path", "name")


def option(name: str):
    """The configured value of option ``name`` (``inline_limit``): dask's
    config ``condordag.inline-limit``, whose default is the shipped YAML's."""
    dashed = name.replace("_", "-")
    return dask.config.get(f"condordag.{dashed}", default=defaults()[dashed])


def options(kwargs: dict) -> Options:
    """Resolve options; unknown keyword arguments are an error naming them."""
    known = {f.name for f in fields(Options)}
    unknown = set(kwargs) - known
    if unknown:
        raise TypeError(
            f"unknown dask-condordag option(s) {sorted(unknown)}; "
            f"the options are {sorted(known)}"
        )
    values = {f.name: kwargs[f.name] if f.name in kwargs else option(f.name)
              for f in fields(Options) if f.name not in _PER_CALL or f.name in kwargs}
    for name in ("run", "group"):  # DASK_CONDORDAG__RUN=none arrives as None
        if values.get(name) is None:
            values[name] = "none"
    opts = Options(**values)
    for name, check in _CHECKS.items():
        problem = check(getattr(opts, name))
        if problem:
            sep = " " if problem.startswith("is ") else ": "
            raise CondorDagError(f"{name}={getattr(opts, name)!r}{sep}{problem}")
    delivery_from_options(opts)  # checks the delivery options
    return opts


# -- one check per option: None when the value is good, else what to give -------------


def _one_of(choices):
    return lambda v: None if v in choices else f"is not one of {choices}"


def _count(minimum: int, what: str = "a whole number", none: str | None = None):
    """A whole number >= ``minimum``; None too when ``none`` says what it means."""
    def check(v):
        if v is None and none:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            return f"give {what} >= {minimum}" + (f", or None {none}" if none else "")
        return None
    return check


def _seconds(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        return "give a number of seconds >= 0"
    return None


_CHECKS = {
    "run": _one_of(RUN_MODES),
    "max_workers": _count(1, none="for the number of cores"),
    "inline_limit": _count(0, what="a number of bytes"),
    "arg_limit": _count(0, what="a number of bytes"),
    "group": _one_of(GROUPS),
    "job_overhead": lambda v: None if v is None else (
        _seconds(v) and "give seconds >= 0, or None for the run mode's default"),
    "slots": _count(1, none="for the run mode's default"),
    "cores_per_node": _count(1, none="for the run mode's default"),
    "max_node_bytes": _count(1, what="a number of bytes"),
    "hold_timeout": _seconds,
    "poll_interval": _seconds,
    "dagman_scan_interval": _count(1, "a whole number of seconds",
                                   none="to leave it to the pool's configuration"),
}
