"""Stage a workflow's content files: payloads in packs, large constants, ``outputs.pkl``.

Data
    In: a :class:`~dask_condordag.plandata.Plan` (cut down to what must run,
    ``reuse``), the staging directory ``write`` made (:func:`stage_dir`), the
    versions of the submitting side and the file mode. Out: under the stage,
    ``nodes/`` (the payload packs), ``data/`` (large constants) and
    ``outputs.pkl``; the :class:`Packer` says which pack holds each node's
    payload, and :func:`stage_payloads` the SHA-256 of each payload (both
    go into the manifest and the DAG's VARS).

Policy
    * A payload is the magic line ``names.PAYLOAD_MAGIC``, one JSON header
      line (the node, its mode, the files it reads and writes, the keys'
      reprs, the versions it was pickled with, the SHA-256 of the body) and
      the pickled tasks -- what ``worker.py`` reads. The common payload (one
      task, one output, plain inputs, no time limit) gets the same JSON
      without building a dict (:func:`_payload_fast`): 100k of them are a
      measurable part of a compile.
    * Payloads go into packs of up to ``names.PACK_NODES`` (256 KiB at most;
      a payload above 64 KiB alone), in plan order, each named by the hash of
      its content: 100k nodes make ~1,600 files instead of 100k.
    * Constants and ``outputs.pkl`` are sealed as results are
      (``worker_files.seal``), so they are checked before they are loaded. A
      constant already in the workflow being updated is not written again
      (its name is a content hash).
    * Payloads are pickled with cloudpickle (``pickling.py``), inside the
      ``by_value`` context ``write`` opens. Files are created with
      ``os.open`` and the mode passed in (no module state: two writers at
      once keep their own modes); one thread writes them all (background
      threads were measured: twice as slow).

Example::

    >>> pack = pack_bytes(["a", "b"], [b"one", b"three"])   # the index, then the payloads
    >>> pack.startswith(names.PACK_MAGIC), pack[len(names.PACK_MAGIC):]
    (True, b'{"a":[0,3],"b":[3,8]}\\nonethree')
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from pathlib import Path

from . import names
from .pickling import dumps
from .worker_files import seal

__all__ = ["Packer", "pack_bytes", "stage_dir", "stage_payloads", "stage_values", "write_bytes"]

_counter = itertools.count()


def write_bytes(path, data: bytes, mode: int) -> None:
    """Write a new file with permission bits ``mode``."""
    # plain os calls: a file object per file costs more than the write itself
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def stage_dir(target: Path, dmode: int) -> Path:
    """A fresh temporary sibling of ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{next(_counter)}"
    tmp.mkdir(mode=dmode)
    return tmp


def stage_payloads(plan, stage: Path, versions: dict, fmode: int) -> tuple:
    """Write every node's payload into packs under ``stage``: (the packer,
    {node: SHA-256 of its payload})."""
    cache: dict = {}
    digests: dict = {}
    packer = Packer(str(stage), fmode)
    for node in plan.nodes.values():
        data = _payload(plan, node, versions, cache)
        digests[node.name] = hashlib.sha256(data).hexdigest()
        packer.add(node.name, data)
    packer.flush()
    return packer, digests


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
    return (node.mode == "single" and len(node.tasks) == 1 and node.threads == 1
            and node.settings.max_runtime is None
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


def pack_bytes(nodes: list, payloads: list) -> bytes:
    """A payload pack (``names.PACK_MAGIC``): ``payloads[i]`` is node ``nodes[i]``'s."""
    index, at = [], 0
    for n, part in zip(nodes, payloads):
        index.append(f'"{n}":[{at},{at + len(part)}]')  # node names are [A-Za-z0-9_-]
        at += len(part)
    return b"".join([names.PACK_MAGIC, ("{%s}\n" % ",".join(index)).encode("ascii"), *payloads])


class Packer:
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
        write_bytes(f"{self.root}/{rel}", data, self.mode)
        self.files.add(rel)
        for n in nodes:
            self.packs[n] = rel


def stage_values(plan, stage: Path, fmode: int, existing: Path | None, keys, repack) -> None:
    """Write the large constants (those not already in the ``existing``
    workflow) and ``outputs.pkl`` under ``stage``."""
    for d in plan.data.values():
        if existing is not None and (existing / d.file).exists():
            continue
        body = dumps(d.value, f"the constant of key {d.key!r}")
        write_bytes(stage / d.file, _sealed(d.file, body), fmode)
    outputs = {
        "keys": list(keys) or [o.key for o in plan.outputs],
        # (key, kind, files, inline value, files form a list)
        "outputs": [(o.key, o.kind,
                     plan.files_of(o.name) if o.kind != "inline" else (),
                     o.value, o.name in plan.listed) for o in plan.outputs],
        "repack": repack,
    }
    body = dumps(outputs, "the requested keys and their repack step")
    write_bytes(stage / names.OUTPUTS, _sealed(names.OUTPUTS, body), fmode)


def _sealed(relpath: str, body: bytes) -> bytes:
    return seal(names.RESULT_OK, relpath, body) + body
