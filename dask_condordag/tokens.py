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
      (:func:`is_user_code`): its module and qualified name, its bytecode and
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
        whichever of them was met first (see ``Tokenizer._memo``);
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

Example::

    >>> value_token(3) == value_token(3), value_token(3) == value_token(3.0)
    (True, False)
    >>> tok = Tokenizer()
    >>> tok.value({"scale": 3}) == Tokenizer().value({"scale": 3}), tok.take_reasons()
    (True, ())
"""

from __future__ import annotations

import dis
import functools
import hashlib
import os
import secrets
import sys
import sysconfig
import types

__all__ = ["Tokenizer", "value_token", "sha", "user_modules", "is_user_code", "SCALARS"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes)
#: the plain scalar types: tokens write their repr, plan never measures them,
#: delivery never pickles them to look for modules (the one definition)
SCALARS = _SCALAR_SET = frozenset(_SCALARS)
_CONTAINERS = frozenset({tuple, list, dict, set, frozenset})
_BUILTIN_BASES = (int, float, complex, str, bytes, tuple, list, dict, set, frozenset)
# standard types whose repr is their whole value (dask's tokenize agrees)
# (and typing's objects: annotations evaluated at run time)
_REPR_MODULES = frozenset({"datetime", "decimal", "_decimal", "_pydecimal", "fractions",
                           "pathlib", "uuid", "ipaddress", "typing"})
_REPR_TYPES = frozenset({range, types.GenericAlias, getattr(types, "UnionType", range)})
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


class _Frame:
    """One object being tokenized: why it cannot be compared (``reasons``),
    and the smallest index of an unfinished object it reached (``low``)."""

    __slots__ = ("reasons", "low", "members")

    def __init__(self, index: int):
        self.reasons: list = []
        self.low = index
        self.members: list = []  # (key, object, compute) of unfinished cycle members


class Tokenizer:
    """Tokens for one compile, cached per object (see the module docstring).

    The cache keeps a reference to each object so that ``id`` stays unique.
    ``nonce``: mixed into every token that depends on a value that cannot be
    hashed; random by default (such a token matches nothing from another
    compile), ``""`` for tokens that are the same in every process (plan
    names the default workflow folder with those).
    """

    def __init__(self, nonce: str | None = None):
        self._nonce = secrets.token_hex(16) if nonce is None else nonce
        self._cache: dict = {}  # key -> (kept object, token, reasons)
        self._active: dict = {}  # key -> index, for the objects being tokenized now
        self._open: dict = {}  # key -> index, for finished members of unfinished cycles
        self._counter = 0  # the last index given (see _memo)
        self._frames: list = [_Frame(0)]  # [0]: for the caller, see take_reasons
        self._walking: set = set()  # ids of containers being walked (cycles)
        self._culprit = None  # the value _plain could not hash
        self._scc = None  # key -> label while _close_cycle recomputes a cycle

    def take_reasons(self) -> tuple:
        """Why what was tokenized since the last call always reruns (empty:
        nothing that cannot be hashed was met), and start afresh."""
        frame = self._frames[0]
        if not frame.reasons:
            return ()
        out = tuple(dict.fromkeys(frame.reasons))
        frame.reasons = []
        return out

    def _memo(self, key, keep, compute) -> str:
        """The token of ``keep`` (cached under ``key``), ``compute()`` giving
        its text. Reasons found on the way pass to the caller's frame.

        Cycles are found as Tarjan's algorithm finds strongly connected
        components: each object gets an index when it is first met; ``low`` is
        the smallest index of an unfinished object reached from it. An object
        whose ``low`` is below its own index is part of a cycle through an
        object still being tokenized: it stays *open* (not cached, its text
        unused) until that cycle's first object (its root) is done; then
        ``_close_cycle`` gives every member its token."""
        got = self._cache.get(key)
        if got is not None:
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        if self._scc is not None and key in self._scc:  # see _close_cycle
            return "scc:" + self._scc[key]
        index = self._active.get(key)
        if index is None:
            index = self._open.get(key)
        if index is not None:  # a cycle: named here, _close_cycle covers it
            frame = self._frames[-1]
            if index < frame.low:
                frame.low = index
            return "cycle:" + _label(key, keep)
        self._counter += 1
        index = self._counter
        frame = _Frame(index)
        self._active[key] = index
        self._frames.append(frame)
        try:
            text = compute()
        finally:
            self._frames.pop()
            del self._active[key]
        reasons = tuple(dict.fromkeys(frame.reasons)) if frame.reasons else ()
        caller = self._frames[-1]
        if reasons:
            caller.reasons.extend(reasons)
        if frame.low < index:  # open: part of a cycle through an unfinished caller
            self._open[key] = index
            caller.members.append((key, keep, compute))
            caller.members.extend(frame.members)
            if frame.low < caller.low:
                caller.low = frame.low
            return "open:" + _label(key, keep)
        if frame.members:  # the root of a cycle
            return self._close_cycle([(key, keep, compute), *frame.members], reasons)
        token = self._token(text, reasons)
        self._cache[key] = (keep, token, reasons)
        return token

    def _token(self, text: str, reasons: tuple) -> str:
        token = sha(text)[:32]
        if reasons and self._nonce:
            token = sha(token + self._nonce)[:32]
        return token

    def _close_cycle(self, members: list, reasons: tuple) -> str:
        """Tokens for the objects of one cycle (a strongly connected component:
        functions that call each other, a class and the methods that name it),
        the same whichever of them was met first: each one's text with the
        others (and itself) by label, sorted, make the cycle's token; each
        member's token is that and its own text. Returns the first member's."""
        members = list({key: (key, keep, compute) for key, keep, compute in members}.values())
        labels = {key: _label(key, keep) for key, keep, _ in members}
        for key in labels:
            self._open.pop(key, None)
        self._scc = labels
        try:
            texts = []
            for key, keep, compute in members:
                self._frames.append(_Frame(0))  # (the reasons are known already)
                try:
                    texts.append(compute())
                finally:
                    self._frames.pop()
        finally:
            self._scc = None
        whole = sha("|".join(sorted(texts)))
        out = None
        for (key, keep, _), text in zip(members, texts):
            token = self._token(f"cycle({whole};{labels[key]};{text})", reasons)
            self._cache[key] = (keep, token, reasons)
            out = out or token
        return out

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
            kind = self.cls(kind) if _in_user_module(kind) else _qualname(kind)
            return f"method({self.func(f.__func__)};{kind};{self._value(owner)})"
        if isinstance(f, types.FunctionType):
            if not is_user_code(f):  # installed library code: its name says it
                return _qualname(f)
            parts = [_qualname(f), self._code(f.__code__, f.__globals__)]
            owner = _owner_class(f)
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
            return _qualname(f)
        if hasattr(f, "__dask_tokenize__"):
            from dask.base import tokenize

            return f"obj({tokenize(f)})"
        from dask.base import tokenize

        return f"obj({_qualname(type(f))};{tokenize(f)})"

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
        from dask.base import tokenize

        if t.__module__ == "fsspec.core" and t.__qualname__ == "OpenFile":
            return f"fsspec.OpenFile:{tokenize(value)}:{_file_state(value)}"
        if _in_user_module(t):  # an instance of the user's class: its methods count
            return f"{self.cls(t)}:{tokenize(value)}"
        return f"{t.__module__}.{t.__qualname__}:{tokenize(value)}"

    _value = value

    # ------------------------------------------------------------ classes
    def cls(self, c) -> str:
        """A class: by name if installed, else by its content (module docstring)."""
        if not is_user_code(c):
            return _qualname(c)
        got = self._cache.get(id(c))
        if got is not None:
            if got[2]:
                self._frames[-1].reasons.extend(got[2])
            return got[1]
        return self._memo(id(c), c, lambda: self._class(c))

    def _class(self, c) -> str:
        parts = [_qualname(c)]
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
            return f"descriptor:{_qualname(t)}"
        self._frames[-1].reasons.append(_cannot("class attribute", f"{_qualname(c)}.{name}",
                                                v, self._culprit))
        return f"opaque:{_typename(v)}"

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
               and _is_user_module(obj.__name__, obj)):
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
        return f"opaque:{_typename(v)}"

    def _plain(self, v):
        """The token of a global's value, or None when it cannot be hashed
        deterministically (``self._culprit``: the part that cannot)."""
        t = type(v)
        if t in _SCALAR_SET:
            return f"{t.__name__}:{v!r}"
        if t in _CONTAINERS:
            return self._container(v, t)
        if t is types.FunctionType or t is functools.partial:
            return self.func(v)
        if isinstance(v, type):
            return self.cls(v)
        if t is types.MethodType:
            owner = self._plain(v.__self__)
            return None if owner is None else f"method({self.func(v.__func__)};{owner})"
        if t is types.BuiltinFunctionType:  # also a C method bound to its object
            owner = v.__self__
            if owner is None or isinstance(owner, (types.ModuleType, type)):
                return f"builtin:{getattr(owner, '__name__', '')}.{v.__name__}"
            owner = self._plain(owner)
            return None if owner is None else f"builtin:{v.__name__}({owner})"
        if t is types.ModuleType:
            return f"module:{v.__name__}"
        return self._plain_object(v, t)

    def _plain_object(self, v, t):
        enum = sys.modules.get("enum")
        if enum is not None and isinstance(v, enum.Enum):
            return f"enum:{self.cls(t)}.{v.name}"
        np = sys.modules.get("numpy")
        if np is not None and isinstance(v, (np.ndarray, np.generic, np.dtype)):
            if getattr(v, "dtype", v) == object:  # object arrays: any object inside
                self._culprit = v
                return None
            from dask.base import tokenize

            return f"numpy:{tokenize(v)}"
        if isinstance(v, tuple) and hasattr(t, "_fields"):  # a named tuple
            items = self._container(tuple(v), tuple)
            return None if items is None else f"namedtuple:{self.cls(t)}{items}"
        fields = getattr(t, "__dataclass_fields__", None)
        if fields is not None and not isinstance(v, type):
            values = self._container({f: getattr(v, f, None) for f in fields}, dict)
            return None if values is None else f"dataclass:{self.cls(t)}{values}"
        for base in _BUILTIN_BASES:  # a subclass of int, str, dict ... (e.g. defaultdict)
            if isinstance(v, base):
                return self._subclassed(v, t, base)
        if t is types.MappingProxyType:
            return self._container(dict(v), dict)
        if str(t.__module__).split(".")[0] in _REPR_MODULES or t in _REPR_TYPES:
            return f"{_typename(v)}:{v!r}"
        if t.__module__ == "re" and t.__name__ == "Pattern":
            return f"re:{v.pattern!r}:{v.flags}"
        logging = sys.modules.get("logging")
        if logging is not None and isinstance(v, (logging.Logger, logging.LoggerAdapter)):
            return f"logger:{getattr(v, 'name', None) or v.logger.name}"
        wrapped = getattr(v, "__wrapped__", None)  # functools.lru_cache, wraps(...)
        if isinstance(wrapped, types.FunctionType):
            return f"wrapped:{_typename(v)}({self.func(wrapped)})"
        name = _installed_name(v)  # a Cython function, a ufunc ... of an installed package
        if name is not None:
            return "ref:" + name
        return self._dask_token(v, t)

    def _subclassed(self, v, t, base):
        if base in _SCALAR_SET:
            core = base.__repr__(v)
        else:
            core = self._container(base(v), base)
            if core is None:
                return None
        extra = ""
        factory = getattr(v, "default_factory", None)  # collections.defaultdict
        if factory is not None:
            extra = self._plain(factory)
            if extra is None:
                return None
        attrs = getattr(v, "__dict__", None)
        if attrs:
            attrs = self._container(attrs, dict)
            if attrs is None:
                return None
            extra += attrs
        return f"{self.cls(t)}:{core}{extra}"

    def _dask_token(self, v, t):
        """dask's tokenize, for types it has its own deterministic rule for
        (pandas, pyarrow ...; not its pickle fallback for any object)."""
        from dask.tokenize import normalize_object, normalize_token, tokenize

        try:
            if normalize_token.dispatch(t) is not normalize_object:
                return f"dask:{tokenize(v, ensure_deterministic=True)}"
        except Exception:  # dask says it cannot be deterministic
            pass
        self._culprit = v
        return None

    def _container(self, v, t):
        if id(v) in self._walking:  # it contains itself
            return "cycle"
        self._walking.add(id(v))
        try:
            plain = self._plain
            if t is dict:
                parts = []
                for k, x in v.items():
                    a = plain(k)
                    b = None if a is None else plain(x)
                    if b is None:
                        return None
                    parts.append(f"{a}={b}")
            else:
                parts = list(map(plain, v))
                if None in parts:
                    return None
                if t is set or t is frozenset:
                    parts.sort()
            return f"{t.__name__}({','.join(parts)})"
        finally:
            self._walking.discard(id(v))


def _label(key, keep) -> str:
    """How a member of a cycle is named inside the others' texts."""
    if type(key) is int:
        return _qualname(keep)
    if key[0] == "code":
        return "code:" + keep[0].co_name
    return f"{key[0]}:{key[-1]}"


