"""What delivery="transfer" ships: the modules the payloads name, their
packages and dependencies, zipped.

Data
    In: a :class:`~dask_condordag.plan.Plan` (its tasks' expressions and large
    constants) and the ``assume_installed`` / ``packages`` options. Out: the
    modules the payloads refer to by name (:func:`referenced_modules`), the
    top-level packages and distributions that provide them
    (:func:`packages_for`), and the bytes of ``bin/packages.zip`` with the
    names it ships (:func:`build_zip`).

Policy
    * Modules are found the way the execute node would need them: each
      distinct function and non-scalar literal is pickled once with a
      cloudpickle pickler that records every module an object is pickled *by
      reference* from (classes, functions, modules, the types of other
      objects). Objects pickled by value (``__main__``, the user's own code,
      ``by_value``) bring their code along and name no module. An object
      that cannot be pickled is not silently skipped: it is returned, and
      the manifest records it for ``doctor`` to report.
    * cloudpickle always ships (the worker may need it for results). The
      standard library, the interpreter's own modules and ``assume_installed``
      (import or distribution names) never do. Each package's required
      distributions (from its metadata; extras left out, markers evaluated)
      follow.
    * Pure Python only: a package with compiled extensions is refused, named,
      with what to do instead -- unless its extensions are optional
      speed-ups (:data:`OPTIONAL_EXTENSIONS`), which are left out.
    * The zip is built in memory with fixed dates and modes: the same
      packages give the same bytes, and nothing is written outside the
      workflow directory.

Example::

    >>> "cloudpickle" in packages_for(set())[0]
    True
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import os
import pickle
import re
import sys
import types
import zipfile
from importlib import metadata

import cloudpickle

from . import names
from ._compat import should_pickle_by_reference
from .exceptions import PlanError
from .tokens import SCALARS

__all__ = ["referenced_modules", "packages_for", "build_zip", "module_spec",
           "OPTIONAL_EXTENSIONS"]

#: packages whose compiled extensions are optional speed-ups with a pure-Python
#: fallback: shipped without the extension files
OPTIONAL_EXTENSIONS = frozenset({"yaml", "markupsafe", "msgpack", "simplejson", "wrapt",
                                 "pyrsistent", "tornado"})
#: never shipped: the worker shim is standard library only, and these are
#: the interpreter's own
_NEVER = frozenset({"__main__", "builtins", "__builtin__", "_frozen_importlib"})


# --------------------------------------------------------------------------- modules named


class _Recorder:
    """Collects the modules a pickle refers to by name (classes, functions,
    modules, and the types of other objects), and the objects that could
    not be pickled."""

    def __init__(self):
        found = self.found = set()
        self.failed: list = []
        by_ref = should_pickle_by_reference

        def by_reference(obj) -> bool:
            if by_ref is None:  # another cloudpickle: assume by name unless registered
                mod = getattr(obj, "__module__", None)
                return mod != "__main__" and mod not in cloudpickle.list_registry_pickle_by_value()
            try:
                return by_ref(obj)
            except Exception:  # noqa: BLE001 - when in doubt, ship its module
                return True

        class P(cloudpickle.Pickler):
            def reducer_override(self, obj):
                if isinstance(obj, types.ModuleType):
                    if by_reference(obj):
                        found.add(obj.__name__)
                elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
                    mod = getattr(obj, "__module__", None)
                    if isinstance(mod, str) and by_reference(obj):
                        found.add(mod)
                else:
                    if by_reference(type(obj)):
                        found.add(type(obj).__module__)
                return super().reducer_override(obj)

        self._cls = P

    def add(self, obj, where: str) -> None:
        try:
            self._cls(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        except Exception as e:  # noqa: BLE001 - recorded: the manifest and doctor say so
            what = getattr(obj, "__qualname__", None) or f"a {type(obj).__qualname__}"
            self.failed.append(f"{where}: {what} ({type(e).__name__}: {e})")


def referenced_modules(plan) -> tuple[set, list]:
    """The modules the plan's payloads (and large constants) refer to by
    name, and the objects that could not be pickled to find out (one line
    each, naming the key): the modules those name are unknown.

    Call it where write pickles payloads (the same by-value registrations
    apply). Each distinct function and literal is pickled once.
    """
    rec = _Recorder()
    seen: set = set()

    def value(v, where):
        if type(v) in SCALARS:
            return
        if type(v) in (list, tuple, set, frozenset):
            for x in v:
                value(x, where)
            return
        if type(v) is dict:
            for k, x in v.items():
                value(k, where)
                value(x, where)
            return
        if id(v) in seen:
            return
        seen.add(id(v))
        rec.add(v, where)

    def walk(e, where):
        tag = e[0]
        if tag == names.LIT:
            value(e[1], where)
        elif tag == names.CALL:
            value(e[1], where)
            for a in e[2]:
                walk(a, where)
            for _, a in e[3]:
                walk(a, where)
        elif tag == names.BUILD:
            value(e[1], where)
            for a in e[2]:
                walk(a, where)
        elif tag == names.DICT:
            for k, a in e[1]:
                walk(k, where)
                walk(a, where)

    for node in plan.nodes.values():
        for t in node.tasks:
            walk(t.expr, f"key {t.key!r}")
    for d in plan.data.values():
        value(d.value, f"the constant of key {d.key!r}")
    return rec.found, rec.failed


# --------------------------------------------------------------------------- packages


def _is_stdlib(name: str) -> bool:
    return name in sys.stdlib_module_names or name in sys.builtin_module_names


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _requires(dist) -> list:
    """Names of the distributions ``dist`` needs (markers evaluated, no extras)."""
    out = []
    for req in dist.requires or ():
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if not name:
            continue
        marker = req.split(";", 1)[1] if ";" in req else ""
        if marker:
            if "extra" in marker:
                continue
            try:
                from packaging.markers import Marker  # optional: not a dependency of ours

                if not Marker(marker).evaluate({"extra": ""}):
                    continue
            except Exception:  # noqa: BLE001 - no packaging, or a marker it cannot read: ship it
                pass
        out.append(name.group(1))
    return out


def _tops_of(dist) -> list:
    """Top-level import names a distribution installs."""
    top = dist.read_text("top_level.txt")
    if top:
        return [t for t in top.split() if t.isidentifier()]
    out = []
    for f in dist.files or ():
        parts = f.parts
        if not parts or parts[0].startswith("..") or parts[0].endswith((".dist-info", ".egg-info")):
            continue
        first = parts[0]
        if len(parts) == 1:
            if first.endswith(".py"):
                out.append(first[:-3])
        elif first.isidentifier() and first != "__pycache__":
            out.append(first)
    return list(dict.fromkeys(out))


def packages_for(modules, *, assume_installed=(), extra=()) -> tuple[list, list]:
    """The top-level packages to ship for ``modules`` (and the distributions
    whose metadata to ship): cloudpickle, each module's top-level package and
    its distributions' required distributions, minus the standard library and
    ``assume_installed`` (import or distribution names)."""
    assumed = {a.split(".")[0] for a in assume_installed} | {_norm(a) for a in assume_installed}
    dmap = metadata.packages_distributions()
    tops: dict = {}
    dists: dict = {}
    todo = [m.split(".")[0] for m in ["cloudpickle", *extra, *sorted(modules)]]
    dist_todo: list = []
    while todo or dist_todo:
        while todo:
            top = todo.pop(0)
            if not top or top in tops or top in _NEVER or top in assumed or _is_stdlib(top):
                continue
            tops[top] = None
            for dn in dmap.get(top, ()):
                if _norm(dn) not in dists and _norm(dn) not in assumed:
                    dist_todo.append(dn)
        while dist_todo:
            dn = dist_todo.pop(0)
            if _norm(dn) in dists or _norm(dn) in assumed:
                continue
            try:
                dist = metadata.distribution(dn)
            except metadata.PackageNotFoundError:
                continue
            dists[_norm(dn)] = dist
            todo.extend(t for t in _tops_of(dist) if t not in tops)
            dist_todo.extend(_requires(dist))
    return list(tops), list(dists.values())


# --------------------------------------------------------------------------- the zip

_EXT = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".so", ".pyd", ".dylib")


def module_spec(top: str):
    """The import spec of a top-level module here, or None."""
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def _package_files(top: str):
    """(files: [(path, arcname)], compiled: [arcname]) of an importable top-level
    module or package, or None when it cannot be found here."""
    spec = module_spec(top)
    if spec is None:
        return None
    files, compiled = [], []
    locs = list(spec.submodule_search_locations or ())
    if locs:
        for loc in locs:  # namespace packages have several
            if not os.path.isdir(loc):
                return None  # zipped or otherwise unusual: cannot copy it
            for root, dirs, fnames in os.walk(loc):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for fn in sorted(fnames):
                    if fn.endswith((".pyc", ".pyo")):
                        continue
                    p = os.path.join(root, fn)
                    arc = top + "/" + os.path.relpath(p, loc).replace(os.sep, "/")
                    (compiled if fn.endswith(_EXT) else files).append((p, arc))
    else:
        origin = spec.origin or ""
        if not os.path.isfile(origin):
            return None
        arc = os.path.basename(origin)
        (compiled if origin.endswith(_EXT) else files).append((origin, arc))
    return files, [a for _, a in compiled]


def _zip_bytes(entries: dict) -> bytes:
    """A zip of ``{arcname: source file}``, deterministic: sorted, fixed
    dates and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, src in sorted(entries.items()):
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(src, "rb") as f:
                z.writestr(info, f.read())
    return buf.getvalue()


