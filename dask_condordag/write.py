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
      Reuse is per task, whatever grouping wrote it (``_reusable_nodes``): a
      node runs only its tasks that must run, reading the reused results; a
      node with nothing to run is written ``DONE``.
    * Anything else at the path (another workflow, or files that are not a
      workflow) is refused before anything is written.
    * Payloads go into packs of up to ``names.PACK_NODES`` (256 KiB at most;
      a payload above 64 KiB alone), in plan order, each named by the hash of
      its content: 100k nodes make ~1,600 files instead of 100k. An update
      writes every pack anew and deletes the packs no node names any more,
      after the new manifest is in place.
    * Payloads are pickled with cloudpickle (``pickling.py``). Functions from
      ``__main__`` and from the user's own modules (files outside the
      interpreter's prefix and site-packages) go by value, so the execute
      node needs only the interpreter and its installed packages.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import cloudpickle
import dask

from . import names
from ._version import __version__
from .exceptions import PlanError, WorkflowError, WorkflowExistsError
from .pickling import by_value, dumps
from .dagfile import rescue_files
from .manifest import read_manifest
from .results import is_error, keep_finished, read_error, verify
from .worker import seal
from .settings import DagSettings
from .render import dag_files, render_config, render_dag, render_submit, submit_files
from .usercode import user_modules
from .delivery import by_value_modules, stage_files, submit_commands

__all__ = ["write_workflow"]

_counter = itertools.count()


def _reusable(path: Path, quarantine: Path) -> bool:
    """Is the result at ``path`` whole and its own? A damaged one is moved to
    ``quarantine`` (kept for inspection, never loaded) so that its node reruns."""
    if verify(path):
        return True
    if path.exists() and not is_error(path):
        quarantine.mkdir(parents=True, exist_ok=True)
        os.replace(path, quarantine / f"{path.name}.{int(time.time())}")
    return False


def _sealed(relpath: str, body: bytes) -> bytes:
    return seal(names.RESULT_OK, relpath, body) + body


def _payload_outputs(node) -> dict:
    """task -> the file the worker writes; for a procid cluster a template
    with ``{proc}``, for a sibling cluster the file of proc i for task i."""
    if node.mode == "procid":
        (task,) = node.outputs
        return {task: names.proc_result_file(node.name, "{proc}")}
    return {t: files[0] for t, files in node.outputs.items()}


def _payload(plan, node, versions, cache: dict) -> bytes:
    tasks = [(t.name, t.expr) for t in node.tasks]
    body = dumps(tasks, lambda: f"the task of key {node.tasks[0].key!r} (node {node.name})",
                  cache)
    if _takes_fast_path(plan, node):
        return _payload_fast(plan, node, versions, body)
    return _payload_general(plan, node, versions, body)


def _takes_fast_path(plan, node) -> bool:
    """One task, one output, plain inputs, no time limit: :func:`_payload_fast`."""
    return (node.mode == "single" and len(node.tasks) == 1 and node.settings.max_runtime is None
            and not plan.listed.intersection(node.inputs))


