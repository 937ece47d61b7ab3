"""Reruns follow the globals a task's code reads (issue 9, item 2): a user
module's dict, constant, helper function and class, changed between fresh
processes, rerun exactly the tasks that read them; what cannot be hashed
makes its task always rerun, and ``inspect`` says why. Plus the tokenizer's
rules in-process: nested code, attribute chains, cycles, installed code."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import types

import pytest
from dask import delayed

from dask_condordag import bytecode, tokens, usercode
from dask_condordag.graph import read_graph
from dask_condordag.plan import make_plan
from dask_condordag.bytecode import global_reads
from dask_condordag.tokens import Tokenizer

LIB = '''
import os, random, uuid

RUNS = os.environ["RUNS"]  # where tasks leave a mark when they run


def _ran(tag):
    open(os.path.join(RUNS, f"{tag}-{uuid.uuid4().hex}"), "w").close()


SETTINGS = {"scale": %(scale)s, "name": "s"}
OFFSET = %(offset)s
CHAIN = {"k": %(chain)s}
%(rng)s

def helper(x):
    return x %(helper_op)s 1


class Scaler:
    KIND = "scaler"

    def __init__(self, x):
        self.x = x

    def run(self):
        return self.x %(method_op)s 10


def scaled(x):
    _ran("dict")
    return x * SETTINGS["scale"]


def offset(x):
    _ran("const")
    return [x + OFFSET for _ in range(1)][0]  # read in a comprehension


def uses_helper(x):
    _ran("helper")
    return helper(x)


def uses_class(x):
    _ran("class")
    return Scaler(x).run()


def draws(x):
    _ran("draws")
    return x + 0 * RNG.random()
'''

SCRIPT = '''
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dask
from dask import delayed
import dask_condordag
import lib


def from_main(x):  # reads lib.CHAIN through the module: an attribute chain
    lib._ran("chain")
    return x * lib.CHAIN["k"]


def mark(tag, value):
    lib._ran(tag)
    return value


outs = {"dict": delayed(lib.scaled)(2), "const": delayed(lib.offset)(2),
        "helper": delayed(lib.uses_helper)(2), "class": delayed(lib.uses_class)(2),
        "chain": delayed(from_main)(2)}
if os.environ.get("DRAWS"):
    outs["draws"] = delayed(mark)("after", delayed(lib.draws)(5))
wf = os.environ.get("WF")
kw = {"path": wf} if wf else {}
print(json.dumps(dask.compute(outs, scheduler="condordag", run="local", **kw)[0]))
'''

DEFAULTS = dict(scale=3, offset=10, chain=4, helper_op="+", method_op="*", rng="")


class Project:
    """A script and the user's own module next to it, run in fresh processes;
    each task leaves a file in ``runs`` when it runs."""

    def __init__(self, tmp_path, path=True):
        self.dir = tmp_path / "project"
        self.dir.mkdir()
        self.runs = tmp_path / "runs"
        self.runs.mkdir()
        self.workflows = tmp_path / "workflows"
        self.wf = tmp_path / "wf" if path else None
        (self.dir / "script.py").write_text(SCRIPT)
        self.lib()

    def lib(self, **changes):
        (self.dir / "lib.py").write_text(LIB % {**DEFAULTS, **changes})

    def run(self, **env):
        before = set(os.listdir(self.runs))
        env = {**os.environ, "RUNS": str(self.runs), "PYTHONDONTWRITEBYTECODE": "1",
               "DASK_CONDORDAG__DIRECTORY": str(self.workflows), **env}
        if self.wf:
            env["WF"] = str(self.wf)
        out = subprocess.run([sys.executable, str(self.dir / "script.py")], capture_output=True,
                             text=True, cwd=self.dir, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        ran = sorted(n.split("-")[0] for n in set(os.listdir(self.runs)) - before)
        return json.loads(out.stdout.strip().splitlines()[-1]), ran


EXPECTED = {"dict": 6, "const": 12, "helper": 3, "class": 20, "chain": 8}


def test_changed_globals_rerun_exactly_the_tasks_that_read_them(tmp_path):
    p = Project(tmp_path)
    assert p.run() == (EXPECTED, sorted(EXPECTED))
    assert p.run() == (EXPECTED, [])  # nothing changed: nothing reruns
    p.lib(scale=5)  # a module-level dict
    assert p.run() == ({**EXPECTED, "dict": 10}, ["dict"])
    p.lib(scale=5, offset=20)  # a module-level constant, read in a comprehension
    assert p.run() == ({**EXPECTED, "dict": 10, "const": 22}, ["const"])
    p.lib(scale=5, offset=20, helper_op="-")  # the body of a helper in the same module
    assert p.run() == ({**EXPECTED, "dict": 10, "const": 22, "helper": 1}, ["helper"])
    p.lib(scale=5, offset=20, helper_op="-", method_op="+")  # a method of a class
    assert p.run() == ({**EXPECTED, "dict": 10, "const": 22, "helper": 1, "class": 12},
                       ["class"])
    p.lib(scale=5, offset=20, helper_op="-", method_op="+", chain=6)  # lib.CHAIN from __main__
    got = {**EXPECTED, "dict": 10, "const": 22, "helper": 1, "class": 12, "chain": 12}
    assert p.run() == (got, ["chain"])
    assert p.run() == (got, [])


@pytest.mark.usefixtures("one_node_per_task")
def test_a_global_that_cannot_be_hashed_always_reruns_and_inspect_says_why(tmp_path):
    p = Project(tmp_path, path=False)  # the default folder must stay the same
    p.lib(rng="RNG = random.Random()")  # picklable, but no two runs alike
    values, ran = p.run(DRAWS="1")
    assert values == {**EXPECTED, "draws": 5} and ran == sorted([*EXPECTED, "draws", "after"])
    assert p.run(DRAWS="1") == ({**EXPECTED, "draws": 5}, ["after", "draws"])
    [wf] = os.listdir(p.workflows)  # one workflow: everything else was reused there
    manifest = json.loads((p.workflows / wf / "manifest.json").read_text())
    why = {n: info.get("always_reruns") for n, info in manifest["nodes"].items()
           if info.get("always_reruns")}
    draws = next(n for n in why if n.startswith("draws"))
    assert why[draws] == ["global RNG (random.Random) cannot be hashed"]
    after = next(n for n in why if n.startswith("mark"))
    assert why[after] == [f"input {draws} always reruns"]
    assert len(why) == 2
    r = subprocess.run([sys.executable, "-m", "dask_condordag.cli", "inspect",
                        str(p.workflows / wf), draws],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "always reruns: global RNG (random.Random) cannot be hashed" in r.stdout


# ------------------------------------------------------------------ in-process
def _module(name, source):
    """A module of the user's own made from ``source`` (not importable: by value)."""
    mod = types.ModuleType(name)
    mod.__file__ = f"/nonexistent/{name}.py"
    exec(compile(textwrap.dedent(source), mod.__file__, "exec"), mod.__dict__)
    return mod


