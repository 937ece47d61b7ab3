"""Content tokens: stable across processes, where dask's keys are not.

Data
    A token is a short string that identifies *what* a task computes: its
    function (identity and code), its literal arguments, and the tokens of the
    values it reads. ``plan`` hashes these into node and result-file names.

Policy -- what counts as a change of a function (the README repeats this):
    * a Python function: its module and qualified name, its bytecode and
      constants (recursively through nested functions and lambdas), its
      defaults, the values in its closure, and -- followed recursively -- the
      global functions and simple global constants (numbers, strings, bytes,
      tuples of those) it refers to by name. Moving a function within its file
      or editing comments does not count; editing its body or a helper does.
    * functions of installed packages (under the interpreter's prefix or
      site-packages), builtins, classes and other importable objects without
      bytecode: their module and qualified name.
    * ``functools.partial``: the function and the bound arguments.
    * an fsspec ``OpenFile`` (``dask.bag.read_text`` passes them): also the
      file's properties (size, modification time: fsspec's ``ukey``), so a
      changed input file is read again.
    * other values: their type and value (``repr`` for plain scalars, dask's
      ``tokenize`` otherwise, which is deterministic for numpy arrays and most
      standard types).

Example::

    >>> value_token(3) == value_token(3), value_token(3) == value_token(3.0)
    (True, False)
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
import types

__all__ = ["Tokenizer", "value_token", "sha", "user_modules", "is_user_code"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def sha(text: str) -> str:
    """Hex SHA-256 of a string."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _file_state(f) -> str:
    """fsspec's key of the file's properties (size, modification time...), so a
    task that reads a changed file (``dask.bag.read_text``) runs again; a file
    that cannot be looked at gets a fresh key: when in doubt, recompute."""
    try:
        return str(f.fs.ukey(f.path))
    except Exception:
        import uuid

        return uuid.uuid4().hex


def value_token(value) -> str:
    """A token for a literal value (see the module docstring)."""
    return Tokenizer().value(value)


class Tokenizer:
    """Function tokens, cached for the lifetime of one compile.

    The cache keeps a reference to each function so that ``id`` stays unique.
    """

    def __init__(self):
        self._cache: dict[int, tuple[object, str]] = {}
        self._busy: set[int] = set()

    def func(self, f) -> str:
        got = self._cache.get(id(f))
        if got is not None:
            return got[1]
        if id(f) in self._busy:  # recursion through globals: name only
            return _qualname(f)
        self._busy.add(id(f))
        try:
            token = sha(self._func(f))[:32]
        finally:
            self._busy.discard(id(f))
        self._cache[id(f)] = (f, token)
        return token

    def _func(self, f) -> str:
        if isinstance(f, functools.partial):
            kw = ",".join(f"{k}={self._value(v)}" for k, v in sorted(f.keywords.items()))
            args = ",".join(self._value(a) for a in f.args)
            return f"partial({self.func(f.func)};{args};{kw})"
        if isinstance(f, types.MethodType):
            return f"method({self.func(f.__func__)};{self._value(f.__self__)})"
        if isinstance(f, types.FunctionType):
            if not is_user_code(f):  # installed library code: its name says it
                return _qualname(f)
            parts = [_qualname(f), self._code(f.__code__, f.__globals__)]
            if f.__defaults__:
                parts.append(self._value(f.__defaults__))
            if f.__kwdefaults__:
                parts.append(self._value(f.__kwdefaults__))
            if f.__closure__:
                for cell in f.__closure__:
                    try:
                        parts.append(self._value(cell.cell_contents))
                    except ValueError:  # empty cell
                        parts.append("<empty>")
            return "fn(" + ";".join(parts) + ")"
        if isinstance(f, (type, types.BuiltinFunctionType, types.BuiltinMethodType)):
            return _qualname(f)
        if hasattr(f, "__dask_tokenize__"):
            from dask.base import tokenize

            return f"obj({tokenize(f)})"
        from dask.base import tokenize

        return f"obj({_qualname(type(f))};{tokenize(f)})"

    def value(self, value) -> str:
        """A token for a literal value (see the module docstring)."""
        t = type(value)
        if t in _SCALARS:
            return f"{t.__name__}:{value!r}"
        if t is tuple or t is list:
            return f"{t.__name__}({','.join(map(self.value, value))})"
        if t is dict:
            items = ",".join(f"{self.value(k)}={self.value(v)}" for k, v in value.items())
            return f"dict({items})"
        if t is set or t is frozenset:
            return f"{t.__name__}({','.join(sorted(map(self.value, value)))})"
        if isinstance(value, (types.FunctionType, functools.partial, types.MethodType)):
            return self.func(value)
        from dask.base import tokenize

        if t.__module__ == "fsspec.core" and t.__qualname__ == "OpenFile":
            return f"fsspec.OpenFile:{tokenize(value)}:{_file_state(value)}"
        return f"{t.__module__}.{t.__qualname__}:{tokenize(value)}"

    _value = value

    def _code(self, code: types.CodeType, globs: dict) -> str:
        consts = []
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                consts.append(self._code(c, globs))
            else:
                consts.append(self.value(c))
        refs = []
        for name in code.co_names:
            g = globs.get(name, _MISSING)
            if g is _MISSING:
                continue
            if isinstance(g, types.FunctionType):
                refs.append(f"{name}={self.func(g)}")
            elif type(g) in _SCALARS or (
                type(g) is tuple and all(type(x) in _SCALARS for x in g)
            ):
                refs.append(f"{name}={self.value(g)}")
        return "code({};{};{};{};{})".format(
            code.co_code.hex(),
            ",".join(consts),
            ",".join(code.co_names),
            code.co_argcount,
            ",".join(refs),
        )


_MISSING = object()


@functools.cache
def _prefixes() -> tuple[str, ...]:
    """Where installed code lives: the interpreter's prefixes and site-packages
    (fixed for the life of the process; computing it costs ~1 ms)."""
    import site

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


def _is_user_module(name: str, mod) -> bool:
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
        got = real.endswith(".py") and not real.startswith(_prefixes())
        _module_cache[(name, f)] = got
    return got


def is_user_code(f) -> bool:
    """Is ``f`` from ``__main__`` or the user's own modules (not installed code)?"""
    name = getattr(f, "__module__", None)
    if not name:
        return True
    mod = sys.modules.get(name)
    return mod is None or _is_user_module(name, mod)


def user_modules() -> set:
    """The imported modules that are the user's own code: a Python source file
    outside the interpreter's prefixes and site-packages (a script's helper
    module, a project checked out in the home directory). Functions and
    classes from them are pickled by value, so the execute node need not be
    able to import them. ``__main__`` is by value in cloudpickle already;
    dask-condordag's own modules are never shipped this way.
    """
    return {name for name, mod in list(sys.modules.items())
            if name != "__main__" and _is_user_module(name, mod)}


def _qualname(f) -> str:
    mod = getattr(f, "__module__", None) or ""
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)
    return f"{mod}.{name}"
