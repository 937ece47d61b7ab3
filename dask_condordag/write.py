"""Write a plan as a workflow directory, atomically. The only module that writes one.

Data
    In: a :class:`~dask_condordag.plan.Plan`, the target path, the submitting
    interpreter, and what ``result()`` needs later (the requested keys and
    dask's repack step). Out: the directory laid out as ``names`` describes.

Policy
    * Nothing half written. A new workflow is built in a temporary sibling
      (``.<dir>.tmp-<pid>-<n>``) and renamed into place. An existing directory
      of the *same* workflow (same name in its manifest) is updated: new
      payloads are built in a sibling first, then moved in one by one, and the
      DAG file, submit description and manifest are each replaced by rename
      (manifest last). Results already there are never touched: their names
      are content hashes, so a result that exists belongs to the same task.
      Reuse is per task, whatever grouping wrote it (``reuse``): a node runs
      only its tasks that must run, reading the reused results; a node with
      nothing to run is written ``DONE``.
    * Anything else at the path (another workflow, or files that are not a
      workflow, or a workflow whose DAG runs: on the pool, ``condor.pool_dag``;
      here, ``local.locked``) is refused before anything is written.
    * Payloads (in packs named by their content), large constants and
      ``outputs.pkl`` are staged by ``staging``. An update writes every pack
      anew and deletes the packs no node names any more, after the new
      manifest is in place (unless the DAG may still run on the pool: it
      reads the old packs).
    * Payloads are pickled with cloudpickle (``pickling.py``). Functions from
      ``__main__`` and from the user's own modules (files outside the
      interpreter's prefix and site-packages) go by value, so the execute
      node needs only the interpreter and its installed packages.
    * :func:`write_workflow` is its named steps: check the target
      (``_check_target``), find the reusable nodes (``reuse.reusable_nodes``),
      stage the content files (``staging``), render the DAG, submit and
      manifest files (``_render_files``), commit (``_commit``).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from pathlib import Path

import cloudpickle
import dask

from . import names
from ._version import __version__
from .condor import pool_dag
from .dagfile import rescue_files
from .delivery import by_value_modules, stage_files, submit_commands
from .exceptions import PlanError, WorkflowExistsError
from .local import locked
from .manifest import read_manifest
from .pickling import by_value
from .render import dag_files, render_config, render_dag, render_submit, submit_files
from .reuse import reusable_nodes
from .settings import DagSettings
from .staging import stage_dir, stage_payloads, stage_values, write_bytes
from .usercode import user_modules

__all__ = ["write_workflow"]


def _versions() -> dict:
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "python_minor": "%d.%d" % sys.version_info[:2],
        "dask": dask.__version__,
        "cloudpickle": cloudpickle.__version__,
        "dask_condordag": __version__,
    }


def _manifest(plan, *, python, done, versions, digests, packs, full=(None, ())) -> dict:
    """The manifest of ``plan`` (the plan as it runs); ``full``: (the plan
    before reuse cut its nodes down, the reused task names): ``tasks`` lists
    all of a node's tasks, ``outputs`` also the reused ones (their files
    stay: ``gc`` and ``result`` read this), ``reused_tasks`` those whose
    results are reused instead of running them again. For ``plan_report``:
    a node of several ``threads`` also has the ``reads`` inside it, a node
    with annotated tasks their ``durations`` (``condor={"duration": s}``),
    and a plan of ``group="auto"`` its cost model's figures (``cost``)."""
    whole, have = full
    whole = whole or plan
    nodes = {}
    for node in plan.nodes.values():
        full_node = whole.nodes[node.name]
        tasks = full_node.tasks
        outputs = node.outputs
        if full_node is not node:
            outputs = {t: f for t, f in full_node.outputs.items()
                       if t in node.outputs or t in have}
        nodes[node.name] = {  # (tuples are written as JSON arrays)
            "tasks": {t.name: repr(t.key) for t in tasks},
            "outputs": outputs,
            "parents": node.parents,
            "payload": packs[node.name],
            "sha256": digests[node.name],  # of the node's payload in that pack
        }
        if node.threads > 1:  # what plan_report needs to time the node's threads
            inside = {t.name for t in node.tasks}
            nodes[node.name]["threads"] = node.threads
            nodes[node.name]["reads"] = {t.name: [r for r in t.reads if r in inside]
                                         for t in node.tasks if inside.intersection(t.reads)}
        annotated = {t.name: plan.durations[t.name] for t in node.tasks
                     if t.name in plan.durations}
        if annotated:  # condor={"duration": s}: plan_report times the node with them
            nodes[node.name]["durations"] = annotated
        if full_node is not node:
            runs = {t.name for t in node.tasks}
            nodes[node.name]["reused_tasks"] = [t.name for t in tasks
                                                if t.name not in runs and t.name in have]
    for node in plan.nodes.values() if plan.reruns else ():
        why = [r for t in node.tasks for r in plan.reruns.get(t.name, ())]
        if why:  # tokens.py: what it reads cannot be hashed; shown by inspect
            nodes[node.name]["always_reruns"] = list(dict.fromkeys(why))
    return {
        "format": names.MANIFEST_FORMAT,
        "name": plan.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {k: v for k, v in versions.items() if k != "python_minor"},
        "python_executable": python,
        "dag": names.dag_file(plan.name),
        "outputs": [
            {"key": repr(o.key), "kind": o.kind, "name": o.name,
             "files": list(plan.files_of(o.name)) if o.kind != "inline" else None}
            for o in plan.outputs
        ],
        "data": {d.name: d.file for d in plan.data.values()},
        "nodes": nodes,
        "reused": sorted(done),
        **({"cost": plan.cost} if plan.cost else {}),
    }


