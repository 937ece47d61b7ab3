r"""How the worker and the user's code reach the execute node, and a preflight.

Data
    In: the delivery options (``delivery``, ``worker_python``,
    ``container_image``, ``assume_installed``, ``packages``, ``by_value``,
    ``shared_filesystem``) and, for ``transfer``, the plan's tasks. Out: the
    submit commands of the chosen mode (``submit_commands``), the files it adds
    to the workflow directory (``stage_files``: ``bin/packages.zip`` and
    ``bin/dask_condordag_boot.py``), and :func:`doctor`'s report.

Modes (chosen explicitly; README "Getting code to the execute node")
    * ``shared`` (default): the submitting interpreter by absolute path,
      ``transfer_executable = false``; for pools whose execute nodes see the
      same software area (the interpreter and its site-packages).
    * ``transfer``: the execute node's own ``python3`` (an absolute path,
      ``worker_python``, default ``/usr/bin/python3``: a job may start with an
      empty PATH) runs a small boot script that unpacks ``bin/packages.zip``
      into the job's scratch directory, puts it first on ``sys.path`` and runs
      the worker shim. The zip holds cloudpickle and every package the
      payloads reference by name, with their pure-Python dependencies
      (from the packages' metadata). A zip on PYTHONPATH alone is not enough:
      dask reads ``dask/dask.yaml`` with ``open()`` at import and fails from a
      zip (checked with dask 2026.8), so the boot script unpacks it.
      Packages with compiled extensions are refused (named) unless
      ``assume_installed`` lists them; a few whose extensions are optional
      accelerators (PyYAML, MarkupSafe, msgpack, ...) are shipped without them.
    * ``container``: ``universe = container`` with ``container_image``; the
      image's interpreter by absolute path (``worker_python``, default
      ``/usr/local/bin/python3``, where the official ``python`` images put it),
      ``transfer_executable = false`` (HTCondor manual, docker universe: "the
      executable ... from within the container's image ... set
      transfer_executable to false"). The manual: "universe can either be
      optionally set to container or not declared at all. If universe is
      declared and set to anything but container then the job submission will
      fail" -- so ``vanilla`` is never written with an image.

    ``shared_filesystem=True`` writes ``should_transfer_files = IF_NEEDED``
    (manual, file-transfer.rst: files move only when the job runs in another
    ``FileSystemDomain``; in the same one the job runs in its initial working
    directory -- the workflow directory, where DAGMan submits from -- and the
    worker reads ``nodes/`` and writes ``results/`` there directly). The
    transfer lists stay, so the same workflow still runs on a machine of
    another domain.

Example::

    >>> d = Delivery(mode="transfer")
    >>> dict(submit_commands(d, "/opt/py/bin/python"))["executable"]
    '/usr/bin/python3'
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import names
from .exceptions import CondorDagError, PlanError
from .render import WORKER_ARGS

__all__ = ["MODES", "Delivery", "make_delivery", "from_options", "submit_commands", "stage_files",
           "referenced_modules", "packages_for", "by_value_modules", "DoctorReport", "doctor", "ZIP", "BOOT"]

MODES = ("shared", "transfer", "container")
ZIP = f"{names.BIN_DIR}/packages.zip"
BOOT = f"{names.BIN_DIR}/dask_condordag_boot.py"
DEFAULT_PYTHON = {"transfer": "/usr/bin/python3", "container": "/usr/local/bin/python3"}

#: packages whose compiled extensions are optional speed-ups with a pure-Python
#: fallback: shipped without the extension files
OPTIONAL_EXTENSIONS = frozenset({"yaml", "markupsafe", "msgpack", "simplejson", "wrapt",
                                 "pyrsistent", "tornado"})
#: never shipped: the worker shim is standard library only, and these are
#: the interpreter's own
_NEVER = frozenset({"__main__", "builtins", "__builtin__", "_frozen_importlib"})


@dataclass(frozen=True)
class Delivery:
    """The resolved delivery options (see the module docstring)."""

    mode: str = "shared"
    worker_python: str | None = None
    container_image: str | None = None
    assume_installed: tuple = ()
    packages: tuple = ()
    by_value: tuple = ()
    shared_filesystem: bool = False
    #: filled by stage_files: the top-level packages in bin/packages.zip
    shipped: tuple = field(default=(), compare=False)

    def interpreter(self, submit_python: str) -> str:
        if self.worker_python:
            return self.worker_python
        return DEFAULT_PYTHON.get(self.mode, submit_python)

    def describe(self) -> dict:
        """What the manifest records (doctor reads it back)."""
        return {"mode": self.mode, "worker_python": self.worker_python,
                "container_image": self.container_image,
                "assume_installed": list(self.assume_installed),
                "packages": list(self.packages), "by_value": list(self.by_value),
                "shared_filesystem": self.shared_filesystem,
                "shipped": list(self.shipped)}


def _names(value, what: str) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, types.ModuleType):
        value = [value]
    out = []
    for v in value:
        if isinstance(v, types.ModuleType):
            v = v.__name__
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", v):
            raise CondorDagError(f"{what}: {v!r} is not a module or package name")
        out.append(v)
    return tuple(dict.fromkeys(out))


def from_options(opts) -> Delivery:
    """The :class:`Delivery` of resolved :class:`~dask_condordag.config.Options`."""
    return make_delivery(
        opts.delivery, worker_python=opts.worker_python,
        container_image=opts.container_image, assume_installed=opts.assume_installed,
        packages=opts.packages, by_value=opts.by_value,
        shared_filesystem=opts.shared_filesystem)


def make_delivery(delivery="shared", *, worker_python=None, container_image=None,
                  assume_installed=None, packages=None, by_value=None,
                  shared_filesystem=False) -> Delivery:
    """Check the delivery options and return a :class:`Delivery`."""
    delivery = delivery or "shared"
    if delivery not in MODES:
        raise CondorDagError(f"delivery={delivery!r} is not one of {MODES}")
    if worker_python is not None and (not isinstance(worker_python, str)
                                      or not worker_python.startswith("/")):
        raise CondorDagError(
            f"worker_python={worker_python!r}: give the interpreter on the execute node "
            "by absolute path (jobs may start with an empty PATH)")
    if delivery == "container":
        if not container_image or not isinstance(container_image, str):
            raise CondorDagError(
                "delivery='container' needs container_image= (docker://repo/image:tag, "
                "a .sif file or an image directory)")
        if any(c in container_image for c in "\n\r,"):
            raise CondorDagError(f"container_image={container_image!r} has a comma or line break")
    elif container_image:
        raise CondorDagError(
            f"container_image is given but delivery={delivery!r}; use delivery='container'")
    return Delivery(
        mode=delivery, worker_python=worker_python, container_image=container_image,
        assume_installed=_names(assume_installed, "assume_installed"),
        packages=_names(packages, "packages"), by_value=_names(by_value, "by_value"),
        shared_filesystem=bool(shared_filesystem))


def submit_commands(d: Delivery | None, submit_python: str) -> list:
    """The (command, value) pairs the mode sets in every submit description;
    ``render_submit`` puts them in place of its defaults."""
    d = d or Delivery()
    cmds = [("executable", d.interpreter(submit_python)), ("transfer_executable", "false")]
    if d.mode == "transfer":
        cmds += [
            ("arguments", f'"{BOOT} {WORKER_ARGS}"'),
            ("transfer_input_files", f"{names.WORKER},{BOOT},{ZIP},$(dcd_inputs)"),
            ("environment", '"PYTHONNOUSERSITE=1"'),
        ]
    elif d.mode == "container":
        cmds = [("universe", "container"), ("container_image", d.container_image)] + cmds
        cmds.append(("environment", '"PYTHONNOUSERSITE=1"'))
    if d.shared_filesystem:
        cmds.append(("should_transfer_files", "IF_NEEDED"))
    return cmds


# --------------------------------------------------------------------------- what to ship


class _Recorder:
    """Collects the modules a pickle refers to by name (classes, functions,
    modules, and the types of other objects)."""

    def __init__(self):
        import cloudpickle

        found = self.found = set()
        by_ref = getattr(cloudpickle.cloudpickle, "_should_pickle_by_reference", None)

        def by_reference(obj) -> bool:
            if by_ref is None:  # another cloudpickle: assume by name unless registered
                mod = getattr(obj, "__module__", None)
                return mod != "__main__" and mod not in cloudpickle.list_registry_pickle_by_value()
            try:
                return by_ref(obj)
            except Exception:  # noqa: BLE001
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

    def add(self, obj) -> None:
        try:
            self._cls(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        except Exception:  # write reports unpicklable objects itself
            pass


_ATOMS = (type(None), bool, int, float, complex, str, bytes)


def referenced_modules(plan) -> set:
    """Modules the plan's payloads (and large constants) refer to by name.

    Call it where write pickles payloads (the same by-value registrations
    apply). Each distinct function and literal is pickled once.
    """
    rec = _Recorder()
    seen: set = set()

    def value(v):
        if type(v) in _ATOMS:
            return
        if type(v) in (list, tuple, set, frozenset):
            for x in v:
                value(x)
            return
        if type(v) is dict:
            for k, x in v.items():
                value(k)
                value(x)
            return
        if id(v) in seen:
            return
        seen.add(id(v))
        rec.add(v)

    def walk(e):
        tag = e[0]
        if tag == 0:
            value(e[1])
        elif tag == 2:
            value(e[1])
            for a in e[2]:
                walk(a)
            for _, a in e[3]:
                walk(a)
        elif tag == 3:
            value(e[1])
            for a in e[2]:
                walk(a)
        elif tag == 4:
            for k, a in e[1]:
                walk(k)
                walk(a)

    for node in plan.nodes.values():
        for t in node.tasks:
            walk(t.expr)
    for d in plan.data.values():
        value(d.value)
    return rec.found


def _is_stdlib(name: str) -> bool:
    std = getattr(sys, "stdlib_module_names", None)
    if std is not None:
        return name in std or name in sys.builtin_module_names
    if name in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(name)
    origin = getattr(spec, "origin", None) or ""
    lib = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep
    return origin in ("built-in", "frozen") or (
        os.path.realpath(origin).startswith(lib) and "site-packages" not in origin)


def _dist_map() -> dict:
    from importlib import metadata

    try:
        return metadata.packages_distributions()
    except AttributeError:  # Python < 3.10
        out: dict = {}
        for dist in metadata.distributions():
            for top in (dist.read_text("top_level.txt") or "").split():
                out.setdefault(top, []).append(dist.metadata["Name"])
        return out


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
                from packaging.markers import Marker

                if not Marker(marker).evaluate({"extra": ""}):
                    continue
            except Exception:
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
    from importlib import metadata

    assumed = {a.split(".")[0] for a in assume_installed} | {_norm(a) for a in assume_installed}
    dmap = _dist_map()
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


_EXT = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".so", ".pyd", ".dylib")


def _spec(top: str):
    """The import spec of a top-level module here, or None."""
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def _package_files(top: str):
    """(files: [(path, arcname)], compiled: [arcname]) of an importable top-level
    module or package, or None when it cannot be found here."""
    spec = _spec(top)
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


def _write_zip(path: Path, entries) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, src in sorted(entries.items()):
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(src, "rb") as f:
                z.writestr(info, f.read())


def build_zip(path: Path, modules, d: Delivery) -> tuple:
    """Write ``bin/packages.zip`` for ``modules``; returns the shipped top-level names.
    PlanError names a package that cannot be shipped."""
    tops, dists = packages_for(modules, assume_installed=d.assume_installed, extra=d.packages)
    entries: dict = {}
    refused = []
    for top in tops:
        got = _package_files(top)
        if got is None:
            if top in d.packages or top == "cloudpickle":
                raise PlanError(
                    f"delivery='transfer': the package {top!r} cannot be found (or is not a "
                    "plain directory) on this machine, so it cannot go into "
                    f"{ZIP}; install it here, or list it in assume_installed= if the "
                    "execute nodes have it")
            continue  # a module name with nothing importable behind it
        files, compiled = got
        if compiled and top not in OPTIONAL_EXTENSIONS:
            refused.append((top, compiled[0]))
            continue
        for src, arc in files:
            entries[arc] = src
    if refused:
        lines = "; ".join(f"{t!r} (e.g. {c})" for t, c in refused)
        raise PlanError(
            "delivery='transfer' ships pure-Python packages only, and the payloads need "
            f"packages with compiled extensions: {lines}. If the execute nodes' python3 has "
            f"them installed, say so with assume_installed={[t for t, _ in refused]!r}; "
            "otherwise use delivery='container' with an image that has them, or "
            "delivery='shared' on a pool with a shared software area")
    for dist in dists:
        for f in dist.files or ():
            if f.parts and f.parts[0].endswith(".dist-info") and f.name in ("METADATA", "top_level.txt", "entry_points.txt"):
                src = dist.locate_file(f)
                if os.path.isfile(src):
                    entries["/".join(f.parts)] = str(src)
    _write_zip(path, entries)
    return tuple(sorted(t for t in tops if any(a.split("/")[0] in (t, t + ".py") for a in entries)))


BOOT_SOURCE = r'''"""dask-condordag boot (delivery='transfer'): unpack packages.zip, run the worker.

    python3 bin/dask_condordag_boot.py NODE [PROC]

