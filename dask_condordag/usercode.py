"""Which code is the user's own, and which is installed.

Data
    In: a function, class or module object (or a module's name), and
    ``sys.modules``. Out: whether it is the user's own code -- ``__main__``,
    or a Python source file outside the interpreter's prefixes and
    site-packages (:func:`installed_prefixes`) -- and, for installed
    objects, the ``module.qualname`` they can be imported by.

Policy
    * The user's own code is hashed by its bytecode and the globals it reads
      (``tokens.Tokenizer``) and pickled by value (``write``, ``delivery``);
      installed code counts by name only (an upgrade reruns nothing) and is
      imported on the execute node.
    * dask-condordag's own modules are never the user's; a module made at
      run time (``types.ModuleType``, no file) is, since no execute node
      could import it. Built-in, frozen and namespace modules are not.
    * The answer per (module name, file) is cached for the life of the
      process (``_module_cache``), as are the prefixes.

Example::

    >>> import json
    >>> is_user_code(json.dumps), is_user_code(lambda: 0)  # doctest: +SKIP
    (False, True)
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import types

__all__ = ["installed_prefixes", "is_user_module", "is_user_code", "user_modules",
           "in_user_module", "owner_class", "installed_name"]


_MISSING = object()


@functools.cache
def installed_prefixes() -> tuple[str, ...]:
    """Where installed code lives: the interpreter's prefixes and site-packages
    (fixed for the life of the process; computing it costs ~1 ms)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(p)
    try:
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    except AttributeError:  # some virtualenv site modules lack these
        pass
    return tuple(os.path.realpath(p) + os.sep for p in paths)


_module_cache: dict = {}


def is_user_module(name: str, mod) -> bool:
    if not isinstance(mod, types.ModuleType):  # e.g. typing.io placeholders
        return False
    if name == "__main__":
        return True
    if name.split(".")[0] == "dask_condordag":
        return False
    f = getattr(mod, "__file__", None)
    if not f:
        # built in, frozen, a namespace package -- or made at run time
        # (types.ModuleType), which no execute node could import
        return (getattr(mod, "__spec__", None) is None and name not in sys.builtin_module_names
                and not hasattr(mod, "__path__"))
    got = _module_cache.get((name, f))
    if got is None:
        real = os.path.realpath(f)
        got = real.endswith(".py") and not real.startswith(installed_prefixes())
        _module_cache[(name, f)] = got
    return got


def is_user_code(f) -> bool:
    """Is ``f`` from ``__main__`` or the user's own modules (not installed code)?"""
    name = getattr(f, "__module__", None)
    if not name:
        return True
    mod = sys.modules.get(name)
    return mod is None or is_user_module(name, mod)


def user_modules() -> set:
    """The imported modules that are the user's own code: a Python source file
    outside the interpreter's prefixes and site-packages (a script's helper
    module, a project checked out in the home directory). Functions and
    classes from them are pickled by value, so the execute node need not be
    able to import them. ``__main__`` is by value in cloudpickle already;
    dask-condordag's own modules are never shipped this way.
    """
    return {name for name, mod in list(sys.modules.items())
            if name != "__main__" and is_user_module(name, mod)}




def in_user_module(c) -> bool:
    """Is class ``c`` from an imported module of the user's own?"""
    name = getattr(c, "__module__", None)
    mod = sys.modules.get(name) if isinstance(name, str) else None
    return mod is not None and is_user_module(name, mod)


def owner_class(f):
    """The class ``f`` is defined in (``__qualname__`` ``Cls.meth``, looked
    up in its module), or None."""
    path = f.__qualname__.split(".")
    if len(path) < 2 or "<locals>" in path:
        return None
    obj = f.__globals__.get(path[0], _MISSING)
    for part in path[1:-1]:
        obj = getattr(obj, part, _MISSING)
    if not isinstance(obj, type):
        return None
    got = vars(obj).get(path[-1])
    return obj if got is f or getattr(got, "__func__", None) is f else None


def installed_name(v):
    """``module.qualname`` when ``v`` is what that name of an installed
    module holds (not the user's own module), else None."""
    mod = getattr(v, "__module__", None)
    name = getattr(v, "__qualname__", None) or getattr(v, "__name__", None)
    if not isinstance(mod, str) or not isinstance(name, str):
        return None
    obj = sys.modules.get(mod)
    if obj is None or is_user_module(mod, obj):
        return None
    for part in name.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return None
    return f"{mod}.{name}" if obj is v else None
