"""The private names of dask and cloudpickle go through ``_compat.py`` only,
and the installed versions are the ones those names were checked against."""

from __future__ import annotations

import ast
import json
import doctest
import re
import textwrap
from pathlib import Path

import cloudpickle
import dask
from dask import delayed

import dask_condordag
from dask_condordag import _compat, names
from dask_condordag.doctor import doctor

PACKAGE = Path(dask_condordag.__file__).parent
#: the standalone worker shim imports only the standard library and cloudpickle
EXEMPT = {"_compat.py", *names.WORKER_FILES}
#: the tests, benchmarks and examples go through _compat too (this file holds probes)
#: private uses in files other changes are rewriting now: (file, what)
NOT_YET: set = set()  # (file, what) pairs allowed while a change moves them
OTHERS = [p for d in ("tests", "benchmarks", "examples")
          for p in sorted((PACKAGE.parent / d).rglob("*.py")) if p.name != "test_compat.py"]
_PRIVATE_STRING = re.compile(r"^(dask|cloudpickle)(\.\w+)*\._\w")


def test_installed_dask_and_cloudpickle_are_the_checked_versions():
    outside = _compat.unchecked_versions()
    assert not outside, "\n".join(outside)


def test_versions_outside_the_checked_ranges_are_named():
    ok = {"dask": "2026.8.0", "cloudpickle": "3.0.0"}
    assert _compat.unchecked_versions(ok) == []
    assert _compat.unchecked_versions({**ok, "dask": "2026.11.2"}) == []
    assert _compat.unchecked_versions({**ok, "cloudpickle": "3.9.1"}) == []
    for name, bad in (("dask", "2026.7.1"), ("dask", "2026.12.0"), ("dask", "2027.1.0"),
                      ("cloudpickle", "2.2.1"), ("cloudpickle", "4.0.0"), ("dask", "main")):
        (line,) = _compat.unchecked_versions({**ok, name: bad})
        assert line.startswith(f"{name} {bad} is outside"), line
        assert "_compat.py" in line


def _private_uses(path: Path, label: str) -> list[str]:
    """Each import of a private dask/cloudpickle module or name, each
    ``cloudpickle.cloudpickle`` attribute and each private module path in a
    string, as ``file:line: what``; a string that holds a Python script (a
    subprocess's) or doctest examples is read the same way."""
    return [line for _, line in sorted(_private_in(path.read_text(encoding="utf-8"), label))]


def _scripts(text: str) -> list:
    """``(tree, first line)`` for the Python script ``text`` holds, or for each
    of its doctest examples (lines counted from the string's first)."""
    if "import" not in text or "\n" not in text:
        return []
    if ">>>" in text:
        out = []
        for ex in doctest.DocTestParser().get_examples(text):
            try:
                out.append((ast.parse(ex.source), ex.lineno))
            except SyntaxError:
                pass
        return out
    try:
        return [(ast.parse(textwrap.dedent(text)), 0)]
    except SyntaxError:
        return []


def _private_in(source, label: str, first_line: int = 1) -> list:
    out = []
    tree = source if isinstance(source, ast.AST) else ast.parse(source)
    for node in ast.walk(tree):
        found = None
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in ("dask", "cloudpickle"):
            parts = node.module.split(".")
            if any(p.startswith("_") for p in parts) or parts[:2] == ["cloudpickle", "cloudpickle"] \
                    or any(a.name.startswith("_") for a in node.names):
                found = f"from {node.module} import ..."
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ("dask", "cloudpickle") and (
                        any(p.startswith("_") for p in a.name.split("."))
                        or a.name.startswith("cloudpickle.cloudpickle")):
                    found = f"import {a.name}"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("dask", "cloudpickle") and (
                    (node.value.id, node.attr) == ("cloudpickle", "cloudpickle")
                    or node.attr.startswith("_") and not node.attr.endswith("__")):
            found = f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _PRIVATE_STRING.match(node.value):
                found = repr(node.value)
            for script, at in _scripts(node.value):
                out += _private_in(script, label, first_line + node.lineno - 1 + at)
        if found:
            line = first_line + node.lineno - 1
            out.append((line, f"{label}:{line}: {found}"))
    return out


def _file_and_what(use: str) -> tuple:
    """``"plan.py:37: from x import ..."`` -> ``("plan.py", "from x import ...")``."""
    where, what = use.split(": ", 1)
    return where.rpartition(":")[0], what


def test_private_names_are_used_through_compat_only():
    uses = [u for p in sorted(PACKAGE.rglob("*.py")) if p.name not in EXEMPT
            for u in _private_uses(p, p.relative_to(PACKAGE).as_posix())]
    left = [u for u in uses if _file_and_what(u) not in NOT_YET]
    assert not left, ("private dask/cloudpickle names outside dask_condordag/_compat.py "
                      "(import them from there):\n" + "\n".join(left))
    gone = NOT_YET - {_file_and_what(u) for u in uses}
    assert not gone, f"no longer needed in NOT_YET: {sorted(gone)}"


def test_tests_benchmarks_and_examples_use_private_names_through_compat():
    assert len(OTHERS) > 20, OTHERS
    uses = [u for p in OTHERS for u in _private_uses(p, str(p.relative_to(PACKAGE.parent)))]
    assert not uses, ("private dask/cloudpickle names outside dask_condordag/_compat.py "
                      "(import them from dask_condordag._compat; add them there if "
                      "missing):\n" + "\n".join(uses))


def test_the_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from dask._task_spec import Task\nimport cloudpickle\n"
                   "f = cloudpickle.cloudpickle._code_reduce\n"
                   "m = 'dask.dataframe.dask_expr._shuffle'\n"
                   "SCRIPT = \'\'\'\n    import dask\n    from dask._expr import X\n\'\'\'\n"
                   "OK = \'\'\'\n    import dask\n    from dask_condordag._compat import X\n\'\'\'\n"
                   "def f():\n    \"\"\"Doc.\n\n    >>> import dask\n"
                   "    >>> from dask._task_spec import (\n    ...     Task)\n    \"\"\"\n")
    got = _private_uses(bad, "probe.py")
    assert got == [
        "probe.py:1: from dask._task_spec import ...", "probe.py:3: cloudpickle.cloudpickle",
        "probe.py:4: 'dask.dataframe.dask_expr._shuffle'",
        "probe.py:7: from dask._expr import ...",
        "probe.py:17: from dask._task_spec import ..."], got


def test_doctor_notes_versions_outside_the_checked_ranges(tmp_path):
    wf = dask_condordag.write(delayed(sum)([1, 2]), path=tmp_path / "wf")
    report = doctor(wf.path, run_task=False)
    assert not any("outside the versions" in n for n in report.notes), report.summary()
    m = json.loads((wf.path / names.MANIFEST).read_text())
    m["versions"]["dask"] = "2099.1.0"
    (wf.path / names.MANIFEST).write_text(json.dumps(m))
    report = doctor(wf.path, run_task=False)
    assert report.ok, report.summary()
    assert any(n.startswith("dask 2099.1.0 is outside the versions") for n in report.notes), \
        report.summary()
    assert dask.__version__ and cloudpickle.__version__
