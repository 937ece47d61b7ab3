"""Preflight: run one node of a written workflow the way its delivery mode would
on an execute node, and say what would be missing there.

Data
    In: a workflow directory (its manifest, DAG file and submit
    descriptions). Out: a :class:`DoctorReport` -- ``problems`` (something
    the execute node would lack: a module, an input file, the interpreter,
    the Python version) and ``notes`` (facts that do not block).

Policy
    * The node is the one asked for, or the first node without parents
      whose input files all exist. Only the files its submit description
      transfers are copied into a scratch directory; the interpreter is the
      one the submit description names; the environment is the submit
      description's plus ``PATH=/usr/bin:/bin`` and ``PYTHONNOUSERSITE=1``
      -- no PYTHONPATH, no user site-packages. Nothing is written into the
      workflow, and the scratch directory is removed.
    * A probe (``doctor_probe.py``, copied into the scratch directory) first
      unpacks the zip (``transfer``), loads the worker, the payload and the
      inputs: every import by name happens there. Then, when
      asked (``run_task``), the job's own command runs for at most
      ``timeout`` seconds, and its outputs are checked the way HTCondor would
      (a missing output puts a job on hold). A task that raises its own
      error is a note, not a problem.
    * ``container``: the image is not run here; an interpreter at the same
      path on this machine stands in for the image's, and what it lacks is a
      note.
    * A workflow written with a dask or cloudpickle outside the versions
      whose private names ``_compat.py`` was checked against gets a note
      (the versions the manifest records).
    * Objects that could not be pickled when the workflow was written to
      look for the modules they name (the manifest's ``delivery.unscanned``)
      are reported: a module only they need may be missing from the zip.
    * The job's scratch directory, its inputs, its environment and the check
      of its outputs are the local runner's (``local/launch.py``:
      ``scratch_dir``, ``stage_inputs``, ``job_env``, ``missing_outputs``).
      What doctor does not share with ``run_job``: it runs the probe and the
      command under a timeout, capturing their output, and transfers nothing
      back into the workflow.

Example::

    >>> rep = doctor("/nonexistent")
    >>> rep.ok, rep.problems[0].startswith("cannot read the workflow")
    (False, True)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import dagfile, names, submitdesc
from ._compat import unchecked_versions
from .exceptions import CondorDagError
from .local import launch
from .manifest import read_manifest
from .packages import module_spec
from .results import is_error, read_error
from .usercode import installed_prefixes

__all__ = ["DoctorReport", "doctor"]

#: The probe run in the job's scratch directory (a real file, like the worker shim).
_PROBE = Path(__file__).with_name("doctor_probe.py")


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


def doctor(path, *, node=None, stream=None, timeout: float = 60.0,
           run_task: bool = True) -> DoctorReport:
    """Preflight the workflow at ``path`` (see the module docstring).

    ``node``: the node to check (default: the first node without parents
    whose inputs exist). ``stream``: where to say what is being done and the
    summary. ``run_task``: after the probe, run the job's own command for at
    most ``timeout`` seconds. ``submit()`` uses ``run_task=False``: loading
    the payload is where code-delivery problems show, and the user's task
    must not run (with its side effects) on the submit node unasked.
    """
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


def _doctor(rep: DoctorReport, node, timeout: float, say, run_task: bool) -> None:
    wf = Path(rep.path)
    got = _read_workflow(rep, wf)
    if got is None:
        return
    manifest, dag, submits = got
    delivery = manifest.get("delivery") or {}
    rep.mode = mode = delivery.get("mode", "shared")
    _note_unscanned(rep, delivery)
    _note_versions(rep, manifest)
    try:
        n, (cmds, files) = _pick_node(dag, wf, node, submits)
    except (CondorDagError, submitdesc.SubmitSyntaxError) as e:
        rep.problems.append(str(e))
        return
    if n is None:
        rep.problems.append("no node without parents has all its input files: nothing to check")
        return
    rep.node = n.name
    rep.python = exe = cmds.get("executable", "")
    if not _inputs_present(rep, wf, n, files, manifest):
        return
    want = (manifest.get("versions") or {}).get("python", "")
    if not _interpreter_runs(rep, n, cmds, exe, mode, want):
        return
    try:
        args = submitdesc.split_arguments(cmds.get("arguments", ""))
        job_env = submitdesc.parse_environment(cmds.get("environment", ""))
    except submitdesc.SubmitSyntaxError as e:
        rep.problems.append(f"{n.submit}: {e}")
        return
    missing = _missing_module_reporter(rep, n.name, exe, mode, delivery)
    with _staged_job(rep, wf, n.name, cmds, job_env) as job:
        if job is None:
            return
        say(f"doctor: checking node {n.name} with {exe} (delivery={mode}) in {job.scratch}")
        if not _probe(rep, job, n.name, exe, mode, args, want, timeout, missing):
            return
        if not run_task:
            rep.notes.append(f"node {n.name}: payload and inputs load (the task was not run)")
            return
        _run_task(rep, job, n.name, exe, args, cmds, timeout, missing)


def _read_workflow(rep: DoctorReport, wf: Path):
    """(manifest, parsed DAG, {submit file: parsed description}), or None
    with the problem in ``rep``."""
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
        return None
    return manifest, dag, submits


def _note_versions(rep: DoctorReport, manifest: dict) -> None:
    """A note for each of dask and cloudpickle the workflow was written with
    outside the versions ``_compat.py`` was checked against."""
    written = manifest.get("versions") or {}
    rep.notes.extend(unchecked_versions(
        {k: written[k] for k in ("dask", "cloudpickle") if k in written}))


def _note_unscanned(rep: DoctorReport, delivery: dict) -> None:
    """The objects write could not pickle to look for the modules they name."""
    unscanned = delivery.get("unscanned") or ()
    if unscanned:
        rep.notes.append(
            f"when the workflow was written, {len(unscanned)} object(s) could not be pickled "
            f"to look for the modules they refer to, so a module only they need may be "
            f"missing from {names.PACKAGES_ZIP} (add it with packages=[...]): "
            + "; ".join(unscanned))


def _pick_node(dag, wf: Path, node, submits: dict):
    """The node to check: ``node`` (a node name), else the first node without
    parents whose input files all exist."""

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
        args = cmds.get("arguments", "")
        if names.WORKER not in args and names.BOOT not in args:
            continue  # not a worker job
        if all((wf / f).is_file() for f in files):
            return n, (cmds, files)
    return None, (None, None)


def _inputs_present(rep: DoctorReport, wf: Path, n, files, manifest: dict) -> bool:
    """Every file the node's job transfers in exists (else a problem each,
    naming the node that writes it)."""
    missing = [f for f in files if not (wf / f).is_file()]
    for f in missing:
        producers = [m for m, info in manifest.get("nodes", {}).items()
                     if any(f in fs for fs in info.get("outputs", {}).values())]
        rep.problems.append(
            f"input file {f} of node {n.name} is missing from {wf}"
            + (f" (node {producers[0]} writes it: run that first)" if producers else
               " (on a pool the job would go ON HOLD)"))
    return not missing


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _interpreter_runs(rep: DoctorReport, n, cmds: dict, exe: str, mode: str,
                      want: str) -> bool:
    """The interpreter can be run here to stand in for the execute node's."""
    if mode == "container":
        rep.notes.append(
            f"container image {cmds.get('container_image')!r}: the interpreter {exe} inside "
            "it is not run here; the check below uses the same interpreter path on this "
            "machine, if it exists")
    if not os.path.isabs(exe):
        rep.problems.append(f"the executable {exe!r} is not an absolute path; jobs may "
                            "start with an empty PATH")
        return False
    if not os.access(exe, os.X_OK):
        msg = f"the interpreter {exe} (from {n.submit}) does not exist on this machine"
        if mode == "shared":
            rep.problems.append(msg + "; delivery='shared' needs it on every execute node")
        else:
            rep.notes.append(msg + ": not checked here (it must exist on the execute nodes "
                             f"and run Python {_minor(want)})")
        return False
    return True