#: the directories of a workflow
_DIRS = (names.BIN_DIR, names.NODES_DIR, names.DATA_DIR, names.RESULTS_DIR, names.LOGS_DIR)
#: file and directory modes by the ``permissions`` option
PERMISSIONS = {"private": (0o600, 0o700), "group": (0o640, 0o750)}




def write_workflow(plan, path, *, python: str | None = None, keys=(), repack=None,
                   dag: DagSettings | None = None, permissions: str = "private",
                   force: bool = False, delivery=None) -> dict:
    """Write ``plan`` to ``path`` (see the module docstring). Returns the manifest.

    ``keys`` and ``repack`` are stored in ``outputs.pkl`` for ``result()``:
    ``repack(values)`` turns the requested keys' values into what
    ``dask.compute`` would return. ``permissions``: ``"private"`` (files
    readable by the owner only, the default) or ``"group"``. ``force``: mark
    no node ``DONE``, so that everything runs again.

    The steps: check the target, find the reusable nodes, stage the payloads
    (and constants, outputs, delivery files), render the DAG, submit and
    manifest files, commit.
    """
    if permissions not in PERMISSIONS:
        raise PlanError(f"permissions={permissions!r} is not one of {sorted(PERMISSIONS)}")
    fmode, dmode = PERMISSIONS[permissions]
    path = Path(path).absolute()
    python = python or sys.executable
    if not os.path.isabs(python):
        raise PlanError(f"the interpreter must be an absolute path, got {python!r}")
    versions = _versions()
    existing, pool = _check_target(path, plan.name)
    sent_by_value = user_modules() | by_value_modules(delivery)
    stage = stage_dir(path, dmode)
    try:
        full, have = plan, set()
        if existing is not None and not force:
            plan, done, have = reusable_nodes(plan, path, existing)
        else:
            done = set()
        for d in _DIRS:
            (stage / d).mkdir(mode=dmode)
        # (writing on background threads was measured: twice as slow, GIL and
        # file-system contention; one thread it is)
        with by_value(sent_by_value | {"dask_condordag.jobs"}):
            packer, digests = stage_payloads(plan, stage, versions, fmode)
            stage_values(plan, stage, fmode, path if existing is not None else None,
                         keys, repack)
            delivery, extra_files = stage_files(plan, delivery)  # delivery.py: bin/packages.zip
        for rel, data in extra_files.items():
            write_bytes(stage / rel, data, fmode)
        manifest = _render_files(plan, stage, fmode, python=python, dag=dag or DagSettings(),
                                 delivery=delivery, packs=packer.packs, done=done,
                                 versions=versions, digests=digests, full=(full, have))
        if _commit(stage, path, plan.name, existing is None,
                   packer.files if pool is None else None):
            stage = None
        return manifest
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _check_target(path: Path, name: str) -> tuple:
    """(the manifest of the same workflow at ``path`` or None, its pool DAG
    from :func:`condor.pool_dag`); WorkflowExistsError when ``path`` must not be
    written: not a directory, another workflow, not empty, or running."""
    if not path.exists():
        return None, None
    if not path.is_dir():
        raise WorkflowExistsError(f"{path} exists and is not a directory; choose another path")
    if not (path / names.MANIFEST).exists():
        if any(path.iterdir()):
            raise WorkflowExistsError(
                f"{path} exists and is not empty, and it is not a dask-condordag "
                "workflow; choose another path"
            )
        return None, None
    pool = pool_dag(path, name)
    if pool and pool[1]:
        raise WorkflowExistsError(
            f"the DAG of {path} is running on the pool (DAGMan job {pool[0]} is "
            "in condor_q); wait for it (dask-condordag wait) or remove it "
            "(dask-condordag remove) before writing the workflow again")
    holder = locked(path)
    if holder:
        raise WorkflowExistsError(
            f"{path} is being run right now ({holder}); wait for the run to finish "
            "before writing the workflow again")
    existing = read_manifest(path)
    if existing.get("name") != name:
        raise WorkflowExistsError(
            f"{path} holds another workflow ({existing.get('name')!r}, not "
            f"{name!r}); choose another path, or delete that directory "
            "if you no longer need its results"
        )
    return existing, pool