@pytest.fixture
def user_module(monkeypatch):
    made = []

    def make(source, name="usermod_tokens"):
        mod = _module(name, source)
        monkeypatch.setitem(sys.modules, name, mod)
        made.append(name)
        return mod
    yield make
    for name in made:
        usercode._module_cache.pop((name, f"/nonexistent/{name}.py"), None)


def test_global_reads_agree_with_dis():
    import dis

    import dask.base

    def f(x):
        import os
        z = [a * 2 for a in x if a in SET]  # noqa: F821
        return os.path.join(mod.CONST, str(helper(z))) + mod.sub.X.y  # noqa: F821

    assert global_reads(f.__code__) == [("mod", "CONST"), ("str",), ("helper",),
                                        ("mod", "sub", "X", "y")]
    seen = 0
    for fn in [f, *vars(dask.base).values(), *vars(tokens).values()]:
        if isinstance(fn, types.FunctionType):
            stack = [fn.__code__]
            while stack:
                code = stack.pop()
                want = [tuple(c) for c in bytecode._global_reads_dis(code)]
                assert global_reads(code) == want, code
                stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
                seen += 1
    assert seen > 50
    assert "LOAD_GLOBAL" in {i.opname for i in dis.get_instructions(f)}


def test_what_a_function_reads_is_in_its_token(user_module):
    src = '''
        import functools
        TABLE = {"a": [1, 2, (3, None)], "b": b"x"}
        LIMIT = 3
        class Base:
            SIZE = 2
            def size(self):
                return self.SIZE
        class Thing(Base):
            @staticmethod
            def make():
                return Thing()
            @property
            def p(self):
                return LIMIT
        def helper(x):
            return x
        @functools.lru_cache
        def cached(x):
            return x * 2
        def f(x):
            g = lambda y: [TABLE[k] for k in y]  # nested code
            return g(x), helper(x), Thing.make().size(), cached(1)
    '''
    mod = user_module(src)
    base = Tokenizer().func(mod.f)
    assert Tokenizer().func(mod.f) == base  # deterministic
    for old, new in [("(3, None)", "(3, 0)"), ("LIMIT = 3", "LIMIT = 4"),
                     ("SIZE = 2", "SIZE = 3"), ("return x\n", "return -x\n"),
                     ("x * 2", "x * 3")]:
        assert src.count(old) == 1, old
        changed = user_module(src.replace(old, new))
        tok = Tokenizer()
        assert tok.func(changed.f) != base, new
        assert tok.take_reasons() == ()


