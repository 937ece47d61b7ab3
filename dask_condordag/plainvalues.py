"""Tokens of plain values: what a global, a default or a closure cell holds.

Data
    In: a value. Out: a text that stands for it deterministically (the
    ``Tokenizer`` hashes it), or None when it cannot be hashed
    deterministically -- then ``_culprit`` names the part that cannot.

Policy
    * scalars by ``repr``; tuples, lists, dicts, sets (sorted) item by item,
      a container that holds itself once; enum members, named tuples and
      dataclass instances field by field; subclasses of the builtin types
      (``defaultdict`` ...) with their factory and ``__dict__``;
    * numpy arrays, scalars and dtypes by dask's ``tokenize`` (not object
      arrays); dates, ``Decimal``, ``Fraction``, paths, UUIDs, addresses,
      ranges, typing objects by ``repr``; compiled patterns by pattern and
      flags; a logger by its name; functions, classes, methods by the
      ``Tokenizer``'s rules; modules and installed objects by name;
    * anything else only where dask's ``normalize_token`` has its own
      deterministic rule for its type (pandas, pyarrow ...), never dask's
      pickle fallback: an arbitrary object cannot be hashed.

Example::

    >>> from dask_condordag.tokens import Tokenizer
    >>> Tokenizer()._plain({"b": [1, 2.0], "a": None})
    "dict(str:'b'=list(int:1,float:2.0),str:'a'=NoneType:None)"
"""

from __future__ import annotations

import functools
import sys
import types

from dask.base import tokenize
from dask.tokenize import normalize_object, normalize_token

from .usercode import installed_name

__all__ = ["SCALARS", "PlainValues", "typename"]

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


class PlainValues:
    """The ``Tokenizer``'s rules for plain values (a base class of it, which
    gives ``func``, ``cls``, ``_walking`` and ``_culprit``)."""

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
            return f"{typename(v)}:{v!r}"
        if t.__module__ == "re" and t.__name__ == "Pattern":
            return f"re:{v.pattern!r}:{v.flags}"
        logging = sys.modules.get("logging")
        if logging is not None and isinstance(v, (logging.Logger, logging.LoggerAdapter)):
            return f"logger:{getattr(v, 'name', None) or v.logger.name}"
        wrapped = getattr(v, "__wrapped__", None)  # functools.lru_cache, wraps(...)
        if isinstance(wrapped, types.FunctionType):
            return f"wrapped:{typename(v)}({self.func(wrapped)})"
        name = installed_name(v)  # a Cython function, a ufunc ... of an installed package
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


def typename(v) -> str:
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