def _in_user_module(c) -> bool:
    """Is class ``c`` from an imported module of the user's own?"""
    name = getattr(c, "__module__", None)
    mod = sys.modules.get(name) if isinstance(name, str) else None
    return mod is not None and _is_user_module(name, mod)


def _owner_class(f):
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


def _installed_name(v):
    """``module.qualname`` when ``v`` is what that name of an installed
    module holds (not the user's own module), else None."""
    mod = getattr(v, "__module__", None)
    name = getattr(v, "__qualname__", None) or getattr(v, "__name__", None)
    if not isinstance(mod, str) or not isinstance(name, str):
        return None
    obj = sys.modules.get(mod)
    if obj is None or _is_user_module(mod, obj):
        return None
    for part in name.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return None
    return f"{mod}.{name}" if obj is v else None


def _sunder(name: str) -> bool:
    """``_name_``: enum's own bookkeeping (its members are checked by value)."""
    return len(name) > 2 and name[0] == "_" and name[-1] == "_" and name[1] != "_"


def _typename(v) -> str:
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _cannot(what: str, path: str, v, culprit) -> str:
    """Why a task always reruns, as ``inspect`` shows it."""
    text = f"{what} {path} ({_typename(v)}) cannot be hashed"
    if culprit is not None and culprit is not v:
        text += f": it holds a {_typename(culprit)}"
    return text