def _payload_general(plan, node, versions, body: bytes) -> bytes:
    """A payload: magic line, one JSON header line, the pickled tasks."""
    meta = {
        "sha256": hashlib.sha256(body).hexdigest(),
        "node": node.name,
        "mode": node.mode,
        # a list of files is read back as the list of their values (procid clusters)
        "inputs": {v: list(plan.files_of(v)) if v in plan.listed else plan.files_of(v)[0]
                   for v in node.inputs},
        "outputs": _payload_outputs(node),
        "order": [t.name for t in node.tasks] if node.mode == "cluster" else None,
        "keys": {t.name: repr(t.key) for t in node.tasks},
        "python": versions["python_minor"],
        "cloudpickle": versions["cloudpickle"],
        "needs_cloudpickle": b"cloudpickle" in body,
        "max_runtime": node.settings.max_runtime,
    }
    if node.threads > 1:  # the worker runs up to this many tasks at once (grouping)
        meta["threads"] = node.threads
    head = json.dumps(meta, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return names.PAYLOAD_MAGIC + head + b"\n" + body


_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII but '"' and '\\'


def _json_str(text: str) -> str:
    """``json.dumps(text)``, without its machinery for the common plain text."""
    return f'"{text}"' if _PLAIN.fullmatch(text) else json.dumps(text)


def _payload_fast(plan, node, versions, body: bytes) -> bytes:
    """The header of the common payload (one task, one output) without building
    a dict for json: every name in it is ours ([A-Za-z0-9_-], "/", "."), only
    the key's repr needs JSON escaping. Same JSON as the general path."""
    (t,) = node.tasks
    (out,) = node.outputs[t.name]
    inputs = ",".join(f'"{v}":"{plan.files_of(v)[0]}"' for v in node.inputs)
    head = (
        f'{{"sha256":"{hashlib.sha256(body).hexdigest()}","node":"{node.name}",'
        f'"mode":"single","inputs":{{{inputs}}},"outputs":{{"{t.name}":"{out}"}},'
        f'"order":null,"keys":{{"{t.name}":{_json_str(repr(t.key))}}},'
        f'"python":"{versions["python_minor"]}","cloudpickle":"{versions["cloudpickle"]}",'
        f'"needs_cloudpickle":{"true" if b"cloudpickle" in body else "false"},'
        f'"max_runtime":null}}'
    )
    return names.PAYLOAD_MAGIC + head.encode("ascii") + b"\n" + body


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
    results are reused instead of running them again."""
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
    }


#: the directories of a workflow
_DIRS = (names.BIN_DIR, names.NODES_DIR, names.DATA_DIR, names.RESULTS_DIR, names.LOGS_DIR)
#: file and directory modes by the ``permissions`` option
PERMISSIONS = {"private": (0o600, 0o700), "group": (0o640, 0o750)}


def _write_bytes(path, data: bytes, mode: int) -> None:
    """Write a new file with permission bits ``mode``."""
    # plain os calls: a file object per file costs more than the write itself
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _stage(target: Path, dmode: int) -> Path:
    """A fresh temporary sibling of ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{next(_counter)}"
    tmp.mkdir(mode=dmode)
    return tmp


def pack_bytes(nodes: list, payloads: list) -> bytes:
    """A payload pack (``names.PACK_MAGIC``): ``payloads[i]`` is node ``nodes[i]``'s."""
    index, at = [], 0
    for n, part in zip(nodes, payloads):
        index.append(f'"{n}":[{at},{at + len(part)}]')  # node names are [A-Za-z0-9_-]
        at += len(part)
    return b"".join([names.PACK_MAGIC, ("{%s}\n" % ",".join(index)).encode("ascii"), *payloads])


class _Packer:
    """Collects payloads into pack files (format: ``names.PACK_MAGIC``) and
    writes each when it is full. ``packs``: node name -> pack file."""

    def __init__(self, root: str, mode: int = 0o600):
        self.root = root
        self.mode = mode
        self.packs: dict = {}
        self.files: set = set()
        self._nodes: list = []
        self._parts: list = []
        self._size = 0

    def add(self, node: str, data: bytes) -> None:
        if len(data) > names.PACK_ALONE:
            self._write([node], [data])
            return
        self._nodes.append(node)
        self._parts.append(data)
        self._size += len(data)
        if len(self._nodes) >= names.PACK_NODES or self._size >= names.PACK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._nodes:
            self._write(self._nodes, self._parts)
        self._nodes, self._parts, self._size = [], [], 0

    def _write(self, nodes: list, parts: list) -> None:
        data = pack_bytes(nodes, parts)
        rel = names.pack_file(hashlib.sha256(data).hexdigest())
        _write_bytes(f"{self.root}/{rel}", data, self.mode)
        self.files.add(rel)
        for n in nodes:
            self.packs[n] = rel


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
    stage = _stage(path, dmode)
    try:
        full, have = plan, set()
        if existing is not None and not force:
            plan, done, have = _reusable_nodes(plan, path, existing)
        else:
            done = set()
        for d in _DIRS:
            (stage / d).mkdir(mode=dmode)
        # (writing on background threads was measured: twice as slow, GIL and
        # file-system contention; one thread it is)
        with by_value(sent_by_value | {"dask_condordag.jobs"}):
            packer, digests = _stage_payloads(plan, stage, versions, fmode)
            _stage_values(plan, stage, fmode, path if existing is not None else None,
                          keys, repack)
            delivery, extra_files = stage_files(plan, delivery)  # delivery.py: bin/packages.zip
        for rel, data in extra_files.items():
            _write_bytes(stage / rel, data, fmode)
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
    from :func:`_pool_dag`); WorkflowExistsError when ``path`` must not be
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
    pool = _pool_dag(path, name)
    if pool and pool[1]:
        raise WorkflowExistsError(
            f"the DAG of {path} is running on the pool (DAGMan job {pool[0]} is "
            "in condor_q); wait for it (dask-condordag wait) or remove it "
            "(dask-condordag remove) before writing the workflow again")
    from .local import locked

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