Unpacks bin/packages.zip (the pure-Python packages the payloads need) into a
fresh directory under the job's scratch directory, puts it first on
sys.path and runs bin/dask_condordag_worker.py with the same arguments.
Packages are unpacked rather than imported from the zip because some read
their own data files with open() (dask reads dask/dask.yaml). Standard library
only; if unpacking fails the worker still runs and reports what it cannot import.
"""
import os
import runpy
import shutil
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ZIP = os.path.join(HERE, "packages.zip")
WORKER = os.path.join(HERE, "dask_condordag_worker.py")


def unpack():
    base = os.environ.get("_CONDOR_SCRATCH_DIR") or os.getcwd()
    target = tempfile.mkdtemp(prefix=".dcd-packages-", dir=base)
    with zipfile.ZipFile(ZIP) as z:
        z.extractall(target)
    return target


def main():
    target = None
    if os.path.exists(ZIP):
        try:
            target = unpack()
            sys.path.insert(0, target)
        except Exception as e:  # noqa: BLE001 - the worker reports what is missing
            sys.stderr.write("[dask-condordag boot] cannot unpack %s: %s: %s\n"
                             % (ZIP, type(e).__name__, e))
    else:
        sys.stderr.write("[dask-condordag boot] %s is missing\n" % ZIP)
    sys.argv = [WORKER] + sys.argv[1:]
    try:
        runpy.run_path(WORKER, run_name="__main__")
    finally:
        if target:
            shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    main()
'''


def by_value_modules(d: Delivery | None) -> set:
    """The ``by_value`` modules, imported (so that they can be registered with
    cloudpickle); PlanError names one that cannot be imported."""
    import importlib

    out = set()
    for name in (d.by_value if d else ()):
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001
            raise PlanError(f"by_value: cannot import {name!r} here: {type(e).__name__}: {e}") from e
        out.add(name)
    return out


def stage_files(plan, d: Delivery | None) -> tuple:
    """The mode's files for the workflow directory: ``(d with shipped set,
    {relative path: bytes})``. Call it inside write's by-value context."""
    d = d or Delivery()
    if d.mode != "transfer":
        return d, {}
    import dataclasses

    modules = referenced_modules(plan)
    with tempfile.TemporaryDirectory(prefix="condordag-zip-") as tmp:
        zpath = Path(tmp) / "packages.zip"
        shipped = build_zip(zpath, modules, d)
        data = zpath.read_bytes()
    return dataclasses.replace(d, shipped=shipped), {ZIP: data, BOOT: BOOT_SOURCE.encode()}