def _missing_module_reporter(rep: DoctorReport, node: str, exe: str, mode: str,
                             delivery: dict):
    """A function that records a module the job could not import: a problem,
    or a note where this machine only stands in for the execute node."""
    assumed = {a.split(".")[0] for a in delivery.get("assume_installed", ())}

    def missing_module(mod: str, detail: str) -> None:
        text = f"node {node}: module {mod!r} cannot be imported by {exe} ({detail})"
        if mode == "container":
            rep.notes.append(text + f" -- {exe} here stands in for the image's interpreter; "
                             "if the image has the module, ignore this")
        elif mod.split(".")[0] in assumed:
            rep.notes.append(text + " -- assume_installed says the execute nodes have it; "
                             "this machine's interpreter does not")
        else:
            rep.problems.append(f"{text}; on the execute node it would fail the same way. "
                                + _suggest(mode, mod, exe))

    return missing_module


@dataclass
class _Job:
    """A job staged in its scratch directory (:func:`_staged_job`)."""

    scratch: Path
    env: dict
    cmds: dict  # its expanded submit commands

    def run(self, argv: list, timeout: float) -> subprocess.CompletedProcess:
        """Run ``argv`` in the scratch directory (TimeoutExpired after ``timeout``)."""
        return subprocess.run(argv, cwd=self.scratch, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def missing_outputs(self) -> list:
        """The output files the job did not leave (HTCondor would hold it)."""
        return launch.missing_outputs(self.scratch, self.cmds)


@contextmanager
def _staged_job(rep: DoctorReport, wf: Path, node: str, cmds: dict, extra_env: dict):
    """The local runner's scratch directory for ``node`` holding only its
    transfer inputs, and the environment of an execute node that has nothing
    of this machine's but its system paths; removed afterwards. None (and
    the problem in ``rep``) when an input vanished since it was checked."""
    with launch.scratch_dir(node) as scratch:
        reason = launch.stage_inputs(scratch, cmds, wf)
        if reason:
            rep.problems.append(f"node {node}: {reason}")
            yield None
            return
        base = {"PATH": "/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8"),
                "HOME": str(scratch), "PYTHONNOUSERSITE": "1"}
        yield _Job(scratch, launch.job_env(extra_env, str(scratch), base=base), cmds)


