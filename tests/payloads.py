"""Reading and changing one node's payload inside its pack (tests only)."""

import json

from dask_condordag import names
from dask_condordag.staging import pack_bytes


def read_pack(data: bytes) -> dict:
    """node -> payload bytes of a whole pack (the worker reads only its own entry)."""
    assert data.startswith(names.PACK_MAGIC)
    end = data.index(b"\n", len(names.PACK_MAGIC))
    index = json.loads(data[len(names.PACK_MAGIC):end])
    return {n: data[end + 1 + a:end + 1 + b] for n, (a, b) in index.items()}


def payload(wf, node) -> bytes:
    """The payload bytes of ``node`` in the workflow ``wf``."""
    return read_pack((wf.path / wf.nodes[node]["payload"]).read_bytes())[node]


def edit_payload(wf, node, edit, root=None) -> None:
    """Replace ``node``'s payload by ``edit(payload)`` in its pack file, in the
    workflow directory or in ``root`` (a copy of it, e.g. a scratch dir)."""
    p = (root or wf.path) / wf.nodes[node]["payload"]
    parts = read_pack(p.read_bytes())
    parts[node] = edit(parts[node])
    p.write_bytes(pack_bytes(list(parts), list(parts.values())))