def _refuse_compiled(refused: list) -> None:
    lines = "; ".join(f"{t!r} (e.g. {c})" for t, c in refused)
    raise PlanError(
        "delivery='transfer' ships pure-Python packages only, and the payloads need "
        f"packages with compiled extensions: {lines}. If the execute nodes' python3 has "
        f"them installed, say so with assume_installed={[t for t, _ in refused]!r}; "
        "otherwise use delivery='container' with an image that has them, or "
        "delivery='shared' on a pool with a shared software area")


def _metadata_files(dists) -> dict:
    """The metadata files of ``dists`` worth shipping: ``{arcname: source}``."""
    out = {}
    for dist in dists:
        for f in dist.files or ():
            if f.parts and f.parts[0].endswith(".dist-info") and f.name in (
                    "METADATA", "top_level.txt", "entry_points.txt"):
                src = dist.locate_file(f)
                if os.path.isfile(src):
                    out["/".join(f.parts)] = str(src)
    return out


def build_zip(modules, *, assume_installed=(), packages=()) -> tuple[bytes, tuple]:
    """The bytes of ``bin/packages.zip`` for ``modules`` and the top-level
    names it ships. PlanError names a package that cannot be shipped."""
    tops, dists = packages_for(modules, assume_installed=assume_installed, extra=packages)
    entries: dict = {}
    refused = []
    for top in tops:
        got = _package_files(top)
        if got is None:
            if top in packages or top == "cloudpickle":
                raise PlanError(
                    f"delivery='transfer': the package {top!r} cannot be found (or is not a "
                    "plain directory) on this machine, so it cannot go into "
                    f"{names.PACKAGES_ZIP}; install it here, or list it in assume_installed= "
                    "if the execute nodes have it")
            continue  # a module name with nothing importable behind it
        files, compiled = got
        if compiled and top not in OPTIONAL_EXTENSIONS:
            refused.append((top, compiled[0]))
            continue
        for src, arc in files:
            entries[arc] = src
    if refused:
        _refuse_compiled(refused)
    entries.update(_metadata_files(dists))
    shipped = tuple(sorted(t for t in tops if any(a.split("/")[0] in (t, t + ".py")
                                                  for a in entries)))
    return _zip_bytes(entries), shipped
