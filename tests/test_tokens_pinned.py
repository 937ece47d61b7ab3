"""Tokens are cache keys: their values are pinned, so that a refactoring of
tokens.py (or of what it uses) cannot silently change them and rerun, or
worse reuse, every cached result.

The pins were computed on main b1fb91c (before tokens.py was split). Plain
values and installed code give the same text on every Python; the tokens of
the user's own code hash its bytecode, which differs between Python
versions, so those are pinned per version (CPython 3.10 and 3.11 here) and
checked on the versions pinned. If a change of tokens is *meant* (a new rule),
update the pins in the same commit and say so: every cached result of every
user is then recomputed once.
"""

import functools
import operator
import sys
import textwrap
import types

import pytest

from dask_condordag import usercode
from dask_condordag._compat import Task, TaskRef
from dask_condordag.graph import read_graph
from dask_condordag.plan import make_plan
from dask_condordag.tokens import Tokenizer, sha, value_token

# the user's own modules: made at run time, so they count by content
HELPERS = '''
import enum
from dataclasses import dataclass

TABLE = {"scale": 3, "names": ("a", "b"), "ratio": 0.5}


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0

    def norm(self):
        return abs(self.x) + abs(self.y)


def helper(v):
    return v * TABLE["scale"]
'''

MAIN = '''
import functools
import threading
import pinned_helpers
from pinned_helpers import Colour, Point, helper

LIMIT = 10
ORIGIN = Point(1, 2)
LOCK = threading.Lock()  # cannot be hashed: its readers always rerun


def uses_globals(x):
    return helper(x) + LIMIT + ORIGIN.norm() + pinned_helpers.TABLE["ratio"]


def uses_chain(x):
    return pinned_helpers.TABLE["names"][x] if Colour.RED else None


def even(n):  # a cycle of two functions
    return True if n == 0 else odd(n - 1)


def odd(n):
    return False if n == 0 else even(n - 1)


class Tree:  # a class whose method names the class: another cycle
    KIND = "tree"

    def __init__(self, kids=()):
        self.kids = list(kids)

    def grow(self):
        return Tree([self])

    @staticmethod
    def leaf():
        return Tree()

    @property
    def size(self):
        return 1 + sum(k.size for k in self.kids)


def with_defaults(x, scale=2, *, shift=(1, 2)):
    return [x * scale + s for s in shift]


def make_adder(n):
    def add(x):
        return x + n + LIMIT
    return add


def locked(x):
    with LOCK:
        return x


ADD3 = make_adder(3)
PARTIAL = functools.partial(with_defaults, scale=5)
LAMBDAS = [lambda x, i=i: x + i for i in range(2)]
'''


def _module(name, source):
    mod = types.ModuleType(name)
    mod.__file__ = f"/nonexistent/{name}.py"
    exec(compile(textwrap.dedent(source), mod.__file__, "exec"), mod.__dict__)
    return mod


@pytest.fixture
def user_modules(monkeypatch):
    helpers = _module("pinned_helpers", HELPERS)
    monkeypatch.setitem(sys.modules, "pinned_helpers", helpers)
    main = _module("pinned_main", MAIN)
    monkeypatch.setitem(sys.modules, "pinned_main", main)
    yield main
    for name in ("pinned_helpers", "pinned_main"):
        usercode._module_cache.pop((name, f"/nonexistent/{name}.py"), None)