# --------------------------------------------------------------------------- doctor


@dataclass
class DoctorReport:
    """What :func:`doctor` found. ``ok`` is False when something would be
    missing on the execute node; ``notes`` are facts that do not block."""

    path: str
    node: str | None = None
    mode: str = "shared"
    python: str | None = None
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (f"doctor {self.path}: delivery={self.mode}, interpreter {self.python or '?'}"
                + (f", node {self.node}" if self.node else ""))
        lines = [head]
        for p in self.problems:
            lines.append(f"PROBLEM: {p}")
        for n in self.notes:
            lines.append(f"note: {n}")
        lines.append("OK: nothing missing for the node checked" if self.ok
                     else f"{len(self.problems)} problem(s): fix them before submitting")
        return "\n".join(lines)


_PROBE = r'''
import json, os, pickle, runpy, sys, traceback
mode, node, proc, pack = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = {"python": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable,
       "stage": "starting", "ok": False}
try:
    if mode == "transfer":
        out["stage"] = "unpacking bin/packages.zip"
        boot = runpy.run_path("bin/dask_condordag_boot.py", run_name="dcd_boot")
        if os.path.exists(boot["ZIP"]):
            sys.path.insert(0, boot["unpack"]())
    out["stage"] = "loading the worker shim"
    w = runpy.run_path("bin/dask_condordag_worker.py", run_name="dcd_worker")
    out["stage"] = "reading the payload"
    meta, body = w["read_payload"](node, pack)
    out["stage"] = "checking versions"
    w["check_versions"](meta)
    out["stage"] = "loading the payload"
    pickle.loads(body)
    for name, path in meta.get("inputs", {}).items():
        out["stage"] = "loading input %s" % (path,)
        for p in (path if isinstance(path, list) else [path]):
            w["read_value"](p)
    out["ok"] = True
except BaseException as e:
    out["exc_type"] = "%s.%s" % (type(e).__module__, type(e).__qualname__)
    out["message"] = str(e)
    out["module"] = getattr(e, "name", None) if isinstance(e, ImportError) else None
    out["traceback"] = traceback.format_exc()
sys.stdout.write("\n" + json.dumps(out) + "\n")
'''


