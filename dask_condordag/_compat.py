"""Every private name of dask and cloudpickle that dask-condordag uses.

Data
    Re-exports: the task-spec node classes of ``dask._task_spec`` (public in
    use, private by module name) and its two helpers we recognise in lowered
    tasks (``_identity_cast``, ``_instantiate_named_tuple``); the expression
    classes of ``dask._expr`` (``FinalizeCompute``, ``HLGExpr``, the two
    expression sequences, ``_AnnotationsTombstone``); cloudpickle's code
    reducer and its by-reference test; the disk-shuffle internals of
    ``dask.dataframe`` (``DiskShuffle``) and ``dask.bag``. :data:`CHECKED` holds the version
    ranges these were read against; :func:`unchecked_versions` says which
    installed versions fall outside.

Policy
    * A dask or cloudpickle upgrade touches this file only: no other module
      of the package (the standalone worker shim excepted) imports a private
      dask or cloudpickle name. ``tests/test_compat.py`` reads the package's
      imports with ``ast`` to keep it so, and fails with the versions and what
      to do when the installed ones are outside :data:`CHECKED`.
    * Nothing warns at import: ``dask-condordag doctor`` adds a note when the
      versions are outside the checked ranges.
    * ``dask.dataframe`` and ``dask.bag`` are imported only by the user:
      :func:`disk_shuffle_expr`, :func:`frame_disk_shuffle` and :func:`bag_core`
      look for them in ``sys.modules`` and return None when they are not
      loaded (a graph can then hold none of their tasks).

Example::

    >>> unchecked_versions({"dask": "2026.11.0", "cloudpickle": "3.1.3"})
    []
    >>> unchecked_versions({"dask": "2027.1.0", "cloudpickle": "3.1.3"})[0].split(":")[0]
    'dask 2027.1.0 is outside the versions dask-condordag was checked against (2026.8 to 2026.11)'
"""

from __future__ import annotations

import re
import sys

import cloudpickle
import cloudpickle.cloudpickle as _cloudpickle_impl
import dask
from dask._expr import FinalizeCompute, HLGExpr, _ExprSequence, _HLGExprSequence
from dask._task_spec import (
    Alias,
    DataNode,
    Dict,
    GraphNode,
    List,
    NestedContainer,
    Task,
    TaskRef,
    _identity_cast,
    _instantiate_named_tuple,
    convert_legacy_task,
)

try:  # dask/_expr.py: the "no annotation for this key" placeholder
    from dask._expr import _AnnotationsTombstone
except ImportError:  # pragma: no cover - dask versions before the placeholder
    _AnnotationsTombstone = None

__all__ = ["CHECKED", "unchecked_versions", "Alias", "DataNode", "Dict", "GraphNode",
           "List", "NestedContainer", "Task", "TaskRef", "convert_legacy_task",
           "identity_cast", "instantiate_named_tuple", "FinalizeCompute", "HLGExpr",
           "expr_sequences", "is_annotations_tombstone", "code_reduce",
           "should_pickle_by_reference", "disk_shuffle_expr", "frame_disk_shuffle", "bag_core",
           "concat_frames"]

#: the first and last release series each private name here was read against
#: (compared on as many parts as given: cloudpickle "3" is any 3.x); a release
#: outside may move them
CHECKED = {"dask": ("2026.8", "2026.11"), "cloudpickle": ("3", "3")}

#: dask/_task_spec.py: ``Task(key, _identity_cast, *items, typ=T)`` builds a
#: container of type T; ``partial(_instantiate_named_tuple, T)`` a namedtuple
identity_cast = _identity_cast
instantiate_named_tuple = _instantiate_named_tuple

#: dask/_expr.py: the expressions wrapping several collections
expr_sequences = (_HLGExprSequence, _ExprSequence)

#: cloudpickle/cloudpickle.py: its reducer for code objects, and its test of
#: "pickled by reference" (None when a cloudpickle lacks it)
code_reduce = _cloudpickle_impl._code_reduce
should_pickle_by_reference = getattr(_cloudpickle_impl, "_should_pickle_by_reference", None)


def is_annotations_tombstone(value) -> bool:
    """Is ``value`` dask's ``_AnnotationsTombstone`` (dask/_expr.py)?"""
    return _AnnotationsTombstone is not None and isinstance(value, _AnnotationsTombstone)


def disk_shuffle_expr():
    """``DiskShuffle``: the expression of a dataframe disk shuffle
    (dask/dataframe/dask_expr/_shuffle.py), or None when ``dask.dataframe`` is
    not loaded."""
    frames = sys.modules.get("dask.dataframe.dask_expr._shuffle")
    return None if frames is None else frames.DiskShuffle


def frame_disk_shuffle():
    """``(DiskShuffle._shuffle_group, dask.dataframe.shuffle.collect)``: the
    functions a dataframe disk shuffle's tasks call, or None when
    ``dask.dataframe`` is not loaded."""
    disk = disk_shuffle_expr()
    if disk is None:
        return None
    from dask.dataframe.shuffle import collect  # loaded with the module above

    return disk._shuffle_group, collect


def bag_core():
    """``dask.bag.core`` (its ``partition``, ``collect``, ``groupby_tasks``,
    ``Bag``, ``HighLevelGraph``), or None when ``dask.bag`` is not loaded."""
    return sys.modules.get("dask.bag.core")


def concat_frames(pieces: list):
    """``dask.dataframe.core._concat``: dask's concatenation of partitions."""
    # deferred: only a dataframe shuffle's job needs dask.dataframe (and pandas)
    from dask.dataframe.core import _concat

    return _concat(pieces)


# -- versions -----------------------------------------------------------------------------


def _parts(version: str) -> tuple[int, ...]:
    """``"2026.11.0"`` -> ``(2026, 11, 0)``: the leading numbers."""
    m = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def _inside(version: str, lo: str, hi: str) -> bool:
    have = _parts(version)
    lo_p, hi_p = _parts(lo), _parts(hi)
    return bool(have) and lo_p <= have[:len(lo_p)] and have[:len(hi_p)] <= hi_p


def unchecked_versions(versions: dict | None = None) -> list[str]:
    """One line for each of dask and cloudpickle whose version (given in
    ``versions``, else the installed one) is outside :data:`CHECKED`; empty
    when both are in."""
    versions = {"dask": dask.__version__, "cloudpickle": cloudpickle.__version__,
                **(versions or {})}
    out = []
    for name, (lo, hi) in CHECKED.items():
        have = versions.get(name, "")
        if not _inside(have, lo, hi):
            shown = f"{lo}.x" if lo == hi else f"{lo} to {hi}"
            out.append(
                f"{name} {have} is outside the versions dask-condordag was checked against "
                f"({shown}): dask_condordag/_compat.py uses "
                f"private names of {name}; install {name} in that range, or check each name "
                "there against the new release and widen CHECKED")
    return out