# ------------------------------------------------------------------ any Python
PLAIN = {
    "int": (3, "int:3"),
    "float": (2.5, "float:2.5"),
    "str": ("a b", "str:'a b'"),
    "nested": ({"k": [1, None, (b"x", True)], "s": {3, 1}},
               ("dict(str:'k'=list(int:1,NoneType:None,tuple(bytes:b'x',bool:True)),"
                "str:'s'=set(int:1,int:3))")),
    "empty": ((), "tuple()"),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_values_keep_their_tokens(name):
    value, pinned = PLAIN[name]
    assert value_token(value) == pinned


def test_installed_code_keeps_its_tokens():
    tok = Tokenizer(nonce="")
    got = {"operator.add": tok.func(operator.add), "int": tok.value(int),
           "partial": tok.func(functools.partial(operator.mul, 2)),
           "sha": sha("dask-condordag")}
    assert got == {"operator.add": "91a1606eced2505dd8d3330585409605",
                   "int": "builtins.int",
                   "partial": "27ca0f92426c3b84d11413231398f2ea",
                   "sha": "d2731867c0a678a7c6bdd456a2e115a1a06f9985134e710d86b327f05e247743"}
    assert tok.take_reasons() == ()


# ------------------------------------------------------------------ per Python
def current_tokens(mod) -> dict:
    """The tokens pinned below, of the functions and classes of ``mod``
    (MAIN) and a small plan's node names; each cycle also entered from its
    other member in a fresh Tokenizer (the same token either way)."""
    tok = Tokenizer(nonce="")
    out = {name: tok.func(getattr(mod, name))
           for name in ("uses_globals", "uses_chain", "even", "with_defaults", "ADD3",
                        "PARTIAL")}
    out["Tree"] = tok.cls(mod.Tree)
    out["Tree.grow"] = tok.func(mod.Tree.grow)
    out["lambda0"], out["lambda1"] = (tok.func(f) for f in mod.LAMBDAS)
    out["Colour"] = tok.value(mod.Colour)
    other = Tokenizer(nonce="")
    out["odd (met first)"] = other.func(mod.odd)
    out["even (met second)"] = other.func(mod.even)
    out["Tree.grow (met first)"] = Tokenizer(nonce="").func(mod.Tree.grow)
    assert tok.take_reasons() == () and other.take_reasons() == ()
    out["locked"] = tok.func(mod.locked)
    out["locked: why"] = list(tok.take_reasons())
    plan = make_plan(read_graph({"a": Task("a", mod.uses_globals, 1),
                                 "b": Task("b", mod.with_defaults, TaskRef("a")),
                                 "c": Task("c", operator.add, TaskRef("a"), 2)}, ["b", "c"]),
                     name="pinned", group="none")
    out["plan nodes"] = sorted(plan.nodes)
    return out


PINNED = {
    (3, 10): {
        "uses_globals": "2f6d6269d62c123ce91bab135e4c19cb",
        "uses_chain": "34118d4517e6797b0df0801a59e1f161",
        "even": "022620c77686b691a6e422767c915619",
        "with_defaults": "248bc65dd51ced5bc98db3b6c5023096",
        "ADD3": "8c5a362c96d049c69a644f57246af933",
        "PARTIAL": "16732aaa6c9addae023c325e263edad5",
        "Tree": "0e564f29072c7d031c323080688bb24a",
        "Tree.grow": "94eca2ce001b30af81d3bb6787c1b377",
        "lambda0": "312cbefeeeb9a94f2b0c3955a436b817",
        "lambda1": "eaef84f4a9a1036161b97586b8ee941e",
        "Colour": "d09d700820657b114b4b0e57b3419e13",
        "odd (met first)": "76093e103517a41ce7f6ff0f992643dd",
        "even (met second)": "022620c77686b691a6e422767c915619",
        "Tree.grow (met first)": "94eca2ce001b30af81d3bb6787c1b377",
        "locked": "080607c9d52d5e1157b83350e2ee8db7",
        "locked: why": ["global LOCK (_thread.lock) cannot be hashed"],
        "plan nodes": ["a_51cdb79951351b52", "b_a48ef647d5abce28", "c_49d3dbed25680ee3"],
    },
    (3, 11): {
        "uses_globals": "5b53fde247824e79f6de7d3cadb7a5b5",
        "uses_chain": "031d4fe8ba2d77df3c1979e80071f2b4",
        "even": "af9c3664ea38b097a78f47377b9fae6a",
        "with_defaults": "de843148502531b76a1bd2479dc5fd77",
        "ADD3": "628890931492393b886b1389ff8a612d",
        "PARTIAL": "9c77b28bdf95e198dfb805e8a8cd65e8",
        "Tree": "37470e0bbce5802fffab57aecd7c21d6",
        "Tree.grow": "a71c4cf30bad7329a2969ea3807f0c79",
        "lambda0": "779b9ee9d94e1859c4bbbc0e05ad2e14",
        "lambda1": "98212618f797d3a7aea9ba43804dd26f",
        "Colour": "170f3be999dd8c1325331aa0a6ca1218",
        "odd (met first)": "77f0f626feae20257569ee0610f28a2e",
        "even (met second)": "af9c3664ea38b097a78f47377b9fae6a",
        "Tree.grow (met first)": "a71c4cf30bad7329a2969ea3807f0c79",
        "locked": "e002eed6befd4523e737d2e75a0892ed",
        "locked: why": ["global LOCK (_thread.lock) cannot be hashed"],
        "plan nodes": ["a_71e219da601d4be5", "b_92207c21f5006f8e", "c_a70a019fe58f8197"],
    },
}


def test_the_users_code_keeps_its_tokens(user_modules):
    version = sys.version_info[:2]
    if version not in PINNED:
        pinned = ", ".join(f"{a}.{b}" for a, b in PINNED)
        pytest.skip(f"tokens of the user's code are pinned for CPython {pinned}; "
                    f"bytecode differs on {version[0]}.{version[1]}")
    got = current_tokens(user_modules)
    assert got["odd (met first)"] != got["even"]  # (a cycle's members differ ...)
    assert got["even (met second)"] == got["even"]  # (... whichever is met first)
    assert got["Tree.grow (met first)"] == got["Tree.grow"]
    assert got == PINNED[version]
