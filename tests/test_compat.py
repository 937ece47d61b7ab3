"""The private names of dask and cloudpickle go through ``_compat.py`` only,
and the installed versions are the ones those names were checked against."""

from __future__ import annotations

import ast
import json
import re
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
    string, as ``file:line: what``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _PRIVATE_STRING.match(node.value):
            found = repr(node.value)
        if found:
            out.append((node.lineno, f"{label}:{node.lineno}: {found}"))
    return [line for _, line in sorted(out)]


def test_private_names_are_used_through_compat_only():
    uses = [u for p in sorted(PACKAGE.rglob("*.py")) if p.name not in EXEMPT
            for u in _private_uses(p, str(p.relative_to(PACKAGE)))]
    assert not uses, ("private dask/cloudpickle names outside dask_condordag/_compat.py "
                      "(import them from there):\n" + "\n".join(uses))


def test_the_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from dask._task_spec import Task\nimport cloudpickle\n"
                   "f = cloudpickle.cloudpickle._code_reduce\n"
                   "m = 'dask.dataframe.dask_expr._shuffle'\n")
    got = _private_uses(bad, "probe.py")
    assert [g.split(": ", 1)[1] for g in got] == [
        "from dask._task_spec import ...", "cloudpickle.cloudpickle",
        "'dask.dataframe.dask_expr._shuffle'"], got


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
