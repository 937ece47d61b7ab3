"""Staging a workflow's content files: payload headers (the fast path equals
the general one) and the packs payloads travel in."""

import json

from dask import delayed

from dask_condordag import names

from .helpers import add, inc


def test_fast_payload_header_equals_the_general_one():
    import hashlib
    import importlib

    from dask.base import collections_to_expr
    from dask.core import flatten

    from dask_condordag._compat import FinalizeCompute
    from dask_condordag.graph import read_graph
    from dask_condordag.pickling import dumps
    from dask_condordag.plan import make_plan

    S = importlib.import_module("dask_condordag.staging")
    W = importlib.import_module("dask_condordag.write")
    a = delayed(inc)(1, dask_key_name='odd "key" \u00e9\\ \n')
    b = delayed(add)(a, delayed(inc)(2), dask_key_name=("tuple", 1))
    e = FinalizeCompute(collections_to_expr([b])).optimize()
    plan = make_plan(read_graph(e, list(flatten(e.__dask_keys__()))), name="t", group="none")
    v = W._versions()
    fast = [node for node in plan.nodes.values() if S._takes_fast_path(plan, node)]
    assert len(fast) == len(plan.nodes) == 3
    for node in fast:
        body = dumps([(t.name, t.expr) for t in node.tasks], "test", {})  # as _payload does
        general = S._payload_general(plan, node, v, body)
        assert S._payload_fast(plan, node, v, body) == general  # byte for byte
        assert S._payload(plan, node, v, {}) == general
        _, head, rest = general.split(b"\n", 2)
        meta = json.loads(head)
        assert rest == body and meta["sha256"] == hashlib.sha256(body).hexdigest()
        assert meta == {
            "sha256": meta["sha256"], "node": node.name, "mode": "single",
            "inputs": {x: plan.files_of(x)[0] for x in node.inputs},
            "outputs": S._payload_outputs(node), "order": None,
            "keys": {t.name: repr(t.key) for t in node.tasks},
            "python": v["python_minor"], "cloudpickle": v["cloudpickle"],
            "needs_cloudpickle": b"cloudpickle" in body, "max_runtime": None,
        }


def test_packer_limits(tmp_path):
    from dask_condordag.staging import Packer

    from .payloads import read_pack

    (tmp_path / "nodes").mkdir()
    packer = Packer(str(tmp_path))
    part = names.PACK_BYTES // 5 + 1  # five of these reach the byte cap
    assert part <= names.PACK_ALONE
    sizes = {"a": part, "b": part, "c": part, "d": part, "e": part, "f": 10,
             "g": names.PACK_ALONE + 1, "h": 10}
    for node, size in sizes.items():
        packer.add(node, b"x" * size)
    packer.flush()
    groups = {}
    for node, rel in packer.packs.items():
        groups.setdefault(rel, []).append(node)
    assert sorted(groups.values()) == [["a", "b", "c", "d", "e"], ["f", "h"], ["g"]]
    for rel, members in groups.items():
        got = read_pack((tmp_path / rel).read_bytes())
        assert {n: len(b) for n, b in got.items()} == {n: sizes[n] for n in members}
