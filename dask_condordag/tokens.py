"""Content tokens: stable across processes, where dask's keys are not.

Data
    A token is a short string that identifies *what* a task computes: its
    function (identity and code, and the globals the code reads), its literal
    arguments, and the tokens of the values it reads. ``plan`` hashes these
    into node and result-file names, so a result is reused only while its
    token stays the same.

Policy -- what counts as a change (the README's "Reruns, integrity and
faults" repeats this). Like Make, but conservative: what cannot be compared
is taken as changed.

    * a function from ``__main__`` or the user's own modules
      (``usercode.is_user_code``): its module and qualified name, its bytecode and
      constants (through nested functions, lambdas, comprehensions and
      classes), its defaults, the values in its closure, and the **globals its
      code reads** -- every name it loads as a global (``LOAD_GLOBAL``,
      ``LOAD_NAME``), and ``mod.NAME`` / ``mod.sub.NAME`` through the user's
      own modules:

      - plain data by value: None, bool, numbers, str, bytes, tuples, lists,
        dicts, sets (nested); enum members, named tuples and dataclass
        instances field by field; numpy arrays, scalars and dtypes (dask's
        ``tokenize``); dates, times, ``Decimal``, ``Fraction``, paths, UUIDs,
        ranges, compiled regular expressions; a logger by its name;
      - functions and classes of the user's own modules, followed
        recursively; a class by its methods (also static, class methods and
        properties), its plain-data class attributes, its bases and
        metaclass. A method counts with its whole class (``self.other()``
        may call any of it). Cycles (recursion, a method that names its class) are
        followed once, and each member of a cycle gets the same token
        whichever of them was met first (see ``tokenmemo.py``);
      - functions, classes and modules of installed packages: by name;
      - anything else -- an arbitrary object, an open file, a random
        generator, a lock -- cannot be hashed deterministically. The token
        then includes this compile's random ``nonce``, so it, and every token
        built from it, matches no earlier result: the task *always reruns*,
        and :meth:`Tokenizer.take_reasons` says why ("global NAME (type)
        cannot be hashed").

      Moving a function within its file, comments and docstrings do not
      count. Not seen: names read dynamically (``globals()[...]``,
      ``getattr`` with a computed name, ``eval``), a user module handed
      around as a value, files and environment variables the code reads.
    * functions of installed packages (under the interpreter's prefix or
      site-packages), builtins, classes and other importable objects without
      bytecode: their module and qualified name (an upgrade reruns nothing).
    * ``functools.partial``: the function and the bound arguments.
    * an fsspec ``OpenFile`` (``dask.bag.read_text`` passes them): also the
      file's properties (size, modification time: fsspec's ``ukey``), so a
      changed input file is read again.
    * other values (a task's arguments, closure and default values): their
      type and value (``repr`` for plain scalars, dask's ``tokenize``
      otherwise, which is deterministic for numpy arrays and most standard
      types); a class, and the class of an instance of the user's own, as
      above.

    Tokens are cached per object for the life of one :class:`Tokenizer` (one
    compile): a function used by 100k tasks is looked at once; lambdas made in
    a loop share their code's token.

    Here: the ``Tokenizer`` (functions, classes, code, globals). The memo
    that caches tokens, collects reasons and closes cycles: ``tokenmemo.py``.
    Which code is the user's own: ``usercode.py``; the globals a code object
    reads: ``bytecode.py``; the rules for plain values: ``plainvalues.py``.

Example::

    >>> value_token(3) == value_token(3), value_token(3) == value_token(3.0)
    (True, False)
    >>> tok = Tokenizer()
    >>> tok.value({"scale": 3}) == Tokenizer().value({"scale": 3}), tok.take_reasons()
    (True, ())
"""

from __future__ import annotations

import functools
import sys
import types
import uuid

from dask.base import tokenize

from .bytecode import global_reads
from .plainvalues import SCALARS, PlainValues, typename
from .tokenmemo import CycleMemo, qualname, sha
from .usercode import in_user_module, is_user_code, is_user_module, owner_class

__all__ = ["Tokenizer", "value_token", "sha", "SCALARS"]

_SCALAR_SET = SCALARS
_MISSING = object()