def _reusable_nodes(plan, path: Path, existing: dict | None = None) -> tuple:
    """``(the plan to run, the nodes written DONE, the tasks whose results
    are reused)``: reuse per task.

    A task of a ``single`` node whose result file at ``path`` is whole is
    not computed again, whatever grouping wrote it; damaged results are set
    aside in ``logs/corrupt``. A task must run when its result is missing
    and it is requested or read by a task that must run (or is an output of
    a node another running node waits for without reading it: ``after=``).
    A node with nothing to run is written ``DONE``; a node where only some
    tasks must run keeps just those, and reads the reused results it needs as
    inputs. ``processes``/``cluster`` nodes are reused whole, as before.
    First the results the failed nodes of the ``existing`` workflow kept in
    their error reports (``worker.keep_finished``) become result files."""
    if existing:
        _keep_finished(existing, path)
    quarantine = path / names.LOGS_DIR / "corrupt"
    try:  # one listing instead of a stat per task
        present = set(os.listdir(path / names.RESULTS_DIR))
    except FileNotFoundError:
        present = set()
    have = set()
    for node in plan.nodes.values():
        if node.mode == "single":
            for t in node.tasks:
                rel = names.result_file(t.name)
                if rel.rpartition("/")[2] in present and _reusable(path / rel, quarantine):
                    have.add(t.name)
    task_node = plan.task_node
    needed = {o.name for o in plan.outputs if o.kind == "task"}
    run: dict = {}  # node name -> tasks to run (all of them for clusters)
    for node in reversed(plan.nodes.values()):
        if node.mode != "single":
            if node.outputs and all(_reusable(path / f, quarantine)
                                    for files in node.outputs.values() for f in files):
                continue
            todo = list(node.tasks)
        else:
            todo = []
            for t in reversed(node.tasks):
                if t.name in needed and t.name not in have:
                    todo.append(t)
                    needed.update(t.reads)
            todo.reverse()
        if not todo:
            continue
        run[node.name] = todo
        for t in todo:
            needed.update(t.reads)
        read_nodes = {task_node.get(r) for t in node.tasks for r in t.reads}
        for p in node.parents:
            if p not in read_nodes:  # waited for without reading (after=): as before
                needed.update(plan.nodes[p].outputs)
    done = {n for n in plan.nodes if n not in run}
    return _pruned(plan, run, have), done, have


def _pruned(plan, run: dict, have: set):
    """``plan`` with each ``single`` node cut down to the tasks in ``run``
    (the reused results they read become inputs); other nodes as they are."""
    nodes, files = {}, dict(plan.files)
    changed = False
    for name, node in plan.nodes.items():
        todo = run.get(name)
        if todo is None or node.mode != "single" or len(todo) == len(node.tasks):
            nodes[name] = node
            continue
        changed = True
        inside = {t.name for t in todo}
        inputs = tuple(dict.fromkeys(r for t in todo for r in t.reads if r not in inside))
        for r in inputs:
            if r in have and r not in files:
                files[r] = (names.result_file(r),)
        nodes[name] = dataclasses.replace(
            node, tasks=tuple(todo), inputs=inputs,
            outputs={t: f for t, f in node.outputs.items() if t in inside})
    return dataclasses.replace(plan, nodes=nodes, files=files) if changed else plan