def _render_files(plan, stage: Path, fmode: int, *, python: str, dag: DagSettings, delivery,
                  packs: dict, done: set, versions: dict, digests: dict,
                  full: tuple = (None, ())) -> dict:
    """Write the worker shim (its files), the submit descriptions, the DAG (and CONFIG)
    file and the manifest under ``stage``; returns the manifest."""
    for module, shipped in names.WORKER_FILES.items():
        write_bytes(stage / shipped, Path(__file__).with_name(module).read_bytes(), fmode)
    submits = submit_files(plan)
    for fname, extra, procs in set(submits.values()):
        text = render_submit(python=python, extra=extra, queue=procs,
                             delivery=submit_commands(delivery, python))
        write_bytes(stage / fname, text.encode(), fmode)
    if dag.config:
        write_bytes(stage / dag_files(plan.name, dag)["config"], render_config(dag).encode(),
                     fmode)
    dag_text = render_dag(plan, packs=packs, submits=submits, done=done, dag=dag)
    write_bytes(stage / names.dag_file(plan.name), dag_text.encode(), fmode)
    manifest = _manifest(plan, python=python, done=done, versions=versions,
                         digests=digests, packs=packs, full=full)
    manifest["submit"] = sorted({f for f, _, _ in submits.values()})
    manifest["delivery"] = delivery.describe()
    # one line: json's C encoder is used only without indent (100k nodes)
    write_bytes(stage / names.MANIFEST, json.dumps(manifest).encode(), fmode)
    return manifest


def _commit(stage: Path, path: Path, name: str, new: bool, packs: set | None) -> bool:
    """Put the staged workflow in place: a ``new`` one by renaming the stage
    (True: the stage is gone), an update by :func:`_merge_into` (False)."""
    if new:
        if path.exists():
            path.rmdir()  # it was empty
        os.rename(stage, path)
        return True
    # a DAG that may still run on the pool reads the old packs: keep them
    _merge_into(stage, path, name, packs)
    return False


def _merge_into(stage: Path, path: Path, name: str, packs: set) -> None:
    """Move a staged update into an existing workflow: content files first,
    then the files that describe the workflow, the manifest last; then delete
    the payload packs no node names any more (``packs``: the ones in use;
    None: delete nothing)."""
    for d in _DIRS:
        (path / d).mkdir(exist_ok=True)
        for f in (stage / d).iterdir():
            os.replace(f, path / d / f.name)
    # rescue DAGs name the old DAG's nodes: keep them, out of DAGMan's way
    dag = path / names.dag_file(name)
    for old in map(Path, rescue_files(str(dag))):
        os.replace(old, path / names.LOGS_DIR / f"{old.name}.{int(os.path.getmtime(old))}")
    described = [f.name for f in stage.iterdir() if f.is_file()
                 and f.name not in (names.dag_file(name), names.MANIFEST)]
    for f in described + [names.dag_file(name), names.MANIFEST]:
        os.replace(stage / f, path / f)
    for f in (path / names.NODES_DIR).iterdir() if packs is not None else ():
        if f"{names.NODES_DIR}/{f.name}" not in packs:
            f.unlink()