def _pick_node(dag, wf: Path, node, submits: dict):
    """The node to check: ``node`` (a node name), else the first node without
    parents whose input files all exist."""
    from . import submitdesc

    def inputs(n):
        cmds = submitdesc.expand_for_proc(submits[n.submit], {**dict(n.vars), "JOB": n.name},
                                          cluster=1, process=0)
        return cmds, submitdesc.split_file_list(cmds.get("transfer_input_files", ""))

    if node is not None:
        if node not in dag.nodes:
            raise CondorDagError(f"{wf} has no DAG node {node!r}")
        return dag.nodes[node], inputs(dag.nodes[node])
    for n in dag.nodes.values():
        if n.noop or dag.parents.get(n.name):
            continue
        cmds, files = inputs(n)
        if names.WORKER not in cmds.get("arguments", "") and BOOT not in cmds.get("arguments", ""):
            continue  # not a worker job
        if all((wf / f).is_file() for f in files):
            return n, (cmds, files)
    return None, (None, None)


def _where_here(top: str) -> str | None:
    """'user' (your own code: outside the interpreter's prefixes), 'installed',
    or None (not importable here either)."""
    from .tokens import _prefixes

    spec = _spec(top)
    if spec is None:
        return None
    origin = spec.origin or next(iter(spec.submodule_search_locations or ()), "")
    return "installed" if os.path.realpath(origin).startswith(_prefixes()) else "user"