def _keep_finished(existing: dict, path: Path) -> None:
    """The results kept in the error reports of the failed nodes of several
    tasks of the workflow at ``path`` (its manifest ``existing``), written as
    their own result files (``results.keep_finished``)."""
    for info in (existing.get("nodes") or {}).values():
        if len(info.get("tasks") or ()) < 2:
            continue
        for files in (info.get("outputs") or {}).values():
            for f in files:
                if is_error(path / f):
                    try:
                        keep_finished(path, read_error(path / f))
                    except WorkflowError:  # a damaged report: those tasks rerun
                        pass


def _stage_payloads(plan, stage: Path, versions: dict, fmode: int) -> tuple:
    """Write every node's payload into packs under ``stage``: (the packer,
    {node: SHA-256 of its payload})."""
    cache: dict = {}
    digests: dict = {}
    packer = _Packer(str(stage), fmode)
    for node in plan.nodes.values():
        data = _payload(plan, node, versions, cache)
        digests[node.name] = hashlib.sha256(data).hexdigest()
        packer.add(node.name, data)
    packer.flush()
    return packer, digests


def _stage_values(plan, stage: Path, fmode: int, existing: Path | None, keys, repack) -> None:
    """Write the large constants (those not already in the ``existing``
    workflow) and ``outputs.pkl`` under ``stage``."""
    for d in plan.data.values():
        if existing is not None and (existing / d.file).exists():
            continue
        body = dumps(d.value, f"the constant of key {d.key!r}")
        _write_bytes(stage / d.file, _sealed(d.file, body), fmode)
    outputs = {
        "keys": list(keys) or [o.key for o in plan.outputs],
        # (key, kind, files, inline value, files form a list)
        "outputs": [(o.key, o.kind,
                     plan.files_of(o.name) if o.kind != "inline" else (),
                     o.value, o.name in plan.listed) for o in plan.outputs],
        "repack": repack,
    }
    body = dumps(outputs, "the requested keys and their repack step")
    _write_bytes(stage / names.OUTPUTS, _sealed(names.OUTPUTS, body), fmode)


def _render_files(plan, stage: Path, fmode: int, *, python: str, dag: DagSettings, delivery,
                  packs: dict, done: set, versions: dict, digests: dict,
                  full: tuple = (None, ())) -> dict:
    """Write the worker shim, the submit descriptions, the DAG (and CONFIG)
    file and the manifest under ``stage``; returns the manifest."""
    _write_bytes(stage / names.WORKER, Path(__file__).with_name("worker.py").read_bytes(), fmode)
    submits = submit_files(plan)
    for fname, extra, procs in set(submits.values()):
        text = render_submit(python=python, extra=extra, queue=procs,
                             delivery=submit_commands(delivery, python))
        _write_bytes(stage / fname, text.encode(), fmode)
    if dag.config:
        _write_bytes(stage / dag_files(plan.name, dag)["config"], render_config(dag).encode(),
                     fmode)
    dag_text = render_dag(plan, packs=packs, submits=submits, done=done, dag=dag)
    _write_bytes(stage / names.dag_file(plan.name), dag_text.encode(), fmode)
    manifest = _manifest(plan, python=python, done=done, versions=versions,
                         digests=digests, packs=packs, full=full)
    manifest["submit"] = sorted({f for f, _, _ in submits.values()})
    manifest["delivery"] = delivery.describe()
    # one line: json's C encoder is used only without indent (100k nodes)
    _write_bytes(stage / names.MANIFEST, json.dumps(manifest).encode(), fmode)
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


def _pool_dag(path: Path, name: str):
    """None when no DAG from ``path`` was submitted to a pool, or it is gone
    (``condor_q`` no longer lists it; where condor_q cannot be asked, its node
    status file says it finished); else (DAGMan job id, True: ``condor_q``
    lists it, None: cannot tell here)."""
    from .condor import Condor, CondorCommandError, available, read_cluster, read_status_file

    cluster = read_cluster(path)
    if cluster is None:
        return None
    if available():
        try:
            return (cluster, True) if Condor().query(cluster).dagman is not None else None
        except CondorCommandError:
            pass
    state = read_status_file(path / f"{name}.status")
    if state is not None and state.finished:
        return None
    return cluster, None