def _probe(rep: DoctorReport, job: _Job, node: str, exe: str, mode: str, args: list,
           want: str, timeout: float, missing_module) -> bool:
    """Load the payload and inputs as the job would; True when they load."""
    probe = job.scratch / ".dcd_doctor_probe.py"
    shutil.copyfile(_PROBE, probe)
    try:
        # args: the shim (or boot script), then NODE PROC PACK as the job passes them
        cp = job.run([exe, str(probe), mode, *args[1:4]], timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        rep.problems.append(f"cannot run {exe}: {e}")
        return False
    try:
        got = json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        rep.problems.append(f"{exe} could not run the probe (exit code {cp.returncode}): "
                            f"{cp.stderr.strip()[-2000:]}")
        return False
    have = got.get("python", "")
    if _minor(want) and _minor(have) != _minor(want):
        (rep.notes if mode == "container" else rep.problems).append(
            f"Python version mismatch: the workflow was written with Python {want} but "
            f"{exe} is Python {have}; payloads embed code, so the minor versions must "
            "match. Point worker_python= at a matching interpreter (or write the "
            "workflow with one)")
        return False
    if not got.get("ok"):
        mod = got.get("module")
        if mod:
            missing_module(mod, f"{got.get('exc_type')}: {got.get('message')}, while "
                                f"{got.get('stage')}")
        else:
            rep.problems.append(
                f"node {node} fails while {got.get('stage')}: {got.get('exc_type')}: "
                f"{got.get('message')}\n{got.get('traceback', '')}")
        return False
    return True


def _run_task(rep: DoctorReport, job: _Job, node: str, exe: str, args: list, cmds: dict,
              timeout: float, missing_module) -> None:
    """Run the job's own command, as the submit description says, and check
    what it leaves."""
    try:
        cp = job.run([exe, *args], timeout)
    except subprocess.TimeoutExpired:
        rep.notes.append(f"node {node} loaded fine and was still running after "
                         f"{timeout:g} s; stopped there")
        return
    outputs = submitdesc.split_file_list(cmds.get("transfer_output_files", ""))
    absent = job.missing_outputs()
    if absent:
        rep.problems.append(
            f"node {node} (exit code {cp.returncode}) did not leave {', '.join(absent)}; "
            f"on a pool the job would go ON HOLD. Its stderr:\n{cp.stderr.strip()[-3000:]}")
        return
    if cp.returncode != 0:
        report = _first_error(job.scratch, outputs)
        msg = (f"{report.get('exc_type')}: {report.get('message')}" if report
               else f"exit code {cp.returncode}")
        mod = re.search(r"No module named '([^']+)'", msg)
        if mod:
            missing_module(mod.group(1), f"{msg}, while running the task")
        else:
            rep.notes.append(f"node {node} ran and its code raised {msg} (a failure of "
                             "the task itself, not of getting code to the execute node)")


def _first_error(scratch: Path, outputs) -> dict | None:
    for f in outputs:
        p = scratch / f
        try:
            if is_error(p):
                return read_error(p)
        except Exception:  # noqa: BLE001 - a report we cannot read is just absent
            continue
    return None


def _where_here(top: str) -> str | None:
    """'user' (your own code: outside the interpreter's prefixes), 'installed',
    or None (not importable here either)."""
    spec = module_spec(top)
    if spec is None:
        return None
    origin = spec.origin or next(iter(spec.submodule_search_locations or ()), "")
    return "installed" if os.path.realpath(origin).startswith(installed_prefixes()) else "user"


def _suggest(mode: str, module: str, python: str) -> str:
    top = module.split(".")[0]
    where = _where_here(top)
    by_value = (f"send it by value with by_value=[{top!r}] (or "
                f"cloudpickle.register_pickle_by_value({top}) before writing)")
    if where == "user":
        head = (f"{top!r} is your own code (importable here from "
                f"{importlib.util.find_spec(top).origin}): {by_value}")
    else:
        head = f"{top!r} is " + ("an installed package here" if where
                                 else "not importable here either")
    if mode == "transfer":
        return head + (f"; add it to {names.PACKAGES_ZIP} with packages=[{top!r}] (pure Python "
                       f"only), or if the execute nodes' {python} has it, list it in "
                       "assume_installed=")
    if mode == "container":
        return head + "; install it in the container image"
    return head + (f"; install it for {python} (the interpreter the jobs run, as the execute "
                   "nodes see it)" + ("" if where == "user" else f", or {by_value}"))