def test_attribute_chains_through_user_modules_only(user_module, monkeypatch):
    inner = user_module("VALUE = 1\nNOT_READ = 1\n", name="usermod_inner")
    outer = user_module("import usermod_inner\nimport math\n"
                        "def f():\n    return usermod_inner.VALUE + math.pi\n")
    base = Tokenizer().func(outer.f)
    monkeypatch.setattr(inner, "NOT_READ", 2)
    assert Tokenizer().func(outer.f) == base  # only what the code names counts
    monkeypatch.setattr(inner, "VALUE", 2)
    assert Tokenizer().func(outer.f) != base


def test_cycles_get_the_same_tokens_whichever_is_met_first(user_module):
    mod = user_module('''
        def even(n):
            return n == 0 or odd(n - 1)
        def odd(n):
            return n != 0 and even(n - 1)
        class Node:
            def child(self):
                return Node()
    ''')
    a, b = Tokenizer(), Tokenizer()
    first = (a.func(mod.even), a.func(mod.odd))
    assert (b.func(mod.odd), b.func(mod.even))[::-1] == first
    assert first[0] != first[1]
    c, d = Tokenizer(), Tokenizer()
    assert c.cls(mod.Node) == (d.func(mod.Node.child), d.cls(mod.Node))[1]


def test_unhashable_global_makes_the_token_unique_per_compile(user_module):
    mod = user_module('''
        import threading
        LOCK = threading.Lock()
        PARTS = {"ok": 1, "bad": object()}
        def f():
            with LOCK:
                return 1
        def g():
            return PARTS
        def calls_f():
            return f()
        def fine():
            return 2
    ''')
    tok = Tokenizer()
    t1 = tok.func(mod.f)
    assert tok.take_reasons() == ("global LOCK (_thread.lock) cannot be hashed",)
    assert tok.func(mod.f) == t1 and tok.take_reasons()  # cached, still reported
    assert Tokenizer().func(mod.f) != t1  # another compile: never the same
    tok.func(mod.calls_f)
    assert tok.take_reasons() == ("global LOCK (_thread.lock) cannot be hashed",)
    tok.func(mod.g)
    assert tok.take_reasons() == ("global PARTS (dict) cannot be hashed: it holds a object",)
    tok.func(mod.fine)
    assert tok.take_reasons() == ()
    assert Tokenizer(nonce="").func(mod.f) == Tokenizer(nonce="").func(mod.f)


def test_plan_records_why_and_keeps_a_stable_token(user_module):
    mod = user_module('''
        import threading
        LOCK = threading.Lock()
        def f(x):
            with LOCK:
                return x
    ''')

    def plan():
        a = delayed(mod.f, pure=True)(1, dask_key_name="a")
        b = delayed(sum, pure=True)([a, 1], dask_key_name="b")
        c = delayed(abs, pure=True)(-1, dask_key_name="c")
        return make_plan(read_graph(dict(b.__dask_graph__()) | dict(c.__dask_graph__()),
                                    ["b", "c"]), name="w")

    p1, p2 = plan(), plan()
    names1 = {t.key: t.name for n in p1.nodes.values() for t in n.tasks}
    names2 = {t.key: t.name for n in p2.nodes.values() for t in n.tasks}
    assert names1["c"] == names2["c"]
    assert names1["a"] != names2["a"] and names1["b"] != names2["b"]
    assert p1.reruns == {names1["a"]: ("global LOCK (_thread.lock) cannot be hashed",),
                         names1["b"]: (f"input {names1['a']} always reruns",)}
    assert p1.stable == {names1[k]: p2.stable[names2[k]] for k in "ab"}


def test_installed_code_counts_by_name_only(monkeypatch):
    import dask.utils
    import numpy as np

    assert not usercode.is_user_code(dask.utils.parse_bytes)
    base = Tokenizer().func(dask.utils.parse_bytes)
    # globals parse_bytes reads are not walked: installed code counts by name
    assert "byte_sizes" in {c[0] for c in global_reads(dask.utils.parse_bytes.__code__)}
    monkeypatch.setattr(dask.utils, "byte_sizes", {**dask.utils.byte_sizes, "x": threading.Lock()})
    tok = Tokenizer()
    assert tok.func(dask.utils.parse_bytes) == base and tok.take_reasons() == ()
    assert tok.func(np.mean) == Tokenizer().func(np.mean)