# class attributes that say nothing about behaviour, or that mirror what the
# class's own functions already hold (dataclass fields: the generated __init__)
_CLASS_SKIP = frozenset({
    "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
    "__annotate__", "__annotate_func__", "__annotations_cache__", "__firstlineno__",
    "__static_attributes__", "__orig_bases__", "__parameters__", "__type_params__",
    "__dataclass_fields__", "__dataclass_params__", "_abc_impl",
})
_C_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType,
                  types.WrapperDescriptorType, types.MethodDescriptorType,
                  types.ClassMethodDescriptorType)


def _file_state(f) -> str:
    """fsspec's key of the file's properties (size, modification time...), so a
    task that reads a changed file (``dask.bag.read_text``) runs again; a file
    that cannot be looked at gets a fresh key: when in doubt, recompute."""
    try:
        return str(f.fs.ukey(f.path))
    except Exception:
        return uuid.uuid4().hex


def value_token(value) -> str:
    """A token for a literal value (see the module docstring)."""
    return Tokenizer().value(value)


class Tokenizer(CycleMemo, PlainValues):
    """Tokens for one compile, cached per object (see the module docstring).

    The cache keeps a reference to each object so that ``id`` stays unique.
    ``nonce``: mixed into every token that depends on a value that cannot be
    hashed; random by default (such a token matches nothing from another
    compile), ``""`` for tokens that are the same in every process (plan
    names the default workflow folder with those).
    """

    def __init__(self, nonce: str | None = None):
        super().__init__(nonce)  # the memo: tokenmemo.CycleMemo
        self._walking: set = set()  # ids of containers being walked (cycles)
        self._culprit = None  # the value _plain could not hash

    def func(self, f) -> str:
        got = self._cache.get(id(f))
        if got is not None:
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        return self._memo(id(f), f, lambda: self._func(f))

    def _func(self, f) -> str:
        if isinstance(f, functools.partial):
            kw = ",".join(f"{k}={self._value(v)}" for k, v in sorted(f.keywords.items()))
            args = ",".join(self._value(a) for a in f.args)
            return f"partial({self.func(f.func)};{args};{kw})"
        if isinstance(f, types.MethodType):  # the class: what self.other() may call
            owner = f.__self__
            kind = owner if isinstance(owner, type) else type(owner)
            kind = self.cls(kind) if in_user_module(kind) else qualname(kind)
            return f"method({self.func(f.__func__)};{kind};{self._value(owner)})"
        if isinstance(f, types.FunctionType):
            if not is_user_code(f):  # installed library code: its name says it
                return qualname(f)
            parts = [qualname(f), self._code(f.__code__, f.__globals__)]
            owner = owner_class(f)
            if owner is not None:  # a method: self.other() may call any of its class
                parts.append("in:" + self.cls(owner))
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
        if isinstance(f, type):
            return self.cls(f)
        if isinstance(f, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            return qualname(f)
        if hasattr(f, "__dask_tokenize__"):
            return f"obj({tokenize(f)})"
        return f"obj({qualname(type(f))};{tokenize(f)})"

    def value(self, value) -> str:
        """A token for a literal value (see the module docstring)."""
        t = type(value)
        if t in _SCALAR_SET:
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
        if isinstance(value, type):
            return self.cls(value)
        if t.__module__ == "fsspec.core" and t.__qualname__ == "OpenFile":
            return f"fsspec.OpenFile:{tokenize(value)}:{_file_state(value)}"
        if in_user_module(t):  # an instance of the user's class: its methods count
            return f"{self.cls(t)}:{tokenize(value)}"
        return f"{t.__module__}.{t.__qualname__}:{tokenize(value)}"

    _value = value

    # ------------------------------------------------------------ classes
    def cls(self, c) -> str:
        """A class: by name if installed, else by its content (module docstring)."""
        if not is_user_code(c):
            return qualname(c)
        got = self._cache.get(id(c))
        if got is not None:
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        return self._memo(id(c), c, lambda: self._class(c))

    def _class(self, c) -> str:
        parts = [qualname(c)]
        parts.extend("base:" + self.cls(b) for b in c.__bases__ if b is not object)
        if type(c) is not type:
            parts.append("meta:" + self.cls(type(c)))
        enum = sys.modules.get("enum")
        is_enum = enum is not None and isinstance(c, enum.EnumMeta)
        attrs = vars(c)
        for name in sorted(attrs, key=str):
            if name in _CLASS_SKIP or (is_enum and _sunder(name)):
                continue
            parts.append(f"{name}={self._class_attr(c, name, attrs[name], is_enum)}")
        if is_enum:  # (members need not be in the class's own dict)
            parts.extend(f"member:{name}={self._class_attr(c, name, m.value, False)}"
                         for name, m in c.__members__.items())
        return "class(" + ";".join(parts) + ")"

    def _class_attr(self, c, name: str, v, is_enum: bool) -> str:
        t = type(v)
        if t is staticmethod or t is classmethod:
            return f"{t.__name__}({self._class_attr(c, name, v.__func__, False)})"
        if t is types.FunctionType:
            return self.func(v)
        if t is property:
            return "property(" + ",".join(
                self._class_attr(c, name, x, False) for x in (v.fget, v.fset, v.fdel)) + ")"
        if t is functools.cached_property:
            return f"cached_property({self.func(v.func)})"
        if is_enum and isinstance(v, c):
            return f"member({self._class_attr(c, name, v.value, False)})"
        if isinstance(v, _C_DESCRIPTORS):  # __slots__ members and the like
            return t.__name__
        self._culprit = None
        try:
            got = self._plain(v)
        except Exception:  # as in _global_text
            got, self._culprit = None, v
        if got is not None:
            return got
        if hasattr(t, "__get__") and not is_user_code(t):  # a library's descriptor
            return f"descriptor:{qualname(t)}"
        self._frames[-1].reasons.append(_cannot("class attribute", f"{qualname(c)}.{name}",
                                                v, self._culprit))
        return f"opaque:{typename(v)}"

    # ------------------------------------------------------------ code and globals
    def _code(self, code: types.CodeType, globs: dict) -> str:
        key = ("code", id(code), id(globs))
        got = self._cache.get(key)
        if got is not None:  # e.g. lambdas made in a loop: one code, many functions
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        return self._memo(key, (code, globs), lambda: self._code_text(code, globs))

    def _code_text(self, code: types.CodeType, globs: dict) -> str:
        consts = []
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                consts.append(self._code_text(c, globs))
            else:
                consts.append(self.value(c))
        refs = []
        for chain in global_reads(code):
            g = globs.get(chain[0], _MISSING)
            if g is _MISSING:  # a builtin (or not defined yet: it would fail)
                continue
            if type(g) is types.ModuleType:
                refs.append(self._module_ref(globs, chain, g))
            else:
                refs.append(f"{chain[0]}={self._global(globs, chain[0], g)}")
        return "code({};{};{};{};{})".format(
            code.co_code.hex(),
            ",".join(consts),
            ",".join(code.co_names),
            code.co_argcount,
            ",".join(dict.fromkeys(refs)),
        )

    def _module_ref(self, globs: dict, chain: tuple, mod) -> str:
        """``mod.a.b``: followed through the user's own modules to the first
        object that is not one; installed modules count by name."""
        obj, used = mod, 1
        while (used < len(chain) and type(obj) is types.ModuleType
               and is_user_module(obj.__name__, obj)):
            nxt = getattr(obj, chain[used], _MISSING)
            if nxt is _MISSING:
                break
            obj, used = nxt, used + 1
        path = ".".join(chain[:used])
        if type(obj) is types.ModuleType:
            return f"{path}=module:{obj.__name__}"
        return f"{path}={self._global(globs, path, obj)}"

    def _global(self, globs: dict, path: str, v) -> str:
        key = ("global", id(globs), path)
        got = self._cache.get(key)
        if got is not None:
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        return self._memo(key, (globs, v), lambda: self._global_text(path, v))

    def _global_text(self, path: str, v) -> str:
        self._culprit = None
        try:
            got = self._plain(v)
        except Exception:  # nested too deep to walk, an attribute that raises ...
            got, self._culprit = None, v
        if got is not None:
            return got
        self._frames[-1].reasons.append(_cannot("global", path, v, self._culprit))
        return f"opaque:{typename(v)}"


def _sunder(name: str) -> bool:
    """``_name_``: enum's own bookkeeping (its members are checked by value)."""
    return len(name) > 2 and name[0] == "_" and name[-1] == "_" and name[1] != "_"


def _cannot(what: str, path: str, v, culprit) -> str:
    """Why a task always reruns, as ``inspect`` shows it."""
    text = f"{what} {path} ({typename(v)}) cannot be hashed"
    if culprit is not None and culprit is not v:
        text += f": it holds a {typename(culprit)}"
    return text
