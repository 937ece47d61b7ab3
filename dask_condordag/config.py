"""Options: keyword arguments first, then dask's config, then our YAML defaults.

Nothing is read at import. ``options(kwargs)`` is called by each entry point;
the YAML shipped with the package (``condordag.yaml``) gives the defaults, a
``condordag:`` section of dask's config (files or ``DASK_CONDORDAG__*``
environment variables) overrides them, and keyword arguments win.

    >>> options({"run": "none"}).run
    'none'
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields

import dask
import yaml

from .exceptions import CondorDagError

__all__ = ["Options", "options", "defaults"]

#: auto: condor where condor_submit_dag is on PATH, else local (condor.choose_run_mode)
RUN_MODES = ("auto", "local", "condor", "none")


@dataclass(frozen=True)
class Options:
    run: str = "auto"
    directory: str = "condordag-workflows"
    max_workers: int | None = None
    inline_limit: int = 65536
    arg_limit: int = 10 * 2**20
    progress: bool | None = None
    group: str = "auto"
    # the cost model group="auto" uses (cost.py); None: by run mode
    job_overhead: float | None = None
    slots: int | None = None
    max_node_bytes: int = 2 * 2**30
    maxjobs: dict | None = None
    dag_config: dict | None = None
    dot: bool = False
    node_status_interval: int | None = 30
    jobstate_log: bool = True
    hold_timeout: float = 600
    poll_interval: float = 5
    dagman_scan_interval: int | None = 1
    permissions: str = "private"
    force: bool = False
    # how code reaches the execute node (delivery.py)
    delivery: str = "shared"
    worker_python: str | None = None
    container_image: str | None = None
    assume_installed: tuple | None = None
    packages: tuple | None = None
    by_value: tuple | None = None
    shared_filesystem: bool = False
    path: str | None = None
    name: str | None = None


@functools.lru_cache(maxsize=None)
def defaults() -> dict:
    """The shipped defaults (``condordag.yaml``), read once, on first use."""
    with open(os.path.join(os.path.dirname(__file__), "condordag.yaml")) as f:
        return yaml.safe_load(f)["condordag"]


def _config(name: str):
    dashed = name.replace("_", "-")
    return dask.config.get(f"condordag.{dashed}", default=defaults().get(dashed))


def options(kwargs: dict) -> Options:
    """Resolve options; unknown keyword arguments are an error naming them."""
    known = {f.name for f in fields(Options)}
    unknown = set(kwargs) - known
    if unknown:
        raise TypeError(
            f"unknown dask-condordag option(s) {sorted(unknown)}; "
            f"the options are {sorted(known)}"
        )
    values = {}
    for f in fields(Options):
        if f.name in kwargs:
            values[f.name] = kwargs[f.name]
        elif f.name not in ("path", "name", "maxjobs", "dag_config"):
            values[f.name] = _config(f.name)
    for f in ("maxjobs", "dag_config"):  # dicts: None unless given
        if f not in values:
            values[f] = _config(f)
    for name in ("run", "group"):  # DASK_CONDORDAG__RUN=none arrives as None
        if values.get(name) is None:
            values[name] = "none"
    opts = Options(**values)
    if opts.run not in RUN_MODES:
        raise CondorDagError(f"run={opts.run!r} is not one of {RUN_MODES}")
    if opts.max_workers is not None and (
        not isinstance(opts.max_workers, int) or opts.max_workers < 1
    ):
        raise CondorDagError(f"max_workers={opts.max_workers!r}: give a whole number >= 1")
    for name in ("hold_timeout", "poll_interval"):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise CondorDagError(f"{name}={value!r}: give a number of seconds >= 0")
    scan = opts.dagman_scan_interval
    if scan is not None and (isinstance(scan, bool) or not isinstance(scan, int) or scan < 1):
        raise CondorDagError(f"dagman_scan_interval={scan!r}: give a whole number of seconds "
                             ">= 1, or None to leave it to the pool's configuration")
    if opts.group not in ("auto", "none", "chains"):
        raise CondorDagError(f"group={opts.group!r} is not one of ('auto', 'none', 'chains')")
    o = opts.job_overhead
    if o is not None and (isinstance(o, bool) or not isinstance(o, (int, float)) or not o >= 0):
        raise CondorDagError(f"job_overhead={o!r}: give seconds >= 0, or None for the run "
                             "mode's default")
    for name in ("slots", "max_node_bytes"):
        v = getattr(opts, name)
        if v is None and name == "slots":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CondorDagError(f"{name}={v!r}: give a whole number >= 1"
                                 + (", or None for the run mode's default"
                                    if name == "slots" else ""))
    if not isinstance(opts.inline_limit, int) or opts.inline_limit < 0:
        raise CondorDagError(f"inline_limit={opts.inline_limit!r}: give a number of bytes >= 0")
    from .delivery import from_options

    from_options(opts)  # checks the delivery options
    return opts