def _hashable():
    import collections
    import datetime
    import decimal
    import pathlib
    import re

    import numpy as np
    return [("dict", {"a": [1, (2, None)]}, {"a": [1, (2, 0)]}),
            ("set", {1, 2}, {1, 3}), ("bytes", b"a", b"b"),
            ("defaultdict", collections.defaultdict(list, a=[1]),
             collections.defaultdict(list, a=[2])),
            ("array", np.arange(3), np.arange(1, 4)), ("npscalar", np.float32(1), np.float32(2)),
            ("date", datetime.date(2020, 1, 1), datetime.date(2020, 1, 2)),
            ("path", pathlib.Path("/a"), pathlib.Path("/b")),
            ("decimal", decimal.Decimal("1.5"), decimal.Decimal("1.6")),
            ("regex", re.compile("a+"), re.compile("a*")),
            ("ufunc", np.sqrt, np.exp)]


@pytest.mark.parametrize("kind,value,other", _hashable(), ids=[h[0] for h in _hashable()])
def test_plain_data_is_hashed_by_value(user_module, kind, value, other):
    def token(v):
        mod = user_module("def f():\n    return G\n")
        mod.G = v
        tok = Tokenizer()
        out = tok.func(mod.f)
        assert tok.take_reasons() == (), kind
        return out

    assert token(value) == token(value)
    assert token(value) != token(other)


@pytest.mark.parametrize("make,typename", [
    ("random.Random(0)", "random.Random"),
    ("numpy.random.default_rng(0)", "numpy.random._generator.Generator"),
    ("io.StringIO('x')", "_io.StringIO"), ("threading.Lock()", "_thread.lock"),
    ("object()", "object"), ("numpy.array([object()])", "numpy.ndarray"),
    ("Thing()", "usermod_tokens.Thing"),
])
def test_what_cannot_be_hashed_is_named(user_module, make, typename):
    mod = user_module(f'''
        import io, random, threading, numpy
        class Thing:
            pass
        G = {make}
        def f():
            return G
    ''')
    tok = Tokenizer()
    tok.func(mod.f)
    assert tok.take_reasons() == (f"global G ({typename}) cannot be hashed",)


def test_a_constant_holding_such_a_function_reruns_its_readers(user_module):
    from dask_condordag._compat import Task, TaskRef

    mod = user_module("import threading\nLOCK = threading.Lock()\n"
                      "def f():\n    return LOCK\n")
    p = make_plan(read_graph({"x": [mod.f], "y": Task("y", len, TaskRef("x"))}, ["y"]),
                  name="w")
    [(name, why)] = p.reruns.items()
    assert why == ("input constant 'x' always reruns",)
    again = make_plan(read_graph({"x": [mod.f], "y": Task("y", len, TaskRef("x"))}, ["y"]),
                      name="w")
    assert name not in again.reruns and again.stable == {next(iter(again.reruns)): p.stable[name]}


def test_a_method_counts_with_its_class(user_module):
    src = '''
        class Job:
            def run(self, x):
                return self.step(x)
            def step(self, x):
                return x + 1
        def use(job):
            return job.step(1)
    '''

    def tokens_of(source):
        mod = user_module(source)
        tok = Tokenizer()
        job = mod.Job()
        return (tok.func(job.run), tok.func(mod.Job.run), tok.value(job),
                tok.func(mod.use))

    before = tokens_of(src)
    assert tokens_of(src) == before
    after = tokens_of(src.replace("x + 1", "x + 2"))  # a method run calls through self
    assert [a != b for a, b in zip(before, after)] == [True, True, True, False]


def test_dense_cycles_are_tokenized_once_and_in_any_order(user_module):
    import random
    import time

    n = 30
    calls = " + ".join(f"f{j}(x)" for j in range(n))
    src = "\n".join(f"def f{i}(x):\n    return C.m{i}() + {calls}\n" for i in range(n))
    src += "class C:\n" + "".join(
        f"    @staticmethod\n    def m{i}():\n        return C.m{(i + 1) % n}() + f{i}(0)\n"
        for i in range(n))
    mod = user_module(src)
    t0 = time.perf_counter()
    first = {i: Tokenizer().func(getattr(mod, f"f{i}")) for i in range(n)}
    order = list(range(n))
    random.Random(1).shuffle(order)
    tok = Tokenizer()
    assert {i: tok.func(getattr(mod, f"f{i}")) for i in order} == first
    assert len(set(first.values())) == n
    assert time.perf_counter() - t0 < 20  # (was exponential before cycle members were kept)