# ------------------------------------------------------------ reading bytecode
_OP = dis.opmap
_LOAD_GLOBAL = _OP["LOAD_GLOBAL"]
_GLOBAL_OPS = {_OP[n]: 0 for n in ("LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS") if n in _OP}
_GLOBAL_OPS[_LOAD_GLOBAL] = 1 if sys.version_info >= (3, 11) else 0  # low bit: push NULL
_ATTR_OPS = {_OP["LOAD_ATTR"]: 1 if sys.version_info >= (3, 12) else 0}  # low bit: method
if "LOAD_METHOD" in _OP and _OP["LOAD_METHOD"] < 256:  # 3.11 and older (pseudo-op later)
    _ATTR_OPS[_OP["LOAD_METHOD"]] = 0
_EXTENDED_ARG = _OP["EXTENDED_ARG"]
_CACHE = _OP.get("CACHE", -1)
_KNOWN_LAYOUT = sys.version_info < (3, 15)  # the arguments above are checked up to 3.14


def global_reads(code: types.CodeType) -> list:
    """The globals ``code`` itself loads (not its nested code), each as a
    tuple: the name, then the attributes loaded from it in a row
    (``mod.sub.NAME`` -> ``("mod", "sub", "NAME")``), in order.

    Reads the bytecode directly (``dis.get_instructions`` costs ~300 us per
    function); ``tests/test_tokens_globals.py`` checks it against ``dis``.
    """
    if not _KNOWN_LAYOUT:
        return _global_reads_dis(code)
    names = code.co_names
    raw = code.co_code
    out = []
    chain = None
    ext = 0
    try:
        for i in range(0, len(raw), 2):
            op = raw[i]
            if op == _CACHE:
                continue
            arg = raw[i + 1] | ext
            if op == _EXTENDED_ARG:
                ext = arg << 8
                continue
            ext = 0
            shift = _GLOBAL_OPS.get(op)
            if shift is not None:
                chain = [names[arg >> shift]]
                out.append(chain)
                continue
            shift = _ATTR_OPS.get(op)
            if shift is not None and chain is not None:
                chain.append(names[arg >> shift])
                continue
            chain = None
    except IndexError:  # a layout this reader does not know: every name counts
        return [(n,) for n in names]
    return [tuple(c) for c in out]


def _global_reads_dis(code: types.CodeType) -> list:
    out = []
    chain = None
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"):
            chain = [ins.argval]
            out.append(chain)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and chain is not None:
            chain.append(ins.argval)
        else:
            chain = None
    return [tuple(c) for c in out]


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