def _suggest(mode: str, module: str, python: str) -> str:
    top = module.split(".")[0]
    where = _where_here(top)
    by_value = (f"send it by value with by_value=[{top!r}] (or "
                f"cloudpickle.register_pickle_by_value({top}) before writing)")
    if where == "user":
        head = (f"{top!r} is your own code (importable here from "
                f"{importlib.util.find_spec(top).origin}): {by_value}")
    else:
        head = (f"{top!r} is {'an installed package here' if where else 'not importable here either'}")
    if mode == "transfer":
        return head + (f"; add it to {ZIP} with packages=[{top!r}] (pure Python only), or if "
                       f"the execute nodes' {python} has it, list it in assume_installed=")
    if mode == "container":
        return head + "; install it in the container image"
    return head + (f"; install it for {python} (the interpreter the jobs run, as the execute "
                   "nodes see it)" + ("" if where == "user" else f", or {by_value}"))


def doctor(path, *, node=None, stream=None, timeout: float = 60.0,
           run_task: bool = True) -> DoctorReport:
    """Preflight: run one node of the workflow at ``path`` the way its delivery
    mode would on an execute node, in a temporary scratch directory, and report
    what would be missing there (a module, an input file, the Python version).

    The node is ``node`` or the first node without parents whose inputs exist.
    Only the files its submit description transfers are copied in; the
    interpreter is the one the submit description names; the environment is
    the submit description's plus PATH=/usr/bin:/bin and PYTHONNOUSERSITE=1 --
    no PYTHONPATH, no user site-packages. Nothing is written into the workflow.
    A probe first loads the payload and inputs (every import by name happens
    there); then, with ``run_task``, the job's own command runs for at most
    ``timeout`` seconds. ``submit()`` uses ``run_task=False``: loading the
    payload is where code-delivery problems show, and the user's task must not
    run (with its side effects) on the submit node unasked.
    """
    import time

    start = time.monotonic()

    def say(msg):
        if stream is not None:
            stream.write(msg + "\n")
            stream.flush()

    rep = DoctorReport(path=str(Path(path).absolute()))
    _doctor(rep, node, timeout, say, run_task)
    rep.seconds = time.monotonic() - start
    say(rep.summary())
    return rep


