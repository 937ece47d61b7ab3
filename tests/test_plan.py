"""Planning: stable content-addressed names, valid DAGMan node names, no collisions."""

import re
import subprocess
import sys
import textwrap
from operator import add

import pytest
from dask import delayed

from dask_condordag.graph import read_graph
from dask_condordag.plan import make_plan
from dask_condordag.exceptions import PlanError

NODE_NAME = re.compile(r"[A-Za-z0-9_-]+")
RESERVED = {"parent", "child", "all_nodes"}

SCRIPT = textwrap.dedent('''
    import json, random
    import dask
    from dask import delayed
    from dask.base import collections_to_expr
    from dask.core import flatten
    from dask_condordag._compat import FinalizeCompute
    from dask_condordag.graph import read_graph
    from dask_condordag.plan import make_plan

    def inc(x):
        return x + 1

    def combine(*xs):
        return sorted(xs)

    xs = [delayed(inc)(i) for i in range(5)]
    r = [delayed(random.random, pure=False)() for _ in range(3)]
    top = delayed(combine)(*xs, *r, delayed(inc)(xs[0]))
    expr = FinalizeCompute(collections_to_expr([top])).optimize()
    keys = list(flatten(expr.__dask_keys__()))
    plan = make_plan(read_graph(expr, keys), name="t", group="none")
    print(json.dumps([list(plan.nodes), [n.inputs for n in plan.nodes.values()]]))
''')


def _names_in_fresh_process(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    return out.stdout


def test_names_identical_across_processes(tmp_path):
    first = _names_in_fresh_process(tmp_path)
    second = _names_in_fresh_process(tmp_path)
    assert first == second
    import json

    nodes, _ = json.loads(first)
    assert len(nodes) == len(set(nodes)) == 10  # 5 inc + 3 random + inc + combine


def _plan(*values):
    from dask.base import collections_to_expr
    from dask_condordag._compat import FinalizeCompute
    from dask.core import flatten

    expr = FinalizeCompute(collections_to_expr(list(values))).optimize()
    keys = list(flatten(expr.__dask_keys__()))
    return make_plan(read_graph(expr, keys), name="t", group="none")


def test_node_names_are_valid_and_unique():
    weird = {f"k{i}": (add, i, 1) for i in range(3)}
    weird.update({"a b": (add, 1, 1), "PARENT": (add, 2, 2), "child": (add, 3, 3),
                  ("tuple", 1): (add, 4, 4), "x.y+z": (add, 5, 5), "": (add, 6, 6)})
    plan = make_plan(read_graph(weird, list(weird)), name="t", group="none")
    assert len(plan.nodes) == len(weird)
    for n in plan.nodes:
        assert NODE_NAME.fullmatch(n), n
        assert n.lower() not in RESERVED
    assert len({n.lower() for n in plan.nodes}) == len(plan.nodes)


def test_readable_prefix():
    @delayed
    def load_file(x):
        return x

    plan = _plan(load_file(1))
    (name,) = plan.nodes
    assert name.startswith("load_file_")


def test_content_changes_change_names_and_downstream():
    def f(x):
        return x + 1

    def g(x):
        return x * 2

    a1 = _plan(delayed(g)(delayed(f)(1)))
    a2 = _plan(delayed(g)(delayed(f)(1)))
    b = _plan(delayed(g)(delayed(f)(2)))
    assert list(a1.nodes) == list(a2.nodes)
    assert not set(a1.nodes) & set(b.nodes)  # changed argument: f and its dependent g


def test_small_constants_inline_large_ones_shared():
    import numpy as np

    small = delayed([1, 2, 3])
    big = delayed(np.zeros(100_000))
    plan = _plan(delayed(len)(small), delayed(len)(big), delayed(sum)(big))
    assert len(plan.data) == 1
    (dname,) = plan.data
    readers = [n for n in plan.nodes.values() if dname in n.inputs]
    assert len(readers) == 2
    small_reader = next(n for n in plan.nodes.values() if not n.inputs)
    assert small_reader.tasks[0].expr[2] == ((0, [1, 2, 3]),)


def test_bad_workflow_name():
    with pytest.raises(PlanError, match="workflow name"):
        make_plan(read_graph({"a": (add, 1, 1)}, ["a"]), name="has space")


def test_every_property_of_the_plan_objects_can_be_read():
    # a property that names something that does not exist fails only when read
    # (PlannedNode.payload once called names.payload_file, which never existed)
    import dataclasses

    from dask_condordag import plan as P

    a = delayed(add)(1, 2)
    big = delayed(list(range(100_000)))
    p = _plan(delayed(add)(a, 3), delayed(len)(big), delayed(sum)([a, a]))
    objects = [p, *p.nodes.values(), *p.data.values(), *p.outputs,
               *(t for n in p.nodes.values() for t in n.tasks)]
    assert {type(o) for o in objects} == {P.Plan, P.PlannedNode, P.PlannedData, P.Output,
                                         P.PlannedTask}
    for obj in objects:
        cls = type(obj)
        assert dataclasses.is_dataclass(cls)
        for name in dir(cls):
            if isinstance(getattr(cls, name), property):
                getattr(obj, name)  # raises if the property is broken
