"""Imports run one way: no cycle between the package's modules.

Every import counts, at the top of a module or inside a function (a
function-level import hides a dependency; it does not remove it). The test
reads the source with ``ast``, so it sees imports that a run never reaches.
"""

import ast
import importlib.util
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

import dask_condordag
from dask_condordag import names

ROOT = Path(dask_condordag.__file__).parent
PKG = "dask_condordag"


def _modules() -> dict:
    """Dotted module name -> its file, for every module of the package."""
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = [PKG, *f.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, modules: dict) -> set:
    """The package's modules that ``name`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from . import names` imports the module names
                sub = f"{target}.{a.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict:
    modules = _modules()
    return {m: _imports(m, f, modules) for m, f in modules.items()}


def _cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(g) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_resolves_relative_imports(tmp_path):
    modules = {f"{PKG}.names": None, f"{PKG}.write": None, f"{PKG}.local": None,
               f"{PKG}.local.launch": None, PKG: None}
    src = tmp_path / "launch.py"
    src.write_text("from .. import names\nfrom ..write import x\n"
                   "def f():\n    from . import launch\n    import dask_condordag.local\n")
    assert _imports(f"{PKG}.local.files", src, modules) == {
        f"{PKG}.names", f"{PKG}.write", f"{PKG}.local.launch", f"{PKG}.local"}


def test_no_import_cycles():
    cycles = _cycles(_graph())
    local = [c for c in cycles if any(m == f"{PKG}.local" or m.startswith(f"{PKG}.local.")
                                      for m in c)]
    others = [c for c in cycles if c not in local]
    assert not others, f"import cycles: {others}"
    if local:
        pytest.xfail(f"cycles through local.py, which is being rewritten: {local}")


# -- imports inside functions -------------------------------------------------------------
#
# An import inside a function hides a dependency from a reader of the module's top. One is
# allowed only where it defers something: an optional or heavy module outside the package
# that ``import dask_condordag`` does not load anyway (a comment on the line, or on a
# comment line right above it, says why), or an import of the package's own listed in
# DEFERRED with its reason. The standalone worker shim runs without the package, where
# every millisecond of a job's start counts: its deferred imports need only the comment.

#: the standalone worker shim: copied into each workflow and run there by itself
SHIM = {*names.WORKER_FILES, "boot.py"}

#: imports of the package's own modules that stay inside a function: (file, module) -> why
DEFERRED = {
    ("worker_files.py", f"{PKG}.exceptions"):
        "the shim runs where the package may not be installed; it raises the package's "
        "own exception class only where it is",
}

#: files whose function-level imports are being moved by other changes now (none)
UNCHECKED: set = set()


def _comment_lines(source: str) -> set:
    """Line numbers that hold a comment, and (negated) those that hold only one."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            lines.add(row)
            if not tok.line[:tok.start[1]].strip():
                lines.add(-row)
    return lines


def _targets(node, package: str, modules) -> list:
    """``(module, names)`` an import statement reads: names is None for ``import m``;
    ``from . import names`` reads the package's module ``names``."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names]
    module = node.module or ""
    if node.level:
        base = package.split(".")
        base = base[:len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
    rest = [a.name for a in node.names if f"{module}.{a.name}" not in modules]
    return [(m, None) for m in subs] + ([(module, rest)] if rest else [])


def _loaded_by_the_package() -> frozenset:
    """The modules a fresh ``import dask_condordag`` loads."""
    out = subprocess.run([sys.executable, "-c", "import sys, dask_condordag; "
                          "print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return frozenset(out.stdout.split())


def _defers_nothing(module: str, names, loaded) -> bool:
    """Is everything ``module`` (with ``from module import names``) brings in loaded?"""
    if module not in loaded:
        return False
    for n in names or ():
        sub = f"{module}.{n}"
        if sub not in loaded and _is_module(sub):
            return False  # an unloaded submodule
    return True


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent is a module, not a package
        return False


def _function_import_problems(path: Path, name: str, label: str, loaded, modules,
                              deferred=None, shim: bool = False) -> list:
    """``label:line: why`` for each import inside a function of ``path``
    (module ``name``) that breaks the rules above."""
    deferred = DEFERRED if deferred is None else deferred
    source = path.read_text(encoding="utf-8")
    comments = _comment_lines(source)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inner = {id(n): n for f in ast.walk(ast.parse(source, str(path)))
             if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for node in sorted(inner.values(), key=lambda n: n.lineno):
        rows = range(node.lineno, node.end_lineno + 1)
        commented = any(r in comments for r in rows) or -(node.lineno - 1) in comments
        for module, names in _targets(node, package, modules):
            where = f"{label}:{node.lineno}: {module}"
            if module == PKG or module.startswith(PKG + "."):
                if (label, module) not in deferred:
                    out.append(f"{where}: the package's own module imported inside a "
                               "function: import it at the top (restructure if a cycle "
                               "forbids it), or list it in DEFERRED with the reason")
            elif not commented:
                out.append(f"{where}: imported inside a function with no comment: import it "
                           "at the top, or say in a comment what deferring it saves")
            elif not shim and _defers_nothing(module, names, loaded):
                out.append(f"{where}: defers nothing (`import dask_condordag` loads it "
                           "already): import it at the top")
    return out


def test_the_function_import_check_flags_what_it_should(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text(
        "import os\n"
        "def f():\n"
        "    import json\n"                                             # 3: no comment
        "    import json  # deferred: saves nothing\n"                 # 4: loaded anyway
        "    from .write import write_atomic\n"                        # 5: our own module
        "    from . import names  # the module: listed below\n"        # 6: fine
        "    # optional: not a dependency\n"
        "    from not_a_real_module_xyz import thing\n"                # 8: fine
        "    import also_not_real_xyz  # optional: a heavy import\n"   # 9: fine
        "    g = lambda: __import__('os')\n")
    listed = {("probe.py", f"{PKG}.names"): "a reason"}
    loaded = frozenset({"json", "os"})
    modules = {PKG, f"{PKG}.names", f"{PKG}.write"}
    got = _function_import_problems(src, f"{PKG}.probe", "probe.py", loaded, modules, listed)
    assert [g.split(": ")[0] for g in got] == ["probe.py:3", "probe.py:4", "probe.py:5"], got
    assert "no comment" in got[0] and "defers nothing" in got[1] and "DEFERRED" in got[2]
    # the shim: a comment is enough, even for what the package would load anyway
    got = _function_import_problems(src, f"{PKG}.probe", "probe.py", loaded, modules,
                                    listed, shim=True)
    assert [g.split(": ")[0] for g in got] == ["probe.py:3", "probe.py:5"], got


def test_imports_inside_functions_defer_something():
    loaded = _loaded_by_the_package()
    modules = _modules()
    problems, clean = [], []
    for name, path in modules.items():
        label = path.relative_to(ROOT).as_posix()
        found = _function_import_problems(path, name, label, loaded, modules,
                                          shim=label in SHIM)
        if label in UNCHECKED:
            if not found:
                clean.append(label)
        else:
            problems += found
    assert not problems, "\n".join(problems)
    assert not clean, f"no longer need to be in UNCHECKED: {clean}"
    stale = [k for k in DEFERRED if k[0] not in
             {p.relative_to(ROOT).as_posix() for p in modules.values()}]
    assert not stale, f"DEFERRED names files that are gone: {stale}"
