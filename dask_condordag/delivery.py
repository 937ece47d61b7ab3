r"""How the worker and the user's code reach the execute node: the delivery modes.

Data
    In: the delivery options (``delivery``, ``worker_python``,
    ``container_image``, ``assume_installed``, ``packages``, ``by_value``,
    ``shared_filesystem``) and, for ``transfer``, the plan. Out: the submit
    commands of the chosen mode (:func:`submit_commands`) and the files it
    adds to the workflow directory (:func:`stage_files`: for ``transfer``,
    ``bin/packages.zip`` built by ``packages.py`` and
    ``bin/dask_condordag_boot.py``, a copy of ``boot.py``). The preflight
    that checks a written workflow is ``doctor.py``.

Methods
    Each mode is one small function from the resolved options to its submit
    commands, registered by name with :func:`register_delivery_method` (as
    htmap registers its delivery mechanisms, htmap/options.py), with an
    optional function that stages its files and the interpreter it runs
    when ``worker_python`` is not given.

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

    >>> d = make_delivery("transfer")
    >>> dict(submit_commands(d, "/opt/py/bin/python"))["executable"]
    '/usr/bin/python3'
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import names
from .exceptions import CondorDagError, PlanError
from .packages import build_zip, referenced_modules
from .render import WORKER_ARGS

__all__ = ["Delivery", "DeliveryMethod", "register_delivery_method", "delivery_method",
           "make_delivery", "from_options", "submit_commands", "stage_files",
           "by_value_modules"]


@dataclass(frozen=True)
class DeliveryMethod:
    """A registered mode: ``commands(d, submit_python)`` gives its submit
    commands; ``stage(plan, d)``, if any, its files as ``(d, {relative path:
    bytes})``; ``python``, the interpreter it runs by default (None: the
    submitting one)."""

    name: str
    commands: Callable
    stage: Callable | None = None
    python: str | None = None


_METHODS: dict = {}


def register_delivery_method(name: str, commands: Callable, *, stage: Callable | None = None,
                             python: str | None = None) -> None:
    """Make ``delivery=name`` available (see :class:`DeliveryMethod`)."""
    _METHODS[name] = DeliveryMethod(name, commands, stage, python)


def delivery_method(name: str) -> DeliveryMethod:
    """The registered mode ``name``; CondorDagError names the known ones."""
    try:
        return _METHODS[name]
    except KeyError:
        raise CondorDagError(f"delivery={name!r} is not one of {tuple(_METHODS)}") from None


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
    #: filled by stage_files: the objects that could not be pickled to find
    #: the modules they name (doctor reports them)
    unscanned: tuple = field(default=(), compare=False)

    def interpreter(self, submit_python: str) -> str:
        return self.worker_python or delivery_method(self.mode).python or submit_python

    def describe(self) -> dict:
        """What the manifest records (doctor reads it back)."""
        return {"mode": self.mode, "worker_python": self.worker_python,
                "container_image": self.container_image,
                "assume_installed": list(self.assume_installed),
                "packages": list(self.packages), "by_value": list(self.by_value),
                "shared_filesystem": self.shared_filesystem,
                "shipped": list(self.shipped), "unscanned": list(self.unscanned)}


# --------------------------------------------------------------------------- the options


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
    delivery_method(delivery)
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


def by_value_modules(d: Delivery | None) -> set:
    """The ``by_value`` modules, imported (so that they can be registered with
    cloudpickle); PlanError names one that cannot be imported."""
    out = set()
    for name in (d.by_value if d else ()):
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001
            raise PlanError(
                f"by_value: cannot import {name!r} here: {type(e).__name__}: {e}") from e
        out.add(name)
    return out


# --------------------------------------------------------------------------- the modes


def _shared(d: Delivery, submit_python: str) -> list:
    """The interpreter by absolute path, never copied (a copied venv
    interpreter loses its environment)."""
    return [("executable", d.interpreter(submit_python)), ("transfer_executable", "false")]


def _transfer(d: Delivery, submit_python: str) -> list:
    """The execute node's python3 runs the boot script, which unpacks the zip
    and runs the worker with the worker's arguments."""
    return _shared(d, submit_python) + [
        ("arguments", f'"{names.BOOT} {WORKER_ARGS}"'),
        ("transfer_input_files",
         f"{names.WORKER_TRANSFER},{names.BOOT},{names.PACKAGES_ZIP},"
         f"$({names.INPUTS_MACRO})"),
        ("environment", '"PYTHONNOUSERSITE=1"'),
    ]


def _stage_transfer(plan, d: Delivery) -> tuple:
    """``bin/packages.zip`` for the modules the plan names, and the boot script."""
    modules, unscanned = referenced_modules(plan)
    data, shipped = build_zip(modules, assume_installed=d.assume_installed, packages=d.packages)
    boot = Path(__file__).with_name("boot.py").read_bytes()
    d = dataclasses.replace(d, shipped=shipped, unscanned=tuple(unscanned))
    return d, {names.PACKAGES_ZIP: data, names.BOOT: boot}


def _container(d: Delivery, submit_python: str) -> list:
    """The image's interpreter, in the container universe."""
    return ([("universe", "container"), ("container_image", d.container_image)]
            + _shared(d, submit_python) + [("environment", '"PYTHONNOUSERSITE=1"')])


register_delivery_method("shared", _shared)
register_delivery_method("transfer", _transfer, stage=_stage_transfer, python="/usr/bin/python3")
register_delivery_method("container", _container, python="/usr/local/bin/python3")


# --------------------------------------------------------------------------- what write calls


def submit_commands(d: Delivery | None, submit_python: str) -> list:
    """The (command, value) pairs the mode sets in every submit description;
    ``render_submit`` puts them in place of its defaults."""
    d = d or Delivery()
    cmds = delivery_method(d.mode).commands(d, submit_python)
    if d.shared_filesystem:
        cmds.append(("should_transfer_files", "IF_NEEDED"))
    return cmds


def stage_files(plan, d: Delivery | None) -> tuple:
    """The mode's files for the workflow directory: ``(d with what staging
    found, {relative path: bytes})``. Call it inside write's by-value context."""
    d = d or Delivery()
    stage = delivery_method(d.mode).stage
    return stage(plan, d) if stage is not None else (d, {})
