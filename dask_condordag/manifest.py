"""Read a workflow's manifest (``manifest.json``): the one reader of it.

Data
    In: a workflow directory. Out: the manifest as a dict -- the workflow's
    name, the versions it was written with, its DAG file, key -> node ->
    result files, the payload packs and their checksums, the delivery mode
    (see ``write._manifest`` for the writer and ``names`` for the layout).

Policy
    A manifest that is missing, unreadable, or of a newer format than this
    version writes (``names.MANIFEST_FORMAT``) raises
    :class:`~dask_condordag.exceptions.WorkflowError` naming the file and
    what to do; an older format is read as it is. ``write`` (to update a
    workflow), ``workflow.Workflow`` (and through it the CLI) and
    ``doctor`` read manifests here.

Example::

    >>> read_manifest("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dask_condordag.exceptions.WorkflowError: /nonexistent/manifest.json does not exist: ...
"""

from __future__ import annotations

import json
from pathlib import Path

from . import names
from .exceptions import WorkflowError

__all__ = ["read_manifest"]


def read_manifest(path) -> dict:
    """The manifest of the workflow at ``path``; WorkflowError if unreadable."""
    p = Path(path) / names.MANIFEST
    try:
        with open(p, encoding="utf-8") as f:
            m = json.load(f)
    except FileNotFoundError:
        raise WorkflowError(
            f"{p} does not exist: {path} is not a dask-condordag workflow") from None
    except (OSError, ValueError) as e:
        raise WorkflowError(f"cannot read the manifest {p}: {e}") from e
    fmt = m.get("format")
    if not isinstance(fmt, int) or fmt > names.MANIFEST_FORMAT:
        raise WorkflowError(
            f"{p} has manifest format {fmt!r}; this dask-condordag reads format "
            f"{names.MANIFEST_FORMAT} or older: upgrade dask-condordag to open it"
        )
    return m