def _doctor(rep: DoctorReport, node, timeout: float, say, run_task: bool = True) -> None:
    from . import dagfile, submitdesc
    from .write import read_manifest

    wf = Path(rep.path)
    try:
        manifest = read_manifest(wf)
        dag_path = wf / manifest["dag"]
        dag = dagfile.parse_dag(dag_path.read_text(encoding="utf-8"), str(dag_path))
        submits = {}
        for n in dag.nodes.values():
            if n.submit not in submits:
                submits[n.submit] = submitdesc.parse_submit(
                    (wf / n.submit).read_text(encoding="utf-8"), n.submit)
    except (OSError, CondorDagError, ValueError) as e:
        rep.problems.append(f"cannot read the workflow: {e}")
        return
    mode = (manifest.get("delivery") or {}).get("mode", "shared")
    rep.mode = mode
    try:
        n, (cmds, files) = _pick_node(dag, wf, node, submits)
    except (CondorDagError, submitdesc.SubmitSyntaxError) as e:
        rep.problems.append(str(e))
        return
    if n is None:
        rep.problems.append("no node without parents has all its input files: nothing to check")
        return
    rep.node = n.name
    exe = cmds.get("executable", "")
    rep.python = exe
    missing = [f for f in files if not (wf / f).is_file()]
    for f in missing:
        producers = [m for m, info in manifest.get("nodes", {}).items()
                     if any(f in fs for fs in info.get("outputs", {}).values())]
        rep.problems.append(
            f"input file {f} of node {n.name} is missing from {wf}"
            + (f" (node {producers[0]} writes it: run that first)" if producers else
               " (on a pool the job would go ON HOLD)"))
    if missing:
        return
    want = (manifest.get("versions") or {}).get("python", "")
    want_minor = ".".join(want.split(".")[:2])
    if mode == "container":
        rep.notes.append(
            f"container image {cmds.get('container_image')!r}: the interpreter {exe} inside "
            "it is not run here; the check below uses the same interpreter path on this "
            "machine, if it exists")
    if not os.path.isabs(exe):
        rep.problems.append(f"the executable {exe!r} is not an absolute path; jobs may "
                            "start with an empty PATH")
        return
    if not os.access(exe, os.X_OK):
        msg = f"the interpreter {exe} (from {n.submit}) does not exist on this machine"
        if mode == "shared":
            rep.problems.append(msg + "; delivery='shared' needs it on every execute node")
        else:
            rep.notes.append(msg + ": not checked here (it must exist on the execute nodes "
                             f"and run Python {want_minor})")
        return
    try:
        args = submitdesc.split_arguments(cmds.get("arguments", ""))
        job_env = submitdesc.parse_environment(cmds.get("environment", ""))
    except submitdesc.SubmitSyntaxError as e:
        rep.problems.append(f"{n.submit}: {e}")
        return
    assumed = {a.split(".")[0] for a in (manifest.get("delivery") or {}).get("assume_installed", ())}

    def missing_module(mod: str, detail: str) -> None:
        text = f"node {n.name}: module {mod!r} cannot be imported by {exe} ({detail})"
        if mode == "container":
            rep.notes.append(text + f" -- {exe} here stands in for the image's interpreter; "
                             "if the image has the module, ignore this")
        elif mod.split(".")[0] in assumed:
            rep.notes.append(text + " -- assume_installed says the execute nodes have it; "
                             "this machine's interpreter does not")
        else:
            rep.problems.append(f"{text}; on the execute node it would fail the same way. "
                                + _suggest(mode, mod, exe))

    scratch = tempfile.mkdtemp(prefix="condordag-doctor-")
    try:
        for f in files:
            dst = Path(scratch) / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wf / f, dst)
        env = {"PATH": "/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8"),
               "HOME": scratch, "PYTHONNOUSERSITE": "1"}
        env.update(job_env)
        env.update({"_CONDOR_SCRATCH_DIR": scratch, "TMPDIR": scratch})
        say(f"doctor: checking node {n.name} with {exe} (delivery={mode}) in {scratch}")
        probe = Path(scratch) / ".dcd_doctor_probe.py"
        probe.write_text(_PROBE, encoding="utf-8")
        try:
            # args: the shim (or boot script), then NODE PROC PACK as the job passes them
            cp = subprocess.run([exe, str(probe), mode, *args[1:4]], cwd=scratch, env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            rep.problems.append(f"cannot run {exe}: {e}")
            return
        try:
            got = json.loads(cp.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            rep.problems.append(f"{exe} could not run the probe (exit code {cp.returncode}): "
                                f"{cp.stderr.strip()[-2000:]}")
            return
        have = got.get("python", "")
        if want_minor and ".".join(have.split(".")[:2]) != want_minor:
            (rep.notes if mode == "container" else rep.problems).append(
                f"Python version mismatch: the workflow was written with Python {want} but "
                f"{exe} is Python {have}; payloads embed code, so the minor versions must "
                "match. Point worker_python= at a matching interpreter (or write the "
                "workflow with one)")
            return
        if not got.get("ok"):
            mod = got.get("module")
            if mod:
                missing_module(mod, f"{got.get('exc_type')}: {got.get('message')}, while "
                                    f"{got.get('stage')}")
            else:
                rep.problems.append(
                    f"node {n.name} fails while {got.get('stage')}: {got.get('exc_type')}: "
                    f"{got.get('message')}\n{got.get('traceback', '')}")
            return
        if not run_task:
            rep.notes.append(f"node {n.name}: payload and inputs load (the task was not run)")
            return
        # the job's own command, as the submit description says
        try:
            cp = subprocess.run([exe, *args], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            rep.notes.append(f"node {n.name} loaded fine and was still running after "
                             f"{timeout:g} s; stopped there")
            return
        outputs = submitdesc.split_file_list(cmds.get("transfer_output_files", ""))
        absent = [f for f in outputs if not (Path(scratch) / f).is_file()]
        if absent:
            rep.problems.append(
                f"node {n.name} (exit code {cp.returncode}) did not leave {', '.join(absent)}; "
                f"on a pool the job would go ON HOLD. Its stderr:\n{cp.stderr.strip()[-3000:]}")
            return
        if cp.returncode != 0:
            report = _first_error(Path(scratch), outputs)
            msg = (f"{report.get('exc_type')}: {report.get('message')}" if report
                   else f"exit code {cp.returncode}")
            mod = re.search(r"No module named '([^']+)'", msg)
            if mod:
                missing_module(mod.group(1), f"{msg}, while running the task")
            else:
                rep.notes.append(f"node {n.name} ran and its code raised {msg} (a failure of "
                                 "the task itself, not of getting code to the execute node)")
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _first_error(scratch: Path, outputs) -> dict | None:
    from .results import is_error, read_error

    for f in outputs:
        p = scratch / f
        try:
            if is_error(p):
                return read_error(p)
        except Exception:  # noqa: BLE001 - a report we cannot read is just absent
            continue
    return None
