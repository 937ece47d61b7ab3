"""Pickle what a workflow carries: payloads, constants, ``outputs.pkl``.

Data
    In: an object and a description of it for errors. Out: pickle bytes
    (cloudpickle, protocol ``pickle.HIGHEST_PROTOCOL``), or a
    :class:`~dask_condordag.exceptions.PlanError` that names the object and
    says what to do.

Policy
    * Functions from ``__main__`` and from the modules write registers with
      :func:`by_value` (the user's own modules, ``by_value=``) go by value,
      so the execute node needs only the interpreter and its installed
      packages.
    * Within one compile each function is pickled once: its bytes are kept
      and the payload embeds them as ``pickle.loads(bytes)`` (standard
      library only on the execute node).
    * Code pickled by value keeps its real file name (cloudpickle writes
      ``<dynamic-code>``), so a remote traceback names the line.
    * An open file is refused: cloudpickle would copy a readable file's
      contents into the payload, silently.

Example::

    >>> import pickle
    >>> pickle.loads(dumps([1, "a"], "a list"))
    [1, 'a']
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from contextlib import contextmanager

import cloudpickle

from ._compat import code_reduce
from .exceptions import PlanError

__all__ = ["by_value", "dumps"]


@contextmanager
def by_value(modules):
    """Pickle ``modules`` (names; those imported) by value inside the block,
    as cloudpickle.register_pickle_by_value does; restored afterwards."""
    registered = []
    try:
        for mod in sorted(modules):
            if mod in sys.modules and mod not in cloudpickle.list_registry_pickle_by_value():
                cloudpickle.register_pickle_by_value(sys.modules[mod])
                registered.append(mod)
        yield
    finally:
        for mod in registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[mod])


def _code_reduce(code):
    """cloudpickle's code reducer, keeping the real file name.

    cloudpickle writes ``<dynamic-code>`` as the file of every function it
    pickles by value; tracebacks from the execute node would then not say
    where the failing line is. Keeping the name lets the client show the
    line from its own copy of the file.
    """
    func, args = code_reduce(code)
    args = tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)
    return func, args


_FILE_TYPES = frozenset({io.TextIOWrapper, io.BufferedReader, io.BufferedWriter,
                         io.BufferedRandom, io.FileIO})


class _CodePickler(cloudpickle.Pickler):
    # the C pickler reads dispatch_table when it is created: a class attribute
    dispatch_table = {**cloudpickle.Pickler.dispatch_table, types.CodeType: _code_reduce}


class _Pickler(_CodePickler):
    """cloudpickle, with each function pickled once per compile.

    Pickling a function by value is the slow part of writing 100k payloads;
    the cache keeps its bytes and the payload embeds them as
    ``pickle.loads(bytes)`` -- standard library only on the execute node.
    """

    def __init__(self, file, cache: dict):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._fcache = cache

    def reducer_override(self, obj):
        if type(obj) in _FILE_TYPES:
            # cloudpickle would copy a readable file's contents into every
            # payload, silently; a path on this machine means nothing there
            raise pickle.PicklingError(
                f"an open file ({getattr(obj, 'name', '?')!r}) cannot travel to the execute "
                "node; pass the path of a file the job can reach (or transfer) and open it "
                "inside the task")
        if type(obj) is types.FunctionType:
            got = self._fcache.get(id(obj))
            if got is None:
                buf = io.BytesIO()
                _CodePickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
                got = (obj, buf.getvalue())
                self._fcache[id(obj)] = got
            return pickle.loads, (got[1],)
        return super().reducer_override(obj)


_PICKLER = "pickler"  # the key of the reusable pickler in a compile's cache


def dumps(obj, what, cache: dict | None = None) -> bytes:
    """Pickle ``obj``; a PlanError naming ``what`` (a string, or a callable
    giving one) if it cannot be. ``cache``: one dict per compile, which keeps
    each function's bytes (:class:`_Pickler`) and the pickler itself."""
    try:
        if cache is None:
            return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        pickler = cache.get(_PICKLER)
        if pickler is None:  # one pickler per compile, its memo cleared each time
            buf = io.BytesIO()
            pickler = cache[_PICKLER] = (_Pickler(buf, cache), buf)
        p, buf = pickler
        buf.seek(0)
        buf.truncate()
        p.clear_memo()
        p.dump(obj)
        return buf.getvalue()
    except Exception as e:
        what = what() if callable(what) else what
        raise PlanError(
            f"{what} cannot be pickled: {type(e).__name__}: {e}. Everything a task "
            "uses must be picklable (no open files, locks, sockets, generators); "
            "create such objects inside the task instead"
        ) from e
